// The player page's AudioWorklet processors (audio-output.js loads this module):
//   'output-tap'          hands what the page plays to the main thread, with the context
//                         time of its first sample, for the test tone's reader;
//   'relay-audio-player'  plays the relay's decoded sound through a small jitter buffer.
// Both run on the audio rendering thread: no allocation per block beyond what they post.

/** Samples per render quantum (Web Audio's block). */
const QUANTUM = 128;
/** The tap posts this many blocks at once (about 21 ms): fewer messages, the same times. */
const TAP_BLOCKS = 8;

class OutputTap extends AudioWorkletProcessor {
  #channels = null; // Float32Array per channel, TAP_BLOCKS blocks long
  #blocks = 0;
  #startTime = 0; // context time of the batch's first sample

  process(inputs) {
    const input = inputs[0];
    if (input.length === 0) { // nothing plays: what was gathered ends here
      this.#post();
      return true;
    }
    if (this.#channels === null || this.#channels.length !== input.length) {
      this.#post();
      this.#channels = input.map(() => new Float32Array(QUANTUM * TAP_BLOCKS));
    }
    if (this.#blocks === 0) this.#startTime = currentTime;
    input.forEach((samples, c) => this.#channels[c].set(samples, this.#blocks * QUANTUM));
    this.#blocks += 1;
    if (this.#blocks === TAP_BLOCKS) this.#post();
    return true;
  }

  #post() {
    if (this.#blocks === 0 || this.#channels === null) return;
    const channels = this.#channels.map((samples) => samples.slice(0, this.#blocks * QUANTUM));
    this.port.postMessage({ time: this.#startTime, channels }, channels.map((samples) => samples.buffer));
    this.#blocks = 0;
  }
}

/** The jitter buffer's rules, in milliseconds of sound. */
const Buffer = Object.freeze({
  START: 40, // buffered before playing starts (two Opus packets)
  STEP: 20, // added to that after each underrun
  MOST: 200, // the most it grows to
  KEEP: 20, // more than this left over for a whole window is latency with no use: dropped
  WINDOW: 2000, // how long the least level is watched before that
  LIMIT: 500, // never more than this waits: a burst beyond it drops the oldest
});
/** How often the player says where its playout is (ms). */
const REPORT_MS = 100;

/**
 * Plays chunks of decoded sound ({channels: [Float32Array], captureTimeMs}) in order. It
 * waits until Buffer.START ms are buffered, then plays on; when the sound runs dry it plays
 * silence, waits for a larger buffer (+Buffer.STEP) and goes on. Sound left over in the
 * buffer for a whole window (the network got faster, or a burst came) is dropped down to
 * Buffer.KEEP, so that latency comes back down. Every REPORT_MS it posts {time,
 * captureTimeMs}: the context time of a block and the capture time of its first sample
 * (null: silence), which is the sound's latency once mapped to the wall clock.
 */
class RelayAudioPlayer extends AudioWorkletProcessor {
  #queue = []; // {channels, captureTimeMs, offset}, oldest first
  #queued = 0; // frames waiting
  #playing = false;
  #targetMs = Buffer.START;
  #least = Infinity; // the least buffered (frames) in this window
  #windowStart = 0;
  #lastReport = -Infinity;

  constructor() {
    super();
    this.port.onmessage = ({ data }) => this.#received(data);
  }

  #received(message) {
    this.#queue.push({ channels: message.channels, captureTimeMs: message.captureTimeMs, offset: 0 });
    this.#queued += message.channels[0].length;
    const limit = frames(Buffer.LIMIT);
    if (this.#queued > limit) this.#drop(this.#queued - frames(this.#targetMs));
  }

  process(inputs, outputs) {
    const output = outputs[0];
    let captureTimeMs = null;
    if (!this.#playing && this.#queued >= frames(this.#targetMs)) {
      this.#playing = true;
      this.#least = Infinity;
      this.#windowStart = currentTime;
    }
    if (this.#playing) {
      const first = this.#queue[0];
      if (first !== undefined) captureTimeMs = first.captureTimeMs + (first.offset / sampleRate) * 1000;
      let written = 0;
      while (written < QUANTUM && this.#queue.length) {
        const chunk = this.#queue[0];
        const count = Math.min(QUANTUM - written, chunk.channels[0].length - chunk.offset);
        output.forEach((out, c) => {
          const source = chunk.channels[Math.min(c, chunk.channels.length - 1)];
          out.set(source.subarray(chunk.offset, chunk.offset + count), written);
        });
        written += count;
        chunk.offset += count;
        this.#queued -= count;
        if (chunk.offset === chunk.channels[0].length) this.#queue.shift();
      }
      if (written < QUANTUM) { // ran dry: the rest of the block stays silent
        this.#playing = false;
        this.#targetMs = Math.min(Buffer.MOST, this.#targetMs + Buffer.STEP);
      } else {
        this.#watchLevel();
      }
    }
    if ((currentTime - this.#lastReport) * 1000 >= REPORT_MS) {
      this.#lastReport = currentTime;
      this.port.postMessage({ time: currentTime, captureTimeMs });
    }
    return true;
  }

  /**
   * Sound that stayed buffered for a whole window is latency of no use: drop it. A window
   * without an underrun takes back half a step of the buffer a restart waits for.
   */
  #watchLevel() {
    this.#least = Math.min(this.#least, this.#queued);
    if ((currentTime - this.#windowStart) * 1000 < Buffer.WINDOW) return;
    const spare = this.#least - frames(Buffer.KEEP);
    if (spare > 0) this.#drop(spare);
    this.#targetMs = Math.max(Buffer.START, this.#targetMs - Buffer.STEP / 2);
    this.#least = Infinity;
    this.#windowStart = currentTime;
  }

  #drop(count) {
    while (count > 0 && this.#queue.length) {
      const chunk = this.#queue[0];
      const taken = Math.min(count, chunk.channels[0].length - chunk.offset);
      chunk.offset += taken;
      count -= taken;
      this.#queued -= taken;
      if (chunk.offset === chunk.channels[0].length) this.#queue.shift();
    }
  }
}

function frames(ms) {
  return Math.round((ms / 1000) * sampleRate);
}

registerProcessor('output-tap', OutputTap);
registerProcessor('relay-audio-player', RelayAudioPlayer);
