// The relay transport: JPEG frames from the camera through the signaling server, drawn
// on a canvas. For viewers P2P cannot reach; same interface as P2PTransport (see there).
//
// It has no failure of its own to report: it lives on the signaling connection, and the
// player already handles losing that.

import { MessageType } from './protocol.js';
import { parseRelayFrame } from './relay-frame.js';
import { SignalingEvent } from './signaling.js';

export class RelayTransport {
  mode = 'relay';

  #signaling;
  #canvas;
  #onFrame;

  #stopped = false;
  #newestFrame = null; // arrived while a decode was in flight; replaced by any newer one
  #decoding = false;
  #bytesSinceReport = 0;
  #frameReceived = (data) => this.#receive(data);

  constructor({ signaling, canvas, onFrame }) {
    this.#signaling = signaling;
    this.#canvas = canvas;
    this.#onFrame = onFrame;
  }

  start() {
    // No stale picture from an earlier relay session while the first frame is on its way.
    this.#canvas.getContext('2d').clearRect(0, 0, this.#canvas.width, this.#canvas.height);
    this.#signaling.on(SignalingEvent.BINARY, this.#frameReceived);
    this.#signaling.send({ type: MessageType.RELAY, enabled: true });
  }

  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#signaling.off(SignalingEvent.BINARY, this.#frameReceived);
    this.#signaling.send({ type: MessageType.RELAY, enabled: false });
  }

  handleSignal() {
    // Answers, candidates and hangups belong to P2P.
  }

  sendChat() {
    return false; // no channel of its own: chat goes through the server
  }

  async networkStats() {
    return null; // its figures come with each frame: sizes, sequence numbers, capture times
  }

  #receive(data) {
    if (this.#stopped) return;
    let frame;
    try {
      frame = parseRelayFrame(data);
    } catch (error) {
      console.warn(`relay: ignoring a frame: ${error.message}`);
      return;
    }
    this.#bytesSinceReport += data.byteLength;
    // Latest frame wins: a decoder that falls behind skips frames instead of lagging.
    this.#newestFrame = frame;
    if (!this.#decoding) this.#drawNewestFrames();
  }

  async #drawNewestFrames() {
    this.#decoding = true;
    try {
      while (this.#newestFrame !== null && !this.#stopped) {
        const frame = this.#newestFrame;
        this.#newestFrame = null;
        await this.#draw(frame);
      }
    } finally {
      this.#decoding = false;
    }
  }

  async #draw(frame) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([frame.jpeg], { type: 'image/jpeg' }));
    } catch (error) {
      console.warn(`relay: could not decode frame ${frame.sequence}: ${error}`);
      return;
    }
    if (this.#stopped) {
      bitmap.close();
      return;
    }
    const { width, height } = frame;
    // Another layer, another size: the backing store follows (object-fit keeps the shape
    // on screen). Resizing clears it, but the new frame is drawn in this same task.
    if (this.#canvas.width !== width) this.#canvas.width = width;
    if (this.#canvas.height !== height) this.#canvas.height = height;
    this.#canvas.getContext('2d').drawImage(bitmap, 0, 0, width, height);
    bitmap.close();

    const bytes = this.#bytesSinceReport;
    this.#bytesSinceReport = 0;
    this.#onFrame({
      source: this.#canvas,
      width,
      height,
      count: 1,
      // The camera's clock in the header: no need to read a stamp from the pixels. Each
      // rendition (layer, JPEG quality) numbers its frames on its own: a series each.
      timing: {
        latencyMs: Date.now() - frame.captureTimeMs,
        sequence: frame.sequence,
        series: `${frame.layer}/${frame.quality}`,
      },
      bytes,
    });
  }
}
