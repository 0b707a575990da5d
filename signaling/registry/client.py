"""A client as the registry holds it: a camera or viewer, connected here or to another instance."""

from __future__ import annotations

from typing import Protocol

import msgspec

from peercam.shared.protocol import CameraStats, ViewerStats

__all__ = ["Client"]


class Client(Protocol):
    """What the registry needs of any camera or viewer, wherever it is connected: who it is,
    what it does on which stream, what others see of it, and a way to send it a message.

    Connection (a socket on this instance) and RemoteClient (a client of another instance,
    mirrored from Redis) are Clients. The registry only reads these: a client's own
    instance changes them.
    """

    @property
    def id(self) -> str:
        """Unique across instances."""

    @property
    def is_local(self) -> bool:
        """Connected to this instance (a Connection); False: to another (a RemoteClient).
        The registry tells its own clients what happens; the others hear it from their own
        instance."""

    @property
    def role(self) -> str | None:
        """What it does on ``stream``: "camera" or "viewer"; None until it publishes or watches."""

    @property
    def stream(self) -> str | None: ...

    @property
    def name(self) -> str:
        """Display name (chat, viewer lists); may be empty."""

    @property
    def with_token(self) -> bool:
        """A camera that showed a valid publish token (it wins a reserved name)."""

    @property
    def quality(self) -> str:
        """A viewer's choice: a layer's name or "auto"."""

    @property
    def layer(self) -> str | None:
        """What a viewer gets now, and why."""

    @property
    def layer_reason(self) -> str: ...

    @property
    def relay_format(self) -> str | None:
        """What a viewer reads on the relay ("jpeg" or "encoded"); None: it is not on it."""

    @property
    def stats(self) -> ViewerStats | CameraStats | None:
        """Its latest stats report, and when it came (the registry's clock)."""

    @property
    def stats_at(self) -> float: ...

    def send(self, message: msgspec.Struct) -> None:
        """Send it a protocol message, here or through its own instance; never blocks."""
