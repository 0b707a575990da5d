// The player's stats panel: one cell per figure, '–' for what this delivery mode cannot
// measure (the relay has no packets, jitter, RTT or decoder figures for its pictures), and
// for the sound where none comes.

import { describeLayer } from './layers.js';

const DASH = '–';

const FIELD_IDS = [
  'stats-mode', 'resolution', 'layer', 'fps', 'bitrate', 'latency', 'frames', 'dropped',
  'packets-lost', 'jitter', 'rtt', 'freezes', 'decoder-drops', 'decoder',
  'audio-codec', 'audio-lost', 'audio-jitter', 'audio-latency', 'av-offset',
];

export class StatsPanel {
  #fields = Object.fromEntries(FIELD_IDS.map((id) => [id, document.getElementById(id)]));

  /** Show a snapshot from Player.statsSnapshot(). */
  show(stats) {
    const playing = stats.frames > 0;
    const fields = this.#fields;
    fields['stats-mode'].textContent = stats.mode;
    fields.resolution.textContent = stats.width ? `${stats.width}x${stats.height}` : DASH;
    fields.layer.textContent = stats.layer ? describeLayer(stats.layer) : DASH;
    fields.layer.title = stats.layer ? `${stats.layerSwitches} switches so far` : '';
    fields.fps.textContent = playing ? stats.fps.toFixed(0) : DASH;
    fields.bitrate.textContent = withUnit(stats.kbps, 'kbps');
    // 'n/a': video plays, but its pixels carry no timing code (not the test pattern).
    fields.latency.textContent = stats.latencyMs !== null ? `${stats.latencyMs} ms` : playing ? 'n/a' : DASH;
    fields.frames.textContent = String(stats.frames);
    fields.dropped.textContent = stats.dropped !== null ? String(stats.dropped) : DASH;
    fields['packets-lost'].textContent = count(stats.packetsLost);
    fields.jitter.textContent = withUnit(stats.jitterMs, 'ms', 1);
    fields.rtt.textContent = withUnit(stats.rttMs, 'ms', 1);
    fields.freezes.textContent = count(stats.freezes);
    fields['decoder-drops'].textContent = count(stats.decoderDrops);
    fields.decoder.textContent = stats.decoder ?? DASH;
    fields.decoder.title = stats.decoder ?? ''; // the cell may clip a long implementation name
    this.#showSound(stats.audio);
  }

  /** The sound's figures (see AudioStats.snapshot), or null: none comes. */
  #showSound(audio) {
    const fields = this.#fields;
    const channels = { 1: 'mono', 2: 'stereo' }[audio?.channels] ?? '';
    fields['audio-codec'].textContent = audio ? `${audio.codec} 48 kHz ${channels}`.trim() : DASH;
    fields['audio-lost'].textContent = audio ? String(audio.packetsLost) : DASH;
    fields['audio-jitter'].textContent = withUnit(audio?.jitterMs ?? null, 'ms', 1);
    // 'n/a': sound plays, but it is not the test tone (or no beep was heard yet).
    fields['audio-latency'].textContent = audio ? median(audio.latencyMs) : DASH;
    fields['av-offset'].textContent = audio ? median(audio.avOffsetMs, '+') : DASH;
  }
}

function median(percentiles, sign = '') {
  if (percentiles === null) return 'n/a';
  const { p50 } = percentiles;
  return `${p50 > 0 ? sign : ''}${p50.toFixed(0)} ms`;
}

function count(value) {
  return value === null ? DASH : String(value);
}

function withUnit(value, unit, digits = 0) {
  return value === null ? DASH : `${value.toFixed(digits)} ${unit}`;
}
