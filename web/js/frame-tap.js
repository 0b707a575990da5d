// Every picture of a video track as a WebCodecs VideoFrame, for the browser camera's relay
// encoders. MediaStreamTrackProcessor (Chromium) reads the track itself, so it goes on in
// a background tab (the usual place of a page that shares the screen); elsewhere the
// preview <video> is sampled on each frame it shows, which a hidden tab pauses.

export class FrameTap {
  #track;
  #video;
  #onFrame;
  #reader = null;
  #callback = null;
  #running = false;

  /** onFrame(frame, captureTimeMs) owns `frame` and must close() it. */
  constructor(track, video, onFrame) {
    this.#track = track;
    this.#video = video;
    this.#onFrame = onFrame;
  }

  get running() {
    return this.#running;
  }

  start() {
    if (this.#running) return;
    this.#running = true;
    if (typeof MediaStreamTrackProcessor === 'function') this.#readTrack();
    else this.#sampleVideo();
  }

  stop() {
    this.#running = false;
    this.#reader?.cancel().catch(() => {});
    this.#reader = null;
    if (this.#callback !== null) this.#video.cancelVideoFrameCallback(this.#callback);
    this.#callback = null;
  }

  async #readTrack() {
    // A clone, so that stopping the tap never ends the track the peer connections send.
    const track = this.#track.clone();
    const reader = new MediaStreamTrackProcessor({ track, maxBufferSize: 1 }).readable.getReader();
    this.#reader = reader;
    try {
      while (this.#running && this.#reader === reader) {
        const { value: frame, done } = await reader.read();
        if (done) break;
        if (this.#running) this.#onFrame(frame, Date.now());
        else frame.close();
      }
    } catch (error) {
      if (this.#running) console.warn('peercam: reading the camera track stopped:', error);
    } finally {
      track.stop();
    }
  }

  #sampleVideo() {
    this.#callback = this.#video.requestVideoFrameCallback(() => {
      if (!this.#running) return;
      const captureTimeMs = Date.now();
      this.#onFrame(new VideoFrame(this.#video, { timestamp: captureTimeMs * 1000 }), captureTimeMs);
      this.#sampleVideo();
    });
  }
}
