// The relay transport: the camera's frames through the signaling server, drawn on a
// canvas. For viewers P2P cannot reach; same interface as P2PTransport (see there).
// Two formats (relay-format.js picks one before asking the server):
//   encoded  the camera's VP8/H.264 frames, about the P2P bitrate, decoded in order with
//            WebCodecs (relay-decoder.js);
//   jpeg     a JPEG picture per frame; the newest wins while one decodes.
// Sound, where the camera sends it and the page can play it (WebCodecs AudioDecoder and
// AudioWorklet: secure contexts), comes as Opus packets in relay frames of its own
// (relay-audio.js), and the pictures wait for it (picture-pacer.js says why). Elsewhere
// carriesSound is false, and the page says so.
//
// It has no failure of its own to report: it lives on the signaling connection, and the
// player already handles losing that.

import { MessageType } from './protocol.js';
import { PicturePacer } from './picture-pacer.js';
import { RelayAudio, canPlayRelayAudio } from './relay-audio.js';
import { parseRelayFrame } from './relay-frame.js';
import { RelayDecoder } from './relay-decoder.js';
import { RelayFormat, chooseRelayFormat } from './relay-format.js';
import { RelayTalk } from './relay-talk.js';
import { SignalingEvent } from './signaling-client.js';
import { loadTimeline } from './load-timeline.js';

export class RelayTransport {
  mode = 'relay';
  /** 'encoded' or 'jpeg' once chosen (before the first frame), null until then. */
  format = null;
  /** Whether the camera's sound comes this way: null until known, and when it has none. */
  carriesSound = null;

  #signaling;
  #canvas;
  #codec;
  #wantedFormat;
  #audioInfo;
  #sound;
  #onFrame;
  #onSound;

  #stopped = false;
  #audio = null; // RelayAudio, while sound plays
  #talk = null; // RelayTalk, while this page talks back
  #pacer = new PicturePacer(
    (picture, frame, width, height, series) => this.#show(frame, picture, width, height, series),
    () => this.#audio?.latencyMs ?? null,
  );
  #decoder = null; // encoded
  #newestFrame = null; // JPEG: arrived while a decode was in flight; replaced by any newer one
  #decoding = false;
  #bytesSinceReport = 0;
  #frameReceived = (data) => {
    loadTimeline.mark('first-relay-frame');
    this.#receive(data);
  };

  /**
   * `codec` is the camera's ('vp8', 'h264'); `relayFormat` a RelayFormat (auto: the best this
   * page decodes); `audio` the camera's AudioInfo (null: no sound) and `sound` the page's
   * AudioOutput.
   */
  constructor({
    signaling, canvas, codec, relayFormat = RelayFormat.AUTO, audio = null, sound = null, onFrame,
    onSound = () => {},
  }) {
    this.#signaling = signaling;
    this.#canvas = canvas;
    this.#codec = codec;
    this.#wantedFormat = relayFormat;
    this.#audioInfo = sound !== null ? audio : null;
    this.#sound = sound;
    this.#onFrame = onFrame;
    this.#onSound = onSound;
  }

  start() {
    // No stale picture from an earlier relay session while the first frame is on its way.
    this.#canvas.getContext('2d').clearRect(0, 0, this.#canvas.width, this.#canvas.height);
    this.#signaling.on(SignalingEvent.BINARY, this.#frameReceived);
    const choice = chooseRelayFormat(this.#wantedFormat, this.#codec);
    const hearing = this.#audioInfo !== null ? canPlayRelayAudio(this.#audioInfo.channels) : false;
    Promise.all([choice, hearing]).then(([format, audio]) => {
      if (this.#stopped) return;
      this.format = format;
      if (format === RelayFormat.ENCODED) {
        this.#decoder = new RelayDecoder((header, picture) => this.#drawDecoded(header, picture));
        this.#decoder.prepare(this.#codec);
      }
      this.#signaling.send({ type: MessageType.RELAY, enabled: true, format, audio });
      loadTimeline.mark('relay-asked');
      // The sound's player loads while the first frames come (sound before it is dropped).
      if (audio) this.#startSound(format);
      else if (this.#audioInfo !== null) this.#noSound();
    });
  }

  /** Ready the camera's sound, asked for with `format`; if it cannot play, ask again without. */
  async #startSound(format) {
    const audio = new RelayAudio(this.#sound, this.#audioInfo.channels);
    this.#audio = audio;
    const playing = await audio.start();
    if (this.#stopped) return;
    if (playing) {
      this.carriesSound = true;
      this.#onSound();
      return;
    }
    audio.stop();
    this.#audio = null;
    this.#signaling.send({ type: MessageType.RELAY, enabled: true, format, audio: false });
    this.#noSound();
  }

  #noSound() {
    console.info('peercam: no sound on the relay here: it needs WebCodecs and AudioWorklet (HTTPS or localhost)');
    this.carriesSound = false;
    this.#onSound();
  }

  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#audio?.stop();
    this.talk(null);
    this.#pacer.close((picture) => picture.close());
    this.#decoder?.close();
    this.#signaling.off(SignalingEvent.BINARY, this.#frameReceived);
    this.#signaling.send({ type: MessageType.RELAY, enabled: false });
  }

  handleSignal() {
    // Answers, candidates and hangups belong to P2P.
  }

  sendChat() {
    return false; // no channel of its own: chat goes through the server
  }

  talk(track) {
    this.#talk?.stop();
    this.#talk = track !== null && !this.#stopped ? new RelayTalk(track, this.#signaling) : null;
  }

  async networkStats() {
    // The picture's figures come with each frame (sizes, sequence numbers, capture times);
    // the sound's are counted here.
    const audio = this.#audio;
    if (audio === null) return null;
    const { packets, packetsLost, jitterMs } = audio;
    return { audio: { codec: 'opus', packets, packetsLost, jitterMs } };
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
    if (frame.format === 'audio') {
      this.#audio?.add(frame);
      return;
    }
    // The other format's last frames, sent before the server heard this page: not ours.
    if (frame.format !== this.format) return;
    this.#bytesSinceReport += data.byteLength;
    if (this.#decoder !== null) {
      this.#decoder.add(frame);
      return;
    }
    // Latest frame wins: a JPEG decoder that falls behind skips frames instead of lagging.
    this.#newestFrame = frame;
    if (!this.#decoding) this.#drawNewestFrames();
  }

  async #drawNewestFrames() {
    this.#decoding = true;
    try {
      while (this.#newestFrame !== null && !this.#stopped) {
        const frame = this.#newestFrame;
        this.#newestFrame = null;
        await this.#drawJpeg(frame);
      }
    } finally {
      this.#decoding = false;
    }
  }

  async #drawJpeg(frame) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([frame.payload], { type: 'image/jpeg' }));
    } catch (error) {
      console.warn(`relay: could not decode frame ${frame.sequence}: ${error}`);
      return;
    }
    if (this.#stopped) {
      bitmap.close();
      return;
    }
    // The picture's own size, never the header's: a header could claim any size at all.
    const series = `${frame.layer}/${frame.jpegQuality}`;
    this.#pacer.add(bitmap, frame.captureTimeMs, frame, bitmap.width, bitmap.height, series);
  }

  #drawDecoded(frame, picture) {
    const { displayWidth: width, displayHeight: height } = picture;
    this.#pacer.add(picture, frame.captureTimeMs, frame, width, height, `${frame.layer}/encoded`);
  }

  /**
   * Draw `picture` (a bitmap or VideoFrame) of relay `frame`, report it and close it (a
   * VideoFrame holds decoder memory until closed); `series` numbers its frames.
   */
  #show(frame, picture, width, height, series) {
    // Another layer, another size: the backing store follows (object-fit keeps the shape
    // on screen). Resizing clears it, but the new frame is drawn in this same task.
    if (this.#canvas.width !== width) this.#canvas.width = width;
    if (this.#canvas.height !== height) this.#canvas.height = height;
    this.#canvas.getContext('2d').drawImage(picture, 0, 0, width, height);
    picture.close();

    const bytes = this.#bytesSinceReport;
    this.#bytesSinceReport = 0;
    this.#onFrame({
      source: this.#canvas,
      width,
      height,
      count: 1,
      // The camera's clock in the header: no need to read a stamp from the pixels. Each
      // rendition (layer, and JPEG quality or encoded) numbers its frames on its own.
      timing: { latencyMs: Date.now() - frame.captureTimeMs, sequence: frame.sequence, series },
      bytes,
    });
  }
}
