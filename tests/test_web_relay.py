"""web/: the player on the relay (JPEG frames over the signaling WebSocket), in real headless Chromium."""

from __future__ import annotations

import base64
import time

from signaling.relayframe import RelayFrameHeader

from .conftest import TESTSRC_LAYERS, decoded_frames, get_json, wait_for_frames, wait_until

#: A camera whose ICE may use TURN only, and no TURN server is given: P2P can never connect.
NO_P2P = ("--ice-transport", "turn")


def relay_viewers(cluster, stream: str) -> int | None:
    return (get_json(f"{cluster.url}/api/streams/{stream}") or {}).get("relay_viewers")


def wait_for_delivery(page, mode: str, timeout: float) -> None:
    page.wait_for_function(f"peercam.mode() === '{mode}' && peercam.state() === 'playing'",
                           timeout=timeout * 1000)


def test_relay_frame_header_reads_as_python_writes_it(cluster, page):
    cluster.start_server()
    page.goto(f"{cluster.url}/")
    header = RelayFrameHeader(sequence=2**32 - 1, capture_time_us=1_700_000_000_123_456,
                              width=640, height=480, quality=80, layer=2)
    frame = base64.b64encode(header.pack(b"\xff\xd8jpeg")).decode()
    parsed = page.evaluate("""async (frame) => {
        const { parseRelayFrame } = await import('/static/js/relay-frame.js');
        const bytes = Uint8Array.from(atob(frame), (c) => c.charCodeAt(0));
        const { jpeg, ...fields } = parseRelayFrame(bytes.buffer);
        let shortFrame = null;
        try { parseRelayFrame(bytes.buffer.slice(0, 19)); } catch (error) { shortFrame = error.message; }
        return { ...fields, jpeg: Array.from(jpeg), shortFrame };
    }""", frame)
    short_frame_error = parsed.pop("shortFrame")
    assert parsed == {"sequence": 2**32 - 1, "captureTimeMs": 1_700_000_000_123.456,
                      "width": 640, "height": 480, "quality": 80, "layer": 2, "jpeg": list(b"\xff\xd8jpeg")}
    assert "shorter than its header" in short_frame_error


def test_relay_mode_plays(cluster, page):
    cluster.start_server()
    cluster.start_camera("lab")
    page.goto(f"{cluster.url}/view/lab?mode=relay")
    wait_for_delivery(page, "relay", timeout=10)
    assert "relay" in page.inner_text("#status")
    assert page.is_visible("#relay-canvas")
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 30} && peercam.stats().latencyMs !== null",
                           timeout=30_000)
    stats = page.evaluate("peercam.stats()")
    assert stats["mode"] == "relay"
    # A layer's size: the relay too may move a reader between layers.
    assert (stats["width"], stats["height"]) in TESTSRC_LAYERS.values(), stats
    # Capture time from the frame header, not the pixels: in ms, on this machine's clock.
    assert 0 <= stats["latencyMs"] < 10_000
    assert stats["kbps"] > 0
    assert decoded_frames(page) == 0  # no P2P video at all
    assert relay_viewers(cluster, "lab") == 1


def test_switching_from_relay_to_p2p(cluster, page):
    cluster.start_server()
    cluster.start_camera("lab")
    page.goto(f"{cluster.url}/view/lab?mode=relay")
    wait_for_delivery(page, "relay", timeout=10)

    page.select_option("#mode", "p2p")
    wait_for_delivery(page, "p2p", timeout=10)
    assert page.url.endswith("/view/lab?mode=p2p")
    assert "p2p" in page.inner_text("#status")
    assert page.is_hidden("#relay-canvas")
    wait_for_frames(page, decoded_frames(page) + 30)  # the video itself plays
    wait_until(lambda: relay_viewers(cluster, "lab") == 0, 5, "the page to leave the relay")


def test_auto_falls_back_to_the_relay_when_p2p_cannot_connect(cluster, page):
    cluster.start_server()
    cluster.start_camera("lab", *NO_P2P)
    started = time.monotonic()
    page.goto(f"{cluster.url}/view/lab?connect_timeout=2")
    wait_for_delivery(page, "relay", timeout=2 + 2)
    assert time.monotonic() - started < 2 + 2
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 30}", timeout=30_000)
    assert "relay" in page.inner_text("#status")
    assert page.input_value("#mode") == "auto"


def test_auto_leaves_the_relay_once_p2p_works(cluster, page):
    cluster.start_server()
    camera = cluster.start_camera("lab", *NO_P2P)
    page.goto(f"{cluster.url}/view/lab?connect_timeout=2")
    wait_for_delivery(page, "relay", timeout=2 + 2)

    # A camera P2P can reach replaces it: the page, still on the relay, tries P2P at once.
    camera.kill()
    page.wait_for_function("peercam.state() === 'waiting'", timeout=5_000)
    cluster.start_camera("lab")
    wait_for_delivery(page, "p2p", timeout=10)
    assert page.is_hidden("#relay-canvas")
    wait_for_frames(page, decoded_frames(page) + 30)
    wait_until(lambda: relay_viewers(cluster, "lab") == 0, 5, "the page to leave the relay")
