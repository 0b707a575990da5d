"""web/js/talk-floor.js, the browser camera's talk floor, in real headless Chromium: the
shared cases (tests/talkfloor_cases.json) give what peers/camera/talkfloor.py gives, on a
clock of the test's own.

The module comes from the real server's /static/, imported by a page on the server's origin.
"""

from __future__ import annotations

from .test_talkfloor import CASES, as_sent, check_case, run_case_in_python

#: The JavaScript runner: the same steps, the same results as run_case_in_python.
RUN_CASES = """async (cases) => {
  const { TalkFloor } = await import('/static/js/talk-floor.js');
  class FakeClock {
    timers = [];
    constructor(now) { this.now = now; }
    callLater(seconds, callback) {
      const timer = { due: this.now + seconds, callback, cancelled: false };
      timer.cancel = () => { timer.cancelled = true; };
      this.timers.push(timer);
      return timer;
    }
    wait(seconds) {
      const target = this.now + seconds;
      for (;;) {
        const due = this.timers.filter((t) => !t.cancelled && t.due <= target).sort((a, b) => a.due - b.due);
        if (!due.length) break;
        this.timers.splice(this.timers.indexOf(due[0]), 1);
        this.now = due[0].due;
        due[0].callback();
      }
      this.now = target;
    }
  }
  return cases.map((test) => {
    const clock = new FakeClock(test.floor.clock);
    const sent = [];
    const heard = [];
    const floor = new TalkFloor({
      send: (message) => sent.push(message), nameOf: (id) => test.names[id],
      clock: () => clock.now, callLater: (seconds, callback) => clock.callLater(seconds, callback),
    });
    floor.open = test.floor.open;
    floor.talkMax = test.floor.talk_max;
    floor.onChange.push((holder, name) => heard.push([holder, name]));
    return test.steps.map((step) => {
      sent.length = 0;
      heard.length = 0;
      if ('ask' in step) floor.ask(step.ask);
      else if ('release' in step) floor.release(step.release);
      else if ('take' in step) (step.take === null ? floor.take() : floor.take(step.take));
      else if ('forget' in step) floor.forget();
      else if ('wait' in step) clock.wait(step.wait);
      return { sent: [...sent], heard: [...heard], holder: floor.holder, since: floor.since };
    });
  });
}"""


def test_the_shared_cases_on_the_browser_floor(page_on_server):
    results = page_on_server.evaluate(RUN_CASES, CASES)
    for case, result in zip(CASES, results, strict=True):
        check_case(case, result)
        # And beyond what the cases say: every result is the Python floor's, message for message.
        assert normal(result) == normal(run_case_in_python(case)), case["name"]

    # The comparison can fail: the same runner on a floor that lets a second viewer in.
    other = RUN_CASES.replace("const { TalkFloor } = await import('/static/js/talk-floor.js');", """
      const { TalkFloor: Real } = await import('/static/js/talk-floor.js');
      class TalkFloor extends Real {
        ask(id) { if (this.holder !== null && this.holder !== id) this.release(this.holder); super.ask(id); }
      }""")
    assert other != RUN_CASES
    failures = 0
    for case, result in zip(CASES, page_on_server.evaluate(other, CASES), strict=True):
        try:
            check_case(case, result)
        except AssertionError:
            failures += 1
    assert failures >= 1


def normal(results: list[dict]) -> list[dict]:
    """Results with their messages as the protocol reads them (a field at its default or left out
    is the same message)."""
    return [{**result, "sent": [as_sent(m) for m in result["sent"]]} for result in results]
