"""``watch()`` and ``watch_sync()``: a stream's frames (and sound) in a few lines of Python."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Literal

from peercam.peers.ice import IceOptions
from peercam.peers.signaling_client import Servers

from peercam.shared.protocol import RelayFormat

from .frame import Frame
from .viewer import Mode, Viewer, ViewerOptions

_END = object()


def watch(server: Servers, stream: str, *, name: str = "", token: str | None = None,
          ice: IceOptions | None = None, ca_file: str | None = None, connect_timeout: float = 5.0,
          mode: Mode = "auto", quality: str = "auto", relay_format: RelayFormat | Literal["auto"] = "auto",
          jpeg_quality: int | None = None, wait: float = 0.0, first_frame_timeout: float | None = 15.0,
          p2p_retry: float = 30.0, audio: bool = True, talk: str | None = None) -> Viewer:
    """A Viewer of ``stream`` on the server at ``server`` (``http://host:port``), to use as
    ``async with watch(...) as stream: async for frame in stream.frames(): ...`` (and
    ``stream.audio()`` for its sound).

    The leading parameters and those shared with ``Camera`` mean the same there:
    ``server``, a URL or several, tried in turn whenever the one in use fails; ``stream``,
    its name; ``name``, the display name (chat, the stream's viewer list); ``token``, a view
    token when the server asks for one; ``ice``, which ICE servers and local addresses to use
    (default: the server's); ``ca_file``, CA certificate(s) for an https:// server with a
    private CA; ``connect_timeout``, seconds P2P may take to connect before it counts as
    failed.

    The viewer's own: ``mode``, "auto" (P2P, falling back to the relay and back by itself),
    "p2p" or "relay"; ``quality``, "auto" or a layer's name ("480p"); ``relay_format``,
    what the relay carries: "encoded" (the camera's own frames, decoded here with PyAV),
    "jpeg", or "auto" (encoded where PyAV can decode the camera's codec); ``jpeg_quality``,
    asked of a JPEG relay (None: the camera's, adapted to the network); ``wait``, how long a
    stream that is not live yet may take (0: an error at once); ``first_frame_timeout``,
    give up when no frame came this long after the start (None: never); ``p2p_retry``, in
    auto mode on the relay, how often to try P2P again; ``audio``, receive the stream's
    sound if it has any (False: P2P offers no audio, the relay is not asked for it);
    ``talk``, an audio file (or ALSA device, or "tone": the test tone, made live) to talk back
    with once (P2P or the relay), when the server lets this viewer talk (``peercam view
    --talk``; "talk" events tell how it goes).

    Raises UsageError here for a bad URL, mode, relay format or talk file; the viewer raises
    ViewerError when it gives up.
    """
    return Viewer(ViewerOptions(
        server=server, stream=stream, name=name, token=token or "", ice=ice or IceOptions(),
        ca_file=ca_file, connect_timeout=connect_timeout, mode=mode, quality=quality,
        relay_format=relay_format, jpeg_quality=jpeg_quality, wait=wait,
        first_frame_timeout=first_frame_timeout, p2p_retry=p2p_retry, audio=audio, talk=talk))


def watch_sync(server: Servers, stream: str, *, name: str = "", token: str | None = None,
               ice: IceOptions | None = None, ca_file: str | None = None, connect_timeout: float = 5.0,
               mode: Mode = "auto", quality: str = "auto",
               relay_format: RelayFormat | Literal["auto"] = "auto", jpeg_quality: int | None = None,
               wait: float = 0.0, first_frame_timeout: float | None = 15.0,
               p2p_retry: float = 30.0, audio: bool = True, talk: str | None = None) -> Iterator[Frame]:
    """The frames of ``stream``, for code that does not use asyncio: ``for frame in
    watch_sync(...)``. The viewer runs on a thread of its own; a loop slower than the video
    gets the newest frame. Leaving the loop (break, return, an exception) stops it; a
    viewer that gives up raises ViewerError here. Takes the parameters of ``watch()``; a
    bad one raises UsageError at once. Frames only: sound needs ``watch()`` and its
    ``audio()`` (pass ``audio=False`` here to have none sent).
    """
    viewer = watch(server, stream, name=name, token=token, ice=ice, ca_file=ca_file,
                   connect_timeout=connect_timeout, mode=mode, quality=quality, relay_format=relay_format,
                   jpeg_quality=jpeg_quality, wait=wait, first_frame_timeout=first_frame_timeout,
                   p2p_retry=p2p_retry, audio=audio, talk=talk)
    return _frames_of(viewer)


def _frames_of(viewer: Viewer) -> Iterator[Frame]:
    """The viewer's frames, from its own thread and event loop, as watch_sync hands them over."""
    frames: queue.Queue = queue.Queue(maxsize=2)
    stopping = threading.Event()
    loop = asyncio.new_event_loop()

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
