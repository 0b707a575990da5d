// The browser camera's side of the relay: the frames the server's relay hub asks for
// (`relay-frames`), sent as binary messages on the signaling socket while anyone reads
// them. JPEG pictures at each JPEG quality asked (version 1 frames), the layer's VP8
// frames from a WebCodecs VideoEncoder (version 2), and the microphone's Opus packets
// (version 3, from audio-pipeline.js) ahead of any picture, each made once for every
// reader. The Python camera's counterpart is peers/camera/relaysender.py.

import { FrameTap } from './frame-tap.js';
import { packRelayFrame } from './relay-frame.js';
import { AudioPipeline, SAMPLE_RATE } from './audio-pipeline.js';

/** Bytes that may wait in the socket: past this a JPEG is skipped, and the encoded
 * frames drop to the next keyframe (which is asked for at once). */
const MAX_BUFFERED_BYTES = 2 * 1024 * 1024;
/** Frames that may be inside the encoder; more are skipped before encoding. Counted from
 * submit to output: encodeQueueSize misses the frames the encoder's thread holds. */
const MAX_IN_FLIGHT = 2;
/** Milliseconds between keyframes asked for with `relay-keyframe`: for a reader that is new
 * or switches layers (urgent), and for one that fell behind, like a PLI. The Python camera's
 * limits (peers/camera/pipeline.py); the server's hub keeps the same ones (signaling/relay/keyframes.py). */
const URGENT_KEYFRAME_INTERVAL_MS = 250;
const KEYFRAME_INTERVAL_MS = 1000;
/** Opus packets (20 ms each) that may wait for the socket; past that the oldest go (the
 * Python camera's MAX_QUEUED_AUDIO). */
const MAX_QUEUED_AUDIO = 25;
/** Sound still goes out this far past MAX_BUFFERED_BYTES, where pictures no longer do:
 * on a busy socket sound breaks last. */
const AUDIO_HEADROOM_BYTES = 64 * 1024;
/** How soon packets that wait for the socket are tried again. */
const AUDIO_RETRY_MS = 20;

export class RelaySender {
  #layer; // {name, width, height, fps}: the one layer this camera has (index 0)
  #signaling;
  #tap;
  #jpegQualities = [];
  #canvas = null;
  #jpegBusy = false;
  #jpegSequence = new Map(); // JPEG quality -> next sequence number
  #encoder = null;
  #encodedSequence = 0;
  #wantKeyframe = false;
  #keyframeUrgent = false;
  #lastKeyframeAt = -Infinity; // performance.now() of the last keyframe asked of the encoder
  #toKeyframe = false; // a frame was dropped: nothing until the next keyframe
  #submitted = new Map(); // frame timestamp -> {at: when it went into the encoder, captureTimeMs}
  #audio; // the AudioPipeline, or null: a stream without sound
  #audioQueue = []; // packed Opus relay frames waiting for the socket, oldest first
  #audioSequence = 0;
  #audioRetry = null;
  /** Frames sent of each kind (audio: Opus packets), encoded keyframes, the encoder's
   * latest time per frame, and Opus packets dropped while the socket was full. */
  counts = { jpeg: 0, encoded: 0, keyframes: 0, encodeMs: 0, audio: 0, audioDropped: 0 };

  /** audio: the stream's AudioPipeline (audio-pipeline.js), or null when it has no sound. */
  constructor({ track, video, layer, signaling, audio = null }) {
    this.#layer = layer;
    this.#signaling = signaling;
    this.#audio = audio;
    this.#tap = new FrameTap(track, video, (frame, captureTimeMs) => this.#frame(frame, captureTimeMs));
  }

  /** What readers read now, from `relay-frames`: {jpeg: [{layer, jpeg_quality}], encoded:
   * [layer], audio: whether to send the sound}. */
  setDemand({ jpeg = [], encoded = [], audio = false }) {
    this.#setAudioDemand(audio);
    this.#jpegQualities = [...new Set(jpeg.filter((r) => r.layer === this.#layer.name).map((r) => r.jpeg_quality))];
    const wantEncoded = encoded.includes(this.#layer.name);
    if (wantEncoded && this.#encoder === null) this.#startEncoder();
    if (!wantEncoded && this.#encoder !== null) this.#stopEncoder();
    if (this.#jpegQualities.length || this.#encoder !== null) this.#tap.start();
    else this.#tap.stop();
  }

  /** Describes the demand, e.g. "480p JPEG q80, 480p encoded", or "off". */
  describe() {
    const parts = this.#jpegQualities.map((q) => `${this.#layer.name} JPEG q${q}`);
    if (this.#encoder !== null) parts.push(`${this.#layer.name} encoded`);
    if (this.#audio?.relaySink) parts.push(AudioPipeline.relayable ? 'Opus' : 'Opus (not in this browser)');
    return parts.join(', ') || 'off';
  }

  get active() {
    return this.#tap.running;
  }

  get jpegQualities() {
    return [...this.#jpegQualities];
  }

  get encoding() {
    return this.#encoder !== null;
  }

  /** `relay-keyframe`: a keyframe soon, at most every URGENT_KEYFRAME_INTERVAL_MS (`urgent`)
   * or KEYFRAME_INTERVAL_MS after the last one; requests in between merge. */
  keyframe(urgent = false) {
    this.#wantKeyframe = true;
    if (urgent) this.#keyframeUrgent = true;
  }

  stop() {
    this.setDemand({});
  }

  #setAudioDemand(wanted) {
    if (this.#audio === null) return;
    if (wanted && this.#audio.relaySink === null) {
      this.#audio.relaySink = (packet) => this.#queueAudio(packet);
    } else if (!wanted) {
      this.#audio.relaySink = null;
      this.#audioQueue = [];
      clearTimeout(this.#audioRetry);
      this.#audioRetry = null;
    }
  }

  #queueAudio({ payload, captureTimeMs, channels }) {
    const fields = {
      format: 'audio', codec: 'opus', sequence: this.#audioSequence++, captureTimeMs,
      width: SAMPLE_RATE, height: channels, layer: 0,
    };
    this.#audioQueue.push(packRelayFrame(fields, payload));
    if (this.#audioQueue.length > MAX_QUEUED_AUDIO) {
      this.#audioQueue.shift();
      this.counts.audioDropped++;
    }
    this.#sendAudio();
  }

  /** Send the Opus packets that wait, while the socket takes them; first thing before any picture. */
  #sendAudio() {
    while (this.#audioQueue.length
           && this.#signaling.bufferedAmount <= MAX_BUFFERED_BYTES + AUDIO_HEADROOM_BYTES) {
      if (!this.#signaling.sendBinary(this.#audioQueue.shift())) break;
      this.counts.audio++;
    }
    if (this.#audioQueue.length && this.#audioRetry === null) {
      this.#audioRetry = setTimeout(() => {
        this.#audioRetry = null;
        this.#sendAudio();
      }, AUDIO_RETRY_MS);
    }
  }

  #frame(frame, captureTimeMs) {
    try {
      if (this.#encoder !== null) this.#encode(frame, captureTimeMs);
      if (this.#jpegQualities.length && !this.#jpegBusy) {
        this.#jpegBusy = true; // the newest frame wins: none queue behind a JPEG being made
        this.#sendJpegs(frame.clone(), captureTimeMs).finally(() => { this.#jpegBusy = false; });
      }
    } finally {
      frame.close();
    }
  }

  async #sendJpegs(frame, captureTimeMs) {
    const { width, height } = this.#layer;
    try {
      this.#canvas ??= new OffscreenCanvas(width, height);
      this.#canvas.getContext('2d').drawImage(frame, 0, 0, width, height);
    } finally {
      frame.close();
    }
    for (const jpegQuality of this.#jpegQualities) {
      this.#sendAudio();
      if (this.#signaling.bufferedAmount > MAX_BUFFERED_BYTES) return;
      const blob = await this.#canvas.convertToBlob({ type: 'image/jpeg', quality: jpegQuality / 100 });
      const sequence = this.#jpegSequence.get(jpegQuality) ?? 0;
      this.#jpegSequence.set(jpegQuality, sequence + 1);
      const payload = new Uint8Array(await blob.arrayBuffer());
      const fields = { format: 'jpeg', jpegQuality, sequence, captureTimeMs, width, height, layer: 0 };
      if (this.#signaling.sendBinary(packRelayFrame(fields, payload))) this.counts.jpeg++;
    }
  }

  #startEncoder() {
    const { width, height, fps } = this.#layer;
    this.#encoder = new VideoEncoder({
      output: (chunk) => this.#encoded(chunk),
      error: (error) => {
        console.warn('peercam: the relay encoder failed:', error);
        this.#encoder = null;
      },
    });
    this.#encoder.configure({
      codec: 'vp8', width, height, framerate: fps, latencyMode: 'realtime',
      bitrate: Math.round(width * height * fps * 0.1), // about 0.9 Mbit/s at 640x480@30
    });
    this.#wantKeyframe = true;
    this.#lastKeyframeAt = -Infinity; // a new encoder starts with one
  }

  #stopEncoder() {
    if (this.#encoder.state !== 'closed') this.#encoder.close();
    this.#encoder = null;
    this.#submitted.clear();
    this.#toKeyframe = false;
  }

  #encode(frame, captureTimeMs) {
    // A frame the encoder dropped never comes out: forget it after a second.
    for (const [timestamp, { at }] of this.#submitted) {
      if (performance.now() - at > 1000) this.#submitted.delete(timestamp);
    }
    if (this.#encoder.state !== 'configured' || this.#submitted.size >= MAX_IN_FLIGHT) return;
    const interval = this.#keyframeUrgent ? URGENT_KEYFRAME_INTERVAL_MS : KEYFRAME_INTERVAL_MS;
    const keyFrame = this.#wantKeyframe && performance.now() - this.#lastKeyframeAt >= interval;
    if (keyFrame) {
      this.#wantKeyframe = this.#keyframeUrgent = false;
      this.#lastKeyframeAt = performance.now();
    }
    const timestamp = Math.round(performance.now() * 1000); // the encoder's clock: µs, monotonic
    const stamped = new VideoFrame(frame, { timestamp });
    this.#submitted.set(timestamp, { at: performance.now(), captureTimeMs });
    try {
      this.#encoder.encode(stamped, { keyFrame });
    } finally {
      stamped.close();
    }
  }

  #encoded(chunk) {
    const submitted = this.#submitted.get(chunk.timestamp);
    this.#submitted.delete(chunk.timestamp);
    if (submitted === undefined) return; // from before a restart of the encoder
    this.counts.encodeMs = performance.now() - submitted.at;
    const keyframe = chunk.type === 'key';
    if (keyframe) this.#toKeyframe = false;
    if (this.#toKeyframe) return;
    this.#sendAudio();
    if (this.#signaling.bufferedAmount > MAX_BUFFERED_BYTES) {
      // The socket fell behind: readers could not decode what follows a gap anyway.
      this.#toKeyframe = true;
      this.#wantKeyframe = true;
      return;
    }
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    const { width, height } = this.#layer;
    const fields = {
      format: 'encoded', codec: 'vp8', keyframe, sequence: this.#encodedSequence,
      captureTimeMs: submitted.captureTimeMs, width, height, layer: 0,
    };
    if (this.#signaling.sendBinary(packRelayFrame(fields, payload))) {
      this.#encodedSequence++;
      this.counts.encoded++;
      if (keyframe) this.counts.keyframes++;
    }
  }
}
