"""web/: talk back from the player page, in real headless Chromium with its fake microphone
(it beeps), to a real camera through a real server: the push-to-talk button (web/js/talk.js),
off with its reason where the page may not talk, the floor one page at a time, and the
microphone on P2P (the offer's sendrecv audio section) and on the relay (Opus relay frames)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from peercam.signaling.edge.auth import make_token

from peercam.shared.relayframe import parse_relay_frame

from .conftest import CONTEXT_OPTIONS, get_json, wait_until
from .support.chromium import goto_player
from .test_talk import envelope, ffprobe

#: Chromium's fake microphone, granted without asking.
FAKE_MICROPHONE = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
SECRET = "talk-secret"
#: Chromium's fake microphone beeps every half second (10 ms windows of the envelope).
BEEP_EVERY = 50


def talking_in_api(lab, stream: str):
    return (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("talking")


def open_player(context, lab, stream: str, name: str, mode: str = "p2p", query: str = "", url: str = ""):
    """A player page, playing. Its `errors` are its JavaScript errors, `binary_sent` the binary
    messages it sent the server (talk frames), `refusals` the server's `error` messages to it."""
    page = context.new_page()
    page.errors, page.binary_sent, page.refusals = [], [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))

    def socket_opened(socket) -> None:
        socket.on("framesent", lambda data: page.binary_sent.append(data)
                  if isinstance(data, bytes) else None)
        socket.on("framereceived", lambda data: page.refusals.append(data)
                  if isinstance(data, str) and json.loads(data).get("type") == "error" else None)

    page.on("websocket", socket_opened)
    goto_player(page, f"{url or lab.url}/view/{stream}?mode={mode}&name={name}{query}")
    page.wait_for_function(f"peercam.mode() === '{mode}' && peercam.state() === 'playing'", timeout=20_000)
    return page


def frames_sent(page) -> int:
    """How many binary messages the page sent so far. Playwright's sync API hands over the
    page's events only while it runs a call: one that does nothing lets them in."""
    page.evaluate("0")
    return len(page.binary_sent)


def hold_talk(page) -> None:
    """Press the button and keep it down (the mouse stays pressed until release_talk)."""
    box = page.locator("#talk-button").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def release_talk(page) -> None:
    page.mouse.up()


def assert_frames_keep_coming(page) -> None:
    frames = page.evaluate("peercam.stats().frames")
    page.wait_for_function(f"peercam.stats().frames > {frames + 20}", timeout=30_000)


@pytest.mark.parametrize("case", ["talk off", "token without the right", "no token", "plain HTTP"])
def test_the_button_is_off_with_its_reason(lab, chromium_keeper, case):
    """The server's reason (watching's talk_reason), or the page's own outside a secure context."""
    no_right = "your token does not carry the talk right (peercam token --role talk)"
    server, query, host, reason = {
        "talk off": ((), "", "127.0.0.1", "talking back is off on this server (peercam serve --talk)"),
        "token without the right": (("--talk", "token", "--secret", SECRET),
                                    f"&token={make_token(SECRET, 'lab', 'view', 60)}", "127.0.0.1", no_right),
        "no token": (("--talk", "token", "--secret", SECRET), "", "127.0.0.1", no_right),
        # A LAN name on plain HTTP is no secure context, whatever the server allows.
        "plain HTTP": (("--talk", "viewers", "--allowed-host", "peercam.test"), "", "peercam.test",
                       "talking back needs HTTPS"),
    }[case]
    lab.start_server(*server)
    lab.start_camera("lab", "--audio", "tone")
    with chromium_keeper.use(*FAKE_MICROPHONE, "--host-resolver-rules=MAP peercam.test 127.0.0.1") as browser:
        context = browser.new_context(**CONTEXT_OPTIONS)
        page = open_player(context, lab, "lab", "ann", query=query, url=f"http://{host}:{lab.port}")
        page.wait_for_function("peercam.talk().reason !== ''", timeout=5_000)
        assert page.evaluate("peercam.talk()") == {
            "allowed": False, "reason": reason, "talking": None, "sending": False, "note": reason}
        assert page.is_disabled("#talk-button")
        assert page.inner_text("#talk-note") == reason
        hold_talk(page)  # a disabled button does nothing
        release_talk(page)
        assert page.evaluate("peercam.talk().sending") is False and talking_in_api(lab, "lab") is None
        assert_frames_keep_coming(page)
        assert not page.errors and not page.binary_sent, (page.errors, page.binary_sent)


def test_one_page_holds_the_floor_another_is_refused_and_the_floor_frees_on_release(lab, chromium_keeper):
    lab.start_server("--talk", "viewers")
    lab.start_camera("lab", "--audio", "tone")
    with chromium_keeper.use(*FAKE_MICROPHONE) as browser:
        context = browser.new_context(**CONTEXT_OPTIONS)
        ann = open_player(context, lab, "lab", "ann")
        bob = open_player(context, lab, "lab", "bob", mode="relay")
        for page in (ann, bob):
            page.wait_for_function("peercam.talk().allowed", timeout=5_000)
            assert page.is_enabled("#talk-button")

        hold_talk(ann)
        ann.wait_for_function("peercam.talk().sending", timeout=10_000)
        assert ann.evaluate("peercam.talk()")["note"] == "you are talking"
        talking = wait_until(lambda: talking_in_api(lab, "lab"), 5, "the server to say who talks")
        assert talking["name"] == "ann", talking
        # Every page sees who talks; one asking now is refused, with the reason shown.
        bob.wait_for_function("peercam.talk().talking === 'ann'", timeout=5_000)
        assert bob.inner_text("#talk-note") == "ann is talking"
        bob.click("#talk-button")  # a click: talk until the next click
        bob.wait_for_function("!peercam.talk().sending && document.getElementById('talk-button')"
                              ".getAttribute('aria-pressed') === 'false'", timeout=10_000)
        assert bob.evaluate("peercam.talk()") == {
            "allowed": True, "reason": "", "talking": "ann", "sending": False, "note": "ann is talking"}
        assert talking_in_api(lab, "lab")["name"] == "ann"
        # The picture and sound go on while the page talks on P2P.
        assert_frames_keep_coming(ann)
        packets = ann.evaluate("peercam.stats().audio.packets")
        ann.wait_for_function(f"peercam.stats().audio.packets > {packets + 25}", timeout=10_000)

        release_talk(ann)
        for page in (ann, bob):
            page.wait_for_function("peercam.talk().talking === null", timeout=10_000)
            assert page.evaluate("peercam.talk().sending") is False
        assert talking_in_api(lab, "lab") is None
        assert ann.inner_text("#talk-note") == ""

        # Now the other page may talk: a click toggles on, on the relay, and a click ends it.
        assert bob.binary_sent == []
        bob.click("#talk-button")
        bob.wait_for_function("peercam.talk().sending", timeout=10_000)
        started = time.time() * 1000
        ann.wait_for_function("peercam.talk().talking === 'bob'", timeout=5_000)
        assert talking_in_api(lab, "lab")["name"] == "bob"
        assert_frames_keep_coming(bob)
        wait_until(lambda: frames_sent(bob) >= 50, 10, "a second of talk frames")
        bob.click("#talk-button")
        bob.wait_for_function("peercam.talk().talking === null && !peercam.talk().sending", timeout=10_000)
        assert talking_in_api(lab, "lab") is None
        assert_talk_frames(bob.binary_sent, started)
        assert bob.refusals == [], bob.refusals  # the server took every one
        for page in (ann, bob):
            assert page.evaluate("peercam.state()") == "playing"
            assert not page.errors, page.errors


def assert_talk_frames(frames: list[bytes], started_ms: float) -> None:
    """Talk frames as the relay carries them: Opus relay frames (version 3), 48 kHz mono, one
    20 ms packet each, numbered from 0 without a gap, captured from the turn's start on."""
    parsed = [parse_relay_frame(frame) for frame in frames]
    headers = [header for header, _ in parsed]
    assert {(h.format, h.codec, h.width, h.height) for h in headers} == {("audio", "opus", 48000, 1)}
    assert [h.sequence for h in headers] == list(range(len(headers)))
    captured = [h.capture_time_us / 1000 for h in headers]
    assert started_ms - 2000 < captured[0] < captured[-1] < time.time() * 1000, captured
    # 20 ms apart, give or take the capture's own jitter.
    spacing = (captured[-1] - captured[0]) / (len(captured) - 1)
    assert 15 < spacing < 25, spacing
    assert all(0 < len(payload) <= 400 for _, payload in parsed)


def test_the_camera_ends_a_turn_and_the_page_says_why(lab, chromium_keeper):
    lab.start_server("--talk", "viewers", "--talk-max", "2s")
    lab.start_camera("lab", "--audio", "tone")
    with chromium_keeper.use(*FAKE_MICROPHONE) as browser:
        context = browser.new_context(**CONTEXT_OPTIONS)
        page = open_player(context, lab, "lab", "ann")
        page.wait_for_function("peercam.talk().allowed", timeout=5_000)
        page.click("#talk-button")
        page.wait_for_function("peercam.talk().sending", timeout=10_000)
        page.wait_for_function("!peercam.talk().sending", timeout=10_000)
        assert page.evaluate("peercam.talk()") == {
            "allowed": True, "reason": "", "talking": None, "sending": False,
            "note": "a turn lasts at most 2 s"}
        assert page.get_attribute("#talk-button", "aria-pressed") == "false"
        assert talking_in_api(lab, "lab") is None
        assert_frames_keep_coming(page)
        assert not page.errors, page.errors


@pytest.mark.parametrize(("mode", "audio"), [("p2p", "tone"), ("relay", "tone"), ("p2p", "none")])
def test_the_camera_records_what_a_page_says(lab, chromium_keeper, tmp_path, mode, audio):
    """The page's microphone reaches the camera, on P2P (its offer's sendrecv audio section,
    there for talk alone when the camera has no sound) and on the relay (Opus relay frames):
    the camera's --talk-record file holds the fake microphone's beeps, one every half
    second, for as long as the button was held."""
    record = tmp_path / "talk"
    lab.start_server("--talk", "viewers")
    camera = lab.start_camera("lab", "--audio", audio, "--talk-record", str(record))
    with chromium_keeper.use(*FAKE_MICROPHONE) as browser:
        page = open_player(browser.new_context(**CONTEXT_OPTIONS), lab, "lab", "ann", mode=mode)
        page.wait_for_function("peercam.talk().allowed", timeout=5_000)
        hold_talk(page)
        page.wait_for_function("peercam.talk().sending", timeout=10_000)
        page.wait_for_timeout(3000)  # the viewer holds the button for a 3 s turn
        release_talk(page)
        camera.wait_for_log("recorded the turn to", timeout=10)
        assert_frames_keep_coming(page)  # the picture goes on after the turn
        assert page.evaluate("peercam.sound().state") == ("none" if audio == "none" else "muted")
        assert not page.errors, page.errors

    [path] = list(record.iterdir())
    assert path.suffix == ".opus" and path.stem.endswith("-ann"), path
    probed = ffprobe(path)
    stream = probed["streams"][0]
    assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == ("opus", 1, "48000"), probed
    assert 2.5 <= float(probed["format"]["duration"]) <= 3.5, probed
    loud = envelope(path) > 0.05
    rises = np.nonzero(loud[1:] & ~loud[:-1])[0]
    assert len(rises) >= 5, rises
    assert all(abs(gap - BEEP_EVERY) <= 3 for gap in np.diff(rises)), rises


#: Delivery (web/js/delivery.js) on fake transports: the microphone goes to the transport in
#: use, and moves with the picture (auto: P2P fails, the relay takes over; P2P comes back).
FOLLOW_THE_PICTURE = """async () => {
  const { Delivery } = await import('/static/js/delivery.js');
  const made = [];
  let probeMade;
  const probe = new Promise((resolve) => { probeMade = resolve; });
  class FakeTransport {
    talked = [];
    constructor(options) {
      this.options = options;
      made.push(this);
      if (made.length === 3) probeMade(this); // P2P again, tried in the background of the relay
    }
    start() {}
    stop() { this.stopped = true; }
    talk(track) { this.talked.push(track); }
  }
  const transports = {
    p2p: class extends FakeTransport { mode = 'p2p'; },
    relay: class extends FakeTransport { mode = 'relay'; },
  };
  const delivery = new Delivery({
    mode: 'auto', relayFormat: 'auto', signaling: null, video: null, canvas: null, connectTimeoutMs: 5000,
    p2pRetryMs: 10, transports, onFrame: () => {}, onSetback: () => {}, onChat: () => {}, onSession: () => {},
  });
  const mic = { label: 'mic' };
  const seen = () => made.map((t) => `${t.mode}:${t.talked.map((track) => track?.label ?? null).join(',')}`);
  delivery.start({ cameraId: 'camera-1', iceServers: [], codec: 'vp8', audio: null, talk: true });
  delivery.talk(mic);
  const steps = [seen()];
  made[0].options.onFailure('no video');  // auto: on to the relay, which gets the microphone
  steps.push(seen());
  (await probe).options.onFrame({ count: 1 });  // its first picture: it takes over
  steps.push(seen());
  delivery.talk(null);
  steps.push(seen());
  delivery.stop();
  return steps;
}"""


def test_the_microphone_follows_the_picture_between_p2p_and_the_relay(page_on_server):
    assert page_on_server.evaluate(FOLLOW_THE_PICTURE) == [
        ["p2p:mic"],
        ["p2p:mic", "relay:mic"],
        ["p2p:mic", "relay:mic", "p2p:mic"],
        ["p2p:mic", "relay:mic", "p2p:mic,"],
    ]


def test_a_talk_token_turns_the_button_on(lab, chromium_keeper):
    lab.start_server("--talk", "token", "--secret", SECRET)
    lab.start_camera("lab", "--audio", "tone")
    with chromium_keeper.use(*FAKE_MICROPHONE) as browser:
        page = open_player(browser.new_context(**CONTEXT_OPTIONS), lab, "lab", "ann",
                           query=f"&token={make_token(SECRET, 'lab', 'talk', 60)}")
        page.wait_for_function("peercam.talk().allowed", timeout=5_000)
        page.click("#talk-button")
        page.wait_for_function("peercam.talk().sending", timeout=10_000)
        talking = wait_until(lambda: talking_in_api(lab, "lab"), 5, "the server to say who talks")
        assert talking["name"] == "ann", talking
        page.click("#talk-button")
        page.wait_for_function("!peercam.talk().sending && peercam.talk().talking === null", timeout=10_000)
        assert not page.errors, page.errors
