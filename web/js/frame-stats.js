// Playback statistics fed by every decoded frame, whichever transport delivered it: the
// page's FrameStats, as the Python viewer's (peers/viewer/framestats.py).

const WINDOW_MS = 1000;

export class FrameStats {
  frames = 0;
  fps = 0;
  kbps = null; // null while the transport does not count its bytes
  dropped = 0;
  /** Frames carry the camera's frame numbers (test pattern, relay header): `dropped` means something. */
  numbered = false;
  width = 0;
  height = 0;
  /**
   * How far the camera's frame numbers advance per frame of the layer received: 2 for a
   * layer at half the capture's rate (it takes every other frame), whose gaps are no drops.
   */
  frameStep = 1;

  #framesSinceTick = 0;
  #bytesSinceTick = null;
  #lastTick = performance.now();
  #latencySamples = []; // {at, ms}, oldest first, trimmed to the last WINDOW_MS
  #lastSequence = null;
  #lastSeries;
  #framesSinceTiming = 0; // decoded since the last frame with timing, that one excluded

  /**
   * `count` frames of this size were decoded. `timing` is the newest one's
   * {latencyMs, sequence, series} (camera clock to now, camera's frame number, and what
   * numbers it: the relay numbers each rendition's frames on their own, so numbers of
   * another series are not compared), or null when unknown; `bytes` is what arrived
   * for them, or null when the transport does not say.
   */
  framesArrived({ count, width, height, timing = null, bytes = null }) {
    this.frames += count;
    this.#framesSinceTick += count;
    if (bytes !== null) this.#bytesSinceTick = (this.#bytesSinceTick ?? 0) + bytes;
    this.width = width;
    this.height = height;
    this.#framesSinceTiming += count;
    if (timing) this.#timingArrived(timing);
  }

  /** A new session starts: sequence numbers restart, so no gap is counted across it. */
  resetContinuity() {
    this.#lastSequence = null;
    this.#framesSinceTiming = 0;
  }

  /** Call about once a second: recomputes fps and kbps from what came since the last tick. */
  tick() {
    const now = performance.now();
    const elapsedMs = now - this.#lastTick;
    this.fps = Math.round((this.#framesSinceTick * 10000) / elapsedMs) / 10;
    const bytes = this.#bytesSinceTick;
    this.kbps = bytes === null ? null : Math.round((bytes * 8) / elapsedMs); // bits per ms = kbit/s
    this.#framesSinceTick = 0;
    this.#bytesSinceTick = null;
    this.#lastTick = now;
  }

  /** Median latency (camera to screen) of the last second, whole ms; null without timing. */
  latencyMs() {
    this.#forgetOldSamples(performance.now());
    if (this.#latencySamples.length === 0) return null;
    const sorted = this.#latencySamples.map((s) => s.ms).sort((a, b) => a - b);
    return Math.round(sorted[Math.floor(sorted.length / 2)]);
  }

  /** The last second's samples, oldest first: [{time, ms}], `time` in Unix ms (when the page got the frame). */
  recentLatencies() {
    this.#forgetOldSamples(performance.now());
    return this.#latencySamples.map(({ at, ms }) => ({ time: performance.timeOrigin + at, ms }));
  }

  #timingArrived({ latencyMs, sequence, series }) {
    this.numbered = true;
    const now = performance.now();
    this.#latencySamples.push({ at: now, ms: latencyMs });
    this.#forgetOldSamples(now);

    // Dropped frames: numbered by the camera but never decoded. A decoded frame whose
    // timing went unread (two frames between callbacks, say) is no drop, so compare
    // the numbers' advance with the decoded count; a count running ahead of the
    // numbers carries over as credit rather than hiding a later drop for good.
    const last = this.#lastSequence;
    // A number going backwards means a new camera, another series a new count: start again.
    if (last === null || sequence < last || series !== this.#lastSeries) {
      this.#framesSinceTiming = 0;
    } else {
      const missing = Math.round((sequence - last) / this.frameStep) - this.#framesSinceTiming;
      this.dropped += Math.max(0, missing);
      this.#framesSinceTiming = Math.max(0, -missing);
    }
    this.#lastSequence = sequence;
    this.#lastSeries = series;
  }

  #forgetOldSamples(now) {
    while (this.#latencySamples.length && now - this.#latencySamples[0].at > WINDOW_MS) {
      this.#latencySamples.shift();
    }
  }
}
