"""TURN REST credentials: short-lived, minted per client from a secret shared with coturn.

coturn with ``use-auth-secret`` accepts username ``"<unix expiry>:<user>"`` and
password ``base64(HMAC-SHA1(static-auth-secret, username))``; nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from peercam.shared.protocol import IceServer


@dataclass(frozen=True)
class TurnConfig:
    """TURN servers that take REST credentials (coturn's ``use-auth-secret``): ``secret`` is
    its static-auth-secret, ``urls`` the ``turn:``/``turns:`` URLs."""

    secret: str
    urls: tuple[str, ...]
    ttl: int = 3600  # seconds a credential stays valid


def turn_credentials(secret: str, user: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def turn_servers(turn: TurnConfig, user: str) -> list[IceServer]:
    """The TURN servers for one client, with credentials of its own."""
    username, password = turn_credentials(turn.secret, user, turn.ttl)
    return [IceServer(urls=list(turn.urls), username=username, credential=password)]
