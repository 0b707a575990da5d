"""WHIP publishers received in the server's process: the one place that joins the server's
WHIP endpoint (signaling/edge/whip.py, its Ingest) to the peers that receive them
(peers/ingest/): neither side imports the other."""

from __future__ import annotations

from peercam.peers.ingest.ingest import WhipIngest
from peercam.signaling.edge.whip import Ingest, IngestFactory
from peercam.signaling.settings.config import ServerConfig

__all__ = ["whip_ingest"]


def whip_ingest(config: ServerConfig) -> IngestFactory:
    """What receives a server's WHIP publishers, made once it listens (``start(config,
    whip_ingest(config))``): its cameras connect to the server's own URL, offer the server's
    ``--ice-host`` addresses, and check its certificate (``--cert``) when it serves HTTPS."""

    def make(url: str) -> Ingest:
        return WhipIngest(url, config.ice_hosts, config.cert_file)

    return make
