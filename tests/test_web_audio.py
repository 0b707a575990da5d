"""web/: the player's sound, in real headless Chromium, from a real camera's test tone: on P2P
(the camera's Opus track) and on the encoded relay (Opus relay frames decoded with WebCodecs,
played through an AudioWorklet). The page's output tap hears the beeps, and the test tone's
time code says when each was captured (web/js/testtone.js). Chromium runs with
--autoplay-policy=no-user-gesture-required (tests/support/chromium.py): sound runs, muted
until the viewer unmutes, without a click.
"""

from __future__ import annotations

import shutil
import time

from .conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONTEXT_OPTIONS,
    TESTSRC_LAYERS,
    chromium,
    get_json,
    require,
    wait_until,
)
from .support.chromium import goto_player
from .test_fallback import start_camera_side

TONE = ("--audio", "tone")
#: A beep later than this after its capture is no sound a viewer could follow (seconds).
SANE_LATENCY_MS = 2000


def wait_for_playing(page, mode: str, timeout: float = 15) -> None:
    page.wait_for_function(f"peercam.mode() === '{mode}' && peercam.state() === 'playing'",
                           timeout=timeout * 1000)


def wait_for_beeps(page, after_ms: float, count: int = 4, timeout: float = 30) -> list[dict]:
    """The beeps the page heard that were captured after ``after_ms`` (Unix ms), once it heard ``count``."""
    page.wait_for_function(f"peercam.beeps().filter((b) => b.captureTimeMs > {after_ms}).length >= {count}",
                           timeout=timeout * 1000)
    return [b for b in page.evaluate("peercam.beeps()") if b["captureTimeMs"] > after_ms]


def assert_beeps_in_order(beeps: list[dict]) -> None:
    """Beeps as the tone sends them: each captured on a half second (its time code read back),
    heard in order, each a sane while after its capture."""
    captures = [b["captureTimeMs"] for b in beeps]
    heard = [b["heardTimeMs"] for b in beeps]
    assert all(capture % 500 == 0 for capture in captures), beeps
    assert captures == sorted(set(captures)), beeps
    assert heard == sorted(heard), beeps
    assert all(0 < b["latencyMs"] < SANE_LATENCY_MS for b in beeps), beeps
    assert abs(captures[-1] - time.time() * 1000) < 60_000, beeps  # this stream's, now


def wait_for_packets(page, more_than: int, timeout: float = 15) -> int:
    """Wait until the page counts more than ``more_than`` packets of sound; returns the count."""
    page.wait_for_function(f"(peercam.stats().audio?.packets ?? 0) > {more_than}", timeout=timeout * 1000)
    return page.evaluate("peercam.stats().audio.packets")


def assert_sound_and_pictures_flow(page, mode: str) -> dict:
    """Pictures and sound both keep coming (in ``mode``), from now on: more frames, more packets
    and beeps captured after this moment. Returns the stats then."""
    wait_for_playing(page, mode)
    now_ms = time.time() * 1000
    frames = page.evaluate("peercam.stats().frames")
    packets = page.evaluate("peercam.stats().audio?.packets ?? 0")
    assert_beeps_in_order(wait_for_beeps(page, now_ms, count=3))
    wait_for_packets(page, packets + 25)
    page.wait_for_function(f"peercam.stats().frames > {frames + 20}", timeout=30_000)
    stats = page.evaluate("peercam.stats()")
    assert stats["mode"] == mode, stats
    return stats


def viewer_audio_report(lab, stream: str) -> dict | None:
    """The sound figures of the stream's one viewer's latest stats report, as the server keeps them."""
    viewers = (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("viewers", [])
    return ((viewers[0].get("stats") or {}).get("audio") if viewers else None) or None


def test_p2p_plays_the_cameras_sound_and_hears_its_beeps(lab, page):
    lab.start_server()
    lab.start_camera("lab", *TONE)
    goto_player(page, f"{lab.url}/view/lab?mode=p2p")
    wait_for_playing(page, "p2p")
    first = wait_for_packets(page, 0)
    wait_for_packets(page, first + 50)  # inbound-rtp's packetsReceived rises
    beeps = wait_for_beeps(page, 0, count=6)
    assert_beeps_in_order(beeps)
    # Muted (nobody clicked), and measured all the same: the level moves, the panel says it all.
    assert page.evaluate("peercam.sound()") == {"state": "muted", "on": False, "running": True, "muted": True,
                                                "volume": 1}
    assert page.is_visible("#sound-toggle") and page.inner_text("#sound-toggle") == "Unmute"
    page.wait_for_function("document.getElementById('sound-level').value > 0.05", timeout=5_000)
    audio = page.evaluate("peercam.stats().audio")
    assert audio["codec"] == "opus" and audio["channels"] == 1 and audio["packetsLost"] == 0, audio
    assert audio["latencyMs"]["p50"] > 0 and audio["avOffsetMs"] is not None, audio
    page.wait_for_function("document.getElementById('audio-latency').textContent.endsWith(' ms')",
                           timeout=5_000)
    assert page.inner_text("#audio-codec") == "opus 48 kHz mono"
    # The viewer's stats report carries them to the server.
    report = wait_until(lambda: viewer_audio_report(lab, "lab"), 10, "the page's report of its sound")
    assert report["packets"] > 0 and report["latency_ms"]["p50"] > 0, report  # its codec: opus, the default


def test_the_encoded_relay_plays_the_sound_and_the_pictures_wait_for_it(lab, page):
    lab.start_server()
    lab.start_camera("lab", *TONE)
    goto_player(page, f"{lab.url}/view/lab?mode=relay")  # 127.0.0.1: a secure context, with WebCodecs
    wait_for_playing(page, "relay")
    assert page.evaluate("peercam.stats().relayFormat") == "encoded"
    stats = assert_sound_and_pictures_flow(page, "relay")
    beeps = wait_for_beeps(page, 0, count=6)
    assert_beeps_in_order(beeps)
    audio = stats["audio"]
    assert audio["codec"] == "opus" and audio["packetsLost"] == 0 and audio["jitterMs"] is not None, audio
    # The pictures follow the sound: a picture captured with a beep shows about when it is heard.
    page.wait_for_function("peercam.stats().audio.avOffsetMs !== null", timeout=10_000)
    offset = page.evaluate("peercam.stats().audio.avOffsetMs")
    assert abs(offset["p50"]) < 200, offset
    assert page.evaluate("peercam.stats().dropped") == 0
    report = wait_until(lambda: viewer_audio_report(lab, "lab"), 10, "the page's report of its sound")
    assert report["packets"] > 0 and "av_offset_ms" in report, report


def test_unmute_is_one_click_and_remembered_for_the_site(lab, browser):
    lab.start_server()
    lab.start_camera("lab", *TONE)
    context = browser.new_context(**CONTEXT_OPTIONS)
    try:
        page = context.new_page()
        goto_player(page, f"{lab.url}/view/lab")
        page.wait_for_function("peercam.sound().state === 'muted'", timeout=15_000)
        page.click("#sound-toggle")
        page.wait_for_function("peercam.sound().state === 'on'", timeout=5_000)
        assert page.inner_text("#sound-toggle") == "Mute"
        assert page.evaluate("localStorage.getItem('peercam.sound')") == "on"
        page.evaluate("""() => {
            const slider = document.getElementById('volume');
            slider.value = '0.4';
            slider.dispatchEvent(new Event('input'));
        }""")
        assert page.evaluate("peercam.sound().volume") == 0.4

        # Another page of the site: sound on from the start, at that volume, without a click.
        again = context.new_page()
        goto_player(again, f"{lab.url}/view/lab?mode=relay")
        again.wait_for_function("peercam.sound().state === 'on' && peercam.state() === 'playing'",
                                timeout=15_000)
        assert again.evaluate("peercam.sound().volume") == 0.4
        assert again.input_value("#volume") == "0.4"
        again.click("#sound-toggle")  # and off again: remembered too
        again.wait_for_function("peercam.sound().state === 'muted'", timeout=5_000)
        third = context.new_page()
        goto_player(third, f"{lab.url}/view/lab")
        third.wait_for_function("peercam.sound().state === 'muted' && peercam.state() === 'playing'",
                                timeout=15_000)
        assert third.evaluate("localStorage.getItem('peercam.sound')") == "off"
    finally:
        context.close()


def test_a_camera_without_sound_says_so_and_plays_as_before(lab, page):
    lab.start_server()
    lab.start_camera("lab", "--audio", "none")
    goto_player(page, f"{lab.url}/view/lab?mode=p2p")
    wait_for_playing(page, "p2p")
    page.wait_for_function("peercam.sound().state === 'none'", timeout=5_000)
    assert page.inner_text("#sound-note") == "no sound from this camera"
    assert page.is_hidden("#sound-toggle")
    assert page.evaluate("peercam.stats().audio") is None
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 30}", timeout=30_000)


def test_the_jpeg_relay_without_webcodecs_says_there_is_no_sound(lab):
    """A page on plain HTTP under a LAN name (not a secure context: no WebCodecs, no AudioWorklet)
    gets JPEG on the relay, and says the sound does not come that way."""
    lab.start_server("--allowed-host", "peercam.test")
    lab.start_camera("lab", *TONE)
    with chromium("--host-resolver-rules=MAP peercam.test 127.0.0.1") as browser:
        page = browser.new_context(**CONTEXT_OPTIONS).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        goto_player(page, f"http://peercam.test:{lab.port}/view/lab?mode=relay")
        wait_for_playing(page, "relay")
        assert page.evaluate("isSecureContext") is False
        assert page.evaluate("peercam.stats().relayFormat") == "jpeg"
        page.wait_for_function("peercam.sound().state === 'unavailable'", timeout=5_000)
        assert page.inner_text("#sound-note") == "no sound on this path"
        assert page.is_hidden("#sound-toggle")
        assert page.evaluate("peercam.stats().audio") is None
        frames = page.evaluate("peercam.stats().frames")
        page.wait_for_function(f"peercam.stats().frames > {frames + 20}", timeout=30_000)
        # The server was not asked for sound this page cannot play.
        viewers = get_json(f"{lab.url}/api/streams/lab")["viewers"]
        assert [v.get("relay_format") for v in viewers] == ["jpeg"], viewers
        assert not errors, errors


def test_sound_goes_on_after_a_layer_switch(lab, browser):
    """On P2P and on the relay, the viewer picks another layer: pictures and sound both go on."""
    lab.start_server()
    lab.start_camera("lab", *TONE)
    context = browser.new_context(**CONTEXT_OPTIONS)
    try:
        for mode in ("p2p", "relay"):
            page = context.new_page()
            goto_player(page, f"{lab.url}/view/lab?mode={mode}&quality=480p")
            assert_sound_and_pictures_flow(page, mode)
            page.select_option("#quality", "360p")
            page.wait_for_function("peercam.layer().layer === '360p' && peercam.stats().width === 480",
                                   timeout=15_000)
            stats = assert_sound_and_pictures_flow(page, mode)
            assert (stats["width"], stats["height"]) == TESTSRC_LAYERS["360p"], stats
            page.close()
    finally:
        context.close()


def test_sound_follows_the_fallback_to_the_relay_and_back(lab, split_network, tmp_path):
    """UDP dropped between viewer and camera: auto falls back to the relay, and sound comes
    there; UDP back: P2P takes over, and sound comes that way. Pictures and sound keep coming
    after each move, and the relay stops (one sound, never two)."""
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    net = split_network
    server_url = start_camera_side(lab, net)
    net.block_udp()
    chromium_in_viewer_ns = net.executable_in(net.viewer_ns, CHROMIUM, tmp_path)
    # WebCodecs and AudioWorklet need a secure context: the flag makes this LAN origin one.
    secure = f"--unsafely-treat-insecure-origin-as-secure={server_url}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in_viewer_ns),
                                             args=[*CHROMIUM_ARGS, secure])
        try:
            page = browser.new_page(**CONTEXT_OPTIONS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            goto_player(page, f"{server_url}/view/far?connect_timeout=3&p2p_retry=2&name=far")
            page.wait_for_function("typeof peercam !== 'undefined' && peercam.mode() === 'relay'",
                                   timeout=10_000)
            relay = assert_sound_and_pictures_flow(page, "relay")
            assert relay["relayFormat"] == "encoded", relay

            net.block_udp(False)
            page.wait_for_function("peercam.mode() === 'p2p'", timeout=20_000)
            p2p = assert_sound_and_pictures_flow(page, "p2p")
            assert p2p["audio"]["beeps"] > relay["audio"]["beeps"], (relay, p2p)
            stream = page.evaluate("fetch('/api/streams/far').then((response) => response.json())")
            assert stream["relay_viewers"] == 0, stream
            assert not errors, errors
        finally:
            browser.close()


def test_the_dashboard_says_which_streams_have_sound(lab, page):
    lab.start_server()
    lab.start_camera("tone", *TONE)
    lab.start_camera("mute", "--audio", "none")
    page.goto(f"{lab.url}/")
    page.wait_for_function("document.querySelectorAll('li.stream .audio').length === 2", timeout=15_000)
    assert page.inner_text("li.stream[data-stream='tone'] .audio") == "opus mono"
    assert page.get_attribute("li.stream[data-stream='tone'] .audio", "title") == \
        "sound: opus, 48 kHz, mono, 48 kbit/s"
    assert page.inner_text("li.stream[data-stream='mute'] .audio") == "no sound"


def test_where_sound_needs_a_click_the_remembered_choice_waits_for_one(lab):
    """Chromium's own rule (sound only after the viewer used the page): a page starts silent,
    one click plays; the next page, with sound remembered, says it waits for a click.

    Playwright's evaluate counts as the viewer using the page, so each page is first seen
    playing through the server (its stats report), and only then asked anything."""
    lab.start_server()
    lab.start_camera("lab", *TONE)

    def open_and_wait_until_it_plays(context, reports: int):
        page = context.new_page()
        page.goto(f"{lab.url}/view/lab")  # no wait_for_player: its evaluate would count as using the page
        wait_until(lambda: sum(1 for viewer in (lab.api("/api/streams/lab") or {}).get("viewers", [])
                               if viewer.get("stats")) >= reports, 15, "the page's stats report")
        return page

    with chromium("--autoplay-policy=document-user-activation-required") as browser:  # the last one counts
        context = browser.new_context(**CONTEXT_OPTIONS)
        page = open_and_wait_until_it_plays(context, 1)
        sound = page.evaluate("peercam.sound()")
        assert (sound["state"], sound["on"], sound["running"]) == ("muted", False, False), sound
        page.click("#sound-toggle")
        page.wait_for_function("peercam.sound().state === 'on' && peercam.sound().running", timeout=5_000)
        assert_beeps_in_order(wait_for_beeps(page, time.time() * 1000, count=2))

        later = open_and_wait_until_it_plays(context, 2)
        sound = later.evaluate("peercam.sound()")
        assert (sound["state"], sound["on"], sound["running"]) == ("muted", True, False), sound
        assert later.inner_text("#sound-note") == "click to hear the sound"
        later.click("#sound-toggle")
        later.wait_for_function("peercam.sound().state === 'on'", timeout=5_000)
        assert later.inner_text("#sound-toggle") == "Mute"
        context.close()
