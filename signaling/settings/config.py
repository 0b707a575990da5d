"""Server settings, gathered in one place for the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from peercam.shared.protocol import IceServer
from peercam.shared.recordingconfig import RecordingConfig

from .clientaddress import Network
from .limits import Limits
from .turn import TurnConfig


@dataclass(frozen=True)
class ServerConfig:
    """Everything a server is started with (``peercam serve``'s flags; ``peercam.serve()``
    takes the same, by name)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Handed to every client in its welcome; empty means no STUN/TURN at all.
    ice_servers: tuple[IceServer, ...] = ()
    #: Local addresses the Python peers' ICE may offer, unless they set their own.
    ice_hosts: tuple[str, ...] = ()
    #: TURN servers that take REST credentials, minted for each client's welcome.
    turn: TurnConfig | None = None
    #: Signs and checks tokens (signaling/edge/auth.py); required unless auth is "open".
    secret: str | None = None
    #: "open": anyone; "publish": publishing needs a token; "all": viewing too.
    auth: Literal["open", "publish", "all"] = "open"
    limits: Limits = field(default_factory=Limits)
    #: Serve HTTPS/WSS with this certificate chain and key (PEM files).
    cert_file: str | None = None
    key_file: str | None = None
    #: Browser origins allowed to open /ws besides the server's own (e.g.
    #: https://cams.example.org); "*": any.
    allowed_origins: tuple[str, ...] = ()
    #: Host names a loopback server answers to besides loopback ones (DNS rebinding guard).
    allowed_hosts: tuple[str, ...] = ()
    #: Reverse proxies whose X-Forwarded-For names the real client.
    trusted_proxies: tuple[Network, ...] = ()
    #: Outgoing messages queued for one client before it counts as too slow.
    outbox_limit: int = 1024
    #: Record streams on this server (--record-dir ...); None: record nothing.
    recording: RecordingConfig | None = None
    #: Share state with other instances through this Redis (signaling/cluster/cluster.py); None: alone.
    redis: str | None = None
    #: Seconds between WebSocket pings; a silent client is dropped after two.
    heartbeat: float = 10.0
    #: Who may talk back through a camera (docs/talk.md): "off", any "viewers", or those whose
    #: view token carries the talk right ("token": ``peercam token --role talk``).
    talk: Literal["off", "viewers", "token"] = "off"
    #: Seconds a speaker may hold the floor before the camera ends the turn.
    talk_max: float = 60.0
