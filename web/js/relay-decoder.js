// Decoding the encoded relay in the page: the camera's own VP8/H.264 frames, with
// WebCodecs, strictly in order. The rules follow peers/viewer/relaydecoder.py.

/** Frames that may wait in the decoder; past that it fell behind, and skips to a keyframe. */
const MAX_WAITING = 30;

// The camera's x264 makes constrained baseline; no `description` in the config means
// Annex B, as the relay carries it (SPS and PPS in band).
const CODEC_STRINGS = { vp8: 'vp8', h264: 'avc1.42E01F' };

function decoderConfig(codec) {
  return { codec: CODEC_STRINGS[codec], optimizeForLatency: true };
}

const decodable = new Map(); // codec -> Promise<boolean>, asked once per page

/** Whether this page can decode `codec` ('vp8', 'h264'): WebCodecs (secure contexts only) and support for it. */
export function canDecode(codec) {
  if (!decodable.has(codec)) decodable.set(codec, askDecoder(codec));
  return decodable.get(codec);
}

async function askDecoder(codec) {
  if (typeof VideoDecoder === 'undefined' || !(codec in CODEC_STRINGS)) return false;
  try {
    return (await VideoDecoder.isConfigSupported(decoderConfig(codec))).supported === true;
  } catch {
    return false;
  }
}

/**
 * Decodes encoded relay frames from a keyframe on. A frame decodes only after the ones
 * before it: after a gap in a layer's sequence numbers (the server dropped frames for a
 * reader that fell behind), a decoder error, or a decode queue that grows past
 * MAX_WAITING, frames are dropped up to the next keyframe, never decoded into a broken
 * picture. onDecoded(header, videoFrame) hands over each picture; the callee closes it.
 */
export class RelayDecoder {
  /** Frames dropped while waiting for a keyframe. */
  framesSkipped = 0;

  #onDecoded;
  #decoder = null; // a VideoDecoder configured for #codec, or null: make one at the next keyframe
  #codec = null;
  #expected = null; // 'layer/sequence' of the next frame that may decode, or null: wait for a keyframe
  #inFlight = []; // [timestamp, header] of the frames the decoder holds, oldest first
  #nextTimestamp = 0;

  constructor(onDecoded) {
    this.#onDecoded = onDecoded;
  }

  /** The next frame off the socket (parsed by parseRelayFrame). */
  add(header) {
    if (this.#decoder !== null && this.#decoder.decodeQueueSize > MAX_WAITING) {
      console.warn(`relay: the decoder fell ${MAX_WAITING} frames behind; skipping to the next keyframe`);
      this.#closeDecoder(); // what waits is stale: catch up at the keyframe instead
      this.#expected = null;
    }
    if (!header.keyframe && this.#expected !== `${header.layer}/${header.sequence}`) {
      this.framesSkipped += 1;
      this.#expected = null; // a gap, or a new layer without its keyframe
      return;
    }
    if (this.#decoder === null || header.codec !== this.#codec) this.#open(header.codec);
    const timestamp = this.#nextTimestamp++; // pairs each picture with its header
    try {
      this.#decoder.decode(new EncodedVideoChunk({
        type: header.keyframe ? 'key' : 'delta', timestamp, data: header.payload,
      }));
    } catch (error) {
      this.#broke(`frame ${header.sequence} of layer ${header.layer} was refused: ${error.message}`);
      return;
    }
    this.#inFlight.push([timestamp, header]);
    this.#expected = `${header.layer}/${(header.sequence + 1) % 2 ** 32}`;
  }

  /**
   * Make and configure the decoder for `codec` now, before the first frame: the browser
   * starts its decoder while the camera starts encoding, not once the keyframe is in.
   */
  prepare(codec) {
    if (this.#decoder === null && codec in CODEC_STRINGS) this.#open(codec);
  }

  /** Stop: frames still waiting are not decoded, and no callback fires afterwards. */
  close() {
    this.#onDecoded = () => {};
    this.#closeDecoder();
  }

  #open(codec) {
    this.#closeDecoder();
    this.#codec = codec;
    const decoder = new VideoDecoder({
      output: (frame) => this.#output(frame),
      // The decoder is closed by now: the next keyframe starts a new one.
      error: (error) => {
        if (decoder === this.#decoder) this.#broke(`the decoder failed: ${error.message}`);
      },
    });
    decoder.configure(decoderConfig(codec));
    this.#decoder = decoder;
  }

  #output(frame) {
    // Pictures come out in decode order; a frame that made none drops off here.
    let entry;
    do entry = this.#inFlight.shift(); while (entry !== undefined && entry[0] < frame.timestamp);
    if (entry === undefined || entry[0] !== frame.timestamp) {
      frame.close(); // from before a reset
      return;
    }
    this.#onDecoded(entry[1], frame);
  }

  #broke(reason) {
    console.warn(`relay: ${reason}; waiting for the next keyframe`);
    this.#closeDecoder();
    this.#expected = null;
  }

  #closeDecoder() {
    if (this.#decoder !== null && this.#decoder.state !== 'closed') this.#decoder.close();
    this.#decoder = null;
    this.#inFlight = [];
  }
}
