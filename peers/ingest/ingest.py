"""WHIP publishers received in the server's own process.

The server's WHIP endpoint (signaling/edge/whip.py) speaks HTTP; it hands each offer to
``WhipIngest.accept``, which answers it with a receiving peer (peers/ingest/publisher.py)
whose camera then publishes on the name over the server's own WebSocket, like any camera:
viewers on every path, chat, recording and the cluster work as for any other.

Why in the server's process: the publisher's depacketized frames reach the camera's
fan-out as they are, without decoding and without a copy between processes. The cost:
the server's event loop carries that stream's media, in (the publisher's) and out (its
P2P viewers'), which is why the server caps the number of WHIP publishers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from peercam.peers.dtlsciphers import install_rsa_dtls_ciphers
from peercam.peers.h264profiles import install_h264_profiles
from peercam.peers.ice import restrict_host_addresses

from peercam.shared.protocol import IceServer

from .publisher import CONNECT_TIMEOUT, OfferError, PublisherPeer

__all__ = ["OfferError", "WhipIngest"]

log = logging.getLogger(__name__)


class WhipIngest:
    """Receives WHIP publishers for the server at ``server`` (its own URL: their cameras
    connect there). ``ice_hosts``: the local addresses ICE may offer (the server's
    ``--ice-host``); ``server_certificate``: the server's own certificate (``--cert``) when it
    serves HTTPS, the one its cameras trust on their way back in.

    Starting it installs, once for the process, what its publishers need of aiortc: H.264
    Main and High (peers/h264profiles.py) and DTLS suites for RSA certificates
    (peers/dtlsciphers.py).
    """

    def __init__(self, server: str, ice_hosts: Sequence[str] = (), server_certificate: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        install_h264_profiles()
        install_rsa_dtls_ciphers()
        if ice_hosts:  # the same its cameras get in their welcome (process-wide, as theirs)
            restrict_host_addresses(list(ice_hosts))
        self._server, self._server_certificate = server, server_certificate
        self._connect_timeout = connect_timeout
        self._sessions: set[PublisherPeer] = set()
        self._watchers: set[asyncio.Task] = set()

    async def accept(self, stream: str, offer: str, token: str,
                     ice_servers: Sequence[IceServer]) -> PublisherPeer:
        """A receiving peer for this offer, answered and running; raises OfferError (a
        ValueError) for an offer it cannot take."""
        session = PublisherPeer(stream, server=self._server, token=token, ice_servers=ice_servers,
                                server_certificate=self._server_certificate,
                                connect_timeout=self._connect_timeout)
        await session.start(offer)
        self._sessions.add(session)
        watcher = asyncio.create_task(self._forget(session))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return session

    async def _forget(self, session: PublisherPeer) -> None:
        why = await session.wait_closed()
        self._sessions.discard(session)
        log.info("%s: WHIP session ended: %s", session.stream, why)

    async def close(self) -> None:
        """End every session (the server is shutting down)."""
        sessions = list(self._sessions)
        for session in sessions:
            session.close("the server is shutting down")
        await asyncio.gather(*(session.wait_closed() for session in sessions))
