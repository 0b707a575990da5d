"""Talk back to a browser camera (/publish/NAME), in real headless Chromium with its fake
camera and microphone: `peercam view --talk tone` speaks through it over P2P (the answer's
sendrecv audio section) and the relay (talk frames the server passes on), and the tab
really plays it: the page's own output (its AudioOutput's tap, read by the test tone's
reader) holds the tone's beeps, each read back with its time code, half a second apart as
they were sent. The tab keeps the floor (web/js/talk-floor.js): --talk-max ends a turn,
two viewers race and the second is refused with the first's name, the operator's button
takes the floor, and the chat records each turn.

One server (--talk viewers, --talk-max 4s) and one camera tab serve the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .conftest import Lab, Process, chromium, wait_until
from .test_web_publish import FAKE_MEDIA_ARGS, go_live

STREAM = "door"
TALK_MAX = 4
#: A beep heard later than this after the viewer made it is no sound to talk with (ms).
SANE_LATENCY_MS = 2000


@dataclass
class CameraTab:
    lab: Lab
    page: object
    errors: list[str]

    def viewer(self, name: str, mode: str) -> Process:
        """A viewer that talks with the test tone as soon as it plays, until its turn ends."""
        return self.lab.start_viewer(STREAM, "--name", name, "--mode", mode, "--talk", "tone",
                                     "--duration", "60")

    def notes(self, since: int) -> list[str]:
        """The camera's own chat lines from the ``since``-th on."""
        return [m["text"] for m in self.page.evaluate("peercam.chat()")[since:] if m["name"] == "cam"]


@pytest.fixture(scope="module")
def tab(tmp_path_factory) -> Iterator[CameraTab]:
    lab = Lab(tmp_path_factory.mktemp("publish-talk"))
    try:
        lab.start_server("--talk", "viewers", "--talk-max", f"{TALK_MAX}s")
        with chromium(*FAKE_MEDIA_ARGS) as browser:
            page, errors = go_live(browser, lab, STREAM, "source=camera&autostart=1&name=cam")
            page.wait_for_function("peercam.talk().open && peercam.talk().playing", timeout=10_000)
            assert page.inner_text("#talk-state") == "nobody is talking"
            yield CameraTab(lab, page, errors)
            assert not errors, errors
    finally:
        lab.stop()


@pytest.mark.parametrize(("mode", "name"), [("p2p", "Ann"), ("relay", "Rae")])
def test_the_tab_plays_what_a_viewer_says_until_talk_max_ends_the_turn(tab, mode, name):
    page = tab.page
    started = page.evaluate("Date.now()")
    relay_packets = page.evaluate("peercam.talk().relayPackets")
    chat = page.evaluate("peercam.chat().length")
    viewer = tab.viewer(name, mode)
    viewer.wait_for_log(f"peercam view: talking ({mode})", timeout=20)
    page.wait_for_function(f"peercam.talk().talking === '{name}'", timeout=5_000)
    assert page.inner_text("#talk-state") == f"{name} is talking"
    assert page.is_enabled("#take-floor")
    since = page.evaluate("peercam.talk().since")

    # The camera ends the turn at --talk-max, and tells the speaker why.
    viewer.wait_for_log(f"talk stopped by the camera: a turn lasts at most {TALK_MAX} s",
                        timeout=TALK_MAX + 5)
    page.wait_for_function("peercam.talk().talking === null", timeout=5_000)
    lasted = page.evaluate("Date.now() / 1000") - since
    assert TALK_MAX - 0.1 <= lasted <= TALK_MAX + 1.5, lasted
    assert page.inner_text("#talk-state") == "nobody is talking" and page.is_disabled("#take-floor")
    assert tab.notes(chat) == [f"{name} is talking", f"{name} stopped talking"]

    # What the tab played: the tone's beeps, read back with their time codes.
    beeps = [b for b in page.evaluate("peercam.talkBeeps()") if b["captureTimeMs"] > started]
    # Eight were sent: the turn's first and last may be cut, and some damaged on a busy machine.
    assert len(beeps) >= 3, beeps
    captures = [b["captureTimeMs"] for b in beeps]
    assert all(capture % 500 == 0 for capture in captures) and captures == sorted(set(captures)), beeps
    assert all(0 < b["latencyMs"] < SANE_LATENCY_MS for b in beeps), beeps
    # At the rhythm they were made: heard as far apart as they were captured, give or take.
    for before, after in zip(beeps, beeps[1:], strict=False):
        made = after["captureTimeMs"] - before["captureTimeMs"]
        heard = after["heardTimeMs"] - before["heardTimeMs"]
        assert abs(heard - made) <= 100, beeps
    # The way it came: talk frames on the relay (50 a second), none on P2P.
    played = page.evaluate("peercam.talk().relayPackets") - relay_packets
    assert (played >= 0.8 * 50 * (TALK_MAX - 1)) if mode == "relay" else played == 0, played
    viewer.close()


def test_two_viewers_race_the_second_is_refused_and_the_operator_takes_the_floor(tab):
    page = tab.page
    chat = page.evaluate("peercam.chat().length")
    # Both on the relay, so that both ask within a moment of each other (a P2P viewer asks
    # once connected, which can take longer than a turn on a busy machine).
    racers = {"Alice": tab.viewer("Alice", "relay"), "Bob": tab.viewer("Bob", "relay")}

    def winner() -> str | None:
        return next((who for who, p in racers.items() if "peercam view: talking (" in p.log()), None)

    first = wait_until(winner, 20, "one of the racers to talk")
    [second] = set(racers) - {first}
    racers[second].wait_for_log(f"talk refused: {first} is talking", timeout=10)
    page.wait_for_function(f"peercam.talk().talking === '{first}'", timeout=5_000)
    assert "peercam view: talking (" not in racers[second].log()

    page.click("#take-floor")
    racers[first].wait_for_log("talk stopped by the camera: the camera's operator took the floor", timeout=5)
    page.wait_for_function("peercam.talk().talking === null", timeout=5_000)
    assert page.is_disabled("#take-floor")
    assert tab.notes(chat) == [f"{first} is talking", f"{first} stopped talking"]
    for process in racers.values():
        process.close()
