// The floor of talk back, kept by a browser camera: one viewer talks through it at a time,
// exactly as the Python camera's floor decides (peers/camera/talkfloor.py);
// tests/talkfloor_cases.json runs against both (tests/test_web_talkfloor.py), so they
// cannot drift apart.
//
// The server only checks who may ask (--talk, the talk token role) and passes talk-start
// and talk-stop on. A viewer that asks while another talks is refused with the speaker's
// name; a turn ends when its speaker says so, leaves, reaches talkMax, or when the camera's
// operator takes the floor. Every change goes to every viewer as `talking`.
//
//   const floor = new TalkFloor({ send, nameOf });
//   floor.open = published.talk; floor.talkMax = published.talk_max;
//   floor.ask(viewerId);       // talk-start
//   floor.release(viewerId);   // talk-stop, or viewer-left
//   floor.take();              // the operator ends the turn under way
//   floor.forget();            // a new signaling session: nobody holds it, nobody is told
//   floor.onChange.push((holder, name) => ...);   // holder null: `name` stopped talking

import { MessageType } from './protocol.js';
import { formatG } from './chat-hub.js';

const OPERATOR_TOOK_IT = "the camera's operator took the floor";

function callLaterWithTimeout(seconds, callback) {
  const timer = setTimeout(callback, seconds * 1000);
  return { cancel: () => clearTimeout(timer) };
}

export class TalkFloor {
  /** Seconds a turn may last (the server's --talk-max, from `published`). */
  talkMax = 60;
  /** Whether the server lets viewers talk at all (`published.talk`). */
  open = false;
  /** The speaker's viewer id, or null. */
  holder = null;
  holderName = '';
  /** When the turn began (Unix seconds), or null. */
  since = null;
  /** Told of every change, after the viewers are: (holder, name). */
  onChange = [];

  #send;
  #nameOf;
  #clock;
  #callLater;
  #turnTimer = null;

  /**
   * send(message): out through the server; nameOf(viewerId): a viewer's display name;
   * clock (Unix seconds) and callLater(seconds, callback) -> {cancel()} (the turn's timer):
   * the page's own unless a test brings its own.
   */
  constructor({ send, nameOf, clock = () => Date.now() / 1000, callLater = callLaterWithTimeout }) {
    this.#send = send;
    this.#nameOf = nameOf;
    this.#clock = clock;
    this.#callLater = callLater;
  }

  /** A viewer's talk-start: the floor, unless someone else holds it. */
  ask(viewerId) {
    if (this.holder === viewerId) return; // asked twice: still its turn
    if (!this.open) {
      this.#send({ type: MessageType.TALK_REFUSED, to: viewerId, reason: 'talking back is off on this server' });
    } else if (this.holder !== null) {
      this.#send({ type: MessageType.TALK_REFUSED, to: viewerId, reason: `${this.holderName} is talking` });
    } else {
      this.#give(viewerId);
    }
  }

  /** A viewer's talk-stop, or it left: its turn, if it had one, ends. */
  release(viewerId) {
    if (this.holder === viewerId) this.#clear();
  }

  /** The camera ends the turn under way (its operator speaks, or the turn is over). */
  take(reason = OPERATOR_TOOK_IT) {
    if (this.holder === null) return;
    this.#send({ type: MessageType.TALK_STOP, to: this.holder, reason });
    this.#clear();
  }

  /**
   * A new signaling session: the old session's speaker is nobody now (the server dropped
   * the floor with the old connection); listeners hear it.
   */
  forget() {
    if (this.holder !== null) this.#clear(false);
  }

  #give(viewerId) {
    this.holder = viewerId;
    this.holderName = this.#nameOf(viewerId);
    this.since = this.#clock();
    this.#turnTimer = this.#callLater(this.talkMax, () => this.#turnOver());
    this.#send({
      type: MessageType.TALKING, peer_id: viewerId, name: this.holderName, since: Math.round(this.since * 1000) / 1000,
    });
    this.#changed('');
  }

  #turnOver() {
    this.#turnTimer = null;
    this.take(`a turn lasts at most ${formatG(this.talkMax)} s`);
  }

  #clear(announce = true) {
    this.#turnTimer?.cancel();
    this.#turnTimer = null;
    const stopped = this.holderName;
    this.holder = null;
    this.holderName = '';
    this.since = null;
    if (announce) this.#send({ type: MessageType.TALKING, peer_id: null });
    this.#changed(stopped);
  }

  #changed(stopped) {
    const name = this.holder !== null ? this.holderName : stopped;
    for (const listener of [...this.onChange]) listener(this.holder, name);
  }
}
