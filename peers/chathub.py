"""The stream's chat, kept by the camera peer: it stamps, orders and shares every line.

Viewers send ``chat-send`` on their data channel (or, on the relay, over signaling);
the hub checks it, stamps it (id, name, time) and the camera shares the stamped
message with everyone. Ids increase by one, so all viewers show one order.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

import msgspec

from signaling.protocol import MAX_CHAT_TEXT, ChatMessage, ChatSend, ProtocolError, check_display_name
from signaling.ratelimit import TokenBucket

log = logging.getLogger(__name__)

HISTORY_SIZE = 50


class ChatRefused(Exception):
    """The hub will not share this line; the reason goes back to its sender."""


class ChatHub:
    def __init__(self, log_path: str | None = None, rate: float = 5.0, burst: float = 10.0) -> None:
        self._history: deque[ChatMessage] = deque(maxlen=HISTORY_SIZE)
        self._next_id = 1
        self._rate, self._burst = rate, burst
        self._buckets: dict[str, TokenBucket] = {}
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def history(self) -> list[ChatMessage]:
        return list(self._history)

    def stamp(self, sender_id: str, line: ChatSend) -> ChatMessage:
        """Check a viewer's line and stamp it; raises ChatRefused with a reason."""
        text = line.text.strip()
        if not text:
            raise ChatRefused("empty message")
        if len(text) > MAX_CHAT_TEXT:
            raise ChatRefused(f"message too long: {len(text)} characters, the limit is {MAX_CHAT_TEXT}")
        try:
            name = check_display_name(line.name)
        except ProtocolError as exc:
            raise ChatRefused(exc.reason) from None
        bucket = self._buckets.setdefault(sender_id, TokenBucket(self._rate, self._burst))
        if not bucket.take():
            raise ChatRefused(f"slow down: at most {self._rate:g} messages a second")
        message = ChatMessage(id=self._next_id, name=name or f"viewer-{sender_id[:4]}",
                              text=text, time=round(time.time(), 3))
        self._next_id += 1
        self._history.append(message)
        log.info("chat #%d %s: %s", message.id, message.name, message.text)
        if self._log_file is not None:
            self._log_file.write(json.dumps(msgspec.to_builtins(message)) + "\n")
            self._log_file.flush()
        return message

    def forget(self, sender_id: str) -> None:
        """A viewer left: its rate limit goes with it."""
        self._buckets.pop(sender_id, None)

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
