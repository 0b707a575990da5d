"""`peercam view`: the viewer on a terminal, a consumer of the library's Viewer.

Events go to stderr as `peercam view: ...` lines (and a status line on a terminal),
chat to stdout (lines typed on stdin are sent), frames to the recorder and the window,
sound to the recorder; after --duration seconds of video it stops and returns the summary.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from peercam.shared.protocol import ViewerStats, clean_text

from .frame import Frame
from .recorder import Recorder
from .viewer import ChatLine, Viewer, ViewerError, ViewerEvent, ViewerOptions


def event(text: str) -> None:
    """A line for the person (and the tests) watching stderr."""
    print(f"peercam view: {clean_text(text)}", file=sys.stderr, flush=True)


class ViewCommand:
    """One run of `peercam view`: watch, show what happens, and return the summary."""

    def __init__(self, options: ViewerOptions, started: float, duration: float | None = None,
                 record: str | None = None, show: bool = False, chat: bool = False,
                 status_line: bool = False) -> None:
        self.viewer = Viewer(options, started)
        self._duration = duration
        self._recorder = Recorder(record) if record else None
        self._window = self._open_window(options.stream) if show else None
        self._chat = chat
        self._status_line = status_line

    async def run(self) -> dict:
        """Until --duration seconds of video went by, or Ctrl-C; raises ViewerError."""
        viewer = self.viewer
        readers = [self._show_events()]
        if self._recorder is not None or self._window is not None:
            readers.append(self._take_frames())
        if self._recorder is not None:
            readers.append(self._record_audio())
        if self._chat:
            readers += [self._print_chat(), self._send_typed_chat()]
        # The readers subscribe before the viewer starts: no event is missed.
        tasks = [asyncio.create_task(reader) for reader in readers]
        await asyncio.sleep(0)
        try:
            async with viewer:
                await viewer.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._status_line:
                print(file=sys.stderr)
            if self._recorder is not None:
                await self._recorder.close()
        return viewer.stats()

    async def _show_events(self) -> None:
        async for happened in self.viewer.events():
            if happened.kind == "stats":
                if self._status_line and happened.report is not None:
                    self._print_status(happened.report, self.viewer.layer_reason)
                continue
            event(happened.text)
            if happened.kind == "first-frame" and self._duration is not None:
                asyncio.get_running_loop().call_later(self.viewer.options.warmup + self._duration,
                                                      self.viewer.stop)

    async def _take_frames(self) -> None:
        async for frame in self.viewer.frames(keep=None if self._recorder is not None else 1):
            self._frame(frame)

    async def _record_audio(self) -> None:
        assert self._recorder is not None
        async for sound in self.viewer.audio(keep=None):
            self._recorder.write_audio(sound)

    def _frame(self, frame: Frame) -> None:
        if self._recorder is not None:
            self._recorder.audio_channels = self.viewer.audio_channels  # the file's sound, if any
            self._recorder.write(frame.video, frame.arrived)
        if self._window is not None:
            import cv2

            cv2.imshow(self._window, frame.image)
            if cv2.waitKey(1) in (ord("q"), 27):
                self.viewer.stop()

    async def _print_chat(self) -> None:
        async for line in self.viewer.chat():
            self._print_line(line)

    @staticmethod
    def _print_line(line: ChatLine) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
        # Cleaned by the viewer; once more here, as nothing raw may reach a terminal.
        print(f"[{stamp}] #{line.id} {clean_text(line.name)}: {clean_text(line.text)}", flush=True)

    async def _send_typed_chat(self) -> None:
        """Each line typed on stdin becomes a chat message."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
        while (text := await lines.get()) is not None:
            if text.strip():
                await self.viewer.send_chat(text)

    @staticmethod
    def _print_status(report: ViewerStats, layer_reason: str) -> None:
        """One line, rewritten in place on the terminal."""
        layer = f"{report.layer or '?'}" + (f" ({clean_text(layer_reason)})" if layer_reason else "")
        parts = [report.mode, layer, f"{report.width}x{report.height}", f"{report.fps:4.1f} fps",
                 f"{report.bitrate_kbps:6.0f} kbps"]
        if report.latency_ms is not None:
            parts.append(f"latency {report.latency_ms:4.0f} ms")
        if report.frames_dropped is not None:
            parts.append(f"dropped {report.frames_dropped}")
        if report.packets_lost is not None:
            parts.append(f"lost {report.packets_lost} pkts")
        if report.audio is not None:
            sound = "sound"
            if report.audio.latency_ms is not None:
                sound += f" {report.audio.latency_ms.p50:.0f} ms"
            if report.audio.packets_lost:
                sound += f", lost {report.audio.packets_lost}"
            parts.append(sound)
        print(f"\r{'  '.join(parts):<110}", end="", file=sys.stderr, flush=True)

    @staticmethod
    def _open_window(stream: str) -> str | None:
        import cv2  # --show alone needs OpenCV: without it, `peercam view` starts without loading it

        title = f"peercam: {stream}"
        try:
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        except cv2.error:
            event("--show needs OpenCV with GUI support (this one is the headless build: "
                  "pip install opencv-python); going on without a window")
            return None
        return title


__all__ = ["ViewCommand", "ViewerError", "ViewerEvent"]
