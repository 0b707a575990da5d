// The player page, /view/NAME[?mode=auto|p2p|relay][&quality=auto|LAYER][&jpeg_quality=50-95]
// [&relay_format=auto|encoded|jpeg][&name=NAME]: follows one stream through the signaling
// server and plays it whenever its camera is live, recovering from camera and server
// restarts, with a chat beside it. The viewer picks the quality layer (or auto: follow the
// network) and, on a JPEG relay, its JPEG quality. The relay carries the camera's encoded
// frames where WebCodecs decodes them, else JPEG (relay-format.js); relay_format forces one.
// The camera's sound plays through the page's AudioOutput, muted until the viewer turns it
// on once (sound-controls.js), on P2P and on the relay where the page can decode it.
// Where the server lets this viewer, it talks back through the camera's speaker with a
// push-to-talk button (talk.js), and the page shows who is talking.
// Below, the stream's recordings on the server (recordings.js). For tests,
// ?connect_timeout=S and ?p2p_retry=S tune auto mode.

import { ErrorCode, MessageType, PROTOCOL_VERSION } from './protocol.js';
import { SignalingClient, SignalingEvent } from './signaling-client.js';
import { earlySocket } from './early-socket.js';
import { takeEarlySession, watchName } from './early-watch.js';
import { pageRequest, secondsParam, watchMessage, withQuality } from './page-request.js';
import { AudioOutput } from './audio-output.js';
import { AudioStats } from './audio-stats.js';
import { Delivery, DeliveryMode } from './delivery.js';
import { FrameStats } from './frame-stats.js';
import { StatsPanel } from './stats-panel.js';
import { viewerStats } from './viewer-stats.js';
import { readStamp } from './testpattern.js';
import { Chat } from './chat.js';
import { ChatView } from './chat-view.js';
import { LayerTracker, Path, describeMove, frameStep, layersOf } from './layers.js';
import { QualityMenu } from './quality-menu.js';
import { Recordings } from './recordings.js';
import { RelayFormat, prepareRelayFormats } from './relay-format.js';
import { SoundControls, SoundState, loadSoundChoice } from './sound-controls.js';
import { Talk } from './talk.js';
import { loadTimeline } from './load-timeline.js';

loadTimeline.mark('script-run');

/** The Python viewer's --p2p-retry default. */
const P2P_RETRY_S = 30;

/** How often the stats panel updates. */
const STATS_PANEL_MS = 1000;
/** How often the page reports its stats to the server, for /api/streams. */
const STATS_REPORT_MS = 2000;
/** How often the level meter moves. */
const LEVEL_METER_MS = 100;
/** A camera's AudioInfo where it leaves fields out (peercam/shared/protocol.py). */
const AUDIO_DEFAULTS = Object.freeze({ codec: 'opus', sample_rate: 48000, channels: 1, bitrate: 48000 });

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
  stats = new FrameStats();
  audioStats = new AudioStats();

  #streamName;
  #view;
  #statsPanel;
  #signaling = new SignalingClient(undefined, { early: earlySocket });
  #delivery;
  #chat;
  #talk;
  #networkStats = null; // the P2P session's latest WebRTC figures
  #stampCanvas = document.createElement('canvas');
  #iceServers = [];
  #iceTransportPolicy;
  #token;
  #cameraId = null; // the camera's peer id while the stream is live
  #info = null; // the live camera's StreamInfo: its size, rate and layers
  #watchingNow = false; // the server said `watching` on this connection
  #quality; // what the viewer asks for: AUTO_QUALITY or a layer's name
  #jpegQuality; // on a JPEG relay, or null: the camera's, adapted to the network
  #qualityMenu;
  #layers;
  #pathShown = null; // the path the status line names, e.g. 'relay (JPEG)'
  #output; // the page's AudioOutput
  #soundControls;
  #soundOn; // the viewer's choice: sound on (remembered for the site)
  #soundDue = false; // the live camera sends sound: the output starts with the first picture

  constructor(streamName, {
    mode, relayFormat, quality, jpegQuality, connectTimeoutMs, p2pRetryMs, iceTransportPolicy, token,
  }, { view, statsPanel, qualityMenu, chatView, name, soundChoice }) {
    this.#streamName = streamName;
    this.#iceTransportPolicy = iceTransportPolicy;
    this.#token = token;
    this.#view = view;
    this.#statsPanel = statsPanel;
    this.#quality = quality;
    this.#jpegQuality = jpegQuality;
    this.#qualityMenu = qualityMenu;
    this.#soundOn = soundChoice.on;
    this.#output = new AudioOutput({
      muted: !soundChoice.on,
      volume: soundChoice.volume,
      onPlayed: (channels, heardTimeMs) => this.audioStats.played(channels, heardTimeMs),
    });
    this.#soundControls = new SoundControls({
      onToggle: () => this.#soundToggled(),
      onVolume: (volume) => {
        this.#output.volume = volume;
      },
    });
    this.#delivery = new Delivery({
      mode,
      relayFormat,
      signaling: this.#signaling,
      video: view.video,
      canvas: view.relayCanvas,
      sound: this.#output,
      connectTimeoutMs,
      p2pRetryMs,
      onFrame: (frame) => this.#frameArrived(frame),
      onSession: (transportMode) => this.#sessionStarted(transportMode),
      onSetback: (text) => this.#setState(State.NEGOTIATING, text),
      onChat: (message) => this.#chat.receive(message),
      onSound: () => this.#showSound(),
      early: takeEarlySession(),
    });
    this.#talk = new Talk({ signaling: this.#signaling, delivery: this.#delivery });
    this.#chat = new Chat({
      view: chatView,
      name,
      transmit: (message) => this.#sendChat(message),
      // Before the page watches, its watch carries the name; after, a rename does.
      rename: (picked) => this.#signaling.send({ type: MessageType.RENAME, name: picked }),
    });
    view.showDelivery(mode, this.#delivery.mode);
    this.#layers = new LayerTracker(this.#delivery.mode, (change) => this.#layerShown(change));
    qualityMenu.show([], quality);
    this.#signaling
      .on(SignalingEvent.OPEN, () => loadTimeline.mark('ws-open', earlySocket.openedAt ?? performance.now()))
      .on(SignalingEvent.CLOSE, () => this.#serverLost())
      .on(MessageType.WELCOME, (m) => this.#welcomed(m))
      .on(MessageType.ICE_SERVERS, (m) => this.#iceServersRenewed(m))
      .on(MessageType.WATCHING, (m) => this.#watching(m))
      .on(MessageType.STREAM_LIVE, (m) => this.#streamLive(m))
      .on(MessageType.STREAM_ENDED, () => this.#streamEnded())
      .on(MessageType.ANSWER, (m) => this.#delivery.handleSignal(m))
      .on(MessageType.CANDIDATE, (m) => this.#delivery.handleSignal(m))
      .on(MessageType.HANGUP, (m) => this.#delivery.handleSignal(m))
      .on(MessageType.CHAT, (m) => this.#chat.receive(m))
      .on(MessageType.CHAT_HISTORY, (m) => this.#chat.receive(m))
      .on(MessageType.CHAT_NOTICE, (m) => this.#chat.receive(m))
      .on(MessageType.LAYER, (m) => this.#layerChanged(m))
      .on(MessageType.TALKING, (m) => this.#talk.talking(m))
      .on(MessageType.TALK_REFUSED, (m) => this.#talk.refused(m))
      .on(MessageType.TALK_STOP, (m) => this.#talk.stopped(m))
      .on(MessageType.ERROR, (m) => this.#refused(m));
  }

  /** How frames arrive now: 'p2p' or 'relay'. */
  get mode() {
    return this.#delivery.mode;
  }

  get chat() {
    return this.#chat;
  }

  get talk() {
    return this.#talk;
  }

  start() {
    this.#setState(State.CONNECTING);
    this.#signaling.connect();
    setInterval(() => this.#sampleStats(), STATS_PANEL_MS);
    setInterval(() => this.#reportStats(), STATS_REPORT_MS);
    setInterval(() => this.#soundControls.showLevel(this.#output.level()), LEVEL_METER_MS);
    this.#showSound();
  }

  /**
   * The sound: {state (a SoundState, null before the camera is live), on (the viewer's
   * choice), running, muted, volume}.
   */
  soundSnapshot() {
    return {
      state: this.#soundState(),
      on: this.#soundOn,
      running: this.#output.running,
      muted: this.#output.muted,
      volume: this.#output.volume,
    };
  }

  /** What the page measures: its own frame counts, plus WebRTC's figures on P2P. */
  statsSnapshot() {
    const { frames, fps, width, height } = this.stats;
    // Just after a switch to the relay the last P2P figures linger: they no longer apply.
    const network = this.mode === DeliveryMode.P2P ? this.#networkStats : null;
    return {
      mode: this.mode,
      relayFormat: this.#delivery.relayFormat, // 'encoded' or 'jpeg' on the relay, else null
      frames,
      fps,
      width,
      height,
      kbps: network?.kbps ?? this.stats.kbps,
      latencyMs: this.stats.latencyMs(),
      dropped: this.stats.numbered ? this.stats.dropped : null,
      packetsLost: network?.packetsLost ?? null,
      jitterMs: network?.jitterMs ?? null,
      rttMs: network?.rttMs ?? null,
      freezes: network?.freezes ?? null,
      decoderDrops: network?.decoderDrops ?? null,
      decoder: network?.decoder ?? null,
      layer: this.#layers.current, // {layer, width, height, reason, jpegQuality} or null
      layerSwitches: this.#layers.switches,
      // The sound's figures (AudioStats.snapshot) while sound comes, else null.
      audio: [SoundState.ON, SoundState.MUTED].includes(this.#soundState())
        ? { ...this.audioStats.snapshot(), channels: this.#info.audio.channels } : null,
    };
  }

  /** The layer of the path in use: {layer, width, height, reason, jpegQuality, switches}. */
  layerSnapshot() {
    const unknown = { layer: null, width: 0, height: 0, reason: '', jpegQuality: null };
    return { ...(this.#layers.current ?? unknown), switches: this.#layers.switches };
  }

  /** The viewer picked another DeliveryMode. */
  choose(mode) {
    this.#delivery.choose(mode);
    if (this.#cameraId !== null) this.#setState(State.NEGOTIATING);
  }

  /** The viewer picked another quality (AUTO_QUALITY or a layer's name): the server and camera move now. */
  chooseQuality(quality) {
    this.#quality = quality;
    // Before `watching`, the watch on its way carries it (and every later watch does).
    if (this.#watchingNow) {
      this.#signaling.send(withQuality({ type: MessageType.QUALITY }, this.#quality, this.#jpegQuality));
    }
  }

  #welcomed({ peer_id: peerId, ice_servers: iceServers, protocol }) {
    loadTimeline.mark('welcome');
    if (protocol !== PROTOCOL_VERSION) {
      console.warn(`peercam: server speaks protocol ${protocol}, this page ${PROTOCOL_VERSION}`);
    }
    this.#iceServers = iceServers;
    this.#watchingNow = false;
    this.#talk.welcomed(peerId);
    // On the early socket, early-watch.js sent it the moment it opened.
    if (!this.#signaling.onEarlySocket) this.#watch(this.#chat.name);
  }

  #watch(name) {
    this.#signaling.send(watchMessage({
      stream: this.#streamName, token: this.#token, quality: this.#quality, jpegQuality: this.#jpegQuality,
    }, name));
  }

  /** Fresh TURN credentials: the next peer connection uses them. */
  #iceServersRenewed({ ice_servers: iceServers }) {
    this.#iceServers = iceServers;
    this.#delivery.renewIceServers(iceServers);
  }

  #watching({ live, ice_servers: iceServers = [], talk = false, talk_reason: talkReason = '' }) {
    loadTimeline.mark('watching');
    // The full list: with auth on, TURN credentials come only now, not in the welcome.
    this.#iceServersRenewed({ ice_servers: iceServers });
    this.#watchingNow = true;
    this.#talk.watching(talk, talkReason);
    // When live, stream-live follows straight away and starts the session.
    if (!live) this.#setState(State.WAITING);
  }

  #streamLive({ camera_id: cameraId, info: announced }) {
    loadTimeline.mark('stream-live');
    const info = withAudioDefaults(announced);
    this.#cameraId = cameraId;
    this.#info = info;
    this.#layers.forget(); // a new camera says again what it sends
    this.#qualityMenu.show(layersOf(info), this.#quality);
    this.#chat.cameraLive(cameraId);
    this.#delivery.start({
      cameraId, iceServers: this.#iceServers, iceTransportPolicy: this.#iceTransportPolicy, codec: info.codec,
      audio: info.audio, talk: this.#talk.allowed,
    });
    // Where the browser lets it, sound runs from the first picture on (see #frameArrived).
    this.#soundDue = info.audio !== null;
    this.#setState(State.NEGOTIATING);
    this.#showSound();
  }

  #streamEnded() {
    this.#cameraId = null;
    this.#info = null;
    this.#layers.forget();
    this.#view.showLayerNote('');
    this.#chat.cameraGone();
    this.#delivery.stop();
    this.#talk.reset();
    this.#setState(State.WAITING);
  }

  #serverLost() {
    // A new connection gets a new peer id, so this session cannot carry on.
    this.#cameraId = null;
    this.#info = null;
    this.#layers.forget();
    this.#view.showLayerNote('');
    this.#chat.cameraGone();
    this.#delivery.reset();
    this.#talk.reset();
    this.#setState(State.RECONNECTING);
  }

  #refused({ code, reason }) {
    console.error(`peercam: server error ${code}: ${reason}`);
    if (code === ErrorCode.BAD_NAME) {
      // A name the server will not take (the camera's, say): chat says so. A refused watch
      // is sent again without a name, so the picture does not wait on a name.
      this.#chat.nameRefused(reason);
      if (!this.#watchingNow) this.#watch('');
      return;
    }
    // The picture is fine: some stray message was refused.
    if (this.state === State.PLAYING) return;
    // A candidate that raced the camera's departure: "waiting" already says it all.
    if (code === ErrorCode.NO_SUCH_STREAM && this.#cameraId === null) return;
    this.#setState(State.ERROR, `${reason} (${code})`);
  }

  async #sampleStats() {
    this.stats.tick();
    // A session closing under the read rejects: its figures are gone with it.
    this.#networkStats = await this.#delivery.networkStats().catch(() => null);
    this.audioStats.network(this.#networkStats?.audio ?? null);
    this.#showSound();
    this.#statsPanel.show(this.statsSnapshot());
  }

  /** The SoundState of the stream and path now; null before the camera is live. */
  #soundState() {
    if (this.#info === null) return null;
    if (!this.#info.audio) return SoundState.NONE;
    if (this.#delivery.carriesSound === false) return SoundState.UNAVAILABLE;
    return this.#output.running && !this.#output.muted ? SoundState.ON : SoundState.MUTED;
  }

  #showSound() {
    const state = this.#soundState();
    this.#soundControls.show(state, {
      volume: this.#output.volume,
      // The viewer chose sound, and the browser waits for a click before it plays any.
      waiting: state === SoundState.MUTED && this.#soundOn && !this.#output.running,
    });
  }

  /** The mute button: the choice is remembered for the site, and a click lets the browser play. */
  async #soundToggled() {
    this.#soundOn = this.#soundState() !== SoundState.ON;
    this.#soundControls.remember(this.#soundOn);
    this.#output.muted = !this.#soundOn;
    this.#showSound();
    if (this.#soundOn) {
      await this.#output.resume();
      this.#showSound();
    }
  }

  #reportStats() {
    // Before video there is nothing to say, and before `watch` the server would refuse it.
    if (this.state !== State.PLAYING) return;
    this.#signaling.send({ type: MessageType.STATS, stats: viewerStats(this.statsSnapshot()) });
  }

  /** The data channel when it is open, else the server, which routes it to the camera. */
  #sendChat(message) {
    if (this.#delivery.sendChat(message)) return 'data-channel';
    return this.#signaling.send(message) ? 'signaling' : null;
  }

  #sessionStarted(transportMode) {
    this.stats.resetContinuity(); // each session numbers its frames its own way
    this.audioStats.sessionStarted(); // and counts its sound's packets
    this.#showSound();
    // A new relay reader is told its layer at once. (A P2P session taking over from the
    // relay may have been told before its first frame: that one stays.)
    if (transportMode === Path.RELAY) this.#layers.forget(Path.RELAY);
    this.#layers.use(transportMode);
    this.#view.showDelivery(this.#delivery.chosen, transportMode);
    if (this.state === State.PLAYING) this.#setState(State.PLAYING); // names the mode in use
  }

  /** A `layer` message: the camera's says what P2P carries, the server's what the relay does. */
  #layerChanged(message) {
    // From an earlier camera of this stream: not what this one sends.
    if (message.from && message.from !== this.#cameraId) return;
    this.#layers.received(message);
  }

  /** The layer shown changed: by a `layer` message (`announced`), or as frames took another path. */
  #layerShown({ previous, current, announced }) {
    // A layer at a lower frame rate takes every Nth frame: its numbers jump by N (P2P;
    // the relay numbers the frames it sends).
    const p2p = this.mode === DeliveryMode.P2P;
    this.stats.frameStep = p2p && current !== null ? frameStep(this.#info, current.layer) : 1;
    this.#view.showLayerNote(announced ? describeMove(previous, current) : '');
    if (this.state === State.PLAYING) this.#setState(State.PLAYING); // names the layer
  }

  /** The one path every transport reports decoded frames through. */
  #frameArrived({ source, width, height, count, timing, bytes }) {
    loadTimeline.mark('first-frame');
    this.#view.showPictureShape(width, height);
    timing ??= this.#timingFromPixels(source);
    this.stats.framesArrived({ count, width, height, timing, bytes });
    if (timing) {
      const now = Date.now();
      this.audioStats.picture(now, now - timing.latencyMs); // for the A/V offset
    }
    // The relay's format is known by its first frame: the status line names it from then on.
    if (this.state !== State.PLAYING || this.#pathShown !== this.#path()) this.#setState(State.PLAYING);
    if (this.#soundDue) {
      // Sound runs from here: heard if the viewer chose it, else muted, its meter moving and
      // the tone measured all the same. Not before: making the AudioContext takes the page's
      // one thread for ~10 ms, which the offer and the first picture need more.
      this.#soundDue = false;
      this.#output.resume().then(() => this.#showSound());
    }
  }

  /** The test pattern's stamp, when the picture carries one. */
  #timingFromPixels(source) {
    const stamp = readStamp(source, this.#stampCanvas);
    // The camera stamps its wall clock: this measures glass to glass on one machine.
    return stamp && { latencyMs: Date.now() - stamp.timeMs, sequence: stamp.frame };
  }

  /** How frames arrive, in words: 'p2p', 'relay (encoded, WebCodecs)', 'relay (JPEG)'. */
  #path() {
    switch (this.#delivery.relayFormat) {
      case RelayFormat.ENCODED: return `${this.mode} (encoded, WebCodecs)`;
      case RelayFormat.JPEG: return `${this.mode} (JPEG)`;
      default: return this.mode;
    }
  }

  #setState(state, detail) {
    this.state = state;
    this.#view.showState(state, detail ?? this.#describe(state));
  }

  #describe(state) {
    switch (state) {
      case State.CONNECTING: return 'connecting to the server…';
      case State.WAITING: return 'waiting for the camera';
      case State.NEGOTIATING: return `connecting to the camera (${this.mode})…`;
      case State.PLAYING: {
        const layer = this.#layers.current?.layer;
        this.#pathShown = this.#path();
        return `playing: ${this.#pathShown}${layer ? `, ${layer}` : ''}`;
      }
      case State.RECONNECTING: return 'server connection lost, reconnecting…';
      default: return state;
    }
  }
}

/** The page's elements: status line, mode picker, picture and on-screen message. */
class PlayerView {
  video = document.getElementById('video');
  relayCanvas = document.getElementById('relay-canvas');
  #status = document.getElementById('status');
  #layerNote = document.getElementById('layer-note');
  #modePicker = document.getElementById('mode');
  #screen = document.querySelector('.screen');
  #screenMessage = document.getElementById('screen-message');
  #pictureRatio = 4 / 3; // the stylesheet's, until a picture comes

  /** Call handler(mode) when the viewer picks a DeliveryMode. */
  onModePicked(handler) {
    this.#modePicker.addEventListener('change', () => handler(this.#modePicker.value));
  }

  /** The chosen DeliveryMode, and the picture of the transport mode in use. */
  showDelivery(chosen, transportMode) {
    this.#modePicker.value = chosen;
    // The canvas covers the video rather than the video being hidden: a P2P attempt in
    // the background keeps its picture ready underneath, so taking over shows no gap.
    this.relayCanvas.hidden = transportMode !== DeliveryMode.RELAY;
  }

  /** Why auto moved the picture to another layer ("720p -> 480p: 12% loss"); '' hides it. */
  showLayerNote(text) {
    this.#layerNote.textContent = text;
    this.#layerNote.hidden = text === '';
  }

  /**
   * Shape the screen like the picture, so that it fills it. The video and canvas keep
   * their picture's shape within it anyway (object-fit: contain), whatever size arrives.
   */
  showPictureShape(width, height) {
    if (!width || !height) return;
    const ratio = width / height;
    // Layers round their widths to even pixels: 854x480 is the shape of 1280x720.
    if (Math.abs(ratio - this.#pictureRatio) < 0.01 * this.#pictureRatio) return;
    this.#pictureRatio = ratio;
    this.#screen.style.aspectRatio = `${width} / ${height}`;
  }

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
}

/** The camera's StreamInfo with its `audio` whole (null: no sound): AudioInfo's defaults are not sent. */
function withAudioDefaults(info) {
  return { ...info, audio: info.audio ? { ...AUDIO_DEFAULTS, ...info.audio } : null };
}

/** The player's options from the page's query string. */
function optionsFromQuery(query) {
  const params = new URLSearchParams(query);
  const mode = params.get('mode');
  return {
    mode: Object.values(DeliveryMode).includes(mode) ? mode : DeliveryMode.AUTO,
    relayFormat: relayFormatParam(params),
    quality: pageRequest.quality,
    jpegQuality: pageRequest.jpegQuality,
    connectTimeoutMs: pageRequest.connectTimeoutMs,
    p2pRetryMs: secondsParam(params, 'p2p_retry', P2P_RETRY_S) * 1000,
    iceTransportPolicy: pageRequest.iceTransportPolicy,
    token: pageRequest.token,
  };
}

/** ?relay_format=auto|encoded|jpeg; anything else is ignored, and said so. */
function relayFormatParam(params) {
  const format = params.get('relay_format') ?? RelayFormat.AUTO;
  if (Object.values(RelayFormat).includes(format)) return format;
  console.warn(`peercam: ignoring ?relay_format=${format}: use auto, encoded or jpeg`);
  return RelayFormat.AUTO;
}

/** Keep a pick (mode, quality) in the URL, so a reload or a shared link keeps it too. */
function remember(name, value) {
  const url = new URL(location.href);
  url.searchParams.set(name, value);
  history.replaceState(null, '', url);
}

const streamName = pageRequest.stream;
const view = new PlayerView();
view.showStreamName(streamName);
const qualityMenu = new QualityMenu();
const options = optionsFromQuery(location.search);
const player = new Player(streamName, options, {
  view,
  statsPanel: new StatsPanel(),
  qualityMenu,
  chatView: new ChatView(),
  name: watchName,
  soundChoice: loadSoundChoice(),
});
view.onModePicked((mode) => {
  player.choose(mode);
  remember('mode', mode);
});
qualityMenu.onPicked((quality) => {
  player.chooseQuality(quality);
  remember('quality', quality);
});
prepareRelayFormats();
player.start();
new Recordings(streamName, options.token).start();

// For tests and the curious: window.peercam.state(), .stats() (.relayFormat: 'encoded' or
// 'jpeg' on the relay), .mode() ('p2p' or 'relay'),
// .layer() (the layer of the path in use: {layer, width, height, reason, jpegQuality,
// switches}; layer null before the first `layer` message),
// .latencies() (the last second's per-frame latencies, [{time, ms}], for bench/latency.py),
// .sound() ({state, on, running, muted, volume}; state a SoundState: 'none', 'unavailable',
// 'muted', 'on', or null before the camera is live), .beeps() (the test tone's beeps heard
// lately, [{captureTimeMs, heardTimeMs, latencyMs}], oldest first),
// .chat() ([{id, name, text}] as shown) and .sendChat(text) ('data-channel', 'signaling' or null),
// .talk() ({allowed, reason, talking: the speaker's name or null, sending, note}; see talk.js),
// .timeline() (this load's steps towards its first picture, {step: ms}; see load-timeline.js).
window.peercam = {
  state: () => player.state,
  stats: () => player.statsSnapshot(),
  layer: () => player.layerSnapshot(),
  latencies: () => player.stats.recentLatencies(),
  sound: () => player.soundSnapshot(),
  beeps: () => player.audioStats.recentBeeps(),
  mode: () => player.mode,
  chat: () => player.chat.messages(),
  sendChat: (text) => player.chat.send(text),
  talk: () => player.talk.snapshot(),
  timeline: () => loadTimeline.snapshot(),
};
