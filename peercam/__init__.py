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
(peers/playoutdelay.py), and each peer restricts the local addresses ICE offers as it
connects (peers/ice.py restrict_host_addresses; aioice has no option for it).
"""

from __future__ import annotations

from peers.camera import Camera, CameraError
from peers.frame import Frame
from peers.ice import IceOptions
from peers.viewer import ChatLine, Viewer, ViewerError, ViewerEvent
from peers.watch import watch, watch_sync
from signaling.app import Server
from signaling.app import start as _start_server
from signaling.config import RecordingConfig, ServerConfig, StartupError
from signaling.retention import Retention

__all__ = [
    "Camera",
    "CameraError",
    "ChatLine",
    "Frame",
    "IceOptions",
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
