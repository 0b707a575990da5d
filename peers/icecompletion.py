"""ICE that returns as its checks complete: a process-wide patch of aioice, installed once by
``install_prompt_ice_completion()``.

aioice's ``Connection.connect`` starts a connectivity check every 20 ms (RFC 8445's Ta
timer) and reads the check list's outcome only once no check is left to start, after a
whole 20 ms sleep. With one candidate pair (a camera on the same machine or network) ICE
so takes 20 ms though the check's answer comes within a millisecond, and DTLS, then the
first frame, wait for it. This ``connect`` paces the checks the same way and returns as
soon as the check list completes or fails. The rest is aioice 0.13's own code.
"""

from __future__ import annotations

import asyncio

import aioice.ice
from aioice.ice import ICE_COMPLETED, ICE_FAILED

__all__ = ["install_prompt_ice_completion"]

#: RFC 8445's Ta, as aioice paces its checks.
CHECK_INTERVAL = 0.02

_installed = False


def install_prompt_ice_completion() -> None:
    """Replace aioice's ``Connection.connect`` with one that returns once the checks are done;
    idempotent."""
    global _installed
    if not _installed:
        aioice.ice.Connection.connect = _connect
        _installed = True


async def _connect(self: aioice.ice.Connection) -> None:
    """Perform the ICE handshake (aioice's ``connect``, waking on the check list's outcome)."""
    if not self._local_candidates_end:
        raise ConnectionError("Local candidates gathering was not performed")
    if self.remote_username is None or self.remote_password is None:
        raise ConnectionError("Remote username or password is missing")

    # Forming candidate pairs (RFC 8445 section 6.1.2.2).
    for remote_candidate in self._remote_candidates:
        self._pair_remote_candidate(remote_candidate)
    self.sort_check_list()
    self._unfreeze_initial()

    # Handle the checks received before connect().
    for early_check in self._early_checks:
        self.check_incoming(*early_check)
    self._early_checks.clear()
    self._early_checks_done = True

    # Perform the checks, one every CHECK_INTERVAL, until the outcome is known.
    outcome = asyncio.ensure_future(self._check_list_state.get())
    try:
        while not outcome.done() and self._check_periodic():
            await asyncio.wait({outcome}, timeout=CHECK_INTERVAL)
        if outcome.done():
            res = outcome.result()
        elif self._check_list:
            res = await outcome
        else:
            res = ICE_FAILED
    finally:
        outcome.cancel()

    # Cancel the remaining checks.
    for check in self._check_list:
        if check.task:
            check.task.cancel()

    if res != ICE_COMPLETED:
        raise ConnectionError("ICE negotiation failed")

    # Start consent freshness tests (RFC 7675).
    self._query_consent_task = asyncio.create_task(self.query_consent())
