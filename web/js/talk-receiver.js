// Talk back's sound in the browser camera's tab: the voice of the viewer holding the floor
// (talk-floor.js), played through the page's AudioOutput, as the Python camera's
// TalkReceiver plays it on --speaker (peers/camera/talkreceiver.py).
//
// On P2P each viewer's connection receives a track of sound (its offer's audio section,
// answered sendrecv); only the holder's is played, the others are left unplayed (nothing
// queues for them). On the relay the server passes on the holder's talk frames (Opus relay
// frames, version 3) as binary messages; relay-audio.js decodes and plays them. What the
// tab plays goes through the player's AudioStats too: a viewer talking with the test tone
// (`peercam view --talk tone`) gives the mouth-to-speaker latency of each beep.

import { AudioOutput } from './audio-output.js';
import { AudioStats } from './audio-stats.js';
import { RelayAudio } from './relay-audio.js';
import { RelayFrameError, parseRelayFrame } from './relay-frame.js';

/** Talk frames are mono (relay-talk.js, peercam view --talk). */
const TALK_CHANNELS = 1;

export class TalkReceiver {
  /** The floor holder's viewer id, or null. */
  holder = null;
  holderName = '';

  #element;
  #output;
  #tracks = new Map(); // viewer id -> the sound its P2P connection receives
  #stopTrack = null;
  #relay = null; // the turn's RelayAudio
  #relayPacketsBefore = 0; // talk frames the turns before it played
  #stats = new AudioStats();

  /**
   * `element`: an <audio> element the holder's P2P track is attached to (muted: Chromium
   * pulls a remote track's sound only while a media element plays it; the AudioOutput is
   * what is heard).
   */
  constructor(element) {
    this.#element = element;
    this.#element.muted = true;
    this.#output = new AudioOutput({
      muted: false, volume: 1, onPlayed: (channels, heardTimeMs) => this.#stats.played(channels, heardTimeMs),
    });
  }

  /** Talk frames decoded and played, all turns together. */
  get relayPackets() {
    return this.#relayPacketsBefore + (this.#relay?.packets ?? 0);
  }

  /** Whether the browser lets the tab make sound now. */
  get running() {
    return this.#output.running;
  }

  /** Let the sound play (call it on a click: browsers allow sound only after one). */
  resume() {
    return this.#output.resume();
  }

  /** A viewer's P2P connection receives sound on `track` (null: the connection is gone). */
  setTrack(viewerId, track) {
    if (track === null) this.#tracks.delete(viewerId);
    else this.#tracks.set(viewerId, track);
    if (viewerId === this.holder) this.#playTrack();
  }

  /** The floor changed (TalkFloor.onChange): the old turn's sound stops, the new one's plays. */
  floorChanged(holder, name) {
    this.#stopTurn();
    this.holder = holder;
    this.holderName = holder === null ? '' : name;
    if (holder === null) return;
    this.#playTrack();
    const relay = new RelayAudio(this.#output, TALK_CHANNELS);
    this.#relay = relay;
    relay.start().then((playing) => {
      if (!playing && relay === this.#relay) console.warn('peercam: this page cannot play talk frames (it needs WebCodecs)');
    });
  }

  /** A binary message from the server: a talk frame of the holder on the relay. */
  relayFrame(data) {
    if (this.#relay === null) return; // late, after the turn
    let frame;
    try {
      frame = parseRelayFrame(data);
    } catch (error) {
      if (!(error instanceof RelayFrameError)) throw error;
      console.warn(`peercam: ignoring a talk frame: ${error.message}`);
      return;
    }
    if (frame.format === 'audio') this.#relay.add(frame);
  }

  /**
   * The test tone's beeps the tab played, the latest ten: [{captureTimeMs, heardTimeMs,
   * latencyMs}] (mouth to speaker).
   */
  beeps() {
    return this.#stats.recentBeeps();
  }

  /** The beeps' mouth-to-speaker latency, {p50, p95} ms, or null before any. */
  get latencyMs() {
    return this.#stats.snapshot().latencyMs;
  }

  #playTrack() {
    this.#stopTrack?.();
    this.#stopTrack = null;
    const track = this.#tracks.get(this.holder);
    if (track === undefined) {
      this.#element.srcObject = null;
      return;
    }
    this.#element.srcObject = new MediaStream([track]);
    this.#element.play().catch(() => {}); // muted: allowed, and only a pull
    this.#stopTrack = this.#output.playTrack(track);
  }

  #stopTurn() {
    this.#stopTrack?.();
    this.#stopTrack = null;
    this.#element.srcObject = null;
    if (this.#relay !== null) {
      this.#relay.stop();
      this.#relayPacketsBefore += this.#relay.packets;
      this.#relay = null;
    }
  }

}
