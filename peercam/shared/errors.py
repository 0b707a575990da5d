"""The errors peercam raises on purpose: each one a PeercamError."""

from __future__ import annotations


class PeercamError(Exception):
    """Base of every error peercam raises on purpose (bad input, a refusal, a failed start)."""


class StartupError(PeercamError, RuntimeError):
    """The server cannot start as configured. The message, one line, names the cause and
    the fix: ``peercam serve`` prints it as it is."""
