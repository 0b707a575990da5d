// The page load's timeline: when each step towards the first picture happened, in ms since
// the navigation started (performance.now()'s origin). One per page: the first time of
// each step counts, later sessions (a reconnect, a fallback) add none. bench/latency.py
// reads it through window.peercam.timeline() to show where the time to the first frame goes.
//
// Steps, in the order a P2P load takes them (the relay's replace offer..first-packet with
// relay-asked and first-relay-frame):
//   document       the HTML is in (responseEnd of the navigation)
//   scripts        the last module script is in (its responseEnd)
//   script-run     player.js runs
//   ws-open        the signaling WebSocket is open
//   welcome        the server's welcome
//   watching       the server's watching
//   stream-live    the camera is live: the session starts
//   offer-sent     the offer went out
//   answer         the camera's answer came
//   ice-connected  ICE found a pair
//   connected      DTLS too: media may flow
//   first-packet   the first video packet (the track unmuted)
//   relay-asked    the page asked for relay frames
//   first-relay-frame  the first relay frame came in
//   first-frame    the first picture is shown

/** The steps, in order (see above). */
export const LoadStep = Object.freeze([
  'document', 'scripts', 'script-run', 'ws-open', 'welcome', 'watching', 'stream-live', 'offer-sent',
  'answer', 'ice-connected', 'connected', 'first-packet', 'relay-asked', 'first-relay-frame', 'first-frame',
]);

class LoadTimeline {
  #marks = new Map();

  /** This step happened now (or `at`, a performance.now() time); only its first time counts. */
  mark(step, at = performance.now()) {
    if (!this.#marks.has(step)) this.#marks.set(step, at);
  }

  /** {step: ms since the navigation started}, in LoadStep's order, for the steps seen. */
  snapshot() {
    const marks = new Map(this.#marks);
    const [navigation] = performance.getEntriesByType('navigation');
    if (navigation) marks.set('document', navigation.responseEnd);
    // The page's modules all come before player.js runs (a worklet's, later, is not one of them).
    const ran = marks.get('script-run') ?? Infinity;
    const scripts = performance.getEntriesByType('resource')
      .filter((entry) => entry.name.endsWith('.js') && entry.responseEnd <= ran);
    if (scripts.length > 0) marks.set('scripts', Math.max(...scripts.map((entry) => entry.responseEnd)));
    const steps = LoadStep.filter((step) => marks.has(step));
    return Object.fromEntries(steps.map((step) => [step, Math.round(marks.get(step) * 10) / 10]));
  }
}

/** The page's one timeline. */
export const loadTimeline = new LoadTimeline();
