"""peercam as a Python library: frames in, frames out.

Receive a stream, P2P or through the server's relay alike::

    import peercam

    async with peercam.watch("http://host:8080", "lab") as stream:
        async for frame in stream.frames():
            frame.image          # numpy uint8 HxWx3, BGR (OpenCV's order)
            frame.capture_time   # the camera's clock (Unix seconds), or None
            frame.video          # the same picture as a PyAV av.VideoFrame (for PyAV, aiortc)
        stream.stats()           # the figures `peercam view --json` prints

    async with peercam.watch("http://host:8080", "lab") as stream:   # its sound, if it has any
        async for sound in stream.audio():
            sound.samples        # numpy int16 (n, channels), 20 ms at sound.sample_rate (48000)
            sound.capture_time   # the camera's clock (Unix seconds), or None

    for frame in peercam.watch_sync("http://host:8080", "lab"):   # without asyncio
        ...

Publish your own frames (or a camera, a file, the test pattern)::

    async with peercam.Camera("http://host:8080", "lab", width=640, height=480) as camera:
        camera.send(image)       # any thread; never blocks; the newest frame wins

Run the server inside your program (here recording every stream)::

    server = await peercam.serve(host="127.0.0.1", port=8080,
                                 recording=peercam.RecordingConfig(Path("rec"), streams=("*",)))
    ...
    await server.close()

Every error peercam raises on purpose is a PeercamError: UsageError (also a ValueError)
for a value it cannot use, ViewerError and CameraError when a peer gives up, SourceError,
StartupError when the server cannot start. peercam logs to the "peercam" logger and
configures no logging of its own.

Two changes to aiortc and aioice are process-wide, and made explicitly where they are
first needed: a camera installs Chromium's playout-delay extension when it starts
(peers/camera/playoutdelay.py), and each peer restricts the local addresses ICE offers as it
connects (peers/ice.py restrict_host_addresses; aioice has no option for it).
"""

from __future__ import annotations

import ipaddress
import logging
from importlib import metadata as _metadata
from typing import Literal

from peercam.ingest import whip_ingest
from peercam.peers.camera.camera import Camera, CameraError
from peercam.peers.camera.layers import LayerError
from peercam.peers.camera.sources import SourceError
from peercam.peers.camera.talkreceiver import TalkFrame
from peercam.peers.ice import IceOptions, IceTransport
from peercam.peers.viewer.audioframe import AudioFrame
from peercam.peers.viewer.frame import Frame
from peercam.peers.viewer.viewer import ChatLine, EventKind, Mode, Viewer, ViewerError, ViewerEvent
from peercam.peers.viewer.watch import watch, watch_sync
from peercam.shared.errors import PeercamError, StartupError, UsageError
from peercam.shared.protocol import Codec, IceServer, RelayFormat
from peercam.shared.recordingconfig import RecordingConfig
from peercam.shared.retention import Retention
from peercam.signaling.cluster.cluster import RedisMissing, RedisUnreachable
from peercam.signaling.edge.app import Server
from peercam.signaling.edge.app import start as _start_server
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import Limits
from peercam.signaling.settings.turn import TurnConfig

__all__ = [
    "AudioFrame",
    "Camera",
    "CameraError",
    "ChatLine",
    "Codec",
    "EventKind",
    "Frame",
    "IceOptions",
    "IceServer",
    "IceTransport",
    "LayerError",
    "Limits",
    "Mode",
    "PeercamError",
    "RecordingConfig",
    "RedisMissing",
    "RedisUnreachable",
    "RelayFormat",
    "Retention",
    "Server",
    "ServerConfig",
    "SourceError",
    "StartupError",
    "TalkFrame",
    "TurnConfig",
    "UsageError",
    "Viewer",
    "ViewerError",
    "ViewerEvent",
    "serve",
    "watch",
    "watch_sync",
]

try:
    __version__ = _metadata.version("peercam")
except _metadata.PackageNotFoundError:  # a bare checkout, not installed: no metadata to read
    __version__ = "0+unknown"

# A library leaves logging to the program: without a handler of its own, Python would print
# our warnings to stderr. The command line (peercam/cli.py) configures it.
logging.getLogger(__name__).addHandler(logging.NullHandler())


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
    return await _start_server(config, whip_ingest(config))
