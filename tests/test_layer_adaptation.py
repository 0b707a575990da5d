"""Auto quality under a real bandwidth cap: two network namespaces joined by a veth pair,
with tc's token bucket (tbf) on the camera's end. The server and the camera live in one
namespace; capped viewers in the other; an uncapped viewer beside the camera."""

from __future__ import annotations

import shutil
import time

import pytest

from bench.netns import CAMERA_ADDRESS, VIEWER_ADDRESS, SplitNetwork

from .conftest import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS, require

CAP_KBIT = 600


def start_camera_side(lab, net: SplitNetwork) -> str:
    server_url = f"http://{CAMERA_ADDRESS}:{lab.port}"
    lab.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(lab.port),
                  prefix=net.prefix(net.camera_ns))
    camera = lab.start("camera", "camera", "--server", server_url, "--stream", "hd", "--width", "1280",
                           "--height", "720", "--ice-host", CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
    camera.wait_for_log("publishing 'hd'", timeout=20)
    return server_url


def viewer(lab, net: SplitNetwork, server_url: str, name: str, *extra: str, capped: bool = True):
    ns, address = (net.viewer_ns, VIEWER_ADDRESS) if capped else (net.camera_ns, CAMERA_ADDRESS)
    return lab.start(name, "view", "--server", server_url, "--stream", "hd", "--json",
                         "--ice-host", address, "--name", name, *extra, prefix=net.prefix(ns))


def cap_then_lift(net: SplitNetwork, step_down, climb_back, seconds: float = 15) -> tuple[float, float]:
    """Cap the link; ``step_down()`` waits for the viewer to move down; after ``seconds`` the
    cap is lifted and ``climb_back()`` waits for it to come back. Returns both durations."""
    net.cap(CAP_KBIT)
    capped_at = time.monotonic()
    step_down()
    settled = time.monotonic() - capped_at
    time.sleep(max(0.0, capped_at + seconds - time.monotonic()))  # the scenario: the cap lasts a while
    net.cap(None)
    lifted_at = time.monotonic()
    climb_back()
    return settled, time.monotonic() - lifted_at


def test_an_auto_cli_viewer_steps_down_under_a_cap_and_climbs_back(lab, split_network):
    """The camera moves the capped viewer down within seconds and back after; an uncapped
    viewer of the same camera and a capped one pinned to 720p are never moved."""
    net = split_network
    server_url = start_camera_side(lab, net)
    auto = viewer(lab, net, server_url, "auto", "--duration", "60")
    free = viewer(lab, net, server_url, "free", "--duration", "60", capped=False)
    for process in (auto, free):
        process.wait_for_log("first frame", timeout=20)
    auto.wait_for_log("layer 720p (1280x720)", timeout=5)
    settled, climbed = cap_then_lift(net, lambda: auto.wait_for_log("-> 360p", timeout=10),
                                     lambda: auto.wait_for_log("-> 720p", timeout=25))
    summaries = {"auto": auto.summary(timeout=60), "free": free.summary(timeout=60)}
    print(f"settled in {settled:.1f} s, climbed back in {climbed:.1f} s; {summaries}")
    assert summaries["free"]["layer"] == "720p" and summaries["free"]["layer_switches"] == 0
    assert summaries["auto"]["layer"] == "720p" and summaries["auto"]["layer_switches"] >= 2
    assert "360p (640x360): " in auto.log()  # each move says why
    assert (summaries["auto"]["width"], summaries["auto"]["height"]) == (1280, 720)


def test_a_viewer_pinned_to_a_layer_stays_there_under_a_cap(lab, split_network):
    net = split_network
    server_url = start_camera_side(lab, net)
    pinned = viewer(lab, net, server_url, "pinned", "--quality", "720p", "--duration", "12")
    pinned.wait_for_log("first frame", timeout=20)
    net.cap(CAP_KBIT)
    summary = pinned.summary(timeout=60)
    assert (summary["layer"], summary["layer_switches"]) == ("720p", 0), summary


@pytest.mark.parametrize("relay_format,low,high", [
    # JPEG steps its quality down first (to 50), then the layer; encoded steps the layer.
    ("jpeg", "-> 360p (640x360, JPEG q50)", "-> 720p (1280x720, JPEG q80)"),
    ("encoded", "-> 360p (640x360)", "-> 720p (1280x720)"),
])
def test_an_auto_relay_viewer_steps_down_and_climbs_back(lab, split_network, relay_format, low, high):
    net = split_network
    server_url = start_camera_side(lab, net)
    relay = viewer(lab, net, server_url, "relay", "--mode", "relay", "--duration", "60",
                   "--relay-format", relay_format)
    relay.wait_for_log("first frame after", timeout=20)
    assert f"(relay, {relay_format})" in relay.log()
    settled, climbed = cap_then_lift(net, lambda: relay.wait_for_log(low, timeout=15),
                                     lambda: relay.wait_for_log(high, timeout=30))
    moves = [line for line in relay.log().splitlines() if " -> " in line]
    print(f"settled in {settled:.1f} s, climbed back in {climbed:.1f} s; {moves}")
    assert "frames skipped" in moves[0] and "clean for" in moves[-1]


def test_the_page_in_auto_follows_a_cap_too(lab, split_network, tmp_path):
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    net = split_network
    server_url = start_camera_side(lab, net)
    chromium_in_viewer_ns = net.executable_in(net.viewer_ns, CHROMIUM, tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in_viewer_ns), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**CONTEXT_OPTIONS)
            page.goto(f"{server_url}/view/hd?mode=p2p")
            page.wait_for_function("typeof peercam !== 'undefined' && peercam.layer()?.layer === '720p'"
                                   " && peercam.stats().frames > 10", timeout=20_000)

            def layer_is(name: str, timeout: float):
                return lambda: page.wait_for_function(f"peercam.layer().layer === '{name}'",
                                                      timeout=timeout * 1000)

            settled, climbed = cap_then_lift(net, layer_is("360p", 10), layer_is("720p", 25))
            reason = page.evaluate("peercam.layer().reason")
            print(f"page settled in {settled:.1f} s, climbed back in {climbed:.1f} s")
            assert reason.startswith("clean for") and page.evaluate("peercam.layer().switches") >= 2
        finally:
            browser.close()
