"""web/js/delivery.js in real headless Chromium: the shared cases (tests/delivery_cases.json) give
what peers/viewer/delivery.py gives, on fake transports and a virtual clock.

The module comes from the real server's /static/, imported by a page on the server's
origin (Playwright's evaluate needs the CSP bypassed, as everywhere in these tests).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .test_delivery import CASES, P2P_RETRY_MS, check_case, run_case_in_python, setback_kind

JS_CASES = [case for case in CASES if case.get("only", "js") == "js"]

#: The JavaScript runner: the same steps, the same results as run_case_in_python. The page's
#: timers are the runner's own while it runs (nothing else runs meanwhile: it never awaits).
RUN_CASES = """async ({ cases, p2pRetryMs }) => {
  const delivery = await import('/static/js/delivery.js');
  const { Delivery } = delivery;
  const realTimers = [window.setTimeout, window.clearTimeout];
  let now = 0;
  let nextTimer = 1;
  const timers = new Map(); // id -> {at, fn}
  window.setTimeout = (fn, ms = 0) => { timers.set(nextTimer, { at: now + ms, fn }); return nextTimer++; };
  window.clearTimeout = (id) => { timers.delete(id); };
  const advance = (ms) => {
    const target = now + ms;
    for (;;) {
      const due = [...timers].filter(([, t]) => t.at <= target).sort(([, a], [, b]) => a.at - b.at);
      if (!due.length) break;
      const [id, { at, fn }] = due[0];
      timers.delete(id);
      now = at;
      fn();
    }
    now = target;
  };

  const run = (test) => {
    const made = [];
    const events = { started: [], sessions: [], setbacks: [], shown: [], signalled: [], ended: [] };
    class FakeTransport {
      started = false;
      stopped = false;
      messages = [];
      constructor(options) { this.options = options; made.push(this); }
      get running() { return this.started && !this.stopped; }
      start() { this.started = true; events.started.push(this.mode); }
      stop() { this.stopped = true; }
      handleSignal(message) { this.messages.push(message); }
      sendChat() { return false; }
      async networkStats() { return null; }
      // As the real ones: it stops, then says why, once.
      fail(reason) { this.stopped = true; this.options.onFailure(reason); }
      frame() { this.options.onFrame({ from: this.mode, count: 1 }); }
    }
    const transports = {
      p2p: class extends FakeTransport { mode = 'p2p'; },
      relay: class extends FakeTransport { mode = 'relay'; format = 'jpeg'; },
    };
    const running = (mode) => {
      const found = made.filter((t) => t.mode === mode && t.running);
      if (found.length !== 1) throw new RangeError(`${found.length} running ${mode} transports, not one`);
      return found[0];
    };
    const view = new Delivery({
      mode: test.mode, relayFormat: 'auto', signaling: null, video: null, canvas: null,
      connectTimeoutMs: 5000, p2pRetryMs, transports,
      onFrame: (frame) => events.shown.push(frame.from),
      onSession: (mode) => events.sessions.push(mode),
      onSetback: (text) => events.setbacks.push(text),
      onChat: () => {},
    });
    const camera = { cameraId: 'camera-1', iceServers: [], iceTransportPolicy: 'all', codec: 'vp8' };
    const signal = { type: 'candidate', candidate: null, from: camera.cameraId };
    const results = [];
    for (const step of test.steps) {
      for (const transport of made) transport.messages = [];
      try {
        if ('start' in step) view.start(camera);
        else if ('stop' in step) view.stop();
        else if ('fail' in step) running(step.fail).fail(step.reason);
        else if ('frame' in step) running(step.frame).frame();
        else if ('signal' in step) view.handleSignal(signal);
        else if ('wait_ms' in step) advance(step.wait_ms);
        else if ('choose' in step) view.choose(step.choose);
        else throw new RangeError(`no such action here: ${JSON.stringify(step)}`);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        results.push({ error: error.message }); // the case cannot go on
        break;
      }
      results.push({
        mode: view.mode,
        running: made.filter((t) => t.running).map((t) => t.mode).sort(),
        ...Object.fromEntries(Object.entries(events).map(([key, values]) => [key, [...values]])),
        signalled: made.filter((t) => t.messages.length).map((t) => t.mode).sort(),
      });
      for (const values of Object.values(events)) values.length = 0;
    }
    view.stop();
    return results;
  };

  try {
    return cases.map(run);
  } finally {
    [window.setTimeout, window.clearTimeout] = realTimers;
  }
}"""


def classified(results: list[dict]) -> list[dict]:
    return [{**r, "setbacks": [setback_kind(text) for text in r["setbacks"]]} if "setbacks" in r else r
            for r in results]


def test_the_shared_cases_on_the_page(page_on_server):
    results = page_on_server.evaluate(RUN_CASES, {"cases": JS_CASES, "p2pRetryMs": P2P_RETRY_MS})
    for case, result in zip(JS_CASES, results, strict=True):
        check_case(case, result)
    # And beyond what the cases say: every step's result is the Python Delivery's (run in a
    # thread of its own: Playwright's loop runs in this one).
    shared = [(case, result) for case, result in zip(JS_CASES, results, strict=True) if "only" not in case]
    with ThreadPoolExecutor(1) as pool:
        python = list(pool.map(run_case_in_python, [case for case, _ in shared]))
    for (case, result), expected in zip(shared, python, strict=True):
        assert classified(result) == classified(expected), case["name"]


def test_a_delivery_with_another_rule_fails_the_cases(page_on_server):
    """The comparison can fail: the same runner on a page that tries P2P again every 6 s, not 5."""
    results = page_on_server.evaluate(RUN_CASES, {"cases": JS_CASES, "p2pRetryMs": 6000})
    failures = 0
    for case, result in zip(JS_CASES, results, strict=True):
        try:
            check_case(case, result)
        except AssertionError:
            failures += 1
    assert failures >= 3
