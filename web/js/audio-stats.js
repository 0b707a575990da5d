// What the page measures about the sound it plays: packets, loss, jitter, latency, A/V
// offset; the twin of the Python viewer's AudioStats (peers/viewer/audiostats.py).
//
// Latency (mouth to ear) is the test tone's own: each beep's time code says when it was
// captured, and the time its first sample came out of the speakers says when it was heard
// (testtone.js). The A/V offset is that latency minus the picture's, the picture's from the
// test pattern's stamps (or the relay header) of the pictures shown around the beep: a beep
// and the pictures captured with it reach the viewer that far apart (positive: the sound is
// late). Sound that is not the test tone gives neither figure.

import { SAMPLE_RATE, ToneReader } from './testtone.js';

/** Pictures shown this close (ms) to a beep's hearing are compared with it. */
export const PICTURE_WINDOW_MS = 250;
/** Samples per render quantum (Web Audio's block). */
const QUANTUM = 128;
/** Beeps in the figures (two a second). */
const RECENT_BEEPS = 10;
/**
 * A latency beyond this either way is no beep of this stream's (a code misread out of
 * concealed sound, or clocks that disagree): left out.
 */
const MAX_LATENCY_MS = 10_000;

export class AudioStats {
  codec = 'opus';
  packets = 0;
  packetsLost = 0;
  jitterMs = null;
  beeps = 0;

  #reader = new ToneReader();
  #recent = []; // the latest RECENT_BEEPS beeps: {captureTimeMs, heardTimeMs, latencyMs}
  #latencies = []; // ms, theirs
  #offsets = []; // ms, as many
  #pictures = []; // [shown at, latency] (ms) of the recent pictures: the A/V offset's other half
  #counted = { packets: 0, packetsLost: 0 }; // of the transport in use, already in the totals

  /** Sound the page played: a Float32Array per channel, its first sample heard at `heardTimeMs`. */
  played(channels, heardTimeMs) {
    // The reader gives a beep its chunk's time: in render quanta, a beep's time is its own
    // to within one (2.7 ms), however many the output tap gathers.
    for (let start = 0; start < channels[0].length; start += QUANTUM) {
      const quantum = channels.map((samples) => samples.subarray(start, start + QUANTUM));
      this.#heard(this.#reader.feed(quantum, heardTimeMs + (start / SAMPLE_RATE) * 1000));
    }
  }

  #heard(beeps) {
    for (const beep of beeps) {
      if (Math.abs(beep.latencyMs) > MAX_LATENCY_MS) continue;
      this.beeps += 1;
      keep(this.#recent, beep);
      keep(this.#latencies, beep.latencyMs);
      const around = this.#pictures
        .filter(([at]) => Math.abs(at - beep.heardTimeMs) <= PICTURE_WINDOW_MS)
        .map(([, ms]) => ms);
      if (around.length) keep(this.#offsets, beep.latencyMs - percentile(around, 50));
    }
  }

  /** A picture shown at `shownTimeMs`, captured at `captureTimeMs` (Unix ms), for the A/V offset. */
  picture(shownTimeMs, captureTimeMs) {
    this.#pictures.push([shownTimeMs, shownTimeMs - captureTimeMs]);
    while (this.#pictures.length && this.#pictures[0][0] < shownTimeMs - 4 * PICTURE_WINDOW_MS) {
      this.#pictures.shift();
    }
  }

  /**
   * The transport's figures so far ({codec, packets, packetsLost, jitterMs}: counts from its
   * start), or null when it has none yet.
   */
  network(figures) {
    if (figures === null) return;
    this.codec = figures.codec ?? this.codec;
    for (const name of ['packets', 'packetsLost']) {
      const value = figures[name];
      if (value === null || value === undefined) continue;
      this[name] += Math.max(0, value - this.#counted[name]);
      this.#counted[name] = value;
    }
    if (figures.jitterMs !== null && figures.jitterMs !== undefined) this.jitterMs = figures.jitterMs;
  }

  /** The latest beeps heard, oldest first: [{captureTimeMs, heardTimeMs, latencyMs}]. */
  recentBeeps() {
    return [...this.#recent];
  }

  /** Another transport: its counts start from zero. */
  sessionStarted() {
    this.#counted = { packets: 0, packetsLost: 0 };
  }

  /**
   * {codec, packets, packetsLost, jitterMs, beeps, latencyMs: {p50, p95}, avOffsetMs: {p50,
   * p95}}, the last two null without beeps.
   */
  snapshot() {
    return {
      codec: this.codec,
      packets: this.packets,
      packetsLost: this.packetsLost,
      jitterMs: this.jitterMs,
      beeps: this.beeps,
      latencyMs: percentiles(this.#latencies),
      avOffsetMs: percentiles(this.#offsets),
    };
  }
}

function keep(values, value) {
  values.push(value);
  if (values.length > RECENT_BEEPS) values.shift();
}

function percentiles(values) {
  if (!values.length) return null;
  const round = (ms) => Math.round(ms * 10) / 10;
  return { p50: round(percentile(values, 50)), p95: round(percentile(values, 95)) };
}

/** numpy's default percentile: linear between the closest ranks. */
function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = ((sorted.length - 1) * p) / 100;
  const low = Math.floor(rank);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}
