"""Debian's headless Chromium as the tests and benchmarks launch it through Playwright.

Never a browser Playwright downloads: launch with ``executable_path=CHROMIUM``.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"

# Playwright passes its own --disable-features; only the last such flag counts, so
# ours repeats Playwright's list and adds mDNS hiding (off, for loopback WebRTC).
_PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,"
    "ThirdPartyStoragePartitioning,AvoidCorsURLLoaderRestartOnRedirect,OptimizationHints,"
    "NetworkTimeServiceQuerying,AimEnabled,PreconnectToSearch"
)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    f"--disable-features=WebRtcHideLocalIpsWithMdns,{_PLAYWRIGHT_DISABLED_FEATURES}",
]

#: Browser context options for tests and benchmarks that drive the pages. Playwright's
#: wait_for_function evaluates its string with ``new Function``, which the pages'
#: Content-Security-Policy forbids (no eval); tests of that policy itself
#: (tests/test_browserpolicy.py) open their contexts without this.
CONTEXT_OPTIONS = {"bypass_csp": True}


#: The player page's API (window.peercam) is there: player.js has run. It loads after the
#: page's first P2P picture, or at once where none comes (web/js/early-watch.js), so it
#: may come after the page's load event, where page.goto returns.
PLAYER_READY = "typeof peercam !== 'undefined'"


def wait_for_player(page, timeout_ms: float = 15_000) -> None:
    """Until the player page's window.peercam is there (see PLAYER_READY)."""
    page.wait_for_function(PLAYER_READY, timeout=timeout_ms)


def goto_player(page, url: str, timeout_ms: float = 15_000) -> None:
    """Go to a player page (/view/NAME) and wait for its player (see PLAYER_READY)."""
    page.goto(url)
    wait_for_player(page, timeout_ms)
