"""``watch()`` and ``watch_sync()``: a stream's frames in a few lines of Python."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

from peercam.peers.ice import IceOptions
from peercam.peers.signaling_client import Servers

from .frame import Frame
from .viewer import Viewer, ViewerOptions

_END = object()


def watch(server: Servers, stream: str, *, mode: str = "auto", quality: str = "auto",
          token: str | None = None, name: str = "", jpeg_quality: int | None = None,
          relay_format: str = "auto", wait: float = 0.0,
          first_frame_timeout: float | None = 15.0, connect_timeout: float = 5.0, p2p_retry: float = 30.0,
          ice: IceOptions | None = None, ca_file: str | None = None) -> Viewer:
    """A Viewer of ``stream`` on the server at ``server`` (``http://host:port``), to use as
    ``async with watch(...) as stream: async for frame in stream.frames(): ...``.

    ``server`` may also be several URLs: the viewer starts at the first and moves to the
    next whenever the one in use fails. A bad URL raises ValueError here.

    ``mode``: "auto" (P2P, falling back to the relay and back by itself), "p2p" or
    "relay". ``quality``: "auto" or a layer's name ("480p"). ``relay_format``: what the
    relay carries, "encoded" (the camera's own frames, decoded here with PyAV), "jpeg", or
    "auto" (encoded where PyAV can decode the camera's codec). ``wait``: how long a stream
    that is not live yet may take (0: an error at once). ``ice``: which ICE servers and
    local addresses to use (default: the server's).
    """
    return Viewer(ViewerOptions(
        server=server, stream=stream, mode=mode, quality=quality, token=token or "", name=name,
        jpeg_quality=jpeg_quality, relay_format=relay_format, wait=wait,
        first_frame_timeout=first_frame_timeout, connect_timeout=connect_timeout, p2p_retry=p2p_retry,
        ice=ice or IceOptions(), ca_file=ca_file))


def watch_sync(server: Servers, stream: str, **options) -> Iterator[Frame]:
    """The frames of ``stream``, for code that does not use asyncio: ``for frame in
    watch_sync(...)``. The viewer runs on a thread of its own; a loop slower than the video
    gets the newest frame. Leaving the loop (break, return, an exception) stops it; a
    viewer that gives up raises ViewerError here. Takes the options of ``watch()``.
    """
    frames: queue.Queue = queue.Queue(maxsize=2)
    stopping = threading.Event()
    loop = asyncio.new_event_loop()
    viewer = watch(server, stream, **options)

    def put(item: object) -> None:
        while True:  # the newest wins: make room rather than wait for a slow reader
            try:
                frames.put_nowait(item)
                return
            except queue.Full:
                try:
                    frames.get_nowait()
                except queue.Empty:
                    pass

    async def pump() -> None:
        try:
            async with viewer:
                async for frame in viewer.frames():
                    if stopping.is_set():
                        break
                    put(frame)
            put(_END)
        except BaseException as exc:  # handed to the reader's thread, which raises it
            put(exc)

    thread = threading.Thread(target=loop.run_until_complete, args=(pump(),), name="peercam-watch",
                              daemon=True)
    thread.start()
    try:
        while True:
            item = frames.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopping.set()
        if not loop.is_closed():
            loop.call_soon_threadsafe(viewer.stop)
        thread.join(10)
        loop.close()
