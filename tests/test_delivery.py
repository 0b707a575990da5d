"""peers/viewer/delivery.py: which transport runs, and when it changes, checked with the shared
cases (tests/delivery_cases.json; web/js/delivery.js runs them too, tests/test_web_delivery.py)
on fake transports and a virtual clock: no network, no waiting."""

from __future__ import annotations

import asyncio
import heapq
import json
from pathlib import Path

import pytest
from peercam.peers.viewer.delivery import Delivery

CASES_PATH = Path(__file__).resolve().parent / "delivery_cases.json"
CASES_FILE = json.loads(CASES_PATH.read_text())
CASES = CASES_FILE["cases"]
P2P_RETRY_MS = CASES_FILE["p2p_retry_ms"]
PYTHON_CASES = [case for case in CASES if case.get("only", "python") == "python"]

#: What a step made happen, empty unless the step says otherwise.
EVENTS = ("started", "sessions", "setbacks", "shown", "signalled", "ended")


def setback_kind(text: str) -> str:
    """'relay' for a setback that switches to the relay, 'retry' for one that tries the same again
    (the two sides word them differently)."""
    return "relay" if "switching to the relay" in text else "retry"


def expected_results(case: dict) -> list[dict]:
    """What each step should give: 'mode' and 'running' carry over, the events are empty unless said."""
    state = {"mode": case["initial"], "running": []}
    expected = []
    for step in case["steps"]:
        state = {key: step.get(key, state[key]) for key in state}
        expected.append({**state, **{key: step.get(key, []) for key in EVENTS}})
    return expected


def check_case(case: dict, results: list[dict]) -> None:
    """What a Delivery did (one result per step, setbacks as their texts; or, for a step that
    could not run, its error) is what the case expects."""
    for number, (step, expected) in enumerate(zip(case["steps"], expected_results(case), strict=True)):
        where = f"{case['name']!r}, step {number}: {json.dumps(step)}"
        assert number < len(results), f"{where}: no result"
        result = results[number]
        assert "error" not in result, f"{where}: {result['error']}"
        result = {**result, "setbacks": [setback_kind(text) for text in result["setbacks"]]}
        assert result == expected, where
    assert len(results) == len(case["steps"]), f"{case['name']!r}: more results than steps"


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when told: timers fire in order, at their time."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._deadlines: list[float] = []

    def time(self) -> float:
        return self._now

    def call_at(self, when, callback, *args, context=None):
        heapq.heappush(self._deadlines, when)
        return super().call_at(when, callback, *args, context=context)

    async def advance(self, seconds: float) -> None:
        target = self._now + seconds
        await settle()
        while self._deadlines and self._deadlines[0] <= target + 1e-6:
            self._now = max(self._now, heapq.heappop(self._deadlines))
            await settle()
        self._now = max(self._now, target)
        await settle()


async def settle() -> None:
    """Let every task that can run, run (the Delivery's, and what they start)."""
    for _ in range(50):
        await asyncio.sleep(0)


class FakeTransport:
    """A transport that does what the case tells it: start, stop, fail, deliver a frame."""

    def __init__(self, mode: str, on_frame, on_failure, started: list[str]) -> None:
        self.mode = mode
        self._on_frame = on_frame
        self._on_failure = on_failure
        self._started_log = started
        self.started = self.stopped = False
        self.messages: list[object] = []

    @property
    def running(self) -> bool:
        return self.started and not self.stopped

    async def start(self) -> None:
        self.started = True
        self._started_log.append(self.mode)

    async def stop(self) -> None:
        self.stopped = True

    async def handle(self, message: object) -> None:
        self.messages.append(message)

    def send_chat(self, message) -> bool:
        return False

    async def network(self):
        return None

    def fail(self, reason: str, fatal: bool) -> None:
        # As the real ones: it stops, then says why, once.
        self.stopped = True
        self._on_failure(reason, fatal)

    def frame(self) -> None:
        self._on_frame(f"a frame from {self.mode}")


async def run_steps(case: dict, p2p_retry_ms: int) -> list[dict]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    made: list[FakeTransport] = []
    events: dict[str, list] = {key: [] for key in EVENTS}

    def make(mode, on_frame, on_audio, on_failure):
        made.append(FakeTransport(mode, on_frame, on_failure, events["started"]))
        return made[-1]

    def running(mode: str) -> FakeTransport:
        transports = [t for t in made if t.mode == mode and t.running]
        if len(transports) != 1:
            raise LookupError(f"{len(transports)} running {mode} transports, not one")
        return transports[0]

    delivery = Delivery(case["mode"], make, p2p_retry_ms / 1000,
                        on_frame=lambda frame: events["shown"].append(frame.rsplit(" ", 1)[-1]),
                        on_session=events["sessions"].append, on_setback=events["setbacks"].append,
                        on_fatal=events["ended"].append)
    results = []
    for step in case["steps"]:
        for transport in made:
            transport.messages.clear()
        try:
            if "start" in step:
                await delivery.start()
            elif "stop" in step:
                await delivery.stop()
            elif "fail" in step:
                running(step["fail"]).fail(step["reason"], False)
            elif "fatal" in step:
                running(step["fatal"]).fail(step["reason"], True)
            elif "frame" in step:
                running(step["frame"]).frame()
            elif "signal" in step:
                await delivery.handle({"type": "candidate", "candidate": None})
            elif "wait_ms" in step:
                await loop.advance(step["wait_ms"] / 1000)
            else:
                raise LookupError(f"no such action here: {step}")
        except LookupError as exc:
            results.append({"error": str(exc)})  # the case cannot go on
            break
        await settle()
        results.append({
            "mode": delivery.mode,
            "running": sorted(t.mode for t in made if t.running),
            **{key: list(values) for key, values in events.items()},
            "signalled": sorted(t.mode for t in made if t.messages),
        })
        for values in events.values():
            values.clear()
    await delivery.close()
    return results


def run_case_in_python(case: dict, p2p_retry_ms: int = P2P_RETRY_MS) -> list[dict]:
    """The case's steps on peers/viewer/delivery.py: one result per step (the same shape as the
    JavaScript runner's in tests/test_web_delivery.py)."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(run_steps(case, p2p_retry_ms))


@pytest.mark.parametrize("case", PYTHON_CASES, ids=[case["name"] for case in PYTHON_CASES])
def test_shared_cases_on_the_python_delivery(case):
    check_case(case, run_case_in_python(case))


def test_the_shared_cases_can_fail():
    """A Delivery that tries P2P again every 6 s, not 5, breaks them: the cases check what they say."""
    failures = 0
    for case in PYTHON_CASES:
        try:
            check_case(case, run_case_in_python(case, p2p_retry_ms=6000))
        except AssertionError:
            failures += 1
    assert failures >= 3
