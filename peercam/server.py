"""``peercam.serve()``: a peercam server in the program's own event loop, WHIP publishers included."""

from __future__ import annotations

import ipaddress
from typing import Literal

from peercam.ingest import whip_ingest
from peercam.shared.protocol import IceServer
from peercam.shared.recordingconfig import RecordingConfig
from peercam.signaling.edge.app import Server, start
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import Limits
from peercam.signaling.settings.turn import TurnConfig

__all__ = ["serve"]


async def serve(host: str = "127.0.0.1", port: int = 8080, *, ice_servers: tuple[IceServer, ...] = (),
                ice_hosts: tuple[str, ...] = (), turn: TurnConfig | None = None, secret: str | None = None,
                auth: Literal["open", "publish", "all"] = "open",
                limits: Limits = Limits(),  # noqa: B008 (frozen: one shared default is safe)
                cert_file: str | None = None, key_file: str | None = None,
                allowed_origins: tuple[str, ...] = (), allowed_hosts: tuple[str, ...] = (),
                trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
                outbox_limit: int = 1024, recording: RecordingConfig | None = None, redis: str | None = None,
                heartbeat: float = 10.0, talk: Literal["off", "viewers", "token"] = "off",
                talk_max: float = 60.0) -> Server:
    """Start a peercam server in this program's event loop; returns the running Server
    (``server.url``, ``await server.close()``, or ``async with await serve(...)``).

    ``port=0`` takes a free port. The other parameters are ServerConfig's, with its
    defaults: ``ice_servers`` and ``ice_hosts`` handed to every client, ``turn``, ``secret``
    and ``auth`` ("open", "publish": cameras need a token, "all": viewers too), ``limits``,
    ``cert_file``/``key_file`` for HTTPS, ``allowed_origins``, ``allowed_hosts``,
    ``trusted_proxies``, ``outbox_limit``, ``recording``, ``redis`` (several instances as one
    deployment), ``heartbeat``, ``talk`` (who may talk back through a camera: "off",
    "viewers", or "token": those whose token carries the talk right) and ``talk_max``
    (seconds a speaker may hold the floor).

    Raises StartupError (its message names the cause and the fix) when it cannot start:
    the port taken, the certificate unreadable, Redis missing (RedisMissing) or
    unreachable (RedisUnreachable).
    """
    config = ServerConfig(
        host=host, port=port, ice_servers=ice_servers, ice_hosts=ice_hosts, turn=turn, secret=secret,
        auth=auth, limits=limits, cert_file=cert_file, key_file=key_file, allowed_origins=allowed_origins,
        allowed_hosts=allowed_hosts, trusted_proxies=trusted_proxies, outbox_limit=outbox_limit,
        recording=recording, redis=redis, heartbeat=heartbeat, talk=talk, talk_max=talk_max)
    return await start(config, whip_ingest(config))
