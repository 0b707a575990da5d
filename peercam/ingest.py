"""WHIP publishers received in the server's process: the one place that joins the server's
WHIP endpoint (signaling/edge/whip.py, its Ingest) to the peers that receive them
(peers/ingest/): neither side imports the other."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from peercam.shared.protocol import IceServer
from peercam.signaling.edge.whip import Ingest, IngestFactory, IngestSession
from peercam.signaling.settings.config import ServerConfig

if TYPE_CHECKING:
    from peercam.peers.ingest.ingest import WhipIngest

__all__ = ["whip_ingest"]


def whip_ingest(config: ServerConfig) -> IngestFactory:
    """What receives a server's WHIP publishers, made once it listens (``start(config,
    whip_ingest(config))``): its cameras connect to the server's own URL, offer the server's
    ``--ice-host`` addresses, and trust its own certificate (``--cert``) when it serves HTTPS."""

    def make(url: str) -> Ingest:
        return _IngestOnDemand(url, config)

    return make


class _IngestOnDemand:
    """The WhipIngest, made with the first publisher: a server that gets none loads no
    aiortc or PyAV (and `peercam serve` starts without their import time)."""

    def __init__(self, url: str, config: ServerConfig) -> None:
        self._url, self._config = url, config
        self._ingest: WhipIngest | None = None

    async def accept(self, stream: str, offer: str, token: str,
                     ice_servers: Sequence[IceServer]) -> IngestSession:
        if self._ingest is None:
            # Imported off the event loop: the server's other clients are served meanwhile.
            whip_ingest_class = await asyncio.to_thread(_load_whip_ingest)
            if self._ingest is None:  # another publisher's accept may have made it meanwhile
                self._ingest = whip_ingest_class(self._url, self._config.ice_hosts, self._config.cert_file)
        return await self._ingest.accept(stream, offer, token, ice_servers)

    async def close(self) -> None:
        if self._ingest is not None:
            await self._ingest.close()


def _load_whip_ingest() -> type[WhipIngest]:
    from peercam.peers.ingest.ingest import WhipIngest

    return WhipIngest
