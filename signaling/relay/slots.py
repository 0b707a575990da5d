"""Per-reader slots: what waits for one relay reader between the camera and its socket.

Each reader has a slot, so a slow reader never delays the others or grows memory:
- a JPEG slot (NewestFrameSlot) holds only the newest frame: any JPEG picture decodes alone;
- an encoded slot (EncodedSlot) holds the frames in order, back to a keyframe. A reader that
  falls behind (its socket still holds too much, or too many frames wait) drops everything up
  to the next keyframe.

A reader whose viewer asked for sound also has an AudioQueue: its Opus packets go out before
any picture, and a reader that falls behind drops pictures, never packets, to catch up. Sound
is bounded on its own (in bytes and in the capture time it spans): past that, the oldest
packets go (a gap the decoder conceals), never the newest.

A slot only keeps and drops frames; its reader sends them, and the hub asks for keyframes.
"""

from __future__ import annotations

from collections import deque

__all__ = ["MAX_QUEUED_AUDIO_BYTES", "MAX_QUEUED_AUDIO_SECONDS", "MAX_QUEUED_BYTES", "MAX_QUEUED_FRAMES",
           "MIN_BACKLOG_BYTES", "AudioQueue", "EncodedSlot", "NewestFrameSlot"]

#: Frames (and bytes, past its first frame) an encoded slot may hold before its reader
#: counts as fallen behind.
MAX_QUEUED_FRAMES = 30
MAX_QUEUED_BYTES = 8 * 1024 * 1024
#: An encoded reader's socket may hold this much unsent, or twice the last keyframe if more.
MIN_BACKLOG_BYTES = 64 * 1024
#: Sound waiting for one reader: at most this much capture time (from its oldest packet to
#: its newest), and these bytes; past either the oldest packets go. A second holds 50 packets
#: of 20 ms, about 6 kB at 48 kbit/s.
MAX_QUEUED_AUDIO_SECONDS = 1.0
MAX_QUEUED_AUDIO_BYTES = 64 * 1024


class NewestFrameSlot:
    """JPEG: only the newest frame waits; a newer one replaces it."""

    def __init__(self) -> None:
        self._frame: bytes | None = None

    def put(self, frame: bytes, keyframe: bool) -> int:
        """Keep ``frame``; returns how many frames it made the reader skip."""
        skipped = self._frame is not None
        self._frame = frame
        return int(skipped)

    def take(self) -> bytes | None:
        frame, self._frame = self._frame, None
        return frame

    def peek(self) -> bytes | None:
        return self._frame

    def too_much_unsent(self, backlog: int, frame: bytes) -> bool:
        # More than a frame still waits in the socket: this one would only queue behind it
        # and arrive stale. Skip it; the next may find the way clear.
        return backlog > len(frame)

    def fell_behind(self) -> int:
        """The frame in hand was not sent: the frames skipped."""
        return 1

    def clear(self) -> None:
        self._frame = None


class EncodedSlot:
    """Encoded frames: all of them in order, from a keyframe on, or none until the next one."""

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        #: Why the reader waits for a keyframe ("new", "behind"), or None: it reads on.
        self.waiting: str | None = "new"
        self._keyframe_bytes = 0

    def put(self, frame: bytes, keyframe: bool) -> int:
        skipped = 0
        if keyframe:
            # Decoding restarts here: frames still queued before it would only add delay.
            skipped = len(self._queue)
            self._empty()
            self.waiting = None
            self._keyframe_bytes = len(frame)
        elif self.waiting is not None:
            return 1
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if len(self._queue) > MAX_QUEUED_FRAMES or (
                len(self._queue) > 1 and self._queued_bytes > MAX_QUEUED_BYTES):
            return skipped + self.fell_behind()
        return skipped

    def take(self) -> bytes | None:
        if not self._queue:
            return None
        frame = self._queue.popleft()
        self._queued_bytes -= len(frame)
        return frame

    def peek(self) -> bytes | None:
        return self._queue[0] if self._queue else None

    def too_much_unsent(self, backlog: int, frame: bytes) -> bool:
        return backlog > max(MIN_BACKLOG_BYTES, 2 * self._keyframe_bytes)

    def fell_behind(self) -> int:
        """Drop everything up to the next keyframe: the frames skipped (the one in hand too)."""
        skipped = len(self._queue) + 1
        self._empty()
        self.waiting = "behind"
        return skipped

    def clear(self) -> None:
        self._empty()
        self.waiting = "new"

    def _empty(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0


class AudioQueue:
    """Opus packets for one reader, in order, within MAX_QUEUED_AUDIO_SECONDS of capture time
    and MAX_QUEUED_AUDIO_BYTES; a packet that passes either pushes the oldest out. Every packet
    decodes on its own, so a packet dropped is a gap, and the next still plays."""

    def __init__(self) -> None:
        self._queue: deque[tuple[bytes, int]] = deque()  # (packet, its capture time in us)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, packet: bytes, capture_time_us: int) -> int:
        """Keep ``packet``; returns how many older packets it pushed out."""
        self._queue.append((packet, capture_time_us))
        self._bytes += len(packet)
        dropped = 0
        while len(self._queue) > 1 and (
                self._bytes > MAX_QUEUED_AUDIO_BYTES
                or capture_time_us - self._queue[0][1] > MAX_QUEUED_AUDIO_SECONDS * 1_000_000):
            self._bytes -= len(self._queue.popleft()[0])
            dropped += 1
        return dropped

    def take(self) -> bytes | None:
        if not self._queue:
            return None
        packet, _ = self._queue.popleft()
        self._bytes -= len(packet)
        return packet

    def peek(self) -> bytes | None:
        return self._queue[0][0] if self._queue else None

    def clear(self) -> None:
        self._queue.clear()
        self._bytes = 0
