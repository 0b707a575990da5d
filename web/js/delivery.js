// How the picture gets here: which transport runs, and when to change it. The rules are
// the Python viewer's (peers/viewer/delivery.py: Delivery); tests/delivery_cases.json runs
// against both:
//   p2p    P2P only, offering again after each failure;
//   relay  the relay only;
//   auto   P2P, and the relay when P2P has no video within the connect timeout or
//          breaks; meanwhile P2P is tried again in the background every so often, and
//          takes over (the relay stops) once it shows its first frame.

import { P2PTransport } from './p2p-transport.js';
import { RelayTransport } from './relay-transport.js';

/** The modes a viewer can choose. */
export const DeliveryMode = Object.freeze({ AUTO: 'auto', P2P: 'p2p', RELAY: 'relay' });

/** Pause before trying again after a failed session, so a broken camera is not hammered. */
const RETRY_DELAY_MS = 1000;

const TRANSPORTS = { p2p: P2PTransport, relay: RelayTransport };

export class Delivery {
  #chosen;
  #transports; // the transport classes, by mode
  #current; // the transport mode in use: 'p2p' or 'relay'
  #elements; // {signaling, video, canvas, relayFormat, sound}, shared by every transport
  #connectTimeoutMs;
  #p2pRetryMs;
  #onFrame;
  #onSession;
  #onSetback;
  #onChat;
  #onSound;

  #early; // the first P2P session, started before the player loaded, until start() takes it or stop() ends it
  #camera = null; // {cameraId, iceServers, iceTransportPolicy, codec, audio, talk} while the camera is live
  #talkTrack = null; // the viewer's microphone while it talks back
  #transport = null; // delivers the picture on screen
  #p2pProbe = null; // auto, on the relay: a P2P session trying in the background
  #timer = null; // the next attempt after a failure

  /**
   * onFrame(frame): a frame from the transport in use (see p2p-transport.js);
   * onSession(mode): a new session of this transport mode delivers the picture from now on;
   * onSetback(text): a session failed and the next attempt is under way;
   * onChat(message): a chat message came on a P2P session's data channel;
   * onSound(): whether the transport in use carries sound (carriesSound) changed.
   * relayFormat is the RelayFormat the relay asks for (see relay-format.js); sound, the page's
   * AudioOutput (null: play no sound); transports, the transport classes by mode ({p2p,
   * relay}: the real ones unless a test gives others). early, the first P2P session when
   * early-watch.js started one before the player loaded ({transport, camera: what it was
   * started for, chats: the chat messages it had, failure: its reason, or null}): the first
   * start() carries it on where it serves (P2PTransport.serves), else it is stopped.
   */
  constructor({
    mode, relayFormat, signaling, video, canvas, sound = null, connectTimeoutMs, p2pRetryMs, onFrame,
    onSession, onSetback, onChat, onSound = () => {}, transports = TRANSPORTS, early = null,
  }) {
    this.#transports = transports;
    this.#early = early;
    this.#elements = { signaling, video, canvas, relayFormat, sound };
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#p2pRetryMs = p2pRetryMs;
    this.#onFrame = onFrame;
    this.#onSession = onSession;
    this.#onSetback = onSetback;
    this.#onChat = onChat;
    this.#onSound = onSound;
    this.#chosen = mode;
    this.#current = this.#firstTransportMode();
  }

  /** The chosen DeliveryMode. */
  get chosen() {
    return this.#chosen;
  }

  /** How frames arrive now (or will, once the camera is live): 'p2p' or 'relay'. */
  get mode() {
    return this.#current;
  }

  /** On the relay, the format its frames come in ('encoded', 'jpeg'); null elsewhere or before it is chosen. */
  get relayFormat() {
    return this.#current === DeliveryMode.RELAY ? (this.#transport?.format ?? null) : null;
  }

  /** Whether the camera's sound comes by the transport in use: true, false, or null (unknown; no sound). */
  get carriesSound() {
    return this.#transport?.carriesSound ?? null;
  }

  /** The camera is live: deliver its picture (and sound), staying on the relay if auto fell back to it. */
  start(camera) {
    const early = this.#early;
    this.#early = null;
    this.stop();
    this.#camera = camera;
    if (early !== null && this.#current === DeliveryMode.P2P && P2PTransport.serves(early.camera, camera)) {
      this.#carryOn(early);
      return;
    }
    early?.transport.stop();
    this.#use(this.#current);
    // A camera that came back may well be reachable: try at once, not in p2pRetryMs.
    if (this.#current === DeliveryMode.RELAY && this.#chosen === DeliveryMode.AUTO) this.#probeP2P();
  }

  /** New TURN credentials: sessions started from now on use them. */
  renewIceServers(iceServers) {
    if (this.#camera !== null) this.#camera = { ...this.#camera, iceServers };
  }

  /** The camera left: stop until start() is called again. */
  stop() {
    this.#early?.transport.stop();
    this.#early = null;
    clearTimeout(this.#timer);
    this.#transport?.stop();
    this.#p2pProbe?.stop();
    this.#transport = this.#p2pProbe = this.#camera = null;
  }

  /** Stop, and go back to the chosen mode's first transport (auto: P2P), as on page load. */
  reset() {
    this.stop();
    this.#current = this.#firstTransportMode();
  }

  /** The viewer picked another mode: switch now. */
  choose(mode) {
    const camera = this.#camera;
    this.#chosen = mode;
    this.reset();
    if (camera !== null) this.start(camera);
  }

  /** Talk back: send the viewer's microphone track (null: stop) by the transport in use, and by any that takes over. */
  talk(track) {
    this.#talkTrack = track;
    this.#transport?.talk(track);
  }

  /** Send a chat message on the session's data channel; false when it has none open. */
  sendChat(message) {
    return this.#transport?.sendChat(message) ?? false;
  }

  /** The session's network figures (see webrtc-stats.js), or null. */
  async networkStats() {
    return (await this.#transport?.networkStats()) ?? null;
  }

  handleSignal(message) {
    this.#transport?.handleSignal(message);
    this.#p2pProbe?.handleSignal(message);
  }

  #firstTransportMode() {
    return this.#chosen === DeliveryMode.RELAY ? DeliveryMode.RELAY : DeliveryMode.P2P;
  }

  #use(mode) {
    this.#current = mode;
    this.#transport = this.#newTransport(mode);
    this.#onSession(mode);
    this.#transport.start();
    if (this.#talkTrack !== null) this.#transport.talk(this.#talkTrack);
  }

  /** Carry on the early P2P session: what it held comes now, a failure as any session's. */
  #carryOn({ transport, chats, failure }) {
    this.#current = DeliveryMode.P2P;
    this.#transport = transport;
    this.#onSession(DeliveryMode.P2P);
    transport.attach({ sound: this.#elements.sound, ...this.#listeners(() => transport) });
    for (const message of chats) this.#onChat(message);
    if (failure !== null) this.#failed(transport, failure);
    else if (this.#talkTrack !== null) transport.talk(this.#talkTrack);
  }

  #probeP2P() {
    this.#p2pProbe = this.#newTransport(DeliveryMode.P2P);
    this.#p2pProbe.start();
  }

  #newTransport(mode) {
    const transport = new this.#transports[mode]({
      ...this.#elements, ...this.#camera, connectTimeoutMs: this.#connectTimeoutMs,
      ...this.#listeners(() => transport),
    });
    return transport;
  }

  /** What a transport tells this delivery; `transport()` names it (it is made after these). */
  #listeners(transport) {
    return {
      onFrame: (frame) => this.#frameFrom(transport(), frame),
      onFailure: (reason) => this.#failed(transport(), reason),
      onChat: this.#onChat,
      onSound: () => {
        if (transport() === this.#transport) this.#onSound();
      },
    };
  }

  #frameFrom(transport, frame) {
    if (transport === this.#p2pProbe) {
      // P2P works again, its video already under the canvas. The canvas keeps the
      // relay's last picture until onSession hides it, in this same task: no gap.
      this.#transport.stop();
      this.#transport = transport;
      this.#p2pProbe = null;
      this.#current = DeliveryMode.P2P;
      this.#onSession(DeliveryMode.P2P);
      if (this.#talkTrack !== null) transport.talk(this.#talkTrack);
    }
    this.#onFrame(frame);
  }

  #failed(transport, reason) {
    if (transport === this.#p2pProbe) {
      console.info(`peercam: p2p still failing (${reason}); staying on the relay`);
      this.#p2pProbe = null;
      this.#later(() => this.#probeP2P(), this.#p2pRetryMs);
      return;
    }
    this.#transport = null;
    if (this.#chosen === DeliveryMode.AUTO && transport.mode === DeliveryMode.P2P) {
      console.warn(`peercam: p2p failed (${reason}); switching to the relay`);
      this.#use(DeliveryMode.RELAY);
      this.#later(() => this.#probeP2P(), this.#p2pRetryMs);
      this.#onSetback(`P2P failed (${reason}), switching to the relay…`);
    } else {
      console.warn(`peercam: ${transport.mode} session failed (${reason}); retrying`);
      this.#later(() => this.#use(transport.mode), RETRY_DELAY_MS);
      this.#onSetback('connection to the camera failed, retrying…');
    }
  }

  #later(attempt, delayMs) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(attempt, delayMs);
  }
}
