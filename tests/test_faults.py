"""Faults: a camera killed outright, then replaced; the server restarting."""

from __future__ import annotations

import signal

from .conftest import decoded_frames, get_json, wait_for_frames, wait_until
from .test_fallback import VIEWER_ADDRESS, split_network, start_camera_side  # noqa: F401


def test_killed_camera_is_announced_and_a_new_one_resumes_page_and_cli(cluster, page):
    cluster.start_server()
    camera = cluster.start_camera("cam")
    cli = cluster.start_viewer("cam", "--duration", "60")
    cli.wait_for_log("first frame", timeout=15)
    page.goto(f"{cluster.url}/view/cam")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    wait_for_frames(page, 10)

    camera.kill(signal.SIGKILL)
    cli.wait_for_log("camera left", timeout=3)
    page.wait_for_function("peercam.state() === 'waiting'", timeout=3_000)

    cluster.start_camera("cam")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    wait_for_frames(page, decoded_frames(page) + 60)
    cli.wait_for_log("video resumed", timeout=15)
    cli.kill(signal.SIGINT)
    assert cli.summary(timeout=15)["frames"] > 0


def test_page_and_cli_ride_out_a_server_restart(cluster, page):
    server = cluster.start_server()
    cluster.start_camera("cam")
    cli = cluster.start_viewer("cam", "--duration", "60")
    cli.wait_for_log("first frame", timeout=15)
    page.goto(f"{cluster.url}/view/cam")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)

    server.kill(signal.SIGKILL)
    page.wait_for_function("peercam.state() === 'reconnecting'", timeout=5_000)
    cli.wait_for_log("reconnecting", timeout=5)
    cluster.start_server()  # the issue: resumed within 10 s with no user action
    page.wait_for_function("peercam.state() === 'playing'", timeout=10_000)
    wait_for_frames(page, decoded_frames(page) + 60)
    cli.kill(signal.SIGINT)
    assert cli.summary(timeout=15)["frames"] > 60
    # The CLI viewer's entry on the camera came from the old server: no viewer-left will
    # ever name it, so the camera itself lets go once its peer connection has closed.
    wait_until(lambda: len(camera_stats(cluster, "cam").get("viewers", [])) == 1, 15,
               "the camera to report only the page's connection")


def camera_stats(cluster, stream: str) -> dict:
    camera = (get_json(f"{cluster.url}/api/streams/{stream}") or {}).get("camera") or {}
    return camera.get("stats") or {}


def test_five_percent_packet_loss_keeps_full_rate(cluster, split_network):  # noqa: F811
    """NACK retransmissions and PLI-driven keyframes carry the stream through random loss."""
    net = split_network
    server_url = start_camera_side(cluster, net)
    net.drop_udp_randomly(0.05)
    viewer = cluster.start("viewer", "view", "--server", server_url, "--stream", "far", "--json",
                           "--mode", "p2p", "--warmup", "2", "--duration", "8",
                           "--ice-host", VIEWER_ADDRESS, prefix=net.prefix(net.viewer_ns))
    summary = viewer.summary(timeout=40)
    assert summary["mode"] == "p2p" and summary["fps"] >= 25, summary
    assert summary["packets_lost"] > 0, summary  # the loss was real
