"""Auto quality under a real bandwidth cap: two network namespaces joined by a veth pair,
with tc's token bucket (tbf) on the camera's end. The server and the camera live in one
namespace; capped viewers in the other; an uncapped viewer beside the camera."""

from __future__ import annotations

import time

import pytest

from bench.netns import CAMERA_ADDRESS, VIEWER_ADDRESS, SplitNetwork, unavailable_reason

from .conftest import require

CAP_KBIT = 600


@pytest.fixture
def split_network():
    reason = unavailable_reason()
    require(reason is None, reason or "")
    network = SplitNetwork()
    yield network
    network.remove()


def start_camera_side(cluster, net: SplitNetwork) -> str:
    server_url = f"http://{CAMERA_ADDRESS}:{cluster.port}"
    cluster.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(cluster.port),
                  prefix=net.prefix(net.camera_ns))
    camera = cluster.start("camera", "camera", "--server", server_url, "--stream", "hd", "--width", "1280",
                           "--height", "720", "--ice-host", CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
    camera.wait_for_log("publishing 'hd'", timeout=20)
    return server_url


def viewer(cluster, net: SplitNetwork, server_url: str, name: str, *extra: str, capped: bool = True):
    ns, address = (net.viewer_ns, VIEWER_ADDRESS) if capped else (net.camera_ns, CAMERA_ADDRESS)
    return cluster.start(name, "view", "--server", server_url, "--stream", "hd", "--json",
                         "--ice-host", address, "--name", name, *extra, prefix=net.prefix(ns))


def test_auto_steps_down_under_a_cap_climbs_back_after_and_others_are_untouched(cluster, split_network):
    net = split_network
    server_url = start_camera_side(cluster, net)
    auto = viewer(cluster, net, server_url, "auto", "--duration", "60")
    pinned = viewer(cluster, net, server_url, "pinned", "--quality", "720p", "--duration", "60")
    free = viewer(cluster, net, server_url, "free", "--duration", "60", capped=False)
    for process in (auto, pinned, free):
        process.wait_for_log("first frame", timeout=20)
    auto.wait_for_log("layer 720p (1280x720)", timeout=5)

    net.cap(CAP_KBIT)
    capped_at = time.monotonic()
    # Down within a few seconds of sustained trouble, to a layer whose bitrate fits the cap.
    auto.wait_for_log("-> 360p", timeout=10)
    settled = time.monotonic() - capped_at
    time.sleep(max(0.0, capped_at + 20 - time.monotonic()))  # the scenario: the cap lasts 20 s
    net.cap(None)
    lifted_at = time.monotonic()
    auto.wait_for_log("-> 720p", timeout=25)
    climbed = time.monotonic() - lifted_at

    summaries = {name: process.summary(timeout=60) for name, process in
                 (("auto", auto), ("pinned", pinned), ("free", free))}
    print(f"settled in {settled:.1f} s, climbed back in {climbed:.1f} s; {summaries}")
    assert summaries["free"]["layer"] == "720p" and summaries["free"]["layer_switches"] == 0
    assert summaries["pinned"]["layer"] == "720p" and summaries["pinned"]["layer_switches"] == 0
    assert summaries["auto"]["layer"] == "720p" and summaries["auto"]["layer_switches"] >= 2
    # The viewer pinned to 720p does visibly worse through the cap than the one that adapted.
    assert summaries["pinned"]["frames"] < summaries["auto"]["frames"]
