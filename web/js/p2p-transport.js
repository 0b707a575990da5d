// The peer-to-peer transport: one RTCPeerConnection to the stream's camera.
//
// Every transport has the same shape, so the player can switch between them:
//   new Transport({signaling, iceServers, iceTransportPolicy, cameraId, codec, audio, talk,
//                  sound, video, canvas, relayFormat, connectTimeoutMs, onFrame, onFailure,
//                  onChat, onSound})
//                    each takes the fields it needs; `audio` is the camera's AudioInfo (null:
//                    it sends no sound), `talk` whether this viewer may talk back, and
//                    `sound` the page's AudioOutput, which the transport plays the sound
//                    through once its pictures show
//   .mode            short name ('p2p', 'relay'), shown in the status line and in stats()
//   .start()         begin; decoded frames are reported as onFrame({source, width, height, count}):
//                    `source` shows the newest, `count` says how many were decoded since the
//                    last report. A transport that knows them adds `timing: {latencyMs, sequence,
//                    series}` (else the player reads the test pattern's stamp from `source`; see
//                    FrameStats.framesArrived) and `bytes`, received since the last report.
//   .stop()          tear down; no callback fires afterwards
//   .handleSignal(m) an answer, candidate or hangup the camera sent
//   .sendChat(m)     send a chat message on the transport's own channel to the camera;
//                    false when it has none open (then it goes through the server)
//   .networkStats()  a promise of the transport's network figures (see webrtc-stats.js),
//                    or of null when it has none; `audio` in them: the sound's
//   .carriesSound    true when sound comes this way, false when the camera's cannot (the
//                    relay without WebCodecs), null while that is not known (or no sound)
//   .talk(track)     send the viewer's microphone track to the camera (null: stop), for
//                    talk back while this page holds the floor
// onFailure(reason) fires at most once, when the session cannot go on; onChat(m) hands
// over each chat message that came on the transport's own channel; onSound() fires when
// carriesSound changes after start().
//
// A P2P session may be started by one part of the page and carried on by another:
// early-watch.js starts the first before the player has loaded, and the player's Delivery
// takes it over with attach() (see P2PTransport.serves).

import { MessageType } from './protocol.js';
import { WebRtcStatsReader } from './webrtc-stats.js';
import { loadTimeline } from './load-timeline.js';

/** How long a peer connection made ahead (prepareOffer) waits for its session; then it is closed. */
const PREPARED_MAX_MS = 10_000;

/**
 * The peer connection made ahead, or null: {pc, talkSender, chatChannel, iceTransportPolicy,
 * offer (a promise of it), candidates, timer} and, once its ICE servers are set,
 * {settings, offered (its setLocalDescription)}.
 */
let prepared = null;

/**
 * Make the first session's peer connection and its offer now, ahead of the camera going
 * live (early-watch.js does, as the page starts; the welcome's ICE servers then go on it
 * with preparedIceServers): the offer then goes out the moment stream-live comes, instead
 * of after the browser's round trips to make it, which queue behind everything else the
 * page does as it starts. It has an audio section (the camera's sound, talk back): a
 * session that wants none, or other ICE settings (TURN credentials that came with
 * `watching`), makes its own, and this one is closed.
 */
export function prepareOffer(iceTransportPolicy = 'all') {
  dropPrepared();
  const made = peerConnection({ iceServers: [], iceTransportPolicy, audio: true });
  const candidates = [];
  made.pc.onicecandidate = (event) => candidates.push(event.candidate);
  const offer = made.pc.createOffer();
  offer.catch(() => {}); // the session that takes it hears of a failure
  prepared = {
    ...made, iceTransportPolicy, offer, candidates, settings: null, offered: null,
    timer: setTimeout(dropPrepared, PREPARED_MAX_MS),
  };
}

/** The ICE servers of the welcome for the prepared connection: set, and its offer with them (gathering starts). */
export function preparedIceServers(iceServers) {
  if (prepared === null || prepared.offered !== null) return;
  const { pc, offer, iceTransportPolicy } = prepared;
  // Before setLocalDescription, so that gathering uses them.
  pc.setConfiguration({ iceServers, iceTransportPolicy });
  prepared.settings = settingsKey(iceServers, iceTransportPolicy);
  prepared.offered = offer.then((made) => pc.setLocalDescription(made));
  prepared.offered.catch(() => {});
}

/** The prepared peer connection if it fits these settings, else null (and it is closed). */
function takePrepared(settings, audio) {
  const taken = prepared;
  prepared = null;
  if (taken === null) return null;
  clearTimeout(taken.timer);
  if (taken.offered !== null && taken.settings === settings && audio) return taken;
  taken.pc.close();
  return null;
}

function dropPrepared() {
  takePrepared(null, false);
}

function settingsKey(iceServers, iceTransportPolicy) {
  return JSON.stringify({ iceServers, iceTransportPolicy });
}

/** A peer connection with what every offer to a camera has: {pc, talkSender (null: no audio), chatChannel}. */
function peerConnection({ iceServers, iceTransportPolicy, audio }) {
  // Only the servers the signaling server handed out: never a default public STUN.
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
  pc.addTransceiver('video', { direction: 'recvonly' });
  // The camera answers an audio section with its Opus track (an offer without one gets none).
  // Sendrecv, with no track until this page talks back: the microphone then goes on it by
  // replaceTrack, with no new offer. A camera that takes no talk answers sendonly.
  const talkSender = audio ? pc.addTransceiver('audio', { direction: 'sendrecv' }).sender : null;
  // The camera expects the "chat" channel in every offer (see peercam/shared/protocol.py).
  const chatChannel = pc.createDataChannel('chat');
  return { pc, talkSender, chatChannel };
}

export class P2PTransport {
  mode = 'p2p';

  /**
   * Whether a session started for `started` serves `camera` too ({cameraId, iceServers,
   * iceTransportPolicy, audio, talk}, as the transports take them): the same camera and ICE
   * settings, and an audio section where `camera` wants one (sound, or talk back).
   */
  static serves(started, camera) {
    const wantsAudio = ({ audio, talk }) => audio !== null || talk;
    const settings = ({ iceServers, iceTransportPolicy }) => settingsKey(iceServers, iceTransportPolicy);
    return started.cameraId === camera.cameraId && settings(started) === settings(camera)
      && (wantsAudio(started) || !wantsAudio(camera));
  }

  #signaling;
  #iceServers;
  #iceTransportPolicy; // WebRTC's 'relay' policy: TURN candidates only (?ice=turn)
  #cameraId;
  #hasSound; // the camera sends sound
  #sound; // the page's AudioOutput when the camera sends sound, else null
  #mayTalk;
  #video;
  #connectTimeoutMs;
  #onFrame;
  #onFailure;
  #onChat;

  #pc = null;
  #chatChannel = null;
  #statsReader = null;
  #stopped = false;
  #connectTimer = null;
  #frameCallback = null;
  #stream = new MediaStream(); // what the <video> plays: the picture, and the sound (muted there)
  #soundTrack = null;
  #talkSender = null; // the audio section's sender: the microphone while this page talks
  #stopSound = null; // while the sound plays through the page's output
  #offerSent = false;
  #localCandidates = []; // held until the offer has gone out
  #remoteCandidates = []; // held until the answer is applied

  /** A session with no video after `connectTimeoutMs` is stuck: it fails, and the player decides. */
  constructor({
    signaling, iceServers, iceTransportPolicy = 'all', cameraId, audio = null, talk = false, sound = null,
    video, connectTimeoutMs, onFrame, onFailure, onChat,
  }) {
    this.#signaling = signaling;
    this.#iceServers = iceServers;
    this.#iceTransportPolicy = iceTransportPolicy;
    this.#cameraId = cameraId;
    this.#hasSound = audio !== null;
    this.#sound = this.#hasSound ? sound : null;
    this.#mayTalk = talk;
    this.#video = video;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#onFrame = onFrame;
    this.#onFailure = onFailure;
    this.#onChat = onChat;
  }

  start() {
    const settings = { iceServers: this.#iceServers, iceTransportPolicy: this.#iceTransportPolicy };
    const audio = this.#hasSound || this.#mayTalk;
    const taken = takePrepared(settingsKey(settings.iceServers, settings.iceTransportPolicy), audio);
    const { pc, talkSender, chatChannel } = taken ?? peerConnection({ ...settings, audio });
    this.#pc = pc;
    this.#talkSender = talkSender;
    this.#chatChannel = chatChannel;
    this.#chatChannel.onmessage = (event) => this.#chatArrived(event.data);
    this.#statsReader = new WebRtcStatsReader(pc);
    pc.onicecandidate = (event) => this.#sendLocalCandidate(event.candidate);
    pc.ontrack = (event) => this.#trackArrived(event.track);
    pc.onconnectionstatechange = () => this.#connectionStateChanged();
    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === 'connected') loadTimeline.mark('ice-connected');
    };
    this.#connectTimer = setTimeout(
      () => this.#fail(`no video after ${this.#connectTimeoutMs / 1000} s`),
      this.#connectTimeoutMs,
    );
    // Candidates the prepared connection found go out after the offer, as later ones do.
    for (const candidate of taken?.candidates ?? []) this.#sendLocalCandidate(candidate);
    this.#offer(taken?.offered).catch((error) => this.#fail('the page could not make an offer', { detail: error }));
  }

  /**
   * Carry on this running session for another part of the page: its frames, failure and
   * chat messages go to these from now on, and its sound to `sound` (the page's
   * AudioOutput) from the next picture on.
   */
  attach({ sound, onFrame, onFailure, onChat }) {
    this.#sound = this.#hasSound ? sound : null;
    this.#onFrame = onFrame;
    this.#onFailure = onFailure;
    this.#onChat = onChat;
  }

  /** Sound comes with the picture whenever the camera sends any. */
  get carriesSound() {
    return this.#sound !== null ? true : null;
  }

  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopSound?.();
    clearTimeout(this.#connectTimer);
    if (this.#frameCallback !== null) this.#video.cancelVideoFrameCallback(this.#frameCallback);
    this.#pc?.close();
    this.#video.srcObject = null;
  }

  talk(track) {
    if (this.#stopped || this.#talkSender === null) return;
    this.#talkSender.replaceTrack(track).catch((error) => console.warn('p2p: the microphone cannot go out:', error));
  }

  sendChat(message) {
    if (this.#stopped || this.#chatChannel?.readyState !== 'open') return false;
    this.#chatChannel.send(JSON.stringify(message));
    return true;
  }

  async networkStats() {
    if (this.#stopped || this.#statsReader === null) return null;
    return this.#statsReader.read();
  }

  handleSignal(message) {
    // Late messages from an earlier camera of this stream are not for this session.
    if (this.#stopped || message.from !== this.#cameraId) return;
    if (message.type === MessageType.ANSWER) {
      this.#applyAnswer(message.sdp).catch(
        (error) => this.#fail('the page could not use your answer', { detail: error }));
    } else if (message.type === MessageType.CANDIDATE) {
      if (this.#pc.remoteDescription) this.#addRemoteCandidate(message.candidate);
      else this.#remoteCandidates.push(message.candidate);
    } else if (message.type === MessageType.HANGUP) {
      this.#fail(`the camera hung up: ${message.reason}`, { tellCamera: false });
    }
  }

  /** Send the offer: the prepared one (`offered`, its setLocalDescription) or one made now. */
  async #offer(offered = null) {
    if (offered !== null) await offered;
    else await this.#pc.setLocalDescription(await this.#pc.createOffer());
    if (this.#stopped) return;
    // Viewer messages need no `to`: the server routes them to the stream's camera.
    this.#signaling.send({ type: MessageType.OFFER, sdp: this.#pc.localDescription.sdp });
    loadTimeline.mark('offer-sent');
    this.#offerSent = true;
    for (const message of this.#localCandidates.splice(0)) this.#signaling.send(message);
  }

  async #applyAnswer(sdp) {
    loadTimeline.mark('answer');
    await this.#pc.setRemoteDescription({ type: 'answer', sdp });
    for (const candidate of this.#remoteCandidates.splice(0)) this.#addRemoteCandidate(candidate);
  }

  #sendLocalCandidate(candidate) {
    // Trickle each candidate as it comes (null ends them): waiting for gathering to
    // complete can stall for seconds, or forever on TURN-only setups.
    const message = { type: MessageType.CANDIDATE, candidate: candidate ? candidate.toJSON() : null };
    if (this.#offerSent) this.#signaling.send(message);
    else this.#localCandidates.push(message);
  }

  #addRemoteCandidate(candidate) {
    // No candidate means the camera has sent them all.
    const added = candidate ? this.#pc.addIceCandidate(candidate) : this.#pc.addIceCandidate();
    added.catch((error) => console.warn('p2p: ignoring an unusable candidate:', error));
  }

  #chatArrived(data) {
    if (this.#stopped) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn('p2p: ignoring a chat channel message that is not JSON');
      return;
    }
    this.#onChat(message);
  }

  #connectionStateChanged() {
    if (this.#stopped) return;
    const state = this.#pc.connectionState;
    if (state === 'connected') loadTimeline.mark('connected');
    if (state === 'failed' || state === 'closed') this.#fail(`connection ${state}`);
  }

  #trackArrived(track) {
    if (this.#stopped) return;
    // Chromium pulls a remote track's sound only while a media element plays it: the
    // <video> does (muted: the page's AudioOutput is what is heard).
    this.#stream.addTrack(track);
    if (track.kind === 'audio') {
      // An audio section only for talk back: the camera sends no sound to play.
      if (this.#hasSound) this.#soundTrack = track;
      return;
    }
    track.addEventListener('unmute', () => loadTimeline.mark('first-packet'), { once: true });
    this.#video.srcObject = this.#stream;
    this.#watchFrames();
  }

  /**
   * Sound plays from the first picture on, not before: a P2P attempt in the background of
   * the relay is silent until it takes over, which its first picture does (see Delivery).
   */
  #startSound() {
    if (this.#sound === null || this.#soundTrack === null || this.#stopSound !== null) return;
    this.#stopSound = this.#sound.playTrack(this.#soundTrack);
  }

  #watchFrames(lastDecoded = 0) {
    this.#frameCallback = this.#video.requestVideoFrameCallback(() => {
      if (this.#stopped) return;
      clearTimeout(this.#connectTimer); // video flows: the session is up
      // Callbacks follow what the compositor shows, which may skip frames under
      // load; the decoder's own count (restarted with each srcObject) says how
      // many really arrived. It may run a frame ahead of the callbacks: count 0.
      const decoded = this.#video.getVideoPlaybackQuality().totalVideoFrames;
      const count = Math.max(0, decoded - lastDecoded);
      const { videoWidth: width, videoHeight: height } = this.#video;
      this.#onFrame({ source: this.#video, width, height, count });
      if (this.#stopped) return;
      this.#startSound(); // after the picture: the first one's output may start the AudioContext
      this.#watchFrames(decoded);
    });
  }

  /** The session ends; the camera hears `reason` (words), the console the browser's `detail`. */
  #fail(reason, { tellCamera = true, detail = null } = {}) {
    if (this.#stopped) return;
    this.stop();
    if (detail !== null) console.warn(`peercam: ${reason}:`, detail);
    // Let the camera free its side now rather than when its own timeout fires.
    if (tellCamera) this.#signaling.send({ type: MessageType.HANGUP, reason });
    this.#onFailure(reason);
  }
}
