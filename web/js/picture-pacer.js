// Lip sync on the relay: each decoded picture waits until the sound captured with it comes
// out of the speakers, then shows.
//
// Why the picture waits for the sound, not the sound for the picture: sound must play
// without a break, so it keeps a jitter buffer (relay-audio.js) and comes out some tens of
// milliseconds after it is decoded, and a wait added to it would be heard as a gap or a
// pitch change; a picture decoded early can simply be held, and holding a few costs nothing
// but the wait. So the sound's latency sets the pace, and the pictures follow it. Without
// sound (none on this path, or none playing yet) pictures show as soon as they decode.

/** Pictures that may wait at once; past that the oldest shows at once (the sound fell far behind). */
const MAX_HELD = 8;
/** The longest a picture waits (ms): sound later than that is out of step anyway. */
const MAX_WAIT_MS = 1000;
/**
 * A timer fires a few ms late (browsers hold nested ones to 4 ms at least): a picture due
 * within this shows now, rather than that much late.
 */
const EARLY_MS = 4;

export class PicturePacer {
  #show;
  #soundLatency;
  #held = []; // {picture, args, dueMs}, in decode order
  #timer = null;

  /**
   * show(picture, ...args) draws a picture (and closes it, if it must be closed);
   * soundLatency() is the sound's latency now (ms from capture to the speakers), or null
   * when no sound plays.
   */
  constructor(show, soundLatency) {
    this.#show = show;
    this.#soundLatency = soundLatency;
  }

  /** A decoded picture captured at `captureTimeMs` (Unix ms); `args` go to show() with it. */
  add(picture, captureTimeMs, ...args) {
    const latency = this.#soundLatency();
    const now = Date.now();
    const dueMs = latency === null ? now : captureTimeMs + Math.min(latency, MAX_WAIT_MS);
    this.#held.push({ picture, args, dueMs });
    while (this.#held.length > MAX_HELD) this.#showNext();
    this.#showDue();
  }

  /** Show nothing more: the pictures held are dropped with `discard(picture)`. */
  close(discard) {
    clearTimeout(this.#timer);
    for (const { picture } of this.#held.splice(0)) discard(picture);
  }

  #showDue() {
    clearTimeout(this.#timer);
    this.#timer = null;
    const now = Date.now();
    // In order: a picture never overtakes an earlier one.
    while (this.#held.length && this.#held[0].dueMs - EARLY_MS <= now) this.#showNext();
    if (this.#held.length) this.#timer = setTimeout(() => this.#showDue(), this.#held[0].dueMs - now);
  }

  #showNext() {
    const { picture, args } = this.#held.shift();
    this.#show(picture, ...args);
  }
}
