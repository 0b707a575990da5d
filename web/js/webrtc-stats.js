// What WebRTC itself says about a P2P session's video and sound, from RTCPeerConnection.getStats().

export class WebRtcStatsReader {
  #pc;
  #lastBytes = null; // {bytes, timestamp} of the previous read, for the bitrate

  constructor(pc) {
    this.#pc = pc;
  }

  /**
   * {kbps, packetsLost, jitterMs, rttMs, freezes, decoderDrops, decoder, audio}; a figure the
   * browser does not give (yet) is null. Null altogether before video arrives. `audio`:
   * the sound's {codec, packets, packetsLost, jitterMs}, null without sound.
   */
  async read() {
    const report = await this.#pc.getStats();
    let inbound = null;
    let sound = null;
    let selectedPairId = null;
    for (const stats of report.values()) {
      if (stats.type === 'inbound-rtp' && stats.kind === 'video') inbound = stats;
      if (stats.type === 'inbound-rtp' && stats.kind === 'audio') sound = stats;
      if (stats.type === 'transport') selectedPairId = stats.selectedCandidatePairId ?? null;
    }
    if (inbound === null) return null;
    const pair = selectedPairId !== null ? report.get(selectedPairId) : null;
    const mimeType = report.get(inbound.codecId)?.mimeType; // "video/VP8"
    // Chromium names the decoder (decoderImplementation) only to pages allowed to
    // capture camera or microphone: usually the codec is all there is.
    const codec = mimeType?.replace(/^video\//, '');
    return {
      kbps: this.#kbps(inbound),
      packetsLost: inbound.packetsLost ?? null,
      jitterMs: inbound.jitter !== undefined ? inbound.jitter * 1000 : null,
      rttMs: pair?.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : null,
      freezes: inbound.freezeCount ?? null,
      decoderDrops: inbound.framesDropped ?? null,
      decoder: [codec, inbound.decoderImplementation].filter(Boolean).join(' · ') || null,
      audio: sound && {
        codec: report.get(sound.codecId)?.mimeType?.replace(/^audio\//, '').toLowerCase() ?? null,
        packets: sound.packetsReceived ?? 0,
        packetsLost: Math.max(0, sound.packetsLost ?? 0), // RTP's count may go below zero (duplicates)
        jitterMs: sound.jitter !== undefined ? sound.jitter * 1000 : null,
      },
    };
  }

  #kbps({ bytesReceived, timestamp }) {
    const last = this.#lastBytes;
    this.#lastBytes = { bytes: bytesReceived, timestamp };
    if (last === null || timestamp <= last.timestamp) return null;
    // Bits per millisecond are kilobits per second.
    return Math.round(((bytesReceived - last.bytes) * 8) / (timestamp - last.timestamp));
  }
}
