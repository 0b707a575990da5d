"""web/: talk back from the player page, in real headless Chromium with its fake microphone
(it beeps), to a real camera through a real server: the push-to-talk button (web/js/talk.js),
off with its reason where the page may not talk, the floor one page at a time, and the
microphone on P2P (the offer's sendrecv audio section) and on the relay (Opus relay frames)."""

from __future__ import annotations

from .conftest import CONTEXT_OPTIONS, chromium, get_json, wait_until

#: Chromium's fake microphone, granted without asking.
FAKE_MICROPHONE = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


def talking_in_api(lab, stream: str):
    return (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("talking")


def open_player(context, lab, stream: str, name: str, mode: str = "p2p"):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{lab.url}/view/{stream}?mode={mode}&name={name}")
    page.wait_for_function(f"peercam.mode() === '{mode}' && peercam.state() === 'playing'", timeout=20_000)
    page.errors = errors
    return page


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


def test_the_button_is_off_with_its_reason_under_talk_off(lab):
    lab.start_server()  # --talk off, the default
    lab.start_camera("lab", "--audio", "tone")
    with chromium(*FAKE_MICROPHONE) as browser:
        context = browser.new_context(**CONTEXT_OPTIONS)
        page = open_player(context, lab, "lab", "ann")
        page.wait_for_function("peercam.talk().reason !== ''", timeout=5_000)
        assert page.evaluate("peercam.talk()") == {
            "allowed": False, "reason": "talking back is off on this server", "talking": None,
            "sending": False, "note": "talking back is off on this server"}
        assert page.is_disabled("#talk-button")
        assert page.inner_text("#talk-note") == "talking back is off on this server"
        hold_talk(page)  # a disabled button does nothing
        release_talk(page)
        assert page.evaluate("peercam.talk().sending") is False and talking_in_api(lab, "lab") is None
        assert_frames_keep_coming(page)
        assert not page.errors, page.errors


def test_one_page_holds_the_floor_another_is_refused_and_the_floor_frees_on_release(lab):
    lab.start_server("--talk", "viewers")
    lab.start_camera("lab", "--audio", "tone")
    with chromium(*FAKE_MICROPHONE) as browser:
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
        bob.click("#talk-button")
        bob.wait_for_function("peercam.talk().sending", timeout=10_000)
        ann.wait_for_function("peercam.talk().talking === 'bob'", timeout=5_000)
        assert talking_in_api(lab, "lab")["name"] == "bob"
        assert_frames_keep_coming(bob)
        bob.click("#talk-button")
        bob.wait_for_function("peercam.talk().talking === null && !peercam.talk().sending", timeout=10_000)
        assert talking_in_api(lab, "lab") is None
        for page in (ann, bob):
            assert page.evaluate("peercam.state()") == "playing"
            assert not page.errors, page.errors
