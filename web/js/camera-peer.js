// The browser camera on the protocol: the page's CameraPeer, as in peers/camera/camera.py. It
// publishes one stream, answers each viewer's offer with a peer connection of its own
// (viewer-connection.js), with the microphone's track beside the picture when the stream has
// sound (audio-pipeline.js), feeds the relay while anyone reads it (relay-sender.js), reports
// `camera-stats` every 2 s, is the stream's chat hub and keeps its talk floor
// (talk-floor.js), playing the speaker's voice in its tab (talk-receiver.js). Viewers
// cannot tell it from a Python camera; the difference is the cost: each P2P viewer is one
// more encoder in this browser, so past `maxViewers` a new viewer is hung up on and falls
// back to the relay.

import { ErrorCode, MessageType, PROTOCOL_VERSION } from './protocol.js';
import { SignalingClient, SignalingEvent } from './signaling-client.js';
import { ViewerConnection } from './viewer-connection.js';
import { RelaySender } from './relay-sender.js';
import { ChatHub } from './chat-hub.js';
import { TalkFloor } from './talk-floor.js';

const STATS_REPORT_MS = 2000;
/** A name held by our own previous connection (a reload, a network blip): try again. */
const RETRY_TAKEN_MS = 1000;

/** The values of CameraPeer.state. */
export const CameraState = Object.freeze({
  CONNECTING: 'connecting', // to the signaling server
  LIVE: 'live', // published
  RECONNECTING: 'reconnecting', // the server connection was lost: publishing again when it is back
  ERROR: 'error', // refused (token, name): not retrying
  STOPPED: 'stopped',
});

export class CameraPeer {
  state = CameraState.CONNECTING;
  /** {peer_id: {name, peer: ViewerConnection|null}}: every viewer the server told of. */
  viewers = new Map();
  peerId = null;

  #stream;
  #track;
  #audio;
  #layer;
  #name;
  #token;
  #maxViewers;
  #signaling = new SignalingClient();
  #relay;
  #hub;
  #floor;
  #talk;
  #iceServers = [];
  #everPublished = false;
  #statsTimer = null;
  #lastStats = null;
  #onState;
  #onChat;
  #onViewers;
  #onTalk;

  /**
   * stream: the name; track: the video track; video: its preview (relay-sender.js samples it
   * where it cannot read the track); audio: the microphone's AudioPipeline, or null for a
   * stream without sound; layer: {name, width, height, fps}; name: the camera's display
   * name; token: a publish token or ''; talk: the page's TalkReceiver, which plays what
   * viewers say. onState(state, text), onChat(stamped message), onViewers() and onTalk()
   * (the floor changed) keep the page up to date.
   */
  constructor({
    stream, track, video, audio = null, layer, name, token, maxViewers, talk, onState, onChat, onViewers,
    onTalk = () => {},
  }) {
    this.#stream = stream;
    this.#track = track;
    this.#audio = audio;
    this.#layer = layer;
    this.#name = name;
    this.#token = token;
    this.#maxViewers = maxViewers;
    this.#onState = onState;
    this.#onChat = onChat;
    this.#onViewers = onViewers;
    this.#onTalk = onTalk;
    this.#hub = new ChatHub({ cameraName: name });
    this.#talk = talk;
    this.#floor = new TalkFloor({
      send: (message) => this.#signaling.send(message), nameOf: (id) => this.#hub.nameOf(id),
    });
    this.#floor.onChange.push((holder, speaker) => this.#talkChanged(holder, speaker));
    this.#relay = new RelaySender({ track, video, layer, signaling: this.#signaling, audio });
    this.#signaling
      .on(SignalingEvent.CLOSE, () => this.#serverLost())
      .on(SignalingEvent.BINARY, (data) => this.#talk.relayFrame(data)) // the speaker's talk frames
      .on(MessageType.WELCOME, (m) => this.#welcomed(m))
      .on(MessageType.PUBLISHED, (m) => this.#published(m))
      .on(MessageType.ICE_SERVERS, (m) => { this.#iceServers = m.ice_servers; })
      .on(MessageType.ERROR, (m) => this.#refused(m))
      .on(MessageType.STREAM_ENDED, (m) => this.#fail(`the server ended the stream: ${m.reason}`))
      .on(MessageType.VIEWER_JOINED, (m) => this.#viewerJoined(m))
      .on(MessageType.VIEWER_RENAMED, (m) => this.#viewerRenamed(m))
      .on(MessageType.VIEWER_LEFT, (m) => this.#viewerLeft(m.peer_id))
      .on(MessageType.VIEWER_QUALITY, () => {}) // one layer: nothing to move
      .on(MessageType.OFFER, (m) => this.#offer(m))
      .on(MessageType.CANDIDATE, (m) => this.#peerOf(m)?.handleSignal(m))
      .on(MessageType.HANGUP, (m) => this.#peerOf(m)?.handleSignal(m))
      .on(MessageType.CHAT_SEND, (m) => this.#chatLine(m.from, m.text, null))
      .on(MessageType.TALK_START, (m) => this.#floor.ask(m.from))
      .on(MessageType.TALK_STOP, (m) => this.#floor.release(m.from))
      .on(MessageType.RELAY_FRAMES, (m) => this.#relay.setDemand(m))
      .on(MessageType.RELAY_KEYFRAME, (m) => this.#relay.keyframe(m.urgent));
  }

  get relay() {
    return this.#relay;
  }

  get layer() {
    return this.#layer;
  }

  /** The stream's sound (an AudioPipeline), or null. */
  get audio() {
    return this.#audio;
  }

  get maxViewers() {
    return this.#maxViewers;
  }

  /** The latest camera-stats report (CameraStats), or null before the first. */
  get lastStats() {
    return this.#lastStats;
  }

  start() {
    this.#setState(CameraState.CONNECTING, 'connecting to the server…');
    this.#signaling.connect();
    this.#statsTimer = setInterval(() => this.#reportStats(), STATS_REPORT_MS);
  }

  /** Stop publishing: viewers get stream-ended (the server sees the socket close) at once. */
  stop() {
    if (this.state === CameraState.STOPPED) return;
    clearInterval(this.#statsTimer);
    this.#dropViewers();
    this.#relay.stop();
    this.#signaling.close();
    this.#setState(CameraState.STOPPED, 'not live');
  }

  /** The camera's own chat line; returns a refusal's reason, or null when it went out. */
  say(text) {
    return this.#chatLine(null, text, null);
  }

  /** The chat so far (the hub's history). */
  history() {
    return this.#hub.history();
  }

  /** Talk back: {open (the server lets viewers talk), talking (the speaker's name, or null), since}. */
  get talking() {
    const floor = this.#floor;
    return { open: floor.open, talking: floor.holder === null ? null : floor.holderName, since: floor.since };
  }

  /** The operator takes the floor: the turn under way ends (the speaker is told). */
  endTalk() {
    this.#floor.take();
  }

  #setState(state, text) {
    this.state = state;
    this.#onState(state, text);
  }

  #welcomed({ ice_servers: iceServers }) {
    this.#iceServers = iceServers;
    const { width, height, fps } = this.#layer;
    this.#signaling.send({
      type: MessageType.PUBLISH,
      stream: this.#stream,
      name: this.#name,
      token: this.#token,
      info: {
        width, height, fps, codec: 'vp8', layers: [{ ...this.#layer }], jpeg_quality: 80,
        ...(this.#audio !== null ? { audio: this.#audio.info } : {}),
      },
      protocol: PROTOCOL_VERSION,
    });
  }

  #published({ ice_servers: iceServers, talk = false, talk_max: talkMax = 60 }) {
    this.#everPublished = true;
    this.#floor.open = talk;
    this.#floor.talkMax = talkMax;
    if (iceServers?.length) this.#iceServers = iceServers; // TURN credentials come only now
    const { width, height, fps } = this.#layer;
    this.#setState(CameraState.LIVE, `live: ${width}x${height}@${fps}`);
  }

  #refused({ code, reason }) {
    if (this.state === CameraState.LIVE) {
      console.warn(`peercam: the server refused a message: ${code}: ${reason}`);
    } else if (code === ErrorCode.STREAM_TAKEN && this.#everPublished) {
      // Our own old connection may still hold the name for a moment.
      setTimeout(() => this.#welcomed({ ice_servers: this.#iceServers }), RETRY_TAKEN_MS);
    } else {
      this.#fail(reason, code);
    }
  }

  /** Publishing cannot go on: say why and stop trying. */
  #fail(reason, code = null) {
    this.stop();
    const hint = code === ErrorCode.BAD_TOKEN ? ' (enter a publish token)' : '';
    this.#setState(CameraState.ERROR, `${reason}${hint}`);
  }

  #serverLost() {
    if (this.state === CameraState.STOPPED || this.state === CameraState.ERROR) return;
    // Viewer ids belong to that connection: its viewers offer again when we are back.
    this.#dropViewers();
    this.#relay.stop();
    this.#setState(CameraState.RECONNECTING, 'lost the server, reconnecting…');
  }

  #dropViewers() {
    for (const { peer } of this.viewers.values()) peer?.close(null);
    this.viewers.clear();
    this.#floor.forget(); // the server dropped the floor with the old connection
    this.#hub.forgetEveryone();
    this.#onViewers();
  }

  #viewerJoined({ peer_id: id, name }) {
    this.viewers.set(id, { name, peer: this.viewers.get(id)?.peer ?? null });
    const history = this.#hub.join(id, name);
    // Through the server: a relay viewer has no data channel.
    if (history.length) this.#signaling.send({ type: MessageType.CHAT_HISTORY, to: id, messages: history });
    this.#onViewers();
  }

  #viewerRenamed({ peer_id: id, name }) {
    const viewer = this.viewers.get(id);
    if (viewer !== undefined) viewer.name = name;
    this.#hub.rename(id, name);
    this.#onViewers();
  }

  #viewerLeft(id) {
    this.#floor.release(id);
    this.viewers.get(id)?.peer?.close(null);
    this.viewers.delete(id);
    this.#hub.forget(id);
    this.#onViewers();
  }

  #peerOf(message) {
    return this.viewers.get(message.from)?.peer ?? null;
  }

  #offer(message) {
    const id = message.from;
    let viewer = this.viewers.get(id);
    if (viewer === undefined) {
      viewer = { name: '', peer: null };
      this.viewers.set(id, viewer);
    }
    viewer.peer?.close(null); // a new offer starts over
    viewer.peer = null;
    const serving = [...this.viewers.values()].filter((v) => v.peer !== null).length;
    if (serving >= this.#maxViewers) {
      this.#signaling.send({
        type: MessageType.HANGUP, to: id,
        reason: `this browser camera serves at most ${this.#maxViewers} viewers peer to peer `
          + '(each is one more encoder in its browser): watch through the relay',
      });
      this.#onViewers();
      return;
    }
    const peer = new ViewerConnection({
      viewerId: id,
      track: this.#track,
      audioTrack: this.#audio?.track ?? null,
      layer: this.#layer,
      iceServers: this.#iceServers,
      signaling: this.#signaling,
      onChat: (from, text) => this.#chatFromChannel(from, text),
      onClosed: (closed) => {
        const current = this.viewers.get(closed.viewerId);
        if (current?.peer === closed) {
          current.peer = null;
          this.#talk.setTrack(closed.viewerId, null);
        }
        this.#onViewers();
      },
      talk: () => this.#floor.open,
      onTalkTrack: (from, sound) => {
        if (this.viewers.get(from.viewerId)?.peer === from) this.#talk.setTrack(from.viewerId, sound);
      },
    });
    viewer.peer = peer;
    peer.handleSignal(message);
    this.#onViewers();
  }

  /** The floor changed: the chat records it (as the Python camera's does), the tab plays the new turn. */
  #talkChanged(holder, speaker) {
    this.#talk.floorChanged(holder, speaker);
    this.#share(this.#hub.note(holder !== null ? `${speaker} is talking` : `${speaker} stopped talking`));
    this.#onTalk();
  }

  #chatFromChannel(peer, text) {
    if (text === null) { // the channel opened: the newcomer gets the history
      const messages = this.#hub.history();
      if (messages.length) peer.sendChat({ type: MessageType.CHAT_HISTORY, messages });
      return;
    }
    this.#chatLine(peer.viewerId, text, peer);
  }

  /**
   * Stamp a line from a viewer (`viewerId`; null: this camera) and share it on every data
   * channel and through the server. A refusal goes back the way the line came (`peer`'s
   * data channel, or the server); returns its reason, or null when the line went out.
   */
  #chatLine(viewerId, text, peer) {
    const { message, notice } = this.#hub.receive(viewerId, String(text ?? ''));
    if (notice !== undefined) {
      if (peer !== null) peer.sendChat(notice);
      else if (viewerId !== null) this.#signaling.send({ ...notice, to: viewerId });
      return notice.reason;
    }
    this.#share(message);
    return null;
  }

  /** A stamped line to everyone: every data channel, the server (for relay viewers), this page. */
  #share(message) {
    for (const { peer: other } of this.viewers.values()) other?.sendChat(message);
    this.#signaling.send(message);
    this.#onChat(message);
  }

  async #reportStats() {
    const peers = [...this.viewers.values()].map((v) => v.peer).filter((peer) => peer !== null);
    const results = await Promise.all(peers.map((peer) => peer.stats()));
    const relay = this.#relay.counts;
    const encode = results.reduce((sum, { encode: e }) => ({
      frames: sum.frames + e.frames, seconds: sum.seconds + e.seconds, keyframes: sum.keyframes + e.keyframes,
    }), { frames: 0, seconds: 0, keyframes: 0 });
    const relayed = relay.jpeg + relay.encoded;
    const relayFps = this.#lastStats === null ? 0
      : (relayed - this.#lastStats.relay_frames) / (STATS_REPORT_MS / 1000);
    const encodeMs = encode.frames ? (encode.seconds * 1000) / encode.frames : relay.encodeMs;
    const stats = {
      // The rate viewers get: the fastest of the peer connections and the relay.
      fps: round(Math.max(0, relayFps, ...results.map((r) => r.fps)), 2),
      encode_ms: round(Math.min(encodeMs, 3_600_000), 2),
      frames_encoded: encode.frames + relay.encoded,
      keyframes: encode.keyframes + relay.keyframes,
      relay_frames: relayed,
      viewers: results.map((r) => r.report),
      layers: [{
        name: this.#layer.name,
        active: peers.length > 0 || this.#relay.active,
        viewers: peers.length,
        frames_encoded: encode.frames + relay.encoded,
        encode_ms: round(encodeMs, 2),
        keyframes: encode.keyframes + relay.keyframes,
        jpeg_qualities: this.#relay.jpegQualities,
        relay_encoded: this.#relay.encoding,
      }],
    };
    if (this.#audio !== null) {
      stats.audio = this.#audio.stats(peers.filter((peer) => peer.sendsSound).length);
    }
    this.#lastStats = stats;
    if (this.state === CameraState.LIVE) this.#signaling.send({ type: MessageType.CAMERA_STATS, stats });
    this.#onViewers();
  }
}

function round(value, digits) {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
