// The page's loudspeaker: one AudioContext that plays the camera's sound, whichever path
// it comes by (a P2P track, or the relay's decoded packets through audio-worklet.js), with
// the viewer's volume and mute, a level for the meter, and a tap on what it plays.
//
//   P2P track / relay player --> input --> analyser (level) --> volume --> speakers
//                                      \-> output-tap (each block and when it is heard)
//
// Browsers let a page make sound only after the viewer has used it (a click), unless its
// autoplay rules say otherwise: until then the context stays suspended, and `running` false.

/** Opus's own rate: the relay's sound plays as decoded, and the tone reader reads it as sent. */
export const SAMPLE_RATE = 48000;
const WORKLET_URL = '/static/js/audio-worklet.js';

export class AudioOutput {
  #context = null;
  #input;
  #analyser;
  #volumeNode;
  #level = new Float32Array(1024);
  #worklets = null; // Promise<boolean>: the processors are loaded (secure contexts only)
  #muted;
  #volume;
  #onPlayed;

  /**
   * `muted` and `volume` (0 to 1) to start with; onPlayed(channels, heardTimeMs) gets what the
   * page plays, a block of samples at a time (a Float32Array per channel) with the time its
   * first sample comes out of the speakers (Unix ms), whether muted or not.
   */
  constructor({ muted, volume, onPlayed }) {
    this.#muted = muted;
    this.#volume = volume;
    this.#onPlayed = onPlayed;
  }

  /** Whether sound can be heard now: the browser lets the context run. */
  get running() {
    return this.#context?.state === 'running';
  }

  get muted() {
    return this.#muted;
  }

  set muted(muted) {
    this.#muted = muted;
    this.#applyVolume();
  }

  get volume() {
    return this.#volume;
  }

  set volume(volume) {
    this.#volume = volume;
    this.#applyVolume();
  }

  /**
   * Let the context run, where the browser allows it: after a click always, before one only
   * where its autoplay rules do. Resolves with `running`.
   */
  async resume() {
    const context = this.#ensure();
    if (context.state === 'suspended') await context.resume().catch(() => {});
    return this.running;
  }

  /** Play `track` (a remote MediaStreamTrack of sound) until the returned stop() is called. */
  playTrack(track) {
    const context = this.#ensure();
    const source = context.createMediaStreamSource(new MediaStream([track]));
    source.connect(this.#input);
    return () => source.disconnect();
  }

  /**
   * An AudioWorkletNode running `processor` of audio-worklet.js, playing into the output, or
   * null where the page has no AudioWorklet (not a secure context). stop() disconnects it.
   */
  async playWorklet(processor, options) {
    const context = this.#ensure();
    if (!(await this.#worklets)) return null;
    const node = new AudioWorkletNode(context, processor, options);
    node.connect(this.#input);
    return node;
  }

  /** The loudest sample of the last ~20 ms played (0 to 1), muted or not: the level meter. */
  level() {
    if (this.#context === null || !this.running) return 0;
    this.#analyser.getFloatTimeDomainData(this.#level);
    let peak = 0;
    for (const sample of this.#level) peak = Math.max(peak, Math.abs(sample));
    return Math.min(1, peak);
  }

  /**
   * When sound the context plays at `contextTime` comes out of the speakers, in Unix ms:
   * the browser's own account of its output (getOutputTimestamp), else its stated latency.
   */
  heardTimeMs(contextTime) {
    const context = this.#context;
    const stamp = context.getOutputTimestamp?.();
    if (stamp && stamp.performanceTime > 0) {
      const sinceStamp = (contextTime - stamp.contextTime) * 1000;
      return Date.now() + (stamp.performanceTime - performance.now()) + sinceStamp;
    }
    const latency = context.outputLatency || context.baseLatency || 0;
    return Date.now() + (contextTime - context.currentTime + latency) * 1000;
  }

  #ensure() {
    if (this.#context !== null) return this.#context;
    // The smallest buffer the device takes: sound from a camera should be as live as its
    // picture, and the browser's lip sync on P2P does not know of what WebAudio adds.
    const context = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: 0 });
    this.#context = context;
    this.#input = context.createGain();
    this.#analyser = context.createAnalyser();
    this.#analyser.fftSize = this.#level.length;
    this.#volumeNode = context.createGain();
    this.#input.connect(this.#analyser).connect(this.#volumeNode).connect(context.destination);
    this.#applyVolume();
    this.#worklets = this.#loadWorklets(context);
    return context;
  }

  async #loadWorklets(context) {
    if (context.audioWorklet === undefined) return false; // not a secure context
    try {
      await context.audioWorklet.addModule(WORKLET_URL);
    } catch (error) {
      console.warn('peercam: the sound worklets did not load:', error);
      return false;
    }
    const tap = new AudioWorkletNode(context, 'output-tap', { numberOfOutputs: 0 });
    tap.port.onmessage = ({ data }) => this.#onPlayed(data.channels, this.heardTimeMs(data.time));
    this.#input.connect(tap);
    return true;
  }

  #applyVolume() {
    if (this.#context === null) return;
    const gain = this.#muted ? 0 : this.#volume;
    // A short ramp: a step in gain clicks.
    this.#volumeNode.gain.setTargetAtTime(gain, this.#context.currentTime, 0.015);
  }
}
