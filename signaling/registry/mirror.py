"""The registry as the cluster (``--redis``) sees it: this instance's mirror of the deployment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from peercam.shared.protocol import JpegRendition

from .client import Client
from .connection import Connection
from .remoteclient import RemoteClient
from .streams import RegistryListener, Stream

__all__ = ["Mirror"]


class Mirror(Protocol):
    """What the cluster does with this instance's registry (a StreamRegistry): it mirrors the
    other instances' clients and what they do, hands on what they send to clients here,
    and reads this instance's own clients and names to tell the others.

    The registry tells ``listener`` (the cluster) what its own clients do; the cluster
    calls these with what the other instances say.
    """

    listener: RegistryListener | None

    # -- what this instance holds, to tell the others --------------------------------------

    def get(self, name: str) -> Stream | None: ...

    def live_streams(self) -> list[Stream]: ...

    def local_clients(self) -> Iterator[Connection]:
        """The cameras and viewers connected to this instance."""

    def reserved_names(self) -> list[str]: ...

    # -- the other instances' clients ---------------------------------------------------------

    def attach(self, client: RemoteClient) -> bool:
        """A client of another instance arrived; False: a camera here holds its stream."""

    def remove(self, conn: Client, reason: str = ...) -> None:
        """A client left (here, or on another instance)."""

    def deliver(self, stream_name: str, to: str, text: str) -> Connection | None:
        """A message from another instance for a client here; returns it (None: gone)."""

    def layer_changed(self, viewer: Client, layer: str, reason: str) -> None:
        """A camera elsewhere moved a viewer here to another layer."""

    def chat_here(self, stream_name: str, text: str) -> None:
        """A camera's chat line from another instance, for the viewers here."""

    # -- relays across instances -------------------------------------------------------------

    def set_remote_demand(self, stream_name: str, node: str, jpeg: list[JpegRendition],
                          encoded: list[str], audio: bool = ...) -> None:
        """What ``node``'s relay readers read of a stream whose camera is here (``audio``:
        some of them listen too)."""

    def set_renditions_made(self, stream_name: str, node: str, jpeg: list[JpegRendition]) -> None:
        """The JPEG renditions a camera on ``node`` makes for every instance."""

    def forget_demand_of(self, node: str) -> None:
        """``node`` is gone: its relay readers read nothing any more."""

    def relay_from_elsewhere(self, name: str, data: bytes) -> None:
        """A relay frame of a stream whose camera is on another instance."""

    def talk_from_elsewhere(self, name: str, node: str, sender: str, data: bytes) -> bool:
        """A talk frame from viewer ``sender`` on instance ``node`` for a camera here."""

    # -- names -----------------------------------------------------------------------------------

    def reserve(self, name: str, here: bool = ...) -> Stream:
        """Hold a name for a camera with a publish token (``here``: False, on another instance)."""

    def evict(self, name: str, reason: str) -> None:
        """Take a stream from its camera here, if it has one here."""

    def end(self, name: str, reason: str, here: bool = ...) -> bool:
        """End a stream (``here``: False, on another instance)."""
