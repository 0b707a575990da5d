"""The errors that reach a program using peercam: each one a PeercamError.

Each public entry point (``watch``, ``watch_sync``, ``Camera``, ``serve``) raises these
and nothing else on purpose; ``except peercam.PeercamError`` catches every one.
"""

from __future__ import annotations


class PeercamError(Exception):
    """Base of every error peercam raises on purpose (bad input, a refusal, a failed start)."""


class UsageError(PeercamError, ValueError):
    """peercam was handed a value it cannot use: a bad server URL, mode, relay format, ICE
    server or address, picture, or layer list. A ValueError too, as Python's own are."""


class StartupError(PeercamError, RuntimeError):
    """The server cannot start as configured. The message, one line, names the cause and
    the fix: ``peercam serve`` prints it as it is."""
