"""Signed tokens: who may publish or view which stream, until when.

A token is ``base64url(payload).base64url(HMAC-SHA256(secret, payload))`` where the
payload is JSON ``{"stream": NAME, "role": "publish"|"view"|"admin", "exp": UNIX}``.
``stream`` may be ``*`` (any stream). An admin token also allows publishing and viewing.
Nothing is stored on the server: the secret checks every token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Literal

Role = Literal["publish", "view", "talk", "admin"]
#: "talk": a view token that may also talk back through the camera (``--talk token``).
ROLES = ("publish", "view", "talk", "admin")


class TokenError(Exception):
    """Why a token was refused; the message always says "token"."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def make_token(secret: str, stream: str, role: Role, ttl: float, now: float | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    expiry = int((time.time() if now is None else now) + ttl)
    claims = json.dumps({"stream": stream, "role": role, "exp": expiry}, separators=(",", ":"))
    payload = _b64(claims.encode())
    return f"{payload}.{_sign(secret, payload)}"


@dataclass(frozen=True)
class Grant:
    """What a valid token grants: a role on a stream (or ``*``), until ``expiry``."""

    stream: str
    role: Role
    expiry: float

    def allows(self, stream: str, role: Role) -> bool:
        held = self.role in (role, "admin") or (role == "view" and self.role == "talk")
        return self.stream in ("*", stream) and held


def read_token(secret: str, token: str) -> Grant:
    """The grant of a token that is genuine and not expired; raises TokenError."""
    payload, dot, signature = token.partition(".")
    if not dot or not hmac.compare_digest(_sign(secret, payload), signature):
        raise TokenError("invalid token: bad signature (wrong secret, or not a peercam token)")
    try:
        claims = json.loads(_unb64(payload))
        grant = Grant(str(claims["stream"]), claims["role"], float(claims["exp"]))
    except (ValueError, KeyError, TypeError):
        raise TokenError("invalid token: unreadable payload") from None
    if grant.role not in ROLES:
        raise TokenError("invalid token: unknown role")
    if not grant.expiry >= time.time():
        raise TokenError(f"token expired {int(time.time() - grant.expiry)} s ago")
    return grant


def check_token(secret: str, token: str, stream: str, role: Role) -> Grant:
    """Raise TokenError unless ``token`` grants ``role`` on ``stream`` now."""
    if not token:
        raise TokenError(f"a token is required to {role} stream {stream!r}")
    grant = read_token(secret, token)
    if grant.stream not in ("*", stream):
        raise TokenError(f"token is for stream {grant.stream!r}, not {stream!r}")
    if not grant.allows(stream, role):
        raise TokenError(f"token grants {grant.role!r}, not {role!r}")
    return grant
