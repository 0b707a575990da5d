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

Five changes to aiortc and aioice are process-wide, each installed explicitly, once, where
it is first needed: a camera installs Chromium's playout-delay extension when it starts
(peers/camera/playoutdelay.py); a camera passing H.264 through and the server's WHIP
receiver add H.264 Main and High (peers/h264profiles.py); the WHIP receiver adds DTLS
suites for RSA certificates (peers/dtlsciphers.py); each peer restricts the local addresses
ICE offers as it connects (peers/ice.py restrict_host_addresses; aioice has no option for
it); and a camera and a viewer, as they start, make ICE return as soon as its checks
complete, not at aioice's next 20 ms tick (peers/icecompletion.py).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from peercam.shared.errors import PeercamError, StartupError, UsageError

if TYPE_CHECKING:  # for type checkers and the API reference; Python imports them on first use (_LAZY)
    from peercam.peers.camera.camera import Camera, CameraError
    from peercam.peers.camera.layers import LayerError
    from peercam.peers.camera.sources import SourceError
    from peercam.peers.camera.talkreceiver import TalkFrame
    from peercam.peers.ice import IceOptions, IceTransport
    from peercam.peers.viewer.audioframe import AudioFrame
    from peercam.peers.viewer.frame import Frame
    from peercam.peers.viewer.viewer import ChatLine, EventKind, Mode, Viewer, ViewerError, ViewerEvent
    from peercam.peers.viewer.watch import watch, watch_sync
    from peercam.server import serve
    from peercam.shared.protocol import Codec, IceServer, RelayFormat
    from peercam.shared.recordingconfig import RecordingConfig
    from peercam.shared.retention import Retention
    from peercam.signaling.cluster.cluster import RedisMissing, RedisUnreachable
    from peercam.signaling.edge.app import Server
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

#: Where each name of the API lives, imported on its first use (PEP 562) rather than with
#: the package: a program (or `peercam --help`, `peercam token`, `peercam serve`) loads
#: aiortc, PyAV and OpenCV only when it uses what needs them.
_LAZY = {
    "AudioFrame": "peercam.peers.viewer.audioframe",
    "Camera": "peercam.peers.camera.camera",
    "CameraError": "peercam.peers.camera.camera",
    "ChatLine": "peercam.peers.viewer.viewer",
    "Codec": "peercam.shared.protocol",
    "EventKind": "peercam.peers.viewer.viewer",
    "Frame": "peercam.peers.viewer.frame",
    "IceOptions": "peercam.peers.ice",
    "IceServer": "peercam.shared.protocol",
    "IceTransport": "peercam.peers.ice",
    "LayerError": "peercam.peers.camera.layers",
    "Limits": "peercam.signaling.settings.limits",
    "Mode": "peercam.peers.viewer.viewer",
    "RecordingConfig": "peercam.shared.recordingconfig",
    "RedisMissing": "peercam.signaling.cluster.cluster",
    "RedisUnreachable": "peercam.signaling.cluster.cluster",
    "RelayFormat": "peercam.shared.protocol",
    "Retention": "peercam.shared.retention",
    "Server": "peercam.signaling.edge.app",
    "ServerConfig": "peercam.signaling.settings.config",
    "SourceError": "peercam.peers.camera.sources",
    "TalkFrame": "peercam.peers.camera.talkreceiver",
    "TurnConfig": "peercam.signaling.settings.turn",
    "Viewer": "peercam.peers.viewer.viewer",
    "ViewerError": "peercam.peers.viewer.viewer",
    "ViewerEvent": "peercam.peers.viewer.viewer",
    "serve": "peercam.server",
    "watch": "peercam.peers.viewer.watch",
    "watch_sync": "peercam.peers.viewer.watch",
}

# A library leaves logging to the program: without a handler of its own, Python would print
# our warnings to stderr. The command line (peercam/cli.py) configures it.
logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib import metadata

        try:
            value: object = metadata.version("peercam")
        except metadata.PackageNotFoundError:  # a bare checkout, not installed: no metadata to read
            value = "0+unknown"
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once: later uses find it as any module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})
