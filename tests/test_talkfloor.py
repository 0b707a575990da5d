"""peers/camera/talkfloor.py: one speaker at a time, on the shared cases
(tests/talkfloor_cases.json, which also run against web/js/talk-floor.js in
tests/test_web_talkfloor.py), on a clock of the test's own: talk_max's timer is exact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import msgspec
from peercam.peers.camera.talkfloor import TalkFloor

from peercam.shared.protocol import decode_client_message

CASES_PATH = Path(__file__).resolve().parent / "talkfloor_cases.json"
CASES = json.loads(CASES_PATH.read_text())["cases"]


class FakeClock:
    """Unix seconds that move only when told; timers fire as the time passes them, in order."""

    class Timer:
        def __init__(self, due: float, callback: Callable[[], None]) -> None:
            self.due, self.callback, self.cancelled = due, callback, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self, now: float) -> None:
        self.now = now
        self._timers: list[FakeClock.Timer] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = FakeClock.Timer(self.now + seconds, callback)
        self._timers.append(timer)
        return timer

    def wait(self, seconds: float) -> None:
        target = self.now + seconds
        while due := sorted((t for t in self._timers if not t.cancelled and t.due <= target),
                            key=lambda t: t.due):
            timer = due[0]
            self._timers.remove(timer)
            self.now = timer.due
            timer.callback()
        self.now = target


def run_case_in_python(case: dict, floor_class: type[TalkFloor] = TalkFloor) -> list[dict]:
    """The case's steps on TalkFloor: one result per step (the JavaScript runner's shape)."""
    clock = FakeClock(case["floor"]["clock"])
    sent: list[object] = []
    heard: list[list] = []
    names = case["names"]
    floor = floor_class(sent.append, lambda viewer: names[viewer], clock=clock, call_later=clock.call_later)
    floor.open, floor.talk_max = case["floor"]["open"], case["floor"]["talk_max"]
    floor.on_change.append(lambda holder, name: heard.append([holder, name]))
    results = []
    for step in case["steps"]:
        sent.clear()
        heard.clear()
        if "ask" in step:
            floor.ask(step["ask"])
        elif "release" in step:
            floor.release(step["release"])
        elif "take" in step and step["take"] is None:
            floor.take()
        elif "take" in step:
            floor.take(step["take"])
        elif "forget" in step:
            floor.forget()
        elif "wait" in step:
            clock.wait(step["wait"])
        results.append({"sent": [msgspec.to_builtins(message) for message in sent], "heard": list(heard),
                        "holder": floor.holder, "since": floor.since})
    return results


def as_sent(message: dict) -> object:
    """A message as the server would take it from the camera (and so as the protocol reads it)."""
    return decode_client_message(json.dumps(message))


def check_case(case: dict, results: list[dict]) -> None:
    assert len(results) == len(case["steps"]), case["name"]
    for number, (step, result) in enumerate(zip(case["steps"], results, strict=True)):
        where = f"{case['name']}, step {number}: {step}"
        assert [as_sent(m) for m in result["sent"]] == [as_sent(m) for m in step["sent"]], (where, result)
        assert result["heard"] == step.get("heard", []), (where, result)
        assert result["holder"] == step["holder"], (where, result)
        if "since" in step:
            assert result["since"] == step["since"], (where, result)


def test_the_shared_cases_on_the_python_floor():
    assert len(CASES) >= 8
    for case in CASES:
        check_case(case, run_case_in_python(case))


def test_a_floor_with_another_rule_fails_the_cases():
    """The comparison can fail: a floor whose turns never time out breaks the talk_max cases."""

    class Endless(TalkFloor):
        def _turn_over(self) -> None:
            pass

    failures = 0
    for case in CASES:
        try:
            check_case(case, run_case_in_python(case, Endless))
        except AssertionError:
            failures += 1
    assert failures == 3
