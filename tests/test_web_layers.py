"""web/: quality layers in the player, in real headless Chromium: each page picks its own
layer (menu or ?quality=), switches without a gap in the picture, on P2P and on the relay."""

from __future__ import annotations

import json

import pytest

from peercam.shared.relayframe import JPEG_VERSION

from .conftest import CONTEXT_OPTIONS, get_json, wait_until
from .support.chromium import goto_player

#: The test pattern at 1280x720: layers 720p, 480p and 360p (--layers auto).
CAMERA_720P = ("--width", "1280", "--height", "720")
SIZES = {"720p": (1280, 720), "480p": (854, 480), "360p": (640, 360)}

#: Records every frame the video element presents: its size, the test pattern's frame
#: number (null when the code does not read: never on a real picture, always on a black
#: one) and the mean luma of the whole picture; and when #quality was last picked.
RECORD_FRAMES = """async () => {
    const { readStamp } = await import('/static/js/testpattern.js');
    const video = document.getElementById('video');
    const stampCanvas = document.createElement('canvas');
    const small = document.createElement('canvas');
    small.width = 32;
    small.height = 18;
    const context = small.getContext('2d', { willReadFrequently: true });
    const record = { frames: [], pickedAt: null };
    window.layerTest = record;
    document.getElementById('quality').addEventListener('change', () => {
        record.pickedAt = performance.now();
    });
    const presented = (now, metadata) => {
        const at = performance.now();
        const stamp = readStamp(video, stampCanvas);
        context.drawImage(video, 0, 0, small.width, small.height);
        const pixels = context.getImageData(0, 0, small.width, small.height).data;
        let luma = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            luma += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
        }
        record.frames.push({
            at, width: metadata.width, height: metadata.height,
            frame: stamp ? stamp.frame : null, luma: luma / (pixels.length / 4),
        });
        video.requestVideoFrameCallback(presented);
    };
    video.requestVideoFrameCallback(presented);
}"""


@pytest.fixture
def open_player(browser, lab):
    """open_player(stream, query) -> a player page in a fresh browser context.

    Each page records the server's `error` replies in `page.server_errors`, the JPEG relay
    frames' qualities (header byte 2) in `page.relay_qualities`, the messages it sent
    in `page.sent` and its console warnings in `page.warnings`; JavaScript errors fail
    the test.
    """
    contexts, problems = [], []

    def open_(stream: str, query: str):
        context = browser.new_context(**CONTEXT_OPTIONS)
        contexts.append(context)
        page = context.new_page()
        page.server_errors, page.relay_qualities, page.sent, page.warnings = [], [], [], []
        page.on("console", lambda message: message.type == "warning" and page.warnings.append(message.text))
        page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
        page.on("websocket", lambda ws: (ws.on("framereceived", lambda data: _note(page, data)),
                                         ws.on("framesent", lambda data: page.sent.append(json.loads(data)))))
        goto_player(page, f"{lab.url}/view/{stream}?{query}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems


def _note(page, data) -> None:
    if isinstance(data, bytes):
        if data[0] == JPEG_VERSION:  # a picture's: the sound's frames carry their codec there
            page.relay_qualities.append(data[2])
    elif json.loads(data).get("type") == "error":
        page.server_errors.append(json.loads(data))


def wait_for_layer(page, quality: str, timeout: float = 15) -> None:
    """Until the page plays frames of this layer's size, and says it is on that layer."""
    width, height = SIZES[quality]
    page.wait_for_function(
        f"peercam.state() === 'playing' && peercam.layer().layer === '{quality}'"
        f" && peercam.stats().width === {width} && peercam.stats().height === {height}",
        timeout=timeout * 1000)


def shows(page, element_id: str, text: str) -> None:
    """Until the element's text is this (panels update once a second)."""
    page.wait_for_function(f"document.getElementById('{element_id}').textContent === {json.dumps(text)}",
                           timeout=3_000)


def canvas_size(page) -> list[int]:
    return page.evaluate("(c => [c.width, c.height])(document.getElementById('relay-canvas'))")


def viewer_report(lab, stream: str, peer_name: str) -> dict | None:
    """The stats a page reported last (/api/streams), found by its watch name, once they name a layer."""
    viewers = (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("viewers", [])
    stats = next((v["stats"] for v in viewers if v["name"] == peer_name), None)
    return stats if stats and "layer" in stats else None


def test_each_page_gets_the_layer_it_picked(lab, open_player):
    lab.start_server()
    lab.start_camera("lab", *CAMERA_720P)
    pages = {quality: open_player("lab", f"mode=p2p&quality={quality}&name=q{quality}") for quality in SIZES}

    for quality, page in pages.items():
        width, height = SIZES[quality]
        wait_for_layer(page, quality)
        assert page.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('video'))") == [
            width, height]
        layer = page.evaluate("peercam.layer()")
        assert layer == {"layer": quality, "width": width, "height": height, "reason": "",
                         "jpegQuality": None, "switches": 0}
        # The menu offers the camera's layers and shows the pick; the panel the layer.
        assert page.eval_on_selector_all("#quality option", "os => os.map(o => o.value)") == [
            "auto", "720p", "480p", "360p"]
        assert page.input_value("#quality") == quality
        shows(page, "layer", f"{quality} ({width}x{height})")
        assert quality in page.inner_text("#status")
        assert page.is_hidden("#layer-note")

    for quality, page in pages.items():  # and each tells the server what it gets
        report = wait_until(lambda q=quality: viewer_report(lab, "lab", f"q{q}"),
                            10, f"the {quality} page's stats report with its layer", interval=0.2)
        assert report["layer"] == quality and report["layer_switches"] == 0
        assert (report["width"], report["height"]) == SIZES[quality]
        assert "jpeg_quality" not in report
        assert page.server_errors == []


def test_menu_switches_p2p_layer_without_a_gap(lab, open_player):
    before, after = "720p", "360p"
    lab.start_server()
    lab.start_camera("lab", *CAMERA_720P)
    page = open_player("lab", f"mode=p2p&quality={before}")
    wait_for_layer(page, before)
    page.evaluate(RECORD_FRAMES)
    page.wait_for_function("layerTest.frames.length >= 30", timeout=10_000)

    new_width = SIZES[after][0]
    page.select_option("#quality", after)
    page.wait_for_function(f"layerTest.frames.some((f) => f.width === {new_width})", timeout=5_000)
    # Frames of the new size, to see the picture go on after the switch.
    page.wait_for_function(f"layerTest.frames.filter((f) => f.width === {new_width}).length >= 30",
                           timeout=10_000)
    record = page.evaluate("layerTest")

    frames = record["frames"]
    first = next(i for i, f in enumerate(frames) if f["width"] == new_width)
    assert all((f["width"], f["height"]) == SIZES[before] for f in frames[:first])
    assert all((f["width"], f["height"]) == SIZES[after] for f in frames[first:])
    last_old, first_new = frames[first - 1], frames[first]
    switch_ms = first_new["at"] - record["pickedAt"]
    gap_frames = first_new["frame"] - last_old["frame"]
    # A busy machine skips frames on screen anyway: the largest gap before the switch.
    steady = [f["frame"] for f in frames[max(0, first - 60):first] if f["frame"] is not None]
    busy_gap = max(b - a for a, b in zip(steady, steady[1:], strict=False))
    print(f"\nswitch {before} -> {after}: first {after} frame {switch_ms:.0f} ms after the pick; "
          f"frame numbers {last_old['frame']} -> {first_new['frame']} ({gap_frames} frames, "
          f"{first_new['at'] - last_old['at']:.0f} ms between them on screen; before the switch, "
          f"gaps up to {busy_gap} frames)")
    assert switch_ms < 1000
    # Never black: every frame across the switch carries the test pattern's code (a
    # black one has none) and is bright, and its frame numbers go on rising with few
    # missing at the switch: under 10 (~300 ms), or on a machine so busy that it skips
    # more anyway, hardly more than it skips before. (A callback may read a frame newer
    # than the one it was called for, so the next one can read it again: never older.)
    around = frames[max(0, first - 30):first + 30]
    numbers = [f["frame"] for f in around]
    assert None not in numbers, numbers
    assert min(f["luma"] for f in around) > 40
    assert all(b >= a for a, b in zip(numbers, numbers[1:], strict=False)), numbers
    assert numbers[-1] > first_new["frame"] > numbers[0]
    assert 0 <= gap_frames <= max(9, busy_gap + 3)

    wait_for_layer(page, after)
    layer = page.evaluate("peercam.layer()")
    assert (layer["layer"], layer["reason"], layer["switches"]) == (after, "", 1)
    assert page.is_hidden("#layer-note")  # the viewer's own pick needs no explanation
    assert page.url.endswith(f"/view/lab?mode=p2p&quality={after}")
    assert page.server_errors == []


def test_relay_plays_the_layer_and_jpeg_quality_picked(lab, open_player):
    lab.start_server()
    lab.start_camera("lab", *CAMERA_720P)
    page = open_player("lab", "relay_format=jpeg&mode=relay&quality=480p&jpeg_quality=60")
    wait_for_layer(page, "480p")
    # The canvas's backing store is the frame's size: drawn 1:1, shown in its shape.
    assert page.evaluate("peercam.mode()") == "relay" and canvas_size(page) == [854, 480]
    layer = page.evaluate("peercam.layer()")
    assert (layer["layer"], layer["width"], layer["height"], layer["jpegQuality"]) == ("480p", 854, 480, 60)
    shows(page, "layer", "480p (854x480) JPEG q60")
    assert page.relay_qualities and set(page.relay_qualities) == {60}  # the frame headers say so too

    page.select_option("#quality", "360p")
    wait_for_layer(page, "360p", timeout=5)
    assert canvas_size(page) == [640, 360]
    layer = page.evaluate("peercam.layer()")
    assert (layer["layer"], layer["jpegQuality"], layer["switches"]) == ("360p", 60, 1)
    assert page.relay_qualities[-1] == 60
    assert page.url.endswith("quality=360p&jpeg_quality=60")
    assert [m for m in page.sent if m["type"] == "quality"] == [
        {"type": "quality", "quality": "360p", "jpeg_quality": 60}]

    # A new connection's watch carries the viewer's latest pick.
    lab.server.kill()
    page.wait_for_function("peercam.state() === 'reconnecting'", timeout=5_000)
    lab.start_server()
    wait_for_layer(page, "360p", timeout=20)
    watches = [(m["quality"], m["jpeg_quality"]) for m in page.sent if m["type"] == "watch"]
    assert watches == [("480p", 60), ("360p", 60)]
    assert canvas_size(page) == [640, 360] and page.relay_qualities[-1] == 60
    assert page.server_errors == []


def test_the_encoded_relay_plays_the_layer_picked(lab, open_player):
    lab.start_server()
    lab.start_camera("lab", *CAMERA_720P)
    page = open_player("lab", "mode=relay&quality=480p&relay_format=vp9")  # not a format: auto
    wait_for_layer(page, "480p")
    assert [w.split(": use")[0] for w in page.warnings] == ["peercam: ignoring ?relay_format=vp9"]
    assert page.evaluate("peercam.stats().relayFormat") == "encoded" and canvas_size(page) == [854, 480]
    shows(page, "layer", "480p (854x480)")  # no JPEG quality: the camera's own frames

    # The other layer's frames show from its keyframe on, whole: none of the camera's numbers missing.
    page.select_option("#quality", "360p")
    wait_for_layer(page, "360p", timeout=5)
    assert canvas_size(page) == [640, 360]
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 30}", timeout=30_000)
    stats = page.evaluate("peercam.stats()")
    assert (stats["layer"]["layer"], stats["layerSwitches"], stats["dropped"]) == ("360p", 1, 0), stats
    assert page.server_errors == []


def test_bad_quality_parameters_are_ignored(lab, open_player):
    lab.start_server()
    lab.start_camera("lab", *CAMERA_720P)
    page = open_player("lab", "relay_format=jpeg&mode=relay&quality=huge&jpeg_quality=20&name=bad")
    page.wait_for_function("peercam.layer().layer !== null", timeout=15_000)
    assert page.input_value("#quality") == "auto"
    assert [w.split(": use")[0] for w in page.warnings] == [
        "peercam: ignoring ?quality=huge", "peercam: ignoring ?jpeg_quality=20"]
    # The watch asked for auto and the camera's JPEG quality: the relay starts at the top.
    first = page.evaluate("peercam.layer()")
    assert (first["layer"], first["jpegQuality"]) == ("720p", 80)
    viewers = (get_json(f"{lab.url}/api/streams/lab") or {}).get("viewers", [])
    assert [v["quality"] for v in viewers if v["name"] == "bad"] == ["auto"]
    assert page.server_errors == []


def test_drop_count_restarts_with_each_relay_rendition_and_knows_slower_layers(lab, page):
    lab.start_server()
    page.goto(f"{lab.url}/")
    dropped = page.evaluate("""async () => {
        const { FrameStats } = await import('/static/js/frame-stats.js');
        const stats = new FrameStats();
        const frame = (sequence, series) => stats.framesArrived({
            count: 1, width: 854, height: 480, timing: { latencyMs: 10, sequence, series } });
        const counts = [];
        for (const n of [100, 101, 102]) frame(n, '1/80');
        frame(500, '2/80');  // another rendition, far ahead: no drop
        frame(501, '2/80');
        frame(160, '1/80');  // back on the first, which numbered on meanwhile: no drop either
        counts.push(stats.dropped);
        frame(162, '1/80');  // a frame missing
        counts.push(stats.dropped);
        stats.frameStep = 2;  // a layer at half rate: numbers go up by two, no drops
        for (const n of [164, 166, 168]) frame(n, undefined);
        counts.push(stats.dropped);
        frame(172, undefined);  // a frame missing
        counts.push(stats.dropped);
        return counts;
    }""")
    assert dropped == [0, 1, 1, 2]


def test_layer_tracker_shows_the_path_in_use_and_says_why_it_moved(lab, page):
    lab.start_server()
    page.goto(f"{lab.url}/")
    seen = page.evaluate("""async () => {
        const { LayerTracker, describeMove } = await import('/static/js/layers.js');
        const notes = [];
        const tracker = new LayerTracker('p2p', ({ previous, current, announced }) => {
            notes.push(announced ? describeMove(previous, current) : `(${current?.layer ?? 'none'})`);
        });
        const sizes = { '720p': [1280, 720], '480p': [854, 480] };
        const message = (layer, reason) => ({
            type: 'layer', layer, width: sizes[layer][0], height: sizes[layer][1], reason });
        const camera = (layer, reason) => ({ ...message(layer, reason), from: 'cam' });
        const server = (layer, reason, q) => ({ ...message(layer, reason), jpeg_quality: q });
        tracker.received(camera('720p', ''));
        tracker.received(server('720p', '', 80));  // the relay, not in use: kept
        tracker.received(camera('480p', '12% loss'));
        tracker.use('relay');
        tracker.received(server('720p', '35% of frames skipped', 65));
        tracker.received(server('480p', '', 65));
        return { notes, current: tracker.current, switches: tracker.switches };
    }""")
    assert seen["notes"] == [
        "", "720p -> 480p: 12% loss", "(720p)", "720p JPEG q80 -> q65: 35% of frames skipped", ""]
    assert seen["current"] == {"layer": "480p", "width": 854, "height": 480, "reason": "", "jpegQuality": 65}
    assert seen["switches"] == 3  # 720p -> 480p (P2P), -> 720p (the relay's), -> 480p


def test_the_dashboard_lists_each_streams_layers(lab, page):
    lab.start_server()
    lab.start_camera("hd", "--width", "1280", "--height", "720")
    page.goto(f"{lab.url}/")
    page.wait_for_function(
        "document.querySelector('li.stream .layers')?.textContent === '720p · 480p · 360p'", timeout=15_000)
    assert "480p: 854x480@30" in page.get_attribute("li.stream .layers", "title")
