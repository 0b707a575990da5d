// The `stats` report a viewer sends the server every few seconds: ViewerStats in
// peercam/shared/protocol.py, which the server validates strictly (an int field refuses 29.5,
// and no figure may be negative: a latency below zero means clocks that disagree, and
// is left out as not measured).

/**
 * ViewerStats from the player's stats snapshot (see Player.statsSnapshot); figures
 * not known are left out, as the server's defaults stand for "not measured".
 */
export function viewerStats(snapshot) {
  const fields = {
    mode: snapshot.mode,
    fps: finite(snapshot.fps),
    frames: int(snapshot.frames),
    width: int(snapshot.width),
    height: int(snapshot.height),
    bitrate_kbps: finite(snapshot.kbps),
    latency_ms: finite(snapshot.latencyMs),
    frames_dropped: int(snapshot.dropped),
    packets_lost: int(snapshot.packetsLost),
    jitter_ms: tenths(snapshot.jitterMs),
    rtt_ms: tenths(snapshot.rttMs),
    freezes: int(snapshot.freezes),
    decoder: snapshot.decoder?.slice(0, 64) ?? null,
    layer: snapshot.layer?.layer ?? null,
    layer_switches: snapshot.layer ? int(snapshot.layerSwitches) : null,
    // Only the relay has a JPEG quality (a JPEG relay) and a format.
    jpeg_quality: snapshot.mode === 'relay' ? jpegQuality(snapshot.layer?.jpegQuality) : null,
    relay_format: snapshot.mode === 'relay' ? snapshot.relayFormat : null, // 'encoded' or 'jpeg'
    audio: snapshot.audio ? audioStats(snapshot.audio) : null,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== null));
}

/** ViewerAudioStats from AudioStats.snapshot(): latency and A/V offset may be below zero (the offset
 * when the sound leads), within Percentiles' bounds. */
function audioStats(audio) {
  const fields = {
    codec: audio.codec === 'opus' ? 'opus' : null,
    packets: int(audio.packets),
    packets_lost: int(audio.packetsLost),
    jitter_ms: tenths(audio.jitterMs),
    latency_ms: percentiles(audio.latencyMs),
    av_offset_ms: percentiles(audio.avOffsetMs),
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== null));
}

function percentiles(value) {
  const within = (ms) => Number.isFinite(ms) && Math.abs(ms) <= 3_600_000;
  if (!value || !within(value.p50) || !within(value.p95)) return null;
  return { p50: Math.round(value.p50 * 10) / 10, p95: Math.round(value.p95 * 10) / 10 };
}

function measured(value) {
  return Number.isFinite(value) && value >= 0;
}

function finite(value) {
  return measured(value) ? value : null;
}

function int(value) {
  return measured(value) ? Math.round(value) : null;
}

function tenths(value) {
  return measured(value) ? Math.round(value * 10) / 10 : null;
}

function jpegQuality(value) {
  return Number.isInteger(value) && value >= 1 && value <= 100 ? value : null;
}
