"""Auto mode against a real P2P failure: UDP dropped between two network namespaces.

The camera and server live in one namespace, the viewer in another, joined by a
veth pair the test makes; iptables drops UDP between them, so WebRTC cannot connect
while HTTP/WebSocket (TCP) still can. All addresses are the test's own.
"""

from __future__ import annotations

import re
import shutil
import signal

from .conftest import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS, decoded_frames, require, wait_for_frames
from .support.chromium import goto_player
from .support.netns import CAMERA_ADDRESS, VIEWER_ADDRESS, SplitNetwork


def start_camera_side(lab, net: SplitNetwork) -> str:
    """Server and camera in the camera's namespace; returns the server's URL."""
    server_url = f"http://{CAMERA_ADDRESS}:{lab.port}"
    lab.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(lab.port),
                  prefix=net.prefix(net.camera_ns))
    camera = lab.start("camera", "camera", "--server", server_url, "--stream", "far",
                           "--ice-host", CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
    camera.wait_for_log("publishing 'far'", timeout=15)
    return server_url


def test_auto_viewer_falls_back_to_the_relay_and_returns_to_p2p(lab, split_network):
    net = split_network
    server_url = start_camera_side(lab, net)
    net.block_udp()

    connect_timeout = 3
    viewer = lab.start("viewer", "view", "--server", server_url, "--stream", "far", "--json",
                           "--mode", "auto", "--connect-timeout", str(connect_timeout),
                           "--p2p-retry", "2", "--ice-host", VIEWER_ADDRESS,
                           prefix=net.prefix(net.viewer_ns))
    viewer.wait_for_log("switching to the relay", timeout=connect_timeout + 5)
    # The camera's own frames, decoded here; sound may come first and says "(relay, encoded)" too.
    viewer.wait_for_log("first frame after", timeout=5)
    first_frame_ms = float(re.search(r"first frame after (\d+) ms \(relay, encoded\)", viewer.log()).group(1))
    assert first_frame_ms <= (connect_timeout + 2) * 1000, viewer.log()

    net.block_udp(False)
    viewer.wait_for_log("p2p connected again", timeout=20)
    viewer.kill(signal.SIGINT)
    summary = viewer.summary(timeout=15)
    assert summary["mode"] == "p2p" and summary["frames"] > 30, summary


def test_page_in_auto_mode_falls_back_to_the_relay_and_returns_to_p2p(lab, split_network, tmp_path):
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    net = split_network
    server_url = start_camera_side(lab, net)
    net.block_udp()
    # Playwright talks to Chromium over pipes, so Chromium alone can live in the viewer's namespace.
    chromium_in_viewer_ns = net.executable_in(net.viewer_ns, CHROMIUM, tmp_path)
    connect_timeout = 3
    # WebCodecs needs a secure context: HTTPS in real life; here the flag that makes this
    # plain-HTTP origin count as one (a LAN address is not localhost).
    secure = f"--unsafely-treat-insecure-origin-as-secure={server_url}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in_viewer_ns),
                                             args=[*CHROMIUM_ARGS, secure])
        try:
            page = browser.new_page(**CONTEXT_OPTIONS)
            goto_player(page, f"{server_url}/view/far?connect_timeout={connect_timeout}&p2p_retry=2&name=far")
            # The page's modules load from the other namespace: wait for them, within the same bound.
            page.wait_for_function("typeof peercam !== 'undefined' && peercam.mode() === 'relay'"
                                   " && peercam.stats().frames > 0",
                                   timeout=(connect_timeout + 2) * 1000)
            # The camera's own frames, decoded by WebCodecs, as the server also says.
            assert "relay (encoded, WebCodecs)" in page.inner_text("#status")
            assert page.evaluate("peercam.stats().relayFormat") == "encoded"
            viewers = page.evaluate("fetch('/api/streams/far').then((r) => r.json()).then((s) => s.viewers)")
            assert [v["relay_format"] for v in viewers if v["name"] == "far"] == ["encoded"], viewers

            net.block_udp(False)
            page.wait_for_function("peercam.mode() === 'p2p'", timeout=20_000)
            wait_for_frames(page, decoded_frames(page) + 30)
        finally:
            browser.close()
