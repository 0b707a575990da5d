// The player page, /view/NAME: follows one stream through the signaling server and
// plays it whenever its camera is live, recovering from camera and server restarts.

import { ErrorCode, MessageType, PROTOCOL_VERSION } from './protocol.js';
import { SignalingClient, SignalingEvent } from './signaling.js';
import { P2PTransport } from './p2p-transport.js';
import { PlaybackStats } from './stats.js';
import { readStamp } from './testpattern.js';

/** Pause before offering again after a failed session, so a broken camera is not hammered. */
const RETRY_DELAY_MS = 1000;

/** The values of #status[data-state]. */
const State = Object.freeze({
  CONNECTING: 'connecting', // to the signaling server
  WAITING: 'waiting', // for the camera to go live
  NEGOTIATING: 'negotiating', // with the camera
  PLAYING: 'playing', // frames are being decoded
  RECONNECTING: 'reconnecting', // the server connection was lost
  ERROR: 'error',
});

class Player {
  state = State.CONNECTING;
  stats = new PlaybackStats();

  #streamName;
  #video;
  #view;
  #signaling = new SignalingClient();
  #stampCanvas = document.createElement('canvas');
  #iceServers = [];
  #publisher = null; // the camera's peer id while the stream is live
  #transport = null;
  #retryTimer = null;

  constructor(streamName, video, view) {
    this.#streamName = streamName;
    this.#video = video;
    this.#view = view;
    this.#signaling
      .on(SignalingEvent.CLOSE, () => this.#serverLost())
      .on(MessageType.WELCOME, (m) => this.#welcomed(m))
      .on(MessageType.WATCHING, (m) => this.#watching(m))
      .on(MessageType.STREAM_LIVE, (m) => this.#streamLive(m))
      .on(MessageType.STREAM_ENDED, () => this.#streamEnded())
      .on(MessageType.ANSWER, (m) => this.#transport?.handleSignal(m))
      .on(MessageType.CANDIDATE, (m) => this.#transport?.handleSignal(m))
      .on(MessageType.HANGUP, (m) => this.#transport?.handleSignal(m))
      .on(MessageType.ERROR, (m) => this.#refused(m));
  }

  start() {
    this.#setState(State.CONNECTING);
    this.#signaling.connect();
    setInterval(() => {
      this.stats.tick();
      this.#view.showStats(this.statsSnapshot());
    }, 1000);
  }

  statsSnapshot() {
    const { frames, fps, dropped, width, height } = this.stats;
    const latencyMs = this.stats.latencyMs();
    return { frames, fps, latencyMs, dropped, width, height, mode: this.#transport?.mode ?? null };
  }

  #welcomed({ ice_servers: iceServers, protocol }) {
    if (protocol !== PROTOCOL_VERSION) {
      console.warn(`peercam: server speaks protocol ${protocol}, this page ${PROTOCOL_VERSION}`);
    }
    this.#iceServers = iceServers;
    this.#signaling.send({ type: MessageType.WATCH, stream: this.#streamName });
  }

  #watching({ live }) {
    // When live, stream-live follows straight away and starts the session.
    if (!live) this.#setState(State.WAITING);
  }

  #streamLive({ publisher }) {
    this.#publisher = publisher;
    this.#startTransport();
  }

  #streamEnded() {
    this.#publisher = null;
    this.#stopTransport();
    this.#setState(State.WAITING);
  }

  #serverLost() {
    // A new connection gets a new peer id, so this session cannot carry on.
    this.#publisher = null;
    this.#stopTransport();
    this.#setState(State.RECONNECTING);
  }

  #refused({ code, reason }) {
    console.error(`peercam: server error ${code}: ${reason}`);
    // The picture is fine: some stray message was refused.
    if (this.state === State.PLAYING) return;
    // A candidate that raced the camera's departure: "waiting" already says it all.
    if (code === ErrorCode.NO_SUCH_STREAM && this.#publisher === null) return;
    this.#setState(State.ERROR, `${reason} (${code})`);
  }

  #startTransport() {
    this.#stopTransport();
    this.stats.resetContinuity();
    this.#transport = new P2PTransport({
      signaling: this.#signaling,
      iceServers: this.#iceServers,
      publisher: this.#publisher,
      video: this.#video,
      onFrame: (frame) => this.#frameArrived(frame),
      onFailure: (reason) => this.#transportFailed(reason),
    });
    this.#setState(State.NEGOTIATING);
    this.#transport.start();
  }

  #stopTransport() {
    clearTimeout(this.#retryTimer);
    this.#transport?.stop();
    this.#transport = null;
  }

  #transportFailed(reason) {
    console.warn(`peercam: ${this.#transport.mode} session failed (${reason}); retrying`);
    this.#transport = null;
    this.#setState(State.NEGOTIATING, 'connection to the camera failed, retrying…');
    this.#retryTimer = setTimeout(() => {
      if (this.#publisher !== null && this.#signaling.connected) this.#startTransport();
    }, RETRY_DELAY_MS);
  }

  /** The one path every transport reports decoded frames through. */
  #frameArrived({ source, width, height, count }) {
    this.stats.framesArrived(count, width, height, readStamp(source, this.#stampCanvas));
    if (this.state !== State.PLAYING) this.#setState(State.PLAYING);
  }

  #setState(state, detail) {
    this.state = state;
    this.#view.showState(state, detail ?? this.#describe(state));
  }

  #describe(state) {
    switch (state) {
      case State.CONNECTING: return 'connecting to the server…';
      case State.WAITING: return 'waiting for the camera';
      case State.NEGOTIATING: return 'connecting to the camera…';
      case State.PLAYING: return `playing (${this.#transport.mode})`;
      case State.RECONNECTING: return 'server connection lost, reconnecting…';
      default: return state;
    }
  }
}

/** The page's elements: status line, on-screen message and stats panel. */
class PlayerView {
  #status = document.getElementById('status');
  #screenMessage = document.getElementById('screen-message');
  #fields = Object.fromEntries(
    ['fps', 'latency', 'resolution', 'frames', 'dropped'].map((id) => [id, document.getElementById(id)]),
  );

  showStreamName(name) {
    document.title = `${name} · peercam`;
    document.getElementById('stream-name').textContent = name;
  }

  showState(state, text) {
    this.#status.dataset.state = state;
    this.#status.textContent = text;
    document.body.dataset.state = state; // lets the stylesheet hide the on-screen message
    this.#screenMessage.textContent = text;
  }

  showStats({ frames, fps, latencyMs, dropped, width, height }) {
    this.#fields.fps.textContent = frames ? fps.toFixed(0) : '–';
    this.#fields.latency.textContent = latencyMs !== null ? `${latencyMs} ms` : frames ? 'n/a' : '–';
    this.#fields.resolution.textContent = width ? `${width}x${height}` : '–';
    this.#fields.frames.textContent = String(frames);
    this.#fields.dropped.textContent = String(dropped);
  }
}

function streamNameFromPath() {
  const encoded = location.pathname.replace(/^\/view\//, '');
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded; // malformed escapes: let the server reject the name
  }
}

const streamName = streamNameFromPath();
const view = new PlayerView();
view.showStreamName(streamName);
const player = new Player(streamName, document.getElementById('video'), view);
player.start();

// For tests and the curious: window.peercam.state(), window.peercam.stats().
window.peercam = {
  state: () => player.state,
  stats: () => player.statsSnapshot(),
};
