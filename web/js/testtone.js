// The test tone in the page: its generator and its reader, the twins of peers/testtone.py
// (tone, ToneReader); tests/testtone_cases.json runs against both readers.
//
// Every half second of Unix time the camera's tone beeps (1 kHz, 40 ms) and then sends a time
// code: the beep's number (Unix time in half seconds, modulo 2**32) and a check byte, 40 bits
// of frequency-shift keying. The reader hears each beep in the sound the page plays and reads
// when it was captured: mouth-to-ear latency (heard minus captured, on one machine's clock)
// and, against the test pattern's stamps, the A/V offset.

export const SAMPLE_RATE = 48000;
export const PERIOD = 0.5;
export const BEEP_HZ = 1000;
export const BEEP_SECONDS = 0.04;
export const CODE_START = 0.06;
export const BIT_SECONDS = 0.008;
export const ZERO_HZ = 2000;
export const ONE_HZ = 3000;
export const CODE_BITS = 40;
/** Peak amplitudes (of int16 full scale): the beep is the loud part, the code quieter. */
const BEEP_LEVEL = 0.5;
const CODE_LEVEL = 0.25;
/** A code bit heard quieter than this (int16 amplitude) is no bit. */
const MIN_CODE_AMPLITUDE = 0.1 * CODE_LEVEL * 32767;

/** The 40 bits sent after beep `number`: the number (32 bits) and the XOR of its bytes. */
export function codeBits(number) {
  const n = number >>> 0;
  const check = ((n >>> 24) ^ (n >>> 16) ^ (n >>> 8) ^ n) & 0xff;
  const bits = [];
  for (let i = 31; i >= 0; i--) bits.push(Math.floor(n / 2 ** i) % 2);
  for (let i = 7; i >= 0; i--) bits.push((check >>> i) & 1);
  return bits;
}

/** Whether the tone beeps at `captureTimeMs` (Unix ms): the pattern's beep mark. */
export function beeping(captureTimeMs) {
  return ((captureTimeMs / 1000) % PERIOD) < BEEP_SECONDS;
}

/**
 * `count` samples of the tone (Int16Array, mono) from sample number `firstSample` (samples
 * since the Unix epoch at SAMPLE_RATE), as peers/testtone.py tone() makes them (to within
 * one step of rounding).
 */
export function tone(firstSample, count) {
  const out = new Int16Array(count);
  const period = PERIOD * SAMPLE_RATE;
  let bitsOf = null; // [beep number, its code bits]
  for (let i = 0; i < count; i++) {
    const n = firstSample + i;
    const beepNumber = Math.floor(n / period);
    const at = (n % period) / SAMPLE_RATE; // seconds since this period's beep
    // Phases from the sample number itself: a chunk boundary never clicks.
    const seconds = (n % SAMPLE_RATE) / SAMPLE_RATE;
    let value = 0;
    if (at < BEEP_SECONDS) {
      value = BEEP_LEVEL * Math.sin(2 * Math.PI * BEEP_HZ * seconds);
    } else {
      const bit = Math.floor((at - CODE_START) / BIT_SECONDS);
      if (bit >= 0 && bit < CODE_BITS) {
        if (bitsOf?.[0] !== beepNumber) bitsOf = [beepNumber, codeBits(beepNumber % 2 ** 32)];
        const frequency = bitsOf[1][bit] ? ONE_HZ : ZERO_HZ;
        value = CODE_LEVEL * Math.sin(2 * Math.PI * frequency * seconds);
      }
    }
    out[i] = Math.round(value * 32767);
  }
  return out;
}

/** Goertzel: the power of `frequency` in samples[from, to), normalised by their length. */
function power(samples, from, to, frequency) {
  const n = to - from;
  const k = 2 * Math.cos(2 * Math.PI * frequency / SAMPLE_RATE);
  let s1 = 0;
  let s2 = 0;
  for (let i = from; i < to; i++) {
    const s0 = samples[i] + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - k * s1 * s2) / (n * n);
}

/** Python's round(): halves to even, so that both readers place an onset on the same sample. */
function roundHalfEven(x) {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Hears the test tone in decoded sound: each beep, its capture time and when it came.
 *
 * feed(samples, arrivedMs) takes the samples as they play or are decoded: an Int16Array,
 * a Float32Array (-1 to 1), or an array of such, one per channel; `arrivedMs` is when the
 * chunk's first sample was there (Unix ms, this machine's clock). It returns a Beep
 * {captureTimeMs, heardTimeMs, latencyMs} for each beep whose time code it could read. A
 * beep whose code does not check out (lost or concealed sound) is skipped, never guessed,
 * and counted in `beepsUnread`.
 */
export class ToneReader {
  /** Onsets are looked for in steps of this many samples (1 ms), over windows twice as long. */
  static HOP = 48;

  beepsUnread = 0; // onsets whose code did not check out

  #buffer = new Float64Array(SAMPLE_RATE);
  #length = 0;
  #arrivals = []; // [index of a chunk's first sample in the buffer, when it was there (ms)]
  #quiet = false; // the beep tone was absent just before: an onset may follow
  #cosine; // the beep's frequency over one onset window, for its level
  #sine;

  constructor() {
    const window = 2 * ToneReader.HOP;
    this.#cosine = new Float64Array(window);
    this.#sine = new Float64Array(window);
    for (let i = 0; i < window; i++) {
      this.#cosine[i] = Math.cos(2 * Math.PI * BEEP_HZ * (i / SAMPLE_RATE));
      this.#sine[i] = Math.sin(2 * Math.PI * BEEP_HZ * (i / SAMPLE_RATE));
    }
  }

  feed(samples, arrivedMs) {
    const mono = monoOf(samples);
    // A chunk's samples are all there when it arrives: each sample has its chunk's time.
    this.#arrivals.push([this.#length, arrivedMs]);
    this.#append(mono);
    return this.#scan();
  }

  #append(mono) {
    if (this.#length + mono.length > this.#buffer.length) {
      const grown = new Float64Array(Math.max(2 * this.#buffer.length, this.#length + mono.length));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(mono, this.#length);
    this.#length += mono.length;
  }

  #arrival(index) {
    let when = this.#arrivals[0][1];
    for (const [start, arrived] of this.#arrivals) {
      if (start > index) break;
      when = arrived;
    }
    return when;
  }

  /** The level (amplitude) of the beep's tone in the window of 2 * HOP samples from `start`. */
  #level(start) {
    const buffer = this.#buffer;
    const n = this.#cosine.length;
    let c = 0;
    let s = 0;
    for (let i = 0; i < n; i++) {
      c += buffer[start + i] * this.#cosine[i];
      s += buffer[start + i] * this.#sine[i];
    }
    return Math.sqrt((c * c + s * s) / (n * n)) * 2;
  }

  #scan() {
    const { HOP } = ToneReader;
    const need = Math.trunc((CODE_START + CODE_BITS * BIT_SECONDS) * SAMPLE_RATE) + 2 * HOP;
    const window = 2 * HOP;
    const threshold = BEEP_LEVEL * 32767 * 0.3;
    const beeps = [];
    let position = 0;
    while (position + need <= this.#length) {
      const windows = Math.floor((need - window) / HOP) + 1;
      let onset = null;
      let onsetLevel = 0;
      for (let i = 0; i < windows; i++) {
        const level = this.#level(position + i * HOP);
        if (!(level > threshold)) {
          this.#quiet = true;
        } else if (this.#quiet) {
          onset = i;
          onsetLevel = level;
          break;
        }
      }
      if (onset === null) {
        position += windows * HOP;
        continue;
      }
      // The window that first crossed the threshold holds the onset: place it within the
      // window by the share of the window's energy that is beep.
      const start = position + onset * HOP;
      const share = Math.min(1, onsetLevel / (BEEP_LEVEL * 32767));
      const onsetSample = start + roundHalfEven(window * (1 - share));
      if (onsetSample + need > this.#length) {
        position = start; // its code is not all here yet
        break;
      }
      this.#quiet = false;
      const number = this.#readCode(onsetSample);
      if (number === null) {
        this.beepsUnread += 1;
      } else {
        const captureTimeMs = captureTime(number);
        const heardTimeMs = this.#arrival(onsetSample);
        beeps.push({ captureTimeMs, heardTimeMs, latencyMs: heardTimeMs - captureTimeMs });
      }
      position = onsetSample + Math.trunc(BEEP_SECONDS * SAMPLE_RATE);
    }
    this.#drop(position);
    return beeps;
  }

  #readCode(onset) {
    const bitLength = Math.trunc(BIT_SECONDS * SAMPLE_RATE);
    const first = onset + Math.trunc(CODE_START * SAMPLE_RATE);
    // The middle half of each bit: its edges blur in the codec.
    const margin = Math.floor(bitLength / 4);
    let value = 0;
    for (let i = 0; i < CODE_BITS; i++) {
      const from = first + i * bitLength + margin;
      const to = first + (i + 1) * bitLength - margin;
      const one = power(this.#buffer, from, to, ONE_HZ);
      const zero = power(this.#buffer, from, to, ZERO_HZ);
      // No tone at all (sound lost): silence would read as number 0.
      if (2 * Math.sqrt(Math.max(one, zero)) < MIN_CODE_AMPLITUDE) return null;
      const bit = one > zero ? 1 : 0;
      value = value * 2 + bit; // 40 bits: past JS's 32-bit shifts
    }
    const number = Math.floor(value / 256);
    const check = value % 256;
    if (check !== (((number >>> 24) ^ (number >>> 16) ^ (number >>> 8) ^ number) & 0xff)) return null;
    return number;
  }

  #drop(count) {
    count = Math.max(0, Math.min(count, this.#length));
    if (!count) return;
    this.#buffer.copyWithin(0, count, this.#length);
    this.#length -= count;
    const kept = this.#arrivals
      .filter(([start]) => start - count > 0)
      .map(([start, at]) => [start - count, at]);
    const before = this.#arrivals.filter(([start]) => start - count <= 0);
    this.#arrivals = (before.length ? [[0, before[before.length - 1][1]]] : []).concat(kept);
  }
}

/**
 * The beep's capture time (Unix ms): `number` half seconds, the wrap of 2**32 resolved by the
 * clock (the one within 2**31 half seconds of now).
 */
function captureTime(number) {
  const now = Math.trunc(Date.now() / 1000 / PERIOD);
  const wraps = Math.round((now - number) / 2 ** 32);
  return (number + wraps * 2 ** 32) * PERIOD * 1000;
}

/** One channel of int16-scaled samples (Float64Array) from mono or per-channel samples. */
function monoOf(samples) {
  const channels = Array.isArray(samples) ? samples : [samples];
  const scale = channels[0] instanceof Float32Array || channels[0] instanceof Float64Array ? 32767 : 1;
  const mono = new Float64Array(channels[0].length);
  if (channels.length === 1) {
    for (let i = 0; i < mono.length; i++) mono[i] = channels[0][i] * scale;
    return mono;
  }
  for (let i = 0; i < mono.length; i++) {
    let sum = 0;
    for (const channel of channels) sum += channel[i];
    mono[i] = (sum / channels.length) * scale;
  }
  return mono;
}
