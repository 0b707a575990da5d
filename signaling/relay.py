"""The relay hub: one stream's JPEG frames, from its camera to every relay reader.

The camera sends frames only while someone reads (the hub says when, through
``on_demand``). Each reader has a slot that holds only the newest frame and one
task that delivers it, so a slow reader skips frames instead of delaying the
others or growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class RelayTotals:
    """Server-wide relay counters (for /metrics); every stream's readers add to them."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_skipped: int = 0


class RelayReader:
    """One reader of a relay (a WebSocket viewer, an MJPEG response, a snapshot)."""

    def __init__(self, name: str, deliver: Callable[[bytes], Awaitable[None]],
                 ends_with_camera: bool = False) -> None:
        self.name = name
        self.totals = RelayTotals()  # replaced by the hub's when added
        #: HTTP readers (MJPEG) end when the camera leaves; WebSocket viewers wait for the next one.
        self.ends_with_camera = ends_with_camera
        self._deliver = deliver
        self._frame: bytes | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_skipped = 0  # replaced by a newer frame before it could be sent

    def offer(self, frame: bytes) -> None:
        if self._frame is not None:
            self.frames_skipped += 1
            self.totals.frames_skipped += 1
        self._frame = frame
        self._ready.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.name}")

    async def _run(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                frame, self._frame = self._frame, None
                if frame is None:
                    continue
                await self._deliver(frame)
                self.frames_sent += 1
                self.bytes_sent += len(frame)
                self.totals.frames_sent += 1
                self.totals.bytes_sent += len(frame)
        except (ConnectionError, RuntimeError) as exc:
            log.info("relay reader %s: %s", self.name, exc)

    async def wait_closed(self) -> None:
        """Until delivery fails (the reader went away) or the reader is stopped."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class RelayHub:
    def __init__(self, on_demand: Callable[[bool], None], totals: RelayTotals) -> None:
        self._on_demand = on_demand
        self._totals = totals
        self._readers: set[RelayReader] = set()
        self._waiters: list[asyncio.Future[bytes]] = []
        self.latest: bytes | None = None
        self.latest_at = 0.0  # time.monotonic() of the latest frame
        self.frames_in = 0

    def __len__(self) -> int:
        return len(self._readers)

    @property
    def wanted(self) -> bool:
        return bool(self._readers or self._waiters)

    def summary(self) -> dict:
        readers = list(self._readers)
        return {
            "readers": len(readers),
            "frames_in": self.frames_in,
            "frames_sent": sum(r.frames_sent for r in readers),
            "frames_skipped": sum(r.frames_skipped for r in readers),
            "bytes_sent": sum(r.bytes_sent for r in readers),
        }

    def add(self, reader: RelayReader) -> None:
        was_wanted = self.wanted
        reader.totals = self._totals
        self._readers.add(reader)
        reader.start()
        if self.latest is not None and time.monotonic() - self.latest_at < 1.0:
            reader.offer(self.latest)  # a fresh frame now rather than at the next one
        if not was_wanted:
            self._on_demand(True)

    def remove(self, reader: RelayReader) -> None:
        if reader not in self._readers:
            return
        self._readers.discard(reader)
        reader.stop()
        self._demand_may_have_ended()

    def _demand_may_have_ended(self) -> None:
        if not self.wanted:
            self.latest = None
            self._on_demand(False)

    def publish(self, frame: bytes) -> None:
        self.latest, self.latest_at = frame, time.monotonic()
        self.frames_in += 1
        for reader in self._readers:
            reader.offer(frame)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(frame)

    async def next_frame(self, timeout: float) -> bytes:
        """A frame at most a second old: the latest, or the next one to arrive."""
        if self.latest is not None and time.monotonic() - self.latest_at < 1.0:
            return self.latest
        waiter = asyncio.get_running_loop().create_future()
        was_wanted = self.wanted
        self._waiters.append(waiter)
        if not was_wanted:
            self._on_demand(True)
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            self._demand_may_have_ended()

    def camera_left(self) -> None:
        """The publisher is gone: its last frame is no longer news, and HTTP readers end."""
        self.latest = None
        for reader in [r for r in self._readers if r.ends_with_camera]:
            self._readers.discard(reader)
            reader.stop()
