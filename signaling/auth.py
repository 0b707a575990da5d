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
from typing import Literal

Role = Literal["publish", "view", "admin"]
ROLES = ("publish", "view", "admin")


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


def check_token(secret: str, token: str, stream: str, role: Role) -> None:
    """Raise TokenError unless ``token`` grants ``role`` on ``stream`` now."""
    if not token:
        raise TokenError(f"a token is required to {role} stream {stream!r}")
    payload, dot, signature = token.partition(".")
    if not dot or not hmac.compare_digest(_sign(secret, payload), signature):
        raise TokenError("invalid token: bad signature (wrong secret, or not a peercam token)")
    try:
        claims = json.loads(_unb64(payload))
        granted_stream, granted_role, expiry = claims["stream"], claims["role"], float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise TokenError("invalid token: unreadable payload") from None
    if expiry < time.time():
        raise TokenError(f"token expired {int(time.time() - expiry)} s ago")
    if granted_stream not in ("*", stream):
        raise TokenError(f"token is for stream {granted_stream!r}, not {stream!r}")
    if granted_role != role and granted_role != "admin":
        raise TokenError(f"token grants {granted_role!r}, not {role!r}")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` to seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"bad duration {text!r}: use e.g. 90, 90s, 15m, 1h, 7d") from None
