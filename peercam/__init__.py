"""peercam as a Python library: frames in, frames out.

Receive a stream, P2P or through the server's relay alike::

    import peercam

    async with peercam.watch("http://host:8080", "lab") as stream:
        async for frame in stream.frames():
            frame.image          # numpy uint8 HxWx3, BGR (OpenCV's order)
            frame.capture_time   # the camera's clock (Unix seconds), or None
        stream.stats()           # the figures `peercam view --json` prints

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

Two changes to aiortc and aioice are process-wide, and made explicitly where they are
first needed: a camera installs Chromium's playout-delay extension when it starts
(peers/camera/playoutdelay.py), and each peer restricts the local addresses ICE offers as it
connects (peers/ice.py restrict_host_addresses; aioice has no option for it).
"""

from __future__ import annotations

from peercam.peers.camera.camera import Camera, CameraError
from peercam.peers.ice import IceOptions
from peercam.peers.viewer.frame import Frame
from peercam.peers.viewer.viewer import ChatLine, Viewer, ViewerError, ViewerEvent
from peercam.peers.viewer.watch import watch, watch_sync
from peercam.shared.errors import PeercamError, StartupError
from peercam.shared.recordingconfig import RecordingConfig
from peercam.shared.retention import Retention
from peercam.signaling.edge.app import Server
from peercam.signaling.edge.app import start as _start_server
from peercam.signaling.settings.config import ServerConfig

__all__ = [
    "Camera",
    "CameraError",
    "ChatLine",
    "Frame",
    "IceOptions",
    "PeercamError",
    "RecordingConfig",
    "Retention",
    "Server",
    "ServerConfig",
    "StartupError",
    "Viewer",
    "ViewerError",
    "ViewerEvent",
    "serve",
    "watch",
    "watch_sync",
]


async def serve(host: str = "127.0.0.1", port: int = 8080, **settings) -> Server:
    """Start a peercam server in this program's event loop; returns the running Server
    (``server.url``, ``await server.close()``). ``port=0`` takes a free port. Other
    settings are ServerConfig's (``secret``, ``auth``, ``ice_servers``, ``limits``, ...).
    Raises StartupError (its message names the cause and the fix) when it cannot start:
    the port taken, the certificate unreadable, Redis missing or unreachable."""
    return await _start_server(ServerConfig(host=host, port=port, **settings))
