"""web/: the player on the relay (the camera's encoded frames decoded with WebCodecs, or JPEG,
over the signaling WebSocket), in real headless Chromium."""

from __future__ import annotations

import base64
import time

from peercam.shared.relayframe import RelayFrameHeader

from .conftest import CONTEXT_OPTIONS, TESTSRC_LAYERS, decoded_frames, get_json, wait_for_frames, wait_until
from .support.chromium import goto_player
from .test_relay import _read_mjpeg_parts

#: A camera whose ICE may use TURN only, and no TURN server is given: P2P can never connect.
NO_P2P = ("--ice-transport", "turn")


def relay_viewers(lab, stream: str) -> int | None:
    return (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("relay_viewers")


def wait_for_delivery(page, mode: str, timeout: float) -> None:
    page.wait_for_function(f"peercam.mode() === '{mode}' && peercam.state() === 'playing'",
                           timeout=timeout * 1000)


def canvas_stamp(page) -> dict | None:
    """The test pattern's stamp in the relay canvas's picture ({timeMs, frame}), None if unreadable."""
    return page.evaluate("""async () => {
        const { readStamp } = await import('/static/js/testpattern.js');
        return readStamp(document.getElementById('relay-canvas'), document.createElement('canvas'));
    }""")


def assert_relay_plays(page, relay_format: str, status: str) -> dict:
    """The page plays the relay in ``relay_format``, says so, and measures it: the test pattern's
    frame numbers in the picture advance, latency comes from the header, and (encoded) no
    frame the camera numbered goes missing. Returns its stats."""
    wait_for_delivery(page, "relay", timeout=10)
    assert page.is_visible("#relay-canvas")
    first = wait_until(lambda: canvas_stamp(page), 10, "a readable test-pattern stamp on the canvas")
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 30} && peercam.stats().latencyMs !== null",
                           timeout=30_000)
    # Whole pictures, in order: the stamp reads back (its checksum holds) and moves on.
    def advanced() -> dict | None:
        stamp = canvas_stamp(page)
        return stamp if stamp and stamp["frame"] > first["frame"] + 30 else None

    later = wait_until(advanced, 30, "the test pattern's frame number to advance")
    assert later["timeMs"] > first["timeMs"]
    assert status in page.inner_text("#status")
    stats = page.evaluate("peercam.stats()")
    assert stats["mode"] == "relay" and stats["relayFormat"] == relay_format, stats
    # A layer's size: the relay too may move a reader between layers.
    assert (stats["width"], stats["height"]) in TESTSRC_LAYERS.values(), stats
    # Capture time from the frame header, not the pixels: in ms, on this machine's clock.
    assert 0 <= stats["latencyMs"] < 10_000
    assert stats["kbps"] > 0
    if relay_format == "encoded":  # JPEG's newest frame wins by design: a busy page skips some
        assert stats["dropped"] == 0, stats
    return stats


def reported_formats(lab, stream: str) -> dict[str, tuple[str | None, str | None]]:
    """Each viewer's relay format, by name, as the server reads it and as the viewer's stats report it."""
    viewers = (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("viewers", [])
    return {v["name"]: (v.get("relay_format"), (v.get("stats") or {}).get("relay_format")) for v in viewers}


def test_relay_frame_header_reads_as_python_writes_it(lab, page):
    lab.start_server()
    page.goto(f"{lab.url}/")
    header = RelayFrameHeader(sequence=2**32 - 1, capture_time_us=1_700_000_000_123_456,
                              width=640, height=480, jpeg_quality=80, layer=2)
    encoded = RelayFrameHeader(sequence=7, capture_time_us=1_700_000_000_000_001, width=480, height=360,
                               layer=1, codec="h264", keyframe=True)
    frames = [base64.b64encode(h.pack(payload)).decode()
              for h, payload in ((header, b"\xff\xd8jpeg"), (encoded, b"\0\0\0\1nal"))]
    parsed = page.evaluate("""async (frames) => {
        const { parseRelayFrame } = await import('/static/js/relay-frame.js');
        const parse = (frame) => {
            const bytes = Uint8Array.from(atob(frame), (c) => c.charCodeAt(0));
            const { payload, ...fields } = parseRelayFrame(bytes.buffer);
            return { ...fields, payload: Array.from(payload) };
        };
        let shortFrame = null;
        try { parseRelayFrame(new ArrayBuffer(19)); } catch (error) { shortFrame = error.message; }
        return { jpeg: parse(frames[0]), encoded: parse(frames[1]), shortFrame };
    }""", frames)
    assert parsed["jpeg"] == {"format": "jpeg", "codec": None, "keyframe": False, "sequence": 2**32 - 1,
                              "captureTimeMs": 1_700_000_000_123.456, "width": 640, "height": 480,
                              "jpegQuality": 80, "layer": 2, "payload": list(b"\xff\xd8jpeg")}
    assert parsed["encoded"] == {"format": "encoded", "codec": "h264", "keyframe": True, "sequence": 7,
                                 "captureTimeMs": 1_700_000_000_000.001, "width": 480, "height": 360,
                                 "jpegQuality": 0, "layer": 1, "payload": list(b"\0\0\0\1nal")}
    assert "shorter than its header" in parsed["shortFrame"]


def test_relay_mode_plays_the_encoded_frames_through_webcodecs(lab, page):
    lab.start_server()
    lab.start_camera("lab")
    goto_player(page, f"{lab.url}/view/lab?mode=relay&name=enc")  # localhost: a secure context, WebCodecs
    assert_relay_plays(page, "encoded", "relay (encoded, WebCodecs)")
    assert decoded_frames(page) == 0  # no P2P video at all
    assert relay_viewers(lab, "lab") == 1
    wait_until(lambda: reported_formats(lab, "lab").get("enc") == ("encoded", "encoded"), 10,
               "the server and the page's stats to say encoded")


def test_jpeg_relay_and_mjpeg_alongside_an_encoded_reader(lab, browser, page):
    lab.start_server()
    lab.start_camera("lab", "--codec", "h264")  # the other codec the encoded relay carries
    goto_player(page, f"{lab.url}/view/lab?mode=relay&name=enc")
    jpeg_page = browser.new_context(**CONTEXT_OPTIONS).new_page()
    try:
        goto_player(jpeg_page, f"{lab.url}/view/lab?mode=relay&relay_format=jpeg&name=jpg")
        assert_relay_plays(page, "encoded", "relay (encoded, WebCodecs)")
        assert_relay_plays(jpeg_page, "jpeg", "relay (JPEG)")
        assert _read_mjpeg_parts(f"{lab.url}/streams/lab/mjpeg", seconds=3) > 1
        # Both pages still play while all three read; the encoded one every frame.
        for each in (page, jpeg_page):
            frames = each.evaluate("peercam.stats().frames")
            each.wait_for_function(f"peercam.stats().frames > {frames + 30}", timeout=30_000)
        assert page.evaluate("peercam.stats().dropped") == 0
        wait_until(lambda: reported_formats(lab, "lab") == {"enc": ("encoded", "encoded"),
                                                                "jpg": ("jpeg", "jpeg")},
                   10, "the server and the pages' stats to say which format each reads")
    finally:
        jpeg_page.context.close()


def test_switching_from_relay_to_p2p(lab, page):
    lab.start_server()
    lab.start_camera("lab")
    goto_player(page, f"{lab.url}/view/lab?mode=relay")
    wait_for_delivery(page, "relay", timeout=10)

    page.select_option("#mode", "p2p")
    wait_for_delivery(page, "p2p", timeout=10)
    assert page.url.endswith("/view/lab?mode=p2p")
    assert "p2p" in page.inner_text("#status")
    assert page.is_hidden("#relay-canvas")
    wait_for_frames(page, decoded_frames(page) + 30)  # the video itself plays
    wait_until(lambda: relay_viewers(lab, "lab") == 0, 5, "the page to leave the relay")


def test_auto_falls_back_to_the_relay_when_p2p_cannot_connect(lab, page):
    lab.start_server()
    lab.start_camera("lab", *NO_P2P)
    started = time.monotonic()
    goto_player(page, f"{lab.url}/view/lab?connect_timeout=2")
    wait_for_delivery(page, "relay", timeout=2 + 2)
    assert time.monotonic() - started < 2 + 2
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 30}", timeout=30_000)
    assert "relay" in page.inner_text("#status")
    assert page.input_value("#mode") == "auto"


def test_auto_leaves_the_relay_once_p2p_works(lab, page):
    lab.start_server()
    camera = lab.start_camera("lab", *NO_P2P)
    goto_player(page, f"{lab.url}/view/lab?connect_timeout=2")
    wait_for_delivery(page, "relay", timeout=2 + 2)

    # A camera P2P can reach replaces it: the page, still on the relay, tries P2P at once.
    camera.kill()
    page.wait_for_function("peercam.state() === 'waiting'", timeout=5_000)
    lab.start_camera("lab")
    wait_for_delivery(page, "p2p", timeout=10)
    assert page.is_hidden("#relay-canvas")
    wait_for_frames(page, decoded_frames(page) + 30)
    wait_until(lambda: relay_viewers(lab, "lab") == 0, 5, "the page to leave the relay")


def test_the_page_decodes_from_a_keyframe_and_skips_to_the_next_after_a_gap_or_an_error(lab, page):
    lab.start_server()
    page.goto(f"{lab.url}/")  # 127.0.0.1: a secure context, with WebCodecs
    decoded = page.evaluate("""async () => {
        const { RelayDecoder } = await import('/static/js/relay-decoder.js');
        // 18 VP8 frames from the page's own encoder, a keyframe every 6.
        const chunks = [];
        const encoder = new VideoEncoder({
            output: (chunk) => {
                const data = new Uint8Array(chunk.byteLength);
                chunk.copyTo(data);
                chunks.push({ keyframe: chunk.type === 'key', data });
            },
            error: (error) => console.error(error),
        });
        encoder.configure({ codec: 'vp8', width: 64, height: 48 });
        const canvas = new OffscreenCanvas(64, 48);
        const context = canvas.getContext('2d');
        for (let i = 0; i < 18; i++) {
            context.fillStyle = `rgb(${i * 12}, 90, 40)`;
            context.fillRect(0, 0, 64, 48);
            const frame = new VideoFrame(canvas, { timestamp: i * 33333 });
            encoder.encode(frame, { keyFrame: i % 6 === 0 });
            frame.close();
        }
        await encoder.flush();

        const decoded = [];
        const decoder = new RelayDecoder((header, picture) => {
            decoded.push(header.sequence);
            picture.close();
        });
        const add = (sequence, payload = chunks[sequence].data) => decoder.add({
            format: 'encoded', codec: 'vp8', keyframe: chunks[sequence].keyframe, sequence, layer: 0,
            captureTimeMs: 0, width: 64, height: 48, jpegQuality: 0, payload });
        add(1);  // a newcomer starts at a keyframe
        for (const n of [0, 1, 2, 4, 5]) add(n);  // 3 went missing: 4 and 5 cannot decode
        const broke = new Promise((resolve) => {
            const warn = console.warn;
            console.warn = (text) => {
                warn(text);
                if (text.includes('waiting for the next keyframe')) resolve();
            };
        });
        add(6, new Uint8Array(200).fill(7));  // a keyframe that does not decode
        await Promise.race([broke, new Promise((resolve) => setTimeout(resolve, 5000))]);
        for (const n of [7, 8, 12, 13, 14]) add(n);
        const deadline = performance.now() + 5000;
        while (decoded.length < 6 && performance.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
        decoder.close();
        return { decoded, skipped: decoder.framesSkipped };
    }""")
    assert decoded == {"decoded": [0, 1, 2, 12, 13, 14], "skipped": 5}, decoded
