// Talk back on the relay: the viewer's microphone up the signaling socket, one Opus packet
// (20 ms, mono, 48 kHz) per relay frame (version 3), encoded with WebCodecs by the browser
// camera's AudioPipeline. The server takes them only from the viewer holding the floor and
// passes them to the camera. Late sound is no use: a packet the socket cannot take at once
// is dropped, never queued. The camera's sound the other way is relay-audio.js.

import { AudioPipeline, SAMPLE_RATE } from './audio-pipeline.js';
import { packRelayFrame } from './relay-frame.js';

/** Bytes that may wait in the socket before a packet is dropped: about a second of talk. */
const MAX_BUFFERED_BYTES = 16 * 1024;

export class RelayTalk {
  #signaling;
  #pipeline;
  #sequence = 0;

  /** Send `track` (the microphone's) on `signaling` until stop(). */
  constructor(track, signaling) {
    this.#signaling = signaling;
    this.#pipeline = new AudioPipeline(track, { channels: 1 });
    if (!AudioPipeline.relayable) {
      console.warn('peercam: this browser cannot talk over the relay: it needs WebCodecs');
      return;
    }
    this.#pipeline.relaySink = (packet) => this.#send(packet);
  }

  stop() {
    this.#pipeline.stop();
  }

  #send({ payload, captureTimeMs, channels }) {
    const fields = {
      format: 'audio', codec: 'opus', sequence: this.#sequence++, captureTimeMs,
      width: SAMPLE_RATE, height: channels, layer: 0,
    };
    if (this.#signaling.bufferedAmount <= MAX_BUFFERED_BYTES) {
      this.#signaling.sendBinary(packRelayFrame(fields, payload));
    }
  }
}
