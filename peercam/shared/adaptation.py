"""Quality that follows a viewer's network: one policy for every sender that has choices.

A Ladder moves one viewer between rungs (0 is the best: the top layer, the highest JPEG
quality) on what its sender observes once a second. The camera runs one per ``auto``
P2P viewer (rungs are layers; evidence from RTCP and its send queue); the server runs
one per ``auto`` relay reader (rungs are JPEG qualities, then layers; evidence from the
reader's newest-frame slot). So the page and the CLI in ``auto`` behave the same.

The rules, with hysteresis so that it never flaps:
- Trouble on two samples in a row steps down, within about three seconds of its start;
  severe trouble (say, a fifth of the packets lost) steps down at once, and an estimate
  of what fits (``ceiling``) may take it several rungs at a time.
- Clean for ``up_after`` seconds, it probes one rung up. A sender that can tries the rung's
  rate with padding first, and reports a failure with ``probe_failed``. A probe that meets trouble within
  ``probe_seconds`` is undone at once and the next probe waits twice as long (up to
  ``max_wait``: a link that was capped for long must not wait minutes once it is free);
  one that survives lets the next step up come sooner (``up_after_success``).
- Right after a move, ``settle`` seconds pass before trouble counts: the old rung's last
  reports still arrive (a receiver report covers about the second before it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """Go to ``rung``, because of ``reason`` (for people: "12% loss", "clean for 8 s")."""

    rung: int
    reason: str


class Ladder:
    """The rung one viewer should be on, from what its sender sees once a second."""

    def __init__(self, rungs: int, start: int = 0, *, down_after: float = 0.9, up_after: float = 8.0,
                 up_after_success: float = 4.0, probe_seconds: float = 4.0, settle: float = 2.0,
                 max_wait: float = 16.0) -> None:
        if rungs < 1 or not 0 <= start < rungs:
            raise ValueError("a ladder needs a rung to stand on")
        self.rungs = rungs
        self.rung = start
        self._down_after = down_after
        self._up_after = up_after
        self._up_after_success = up_after_success
        self._probe_seconds = probe_seconds
        self._settle = settle
        self._max_wait = max_wait
        self._wait = up_after
        self._moved_at: float | None = None
        self._trouble_since: float | None = None
        self._clean_since: float | None = None
        self._probe_at: float | None = None

    def observe(self, now: float, trouble: str | None, ceiling: int | None = None,
                severe: bool = False) -> Move | None:
        """One sample: ``trouble`` says what went wrong (None: nothing), ``severe`` that it cannot
        wait for a second sample; ``ceiling`` is the best rung an estimate of the available rate
        allows, if there is one. Returns a move, or None."""
        if self._moved_at is not None and now - self._moved_at < self._settle:
            return None
        if trouble is not None:
            self._clean_since = None
            if self._probe_at is not None:  # the probe did not fit: back down, and wait longer
                self._wait = min(self._max_wait, self._wait * 2)
                return self._move(now, self.rung + 1, trouble)
            if self._trouble_since is None:
                self._trouble_since = now
            if (now - self._trouble_since < self._down_after and not severe) or self.rung == self.rungs - 1:
                return None
            target = max(self.rung + 1, ceiling if ceiling is not None else 0)
            self._wait = self._up_after
            return self._move(now, min(target, self.rungs - 1), trouble)
        self._trouble_since = None
        if self._clean_since is None:
            self._clean_since = now
        if self._probe_at is not None and now - self._probe_at >= self._probe_seconds:
            # The step up held: the next one may come sooner, counting the probe's clean time.
            self._wait = self._up_after_success
            self._clean_since = self._probe_at
            self._probe_at = None
        if self.rung > 0 and self._probe_at is None and now - self._clean_since >= self._wait:
            move = self._move(now, self.rung - 1, f"clean for {now - self._clean_since:.0f} s")
            self._probe_at = now
            return move
        return None

    def probe_failed(self, now: float) -> None:
        """The step up just returned was tried out first (padding up to its rate) and did
        not fit: back down, at once and without the picture having moved, and wait longer."""
        self._wait = min(self._max_wait, self._wait * 2)
        self._move(now, min(self.rung + 1, self.rungs - 1), "probe failed")

    def _move(self, now: float, rung: int, reason: str) -> Move:
        self.rung = rung
        self._moved_at = now
        self._trouble_since = None
        self._clean_since = None
        self._probe_at = None
        return Move(rung, reason)
