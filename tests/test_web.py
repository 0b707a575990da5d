"""web/: the stream list and the player, in real headless Chromium."""

from __future__ import annotations

from .conftest import TESTSRC_LAYERS, decoded_frames, wait_for_frames
from .support.chromium import goto_player, wait_for_player


def test_stream_list_links_to_a_player_that_plays(lab, page):
    lab.start_server()
    lab.start_camera("lab")
    page.goto(f"{lab.url}/")
    item = page.wait_for_selector("li.stream[data-stream=lab]", timeout=10_000)
    assert "640x480" in item.inner_text()

    page.click("li.stream[data-stream=lab] a")
    page.wait_for_url(f"{lab.url}/view/lab")
    wait_for_player(page)
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    assert "p2p" in page.inner_text("#status")
    first = wait_for_frames(page, 0)
    wait_for_frames(page, first + 60)  # decoded frames keep rising
    assert page.evaluate("document.getElementById('video').muted") is True
    # Frames in the last second, with latency measured: how fast and how soon is for bench/.
    page.wait_for_function("peercam.stats().latencyMs !== null && peercam.stats().fps > 0",
                           timeout=30_000)
    stats = page.evaluate("peercam.stats()")
    # A layer's size (auto may move the page between layers, on a busy machine too).
    assert (stats["width"], stats["height"]) in TESTSRC_LAYERS.values(), stats
    assert 0 < stats["latencyMs"] < 10_000  # in ms, on one clock (not seconds, not µs, not a bad clock)


def test_stream_list_refreshes(lab, page):
    lab.start_server()
    page.goto(f"{lab.url}/")
    page.wait_for_selector("#empty", state="visible", timeout=5_000)
    lab.start_camera("late")
    page.wait_for_selector("li.stream[data-stream=late]", timeout=10_000)


def test_player_waits_for_a_camera_that_is_not_there_yet(lab, page):
    lab.start_server()
    goto_player(page, f"{lab.url}/view/soon")
    page.wait_for_function("peercam.state() === 'waiting'", timeout=10_000)
    lab.start_camera("soon")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    wait_for_frames(page, decoded_frames(page) + 30)


def test_bad_stream_name_shows_the_server_reason(lab, page):
    lab.start_server()
    goto_player(page, f"{lab.url}/view/-bad")
    page.wait_for_function("peercam.state() === 'error'", timeout=10_000)
    assert "stream name" in page.inner_text("#status")
