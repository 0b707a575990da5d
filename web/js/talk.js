// Talk back: the player's push-to-talk button. Hold it to talk, or click it to talk until
// the next click. The first press asks for the microphone; the camera keeps the floor (one
// speaker at a time) and says who holds it with `talking`, which this page shows for
// everyone. Once the floor is this page's, Delivery sends the microphone the way the
// picture comes (P2P: the peer connection's audio sender; relay: Opus relay frames). The
// Python viewer's counterpart is `peercam view --talk` (peers/viewer/talker.py).

import { MessageType } from './protocol.js';

/** A press shorter than this is a click, which leaves the talk on until the next one. */
const HOLD_MS = 500;

/** Why the button is off outside a secure context (the server says its own reasons). */
const INSECURE = 'talking back needs HTTPS';

export class Talk {
  #signaling;
  #delivery;
  #button = document.getElementById('talk-button');
  #note = document.getElementById('talk-note');

  #peerId = null; // this page's, from the server's welcome
  #allowed = false;
  #reason = '';
  #talking = null; // {peerId, name}: who holds the floor, as the camera says
  #wanted = false; // the viewer asked for the floor, or holds it
  #sending = false; // the microphone goes to the camera
  #mic = null; // the microphone's track during a turn
  #said = ''; // the last refusal or end of turn
  #pressedAt = null; // performance.now() of the press the button still waits to see released
  #endOnRelease = false; // the press began while talking: its release ends the turn

  constructor({ signaling, delivery }) {
    this.#signaling = signaling;
    this.#delivery = delivery;
    const button = this.#button;
    button.addEventListener('pointerdown', (event) => {
      if (event.button !== 0 || button.disabled) return;
      button.setPointerCapture(event.pointerId); // its release comes here, wherever it happens
      this.#pressed();
    });
    button.addEventListener('pointerup', () => this.#released());
    button.addEventListener('pointercancel', () => this.#released());
    // A click from the keyboard (no pointer) toggles.
    button.addEventListener('click', (event) => {
      if (event.detail !== 0) return;
      if (this.#wanted) this.#end();
      else this.#begin();
    });
    this.#show();
  }

  /** Whether this viewer may ask for the floor: the server lets it, in a secure context. */
  get allowed() {
    return this.#allowed;
  }

  /**
   * {allowed, reason ('' when allowed), talking (who holds the floor: a name, or null),
   * sending, note (the words beside the button)}.
   */
  snapshot() {
    return {
      allowed: this.#allowed,
      reason: this.#allowed ? '' : this.#reason,
      talking: this.#talking?.name ?? null,
      sending: this.#sending,
      note: this.#noteText(),
    };
  }

  /** The server's welcome: this page's peer id, which `talking` names when the floor is ours. */
  welcomed(peerId) {
    this.#peerId = peerId;
  }

  /** The server's `watching`: `talk`, whether this viewer may ask for the floor, and why not. */
  watching(talk, reason) {
    this.#allowed = window.isSecureContext && talk;
    this.#reason = window.isSecureContext ? reason : INSECURE;
    if (!this.#allowed) this.#quit();
    this.#show();
  }

  /** `talking`, from the camera: who holds the floor now (peer_id null: nobody). */
  talking({ peer_id: peerId = null, name = '' }) {
    this.#talking = peerId === null ? null : { peerId, name };
    const ours = peerId !== null && peerId === this.#peerId;
    if (ours && !this.#wanted) {
      // Released before the floor came: give it back.
      this.#signaling.send({ type: MessageType.TALK_STOP });
    } else if (ours && !this.#sending) {
      this.#said = '';
      this.#startSending();
    } else if (!ours && this.#sending) {
      this.#quit(); // the turn is over (the camera said so in a talk-stop too)
    }
    this.#show();
  }

  /** `talk-refused`: from the camera (someone else talks) or the server (no right). */
  refused({ reason }) {
    this.#said = reason;
    this.#quit();
    this.#show();
  }

  /** `talk-stop` from the camera: the turn ended (the operator took the floor, or --talk-max). */
  stopped({ reason }) {
    this.#said = reason || 'your turn ended';
    this.#quit();
    this.#show();
  }

  /** The camera or the server connection went: so did the floor. */
  reset() {
    this.#talking = null;
    this.#quit();
    this.#show();
  }

  #pressed() {
    this.#pressedAt = performance.now();
    this.#endOnRelease = this.#wanted;
    if (!this.#wanted) this.#begin();
  }

  #released() {
    if (this.#pressedAt === null) return;
    const heldMs = performance.now() - this.#pressedAt;
    this.#pressedAt = null;
    if (this.#endOnRelease || heldMs >= HOLD_MS) this.#end();
  }

  /** Ask for the microphone (the browser asks the viewer the first time), then for the floor. */
  async #begin() {
    if (!this.#allowed || this.#wanted) return;
    this.#wanted = true;
    this.#said = '';
    this.#show();
    let mic;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
      [mic] = stream.getAudioTracks();
    } catch (error) {
      this.#said = `no microphone: ${error.message}`;
      this.#wanted = false;
      this.#show();
      return;
    }
    // Released (or refused) while the browser asked.
    if (!this.#wanted) {
      mic.stop();
      return;
    }
    this.#mic = mic;
    if (!this.#signaling.send({ type: MessageType.TALK_START })) {
      this.#said = 'not connected to the server';
      this.#quit();
    }
    this.#show();
  }

  /** The viewer let go: the floor goes back. */
  #end() {
    if (!this.#wanted) return;
    this.#signaling.send({ type: MessageType.TALK_STOP });
    this.#quit();
    this.#show();
  }

  #startSending() {
    this.#sending = true;
    this.#delivery.talk(this.#mic);
  }

  /** Stop sending and let the microphone go. */
  #quit() {
    this.#wanted = false;
    this.#endOnRelease = false;
    if (this.#sending) this.#delivery.talk(null);
    this.#sending = false;
    this.#mic?.stop();
    this.#mic = null;
  }

  #show() {
    const button = this.#button;
    button.disabled = !this.#allowed;
    button.title = this.#allowed ? 'hold to talk, or click to talk until the next click' : this.#reason;
    button.setAttribute('aria-pressed', String(this.#wanted));
    button.dataset.state = this.#sending ? 'talking' : this.#wanted ? 'asking' : 'idle';
    button.textContent = this.#sending ? 'Talking…' : this.#wanted ? 'Asking…' : 'Hold to talk';
    this.#note.textContent = this.#noteText();
  }

  /** Why the button is off; else who talks; else the last refusal or end of turn. */
  #noteText() {
    if (!this.#allowed) return this.#reason;
    if (this.#sending) return 'you are talking';
    if (this.#talking !== null) return `${this.#talking.name} is talking`;
    return this.#said;
  }
}
