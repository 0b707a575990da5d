// Playback statistics fed by every decoded frame, whichever transport delivered it.

const WINDOW_MS = 1000;

export class PlaybackStats {
  frames = 0;
  fps = 0;
  dropped = 0;
  width = 0;
  height = 0;

  #framesSinceTick = 0;
  #lastTick = performance.now();
  #latencySamples = []; // {at, ms}, oldest first, trimmed to the last WINDOW_MS
  #lastFrameNumber = null;
  #framesSinceStamp = 0; // decoded since the last readable stamp, that one excluded

  /** `count` frames of this size were decoded; `stamp` is the newest one's test-pattern code, or null. */
  framesArrived(count, width, height, stamp) {
    this.frames += count;
    this.#framesSinceTick += count;
    this.width = width;
    this.height = height;
    this.#framesSinceStamp += count;
    if (stamp) this.#stampArrived(stamp);
  }

  /** A new session starts: frame numbers restart, so no gap is counted across it. */
  resetContinuity() {
    this.#lastFrameNumber = null;
    this.#framesSinceStamp = 0;
  }

  /** Call about once a second: recomputes fps from the frames since the last tick. */
  tick() {
    const now = performance.now();
    this.fps = Math.round((this.#framesSinceTick * 10000) / (now - this.#lastTick)) / 10;
    this.#framesSinceTick = 0;
    this.#lastTick = now;
  }

  /** Median glass-to-glass latency of the last second, ms; null without readable stamps. */
  latencyMs() {
    this.#forgetOldSamples(performance.now());
    if (this.#latencySamples.length === 0) return null;
    const sorted = this.#latencySamples.map((s) => s.ms).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  #stampArrived(stamp) {
    const now = performance.now();
    // The camera stamps its wall clock: this measures glass to glass on one machine.
    this.#latencySamples.push({ at: now, ms: Date.now() - stamp.timeMs });
    this.#forgetOldSamples(now);

    // Dropped frames: numbered by the camera but never decoded. A decoded frame whose
    // stamp went unread (two frames between callbacks, say) is no drop, so compare
    // the numbers' advance with the decoded count; a count running ahead of the
    // stamps carries over as credit rather than hiding a later drop for good.
    const last = this.#lastFrameNumber;
    // A frame number going backwards means a new camera: start counting again.
    if (last === null || stamp.frame < last) {
      this.#framesSinceStamp = 0;
    } else {
      const missing = stamp.frame - last - this.#framesSinceStamp;
      this.dropped += Math.max(0, missing);
      this.#framesSinceStamp = Math.max(0, -missing);
    }
    this.#lastFrameNumber = stamp.frame;
  }

  #forgetOldSamples(now) {
    while (this.#latencySamples.length && now - this.#latencySamples[0].at > WINDOW_MS) {
      this.#latencySamples.shift();
    }
  }
}
