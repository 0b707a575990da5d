"""The browser camera (/publish/NAME) in real headless Chromium with its fake camera and
screen: Python and browser viewers see it as they see a Python camera."""

from __future__ import annotations

import shutil
import signal
import time

import pytest
from peercam.signaling.edge.auth import make_token

from .conftest import get_json, require, wait_until
from .support.chromium import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS, wait_for_player
from .support.netns import CAMERA_ADDRESS
from .test_chat import chat_lines

#: Chromium's fake camera at 30 fps, and a fake screen for getDisplayMedia, with no prompts.
FAKE_MEDIA_ARGS = [
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",
]
#: What the page publishes at its defaults (480p asked, 16:9): one layer.
LAYERS = {"480p": (854, 480)}


@pytest.fixture
def media_browser(chromium_keeper):
    """Headless Chromium whose getUserMedia and getDisplayMedia return fake pictures (kept
    open for the next test that asks for it: open contexts in it)."""
    return chromium_keeper.get(*FAKE_MEDIA_ARGS)


def open_page(browser, url: str):
    page = browser.new_context(**CONTEXT_OPTIONS).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def go_live(browser, lab, stream: str, query: str = "source=camera&autostart=1"):
    page, errors = open_page(browser, f"{lab.url}/publish/{stream}?{query}")
    page.wait_for_function("peercam.state() === 'live'", timeout=15_000)
    return page, errors


def assert_plays(summary: dict, mode: str, relay_format: str | None = None) -> None:
    """Frames flowed, at the published size. The fake camera stamps no capture time in its
    picture, so P2P latency is not measured; the relay's comes from the frame header."""
    assert summary["mode"] == mode, summary
    assert summary["frames"] > 1 and summary["fps"] > 0, summary
    assert summary["layer"] in LAYERS, summary
    assert (summary["width"], summary["height"]) in LAYERS.values(), summary
    assert summary["relay_format"] == relay_format, summary
    if mode == "relay":
        # Measured latency, and frames numbered so that gaps show. A few gaps are the relay's
        # bounds at work on a busy machine (a reader or sender that falls behind loses frames,
        # seen with three readers and the browser camera on 2 cores), not a broken path.
        assert summary["latency_ms"] is not None, summary
        assert summary["frames_dropped"] <= summary["frames"] // 10, summary


def test_python_viewer_plays_a_browser_camera_p2p_and_on_both_relays(lab, media_browser):
    lab.start_server()
    page, errors = go_live(media_browser, lab, "bcam")
    stream = lab.api("/api/streams/bcam")
    assert (stream["width"], stream["height"], stream["codec"]) == (854, 480, "vp8"), stream
    assert [layer["name"] for layer in stream["layers"]] == ["480p"], stream

    # The three watch side by side.
    p2p = lab.start_viewer("bcam", "--mode", "p2p", "--duration", "3", "--warmup", "1")
    relays = {relay_format: lab.start_viewer("bcam", "--mode", "relay", "--relay-format", relay_format,
                                             "--duration", "3", "--warmup", "1")
              for relay_format in ("jpeg", "encoded")}
    assert_plays(p2p.summary(timeout=40), "p2p")
    for relay_format, viewer in relays.items():
        assert_plays(viewer.summary(timeout=40), "relay", relay_format)

    # The camera's reports reach the API in the CameraStats shape.
    stats = wait_until(lambda: ((lab.api("/api/streams/bcam") or {}).get("camera") or {}).get("stats"),
                       10, "the browser camera's camera-stats")
    assert stats["layers"][0]["name"] == "480p" and stats["relay_frames"] > 0, stats
    assert not errors, errors


def test_chat_between_browser_camera_browser_viewer_and_cli_viewer(lab, media_browser):
    lab.start_server()
    camera, errors = go_live(media_browser, lab, "talk", "source=camera&autostart=1&name=cam")
    cli = lab.start_viewer("talk", "--chat", "--name", "cli", "--duration", "60", stdin=True)
    viewer, viewer_errors = open_page(media_browser, f"{lab.url}/view/talk?mode=p2p&name=web")
    wait_for_player(viewer)
    viewer.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    cli.wait_for_log("connected (p2p)", timeout=15)
    wait_until(lambda: sum(v["p2p"] for v in camera.evaluate("peercam.viewers()").values()) == 2,
               10, "both viewers on P2P from the browser camera")

    assert camera.evaluate("peercam.sendChat('from the camera')") == "hub"
    viewer.wait_for_function("peercam.chat().length === 1", timeout=10_000)
    viewer.evaluate("peercam.sendChat('from the web viewer')")
    viewer.wait_for_function("peercam.chat().length === 2", timeout=10_000)
    cli.type_line("<b>from the cli</b>")
    for page in (camera, viewer):
        page.wait_for_function("peercam.chat().length === 3", timeout=10_000)
    views = [[(m["id"], m["name"], m["text"]) for m in page.evaluate("peercam.chat()")]
             for page in (camera, viewer)]
    cli.kill(signal.SIGINT)
    cli_view = chat_lines(cli.result(timeout=15)[1])

    assert views[0] == views[1] == cli_view, (views, cli_view)
    assert [m[1:] for m in cli_view] == [("cam", "from the camera"), ("web", "from the web viewer"),
                                        ("cli", "<b>from the cli</b>")]
    assert viewer.locator("#chat-messages b").count() == camera.locator("#chat-messages b").count() == 0
    assert not errors and not viewer_errors, errors + viewer_errors


def test_closing_the_camera_tab_ends_the_stream_and_frees_the_name(lab, media_browser):
    lab.start_server()
    page, _ = go_live(media_browser, lab, "gone")
    cli = lab.start_viewer("gone", "--duration", "60")
    cli.wait_for_log("first frame", timeout=15)

    page.context.close()  # the tab goes: pagehide closes the socket
    closed_at = time.monotonic()
    cli.wait_for_log("camera left", timeout=3)
    assert time.monotonic() - closed_at < 3
    assert not (lab.api("/api/streams/gone") or {}).get("live")
    lab.start_camera("gone")  # a Python camera takes the name at once
    cli.wait_for_log("video resumed", timeout=15)


def test_a_browser_camera_that_loses_its_network_ends_the_stream(lab, split_network, tmp_path):
    """No pagehide to say goodbye: the server's heartbeat finds the page gone, and viewers
    are told as when a camera leaves."""
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    net = split_network
    server_url = f"http://{CAMERA_ADDRESS}:{lab.port}"
    server = lab.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(lab.port),
                           prefix=net.prefix(net.camera_ns))
    server.wait_for_log("serving on", timeout=15)
    # The camera page in the viewer's namespace (a plain-HTTP LAN origin: the flag stands in
    # for HTTPS, which getUserMedia and WebCodecs need), its viewer next to the server.
    chromium_in_viewer_ns = net.executable_in(net.viewer_ns, CHROMIUM, tmp_path)
    secure = f"--unsafely-treat-insecure-origin-as-secure={server_url}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in_viewer_ns),
                                             args=[*CHROMIUM_ARGS, *FAKE_MEDIA_ARGS, secure])
        try:
            page = browser.new_page(**CONTEXT_OPTIONS)
            page.goto(f"{server_url}/publish/far?source=camera&autostart=1")
            page.wait_for_function("peercam.state() === 'live'", timeout=15_000)
            viewer = lab.start("viewer", "view", "--server", server_url, "--stream", "far",
                                   "--mode", "relay", "--duration", "120", prefix=net.prefix(net.camera_ns))
            viewer.wait_for_log("first frame", timeout=20)
            net.cut()
            # The server pings a client silent for 10 s and drops it when no pong is back
            # 5 s later: the stream ends within 15 s.
            viewer.wait_for_log("camera left", timeout=25)
        finally:
            browser.close()


def test_reload_publishes_again_under_the_same_name(lab, media_browser):
    lab.start_server()
    page, errors = go_live(media_browser, lab, "again")
    first = lab.api("/api/streams/again")["camera"]["id"]
    page.reload()
    page.wait_for_function("peercam.state() === 'live'", timeout=15_000)
    assert lab.api("/api/streams/again")["camera"]["id"] != first
    assert not errors, errors


def test_publishing_needs_a_publish_token_under_auth_publish(lab, media_browser):
    lab.start_server("--auth", "publish", "--secret", "S")
    page, _ = open_page(media_browser, f"{lab.url}/publish/locked?source=camera&autostart=1")
    page.wait_for_function("peercam.state() === 'error'", timeout=15_000)
    assert "token" in page.inner_text("#status")
    assert get_json(f"{lab.url}/api/streams/locked") is None  # 404: never live

    token = make_token("S", "locked", "publish", 600)
    page.fill("#token", token)
    page.click("#go-live")
    page.wait_for_function("peercam.state() === 'live'", timeout=15_000)
    assert lab.api("/api/streams/locked")["live"]


def test_screen_source_publishes(lab, media_browser):
    """Chromium's fake screen (with --use-fake-device-for-media-stream) runs headless."""
    lab.start_server()
    go_live(media_browser, lab, "screen", "source=screen&autostart=1&resolution=360p&fps=15")
    stream = lab.api("/api/streams/screen")
    assert stream["height"] <= 360 and stream["fps"] <= 15, stream
    viewer = lab.start_viewer("screen", "--mode", "relay", "--relay-format", "jpeg", "--duration", "2")
    summary = viewer.summary(timeout=40)
    assert summary["frames"] > 1 and summary["height"] == stream["height"], summary


def test_past_the_cap_viewers_are_sent_to_the_relay(lab, media_browser):
    lab.start_server()
    page, errors = go_live(media_browser, lab, "capped", "source=camera&autostart=1&max_viewers=1")
    first = lab.start_viewer("capped", "--mode", "p2p", "--duration", "30", "--name", "first")
    first.wait_for_log("connected (p2p)", timeout=15)
    second = lab.start_viewer("capped", "--duration", "3", "--warmup", "1", "--name", "second")
    summary = second.summary(timeout=60)
    assert summary["mode"] == "relay" and summary["frames"] > 1, summary
    assert "at most 1 viewers" in second.log(), second.log()[-2000:]
    assert not errors, errors
