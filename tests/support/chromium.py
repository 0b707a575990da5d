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
