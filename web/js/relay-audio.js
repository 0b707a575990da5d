// The relay's sound in the page: Opus packets in relay frames (version 3), decoded with
// WebCodecs AudioDecoder, played through audio-worklet.js's 'relay-audio-player' (a small
// jitter buffer), counted and timed as peers/viewer/relaytransport.py's are (sequence gaps
// are packets lost; jitter as RTP's, RFC 3550, from capture times and arrivals).

import { SAMPLE_RATE } from './audio-output.js';

/** A gap in capture times up to this (ms) is played as silence, so that what follows stays in step. */
const MAX_SILENCE_MS = 500;
/** Packets that may wait in the decoder; past that it fell behind, and starts afresh. */
const MAX_WAITING = 25;
/** How a playout report's latency is smoothed (the share of the newest). */
const SMOOTHING = 0.5;

function decoderConfig(channels) {
  return { codec: 'opus', sampleRate: SAMPLE_RATE, numberOfChannels: channels };
}

const playable = new Map(); // channels -> Promise<boolean>, asked once per page

/**
 * Whether this page can play the relay's sound: WebCodecs AudioDecoder with Opus, and
 * AudioWorklet (both exist only in secure contexts: HTTPS, or localhost).
 */
export function canPlayRelayAudio(channels) {
  if (!playable.has(channels)) playable.set(channels, askDecoder(channels));
  return playable.get(channels);
}

async function askDecoder(channels) {
  if (typeof AudioDecoder === 'undefined' || typeof AudioWorkletNode === 'undefined') return false;
  try {
    return (await AudioDecoder.isConfigSupported(decoderConfig(channels))).supported === true;
  } catch {
    return false;
  }
}

/**
 * Plays one relay session's sound: add(frame) each audio relay frame as it comes. Its
 * `latencyMs` is how long after capture the sound being played now comes out of the
 * speakers (null while nothing plays): the clock the relay's pictures wait for.
 */
export class RelayAudio {
  packets = 0; // decoded
  packetsLost = 0;
  jitterMs = null;
  /** Sound's capture to the speakers, now (ms), or null while it is silent or buffering. */
  latencyMs = null;

  #output;
  #channels;
  #node = null;
  #decoder = null;
  #stopped = false;
  #next = null; // the sequence number expected next
  #transit = null;
  #jitter = 0;
  #endMs = null; // capture time just past the last sound handed to the player

  /** `output`: the page's AudioOutput; `channels`: the stream's (AudioInfo.channels). */
  constructor(output, channels) {
    this.#output = output;
    this.#channels = channels;
  }

  /** Set up the player; resolves false where this page cannot play it. */
  async start() {
    const node = await this.#output.playWorklet('relay-audio-player', {
      numberOfInputs: 0, outputChannelCount: [this.#channels],
    });
    if (node === null || this.#stopped) {
      node?.disconnect();
      return false;
    }
    this.#node = node;
    node.port.onmessage = ({ data }) => this.#reported(data);
    return true;
  }

  stop() {
    this.#stopped = true;
    this.#closeDecoder();
    this.#node?.disconnect();
    this.#node = null;
    this.latencyMs = null;
  }

  /** An audio relay frame (parsed by parseRelayFrame), as it arrived. */
  add(frame) {
    if (this.#stopped || this.#node === null) return;
    const arrivedMs = Date.now();
    if (this.#next !== null) {
      const gap = (frame.sequence - this.#next) >>> 0;
      if (gap > 0 && gap < 2 ** 31) this.packetsLost += gap; // the server skipped some
    }
    this.#next = (frame.sequence + 1) >>> 0;
    const transit = arrivedMs - frame.captureTimeMs;
    if (this.#transit !== null) {
      this.#jitter += (Math.abs(transit - this.#transit) - this.#jitter) / 16;
      this.jitterMs = this.#jitter;
    }
    this.#transit = transit;

    if (this.#decoder !== null && this.#decoder.decodeQueueSize > MAX_WAITING) this.#closeDecoder();
    if (this.#decoder === null) this.#open(frame.height);
    try {
      this.#decoder.decode(new EncodedAudioChunk({
        type: 'key', timestamp: Math.round(frame.captureTimeMs * 1000), data: frame.payload,
      }));
    } catch (error) {
      console.warn(`relay: sound packet ${frame.sequence} was refused: ${error.message}`);
      this.#closeDecoder();
    }
  }

  #open(channels) {
    const decoder = new AudioDecoder({
      output: (data) => this.#decoded(data),
      error: (error) => {
        console.warn(`relay: the sound decoder failed: ${error.message}`);
        if (decoder === this.#decoder) this.#decoder = null; // the next packet starts a new one
      },
    });
    decoder.configure(decoderConfig(channels));
    this.#decoder = decoder;
  }

  #decoded(data) {
    if (this.#stopped || this.#node === null) {
      data.close();
      return;
    }
    const captureTimeMs = data.timestamp / 1000;
    const channels = [];
    for (let c = 0; c < data.numberOfChannels; c++) {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: c, format: 'f32-planar' });
      channels.push(samples);
    }
    const durationMs = (data.numberOfFrames / data.sampleRate) * 1000;
    data.close();
    this.packets += 1;
    // Lost packets leave a gap in time: silence fills it, so that the sound after it plays
    // as late as before (and the pictures that wait for it stay in step).
    const gapMs = this.#endMs === null ? 0 : captureTimeMs - this.#endMs;
    if (gapMs > 1 && gapMs <= MAX_SILENCE_MS) {
      const silence = new Float32Array(Math.round((gapMs / 1000) * SAMPLE_RATE));
      this.#post(channels.map(() => silence.slice()), this.#endMs);
    }
    this.#endMs = captureTimeMs + durationMs;
    this.#post(channels, captureTimeMs);
  }

  #post(channels, captureTimeMs) {
    this.#node.port.postMessage({ channels, captureTimeMs }, channels.map((samples) => samples.buffer));
  }

  #reported({ time, captureTimeMs }) {
    if (this.#stopped) return;
    if (captureTimeMs === null) {
      this.latencyMs = null;
      return;
    }
    const latency = this.#output.heardTimeMs(time) - captureTimeMs;
    // Smoothed: the browser's account of when its output is heard wobbles by a few ms, and
    // the pictures that wait for it need not.
    this.latencyMs = this.latencyMs === null ? latency
      : this.latencyMs + SMOOTHING * (latency - this.latencyMs);
  }

  #closeDecoder() {
    if (this.#decoder !== null && this.#decoder.state !== 'closed') this.#decoder.close();
    this.#decoder = null;
  }
}
