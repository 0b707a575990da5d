// The browser camera's sound: the microphone's one track, what the stream announces about
// it (`info`, an AudioInfo), and one Opus encoder for every relay reader. Each P2P viewer's
// peer connection takes the same track and encodes it itself (a page cannot hand WebRTC
// packets of its own), as it does the picture. The relay's encoder reads the track
// (MediaStreamTrackProcessor) only while the relay asks for sound, and makes 20 ms packets
// with WebCodecs' AudioEncoder, each stamped with its first sample's capture time. The
// Python camera's counterpart is peers/camera/audiopipeline.py. The player's talk back on
// the relay encodes the viewer's microphone with it too, in mono (relay-talk.js).

/** Opus's clock, whatever the microphone's rate: the relay frame header says it. */
export const SAMPLE_RATE = 48000;
/** Opus bitrate per channel: libwebrtc's own default for P2P, so both paths sound alike. */
const BITRATE_PER_CHANNEL = 32000;
/** Microphone chunks (10 ms in Chromium) that may wait for the encoder; more are dropped
 * before encoding, and chunks the reader has not taken yet past this are dropped too. */
const MAX_WAITING_CHUNKS = 10;
/** A chunk stamped further than this from performance.now() is on a clock of its own. */
const SAME_CLOCK_MS = 1000;

export class AudioPipeline {
  #track;
  #channels;
  #bitrate;
  #sink = null;
  #reader = null;
  #encoder = null;
  #unixOffsetMs = 0; // Unix ms minus the capture clock's ms, from the latest chunk
  /** Packets the relay's encoder made (each went to the relay). */
  packetsEncoded = 0;

  /** `track`: the microphone's MediaStreamTrack, which the peer connections send as it is;
   * `channels`: the packets' (1 or 2), else the track's. */
  constructor(track, { channels = track.getSettings().channelCount ?? 1 } = {}) {
    this.#track = track;
    this.#channels = Math.min(2, Math.max(1, channels));
    this.#bitrate = BITRATE_PER_CHANNEL * this.#channels;
  }

  /** Whether this browser can encode sound for the relay (Chromium can; elsewhere the relay has none). */
  static get relayable() {
    return typeof MediaStreamTrackProcessor === 'function' && typeof AudioEncoder === 'function';
  }

  get track() {
    return this.#track;
  }

  /** The `publish` info's `audio` (AudioInfo in peercam/shared/protocol.py). */
  get info() {
    return { codec: 'opus', sample_rate: SAMPLE_RATE, channels: this.#channels, bitrate: this.#bitrate };
  }

  /** CameraAudioStats: the relay's encoder (the peer connections' own are not counted),
   * and `viewers`, the P2P viewers sent the track. */
  stats(viewers) {
    return {
      codec: 'opus', channels: this.#channels, packets_encoded: this.packetsEncoded,
      relay_packets: this.packetsEncoded, viewers,
    };
  }

  get relaySink() {
    return this.#sink;
  }

  /** sink({payload, captureTimeMs, channels}) takes each packet; null stops the encoder. */
  set relaySink(sink) {
    const running = this.#sink !== null;
    this.#sink = sink;
    if (sink !== null && !running && AudioPipeline.relayable) this.#read();
    if (sink === null && running) this.#stopReading();
  }

  stop() {
    this.relaySink = null;
  }

  async #read() {
    // A clone, so that stopping the encoder never ends the track the peer connections send.
    const track = this.#track.clone();
    const reader = new MediaStreamTrackProcessor({ track, maxBufferSize: MAX_WAITING_CHUNKS }).readable.getReader();
    this.#reader = reader;
    try {
      while (this.#reader === reader) {
        const { value: data, done } = await reader.read();
        if (done) break;
        try {
          if (this.#reader === reader) this.#encode(data);
        } finally {
          data.close();
        }
      }
    } catch (error) {
      if (this.#reader === reader) console.warn('peercam: reading the microphone stopped:', error);
    } finally {
      track.stop();
    }
  }

  #stopReading() {
    this.#reader?.cancel().catch(() => {});
    this.#reader = null;
    if (this.#encoder !== null && this.#encoder.state !== 'closed') this.#encoder.close();
    this.#encoder = null; // the next reader starts a fresh Opus stream
  }

  #encode(data) {
    // Chromium stamps a chunk on performance.now()'s clock, when its first sample was
    // captured: Unix time is that plus (Date.now() - performance.now()). A browser with a
    // clock of its own gets the chunk's arrival as the end of its samples, as the video
    // path stamps a picture when it is read.
    const now = performance.now();
    const lagMs = now - data.timestamp / 1000;
    this.#unixOffsetMs = lagMs >= 0 && lagMs < SAME_CLOCK_MS
      ? Date.now() - now
      : Date.now() - (data.timestamp + data.duration) / 1000;
    if (this.#encoder === null) this.#configure(data);
    if (this.#encoder.state !== 'configured' || this.#encoder.encodeQueueSize >= MAX_WAITING_CHUNKS) return;
    if (data.numberOfChannels === this.#channels) {
      this.#encoder.encode(data);
      return;
    }
    const fitted = this.#fit(data);
    try {
      this.#encoder.encode(fitted);
    } finally {
      fitted.close();
    }
  }

  /**
   * `data` in the channels the stream announced (the server takes no others): a track's
   * settings may say 2 where its chunks have 1. Mono is duplicated; more channels are
   * averaged into mono, or their first two kept for stereo.
   */
  #fit(data) {
    const frames = data.numberOfFrames;
    const plane = (index) => {
      const samples = new Float32Array(frames);
      data.copyTo(samples, { planeIndex: index, format: 'f32-planar' });
      return samples;
    };
    const planes = [];
    if (this.#channels === 1) {
      const mix = new Float32Array(frames);
      for (let c = 0; c < data.numberOfChannels; c++) {
        const samples = plane(c);
        for (let i = 0; i < frames; i++) mix[i] += samples[i] / data.numberOfChannels;
      }
      planes.push(mix);
    } else {
      for (let c = 0; c < this.#channels; c++) planes.push(plane(Math.min(c, data.numberOfChannels - 1)));
    }
    const joined = new Float32Array(frames * planes.length);
    planes.forEach((samples, c) => joined.set(samples, c * frames));
    return new AudioData({
      format: 'f32-planar', sampleRate: data.sampleRate, numberOfFrames: frames,
      numberOfChannels: planes.length, timestamp: data.timestamp, data: joined,
    });
  }

  /** A new encoder for chunks at `data`'s sample rate, in the announced channels. */
  #configure(data) {
    const encoder = new AudioEncoder({
      output: (chunk) => this.#encoded(encoder, chunk),
      // A failed encoder stays closed: no sound on the relay until it asks again.
      error: (error) => console.warn('peercam: the relay sound encoder failed:', error),
    });
    this.#encoder = encoder;
    // The microphone's own rate (the encoder refuses chunks unlike its configuration, and
    // resamples to Opus's 48 kHz itself). 20 ms packets, as the Python camera's; low
    // delay: no look-ahead beyond what Opus needs.
    encoder.configure({
      codec: 'opus', sampleRate: data.sampleRate, numberOfChannels: this.#channels, bitrate: this.#bitrate,
      opus: { frameDuration: 20_000, application: 'lowdelay' },
    });
  }

  #encoded(encoder, chunk) {
    if (encoder !== this.#encoder || this.#sink === null) return;
    this.packetsEncoded++;
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    this.#sink({
      payload,
      captureTimeMs: chunk.timestamp / 1000 + this.#unixOffsetMs,
      channels: this.#channels,
    });
  }
}
