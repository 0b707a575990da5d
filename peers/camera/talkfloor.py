"""The floor of talk back: who talks through the camera, one viewer at a time.

The camera keeps the floor, as it keeps the chat: the server only checks who may ask
(``--talk``, the talk token role) and passes ``talk-start``/``talk-stop`` on. A viewer that
asks while another talks is refused with the speaker's name; a turn ends when its speaker
says so, leaves, reaches ``talk_max``, or when the camera's operator takes the floor.
Every change goes to every viewer as ``talking``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from peercam.shared.protocol import Talking, TalkRefused, TalkStop

__all__ = ["CallLater", "FloorListener", "TalkFloor"]

log = logging.getLogger(__name__)


class _Timer(Protocol):
    """A turn's timer: asyncio's TimerHandle, or a test's."""

    def cancel(self) -> None: ...


#: ``call_later(seconds, callback)``: runs callback once after that long, unless cancelled.
CallLater = Callable[[float, Callable[[], None]], _Timer]


def _call_later(seconds: float, callback: Callable[[], None]) -> _Timer:
    return asyncio.get_running_loop().call_later(seconds, callback)


#: Called with the new speaker's viewer id and display name; on a turn's end, None and the
#: name of the one who stopped.
FloorListener = Callable[[str | None, str], None]


class TalkFloor:
    """One speaker at a time. ``send`` takes the messages to go out through the server;
    ``name_of`` gives a viewer's display name; ``clock`` (Unix seconds) and ``call_later``
    (the turn's timer) are the event loop's unless a test brings its own.

    web/js/talk-floor.js is the same floor for a browser camera; tests/talkfloor_cases.json
    keeps the two in step (tests/test_talkfloor.py, tests/test_web_talkfloor.py)."""

    def __init__(self, send: Callable[[object], None], name_of: Callable[[str], str],
                 clock: Callable[[], float] = time.time, call_later: CallLater = _call_later) -> None:
        self._send = send
        self._name_of = name_of
        self._clock = clock
        self._call_later = call_later
        #: Seconds a turn may last (the server's --talk-max, from ``published``).
        self.talk_max = 60.0
        #: Whether the server lets viewers talk at all (``published.talk``).
        self.open = False
        self.holder: str | None = None
        self.holder_name = ""
        self.since: float | None = None
        #: Told of every change, after the viewers are.
        self.on_change: list[FloorListener] = []
        self._turn_timer: _Timer | None = None

    def ask(self, viewer_id: str) -> None:
        """A viewer's ``talk-start``: the floor, unless someone else holds it."""
        if self.holder == viewer_id:
            return  # asked twice: still its turn
        if not self.open:
            self._send(TalkRefused(to=viewer_id, reason="talking back is off on this server"))
        elif self.holder is not None:
            self._send(TalkRefused(to=viewer_id, reason=f"{self.holder_name} is talking"))
        else:
            self._give(viewer_id)

    def release(self, viewer_id: str) -> None:
        """A viewer's ``talk-stop``, or it left: its turn, if it had one, ends."""
        if self.holder == viewer_id:
            self._clear()

    def take(self, reason: str = "the camera's operator took the floor") -> None:
        """The camera ends the turn under way (its operator speaks, or the turn is over)."""
        if self.holder is not None:
            self._send(TalkStop(to=self.holder, reason=reason))
            self._clear()

    def forget(self) -> None:
        """A new signaling session: the old session's speaker is nobody now (the server
        dropped the floor with the old connection); listeners hear it."""
        if self.holder is not None:
            self._clear(announce=False)

    def _give(self, viewer_id: str) -> None:
        self.holder, self.holder_name, self.since = viewer_id, self._name_of(viewer_id), self._clock()
        self._turn_timer = self._call_later(self.talk_max, self._turn_over)
        log.info("%s is talking", self.holder_name)
        self._send(Talking(peer_id=viewer_id, name=self.holder_name, since=round(self.since, 3)))
        self._changed()

    def _turn_over(self) -> None:
        self._turn_timer = None
        self.take(f"a turn lasts at most {self.talk_max:g} s")

    def _clear(self, announce: bool = True) -> None:
        if self._turn_timer is not None:
            self._turn_timer.cancel()
            self._turn_timer = None
        log.info("%s stopped talking", self.holder_name)
        stopped = self.holder_name
        self.holder, self.holder_name, self.since = None, "", None
        if announce:
            self._send(Talking(peer_id=None))
        self._changed(stopped)

    def _changed(self, stopped: str = "") -> None:
        for listener in list(self.on_change):
            listener(self.holder, self.holder_name if self.holder is not None else stopped)
