"""The stream's chat, kept by the camera peer: it stamps, orders and shares every line.

Viewers send ``chat-send`` on their data channel (or, on the relay, over signaling);
the hub checks it, stamps it (id, name, time) and the camera shares the stamped
message with everyone. Ids increase by one, so all viewers show one order.

A viewer speaks under the name it watched with (the server tells the camera in
``viewer-joined``, and ``viewer-renamed`` after a rename), whatever a line says: never under
the camera's own name (``camera`` when it has none) nor under another viewer's. The server
refuses both; the hub does not rely on it. The camera's own lines are marked ``camera``.

A newcomer gets the history once, when it joins (and again when a data channel opens):
never on a rename, which would let any viewer make the camera send it over and over.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

import msgspec

from peercam.shared.protocol import (
    CAMERA_CHAT_NAME,
    CHAT_BURST,
    CHAT_HISTORY_SIZE,
    CHAT_RATE,
    MAX_CHAT_TEXT,
    ChatMessage,
    ChatSend,
    clean_text,
)
from peercam.shared.ratelimit import TokenBucket

log = logging.getLogger(__name__)

#: web/js/chat-hub.js is the same hub for a browser camera; tests/chathub_cases.json keeps
#: the two in step (tests/test_chathub.py runs the cases against both).
HISTORY_SIZE = CHAT_HISTORY_SIZE


class ChatRefused(Exception):
    """The hub will not share this line; the reason goes back to its sender."""


class ChatHub:
    """The chat of one stream: checks, stamps and keeps the last messages."""

    def __init__(self, log_path: str | None = None, rate: float = CHAT_RATE, burst: float = CHAT_BURST,
                 camera_name: str = "") -> None:
        self._history: deque[ChatMessage] = deque(maxlen=HISTORY_SIZE)
        self._next_id = 1
        self._rate, self._burst = rate, burst
        self._buckets: dict[str | None, TokenBucket] = {}
        #: Each viewer's name as its lines carry it ('': none it may use).
        self._names: dict[str, str] = {}
        self._camera_display = clean_text(camera_name).strip() or CAMERA_CHAT_NAME
        # Compared as shown: a control character or a space does not make the camera's name another.
        self._reserved = {self._camera_display.casefold(), CAMERA_CHAT_NAME.casefold()}
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def join(self, sender_id: str, name: str) -> list[ChatMessage]:
        """A viewer came, with the name it watched with (checked by the server): its lines go
        under it. Returns what the newcomer gets, once: the history."""
        self.rename(sender_id, name)
        return self.history()

    def rename(self, sender_id: str, name: str) -> None:
        """A viewer goes by another name. One that is the camera's, or another viewer's, is
        not taken: that viewer speaks as ``viewer-ID``."""
        name = clean_text(name).strip()
        folded = name.casefold()
        if folded in self._reserved or any(
                other != sender_id and held.casefold() == folded for other, held in self._names.items()):
            name = ""
        self._names[sender_id] = name

    def history(self) -> list[ChatMessage]:
        return list(self._history)

    def stamp(self, sender_id: str | None, line: ChatSend) -> ChatMessage:
        """Check a viewer's line and stamp it; raises ChatRefused with a reason. ``sender_id``
        None: the camera's own line (a browser camera's operator), under the camera's name."""
        text = clean_text(line.text).strip()
        if not text:
            raise ChatRefused("empty message")
        if len(text) > MAX_CHAT_TEXT:
            raise ChatRefused(f"message too long: {len(text)} characters, the limit is {MAX_CHAT_TEXT}")
        bucket = self._buckets.setdefault(sender_id, TokenBucket(self._rate, self._burst))
        if not bucket.take():
            raise ChatRefused(f"slow down: at most {self._rate:g} messages a second")
        return self._record(sender_id, text)

    def _record(self, sender_id: str | None, text: str) -> ChatMessage:
        name = self._camera_display if sender_id is None else self.name_of(sender_id)
        message = ChatMessage(id=self._next_id, name=name, text=text, time=round(time.time(), 3),
                              camera=sender_id is None)
        self._next_id += 1
        self._history.append(message)
        log.info("chat #%d %s: %s", message.id, message.name, message.text)
        if self._log_file is not None:
            self._log_file.write(json.dumps(msgspec.to_builtins(message)) + "\n")
            self._log_file.flush()
        return message

    def name_of(self, sender_id: str) -> str:
        """The name a viewer's lines go under."""
        return self._names.get(sender_id) or f"viewer-{sender_id[:4]}"

    def note(self, text: str) -> ChatMessage:
        """A line of the camera's own about the stream (who talks back), recorded like any
        line; not rate-limited: the camera's events make it, not a person typing."""
        return self._record(None, clean_text(text).strip()[:MAX_CHAT_TEXT])

    def forget(self, sender_id: str) -> None:
        """A viewer left: its name and rate limit go with it."""
        self._buckets.pop(sender_id, None)
        self._names.pop(sender_id, None)

    def forget_everyone(self) -> None:
        """A new signaling session: viewer ids of the old one mean nothing any more."""
        self._buckets.clear()
        self._names.clear()

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
