// The stream's chat hub, kept by a browser camera: an interim stand-in with the rules of
// peers/chathub.py (text cleaned and trimmed, 500 characters, about 5 lines a second per
// sender with bursts of 10, ids by one, the last 50 kept, no viewer under the camera's
// name), until the full port (web/js/chat-hub.js, branch chat-hub-js) lands. The page uses
// only `new ChatHub({cameraName})`, `receive()` and `history()`: swapping is one import.

import { MAX_CHAT_TEXT } from './protocol.js';

const HISTORY_SIZE = 50;
const RATE = 5;
const BURST = 10;

export class ChatHub {
  #history = [];
  #nextId = 1;
  #buckets = new Map(); // sender -> {tokens, at}
  #cameraName;

  constructor({ cameraName = '' } = {}) {
    this.#cameraName = cameraName.toLowerCase();
  }

  /**
   * A line from `viewerId` (null: the camera itself) under `name`: {message} stamped
   * ({type: 'chat', id, name, text, time}), or {refused: reason}.
   */
  receive(viewerId, name, text) {
    const cleaned = cleanText(text).trim();
    if (!cleaned) return { refused: 'empty message' };
    const length = Array.from(cleaned).length;
    if (length > MAX_CHAT_TEXT) {
      return { refused: `message too long: ${length} characters, the limit is ${MAX_CHAT_TEXT}` };
    }
    if (!this.#take(viewerId ?? '')) return { refused: `slow down: at most ${RATE} messages a second` };
    let sender = name;
    if (viewerId !== null && (!name || name.toLowerCase() === this.#cameraName)) {
      sender = `viewer-${viewerId.slice(0, 4)}`;
    }
    const message = {
      type: 'chat', id: this.#nextId++, name: sender, text: cleaned, time: Math.round(Date.now()) / 1000,
    };
    this.#history.push(message);
    if (this.#history.length > HISTORY_SIZE) this.#history.shift();
    return { message };
  }

  /** The last messages, oldest first, for a newcomer. */
  history() {
    return [...this.#history];
  }

  #take(sender) {
    const now = performance.now() / 1000;
    const bucket = this.#buckets.get(sender) ?? { tokens: BURST, at: now };
    bucket.tokens = Math.min(BURST, bucket.tokens + (now - bucket.at) * RATE);
    bucket.at = now;
    this.#buckets.set(sender, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}

/** signaling/protocol.py's clean_text: no control characters or bidi overrides; breaks become spaces. */
function cleanText(text) {
  return text
    .replace(/[\n\r\t\u2028\u2029]/g, ' ')
    .replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, '');
}
