// The stream's chat, kept by a browser camera: it checks, stamps and keeps every line,
// exactly as the Python camera's hub does (peers/camera/chathub.py). Its limits and character
// sets come from protocol.js, generated from peercam/shared/protocol.py; tests/chathub_cases.json
// runs against both hubs (tests/test_chathub.py), so they cannot drift apart.
//
// The camera page feeds it what the server and the data channels say, and sends what it
// returns:
//
//   const hub = new ChatHub({ cameraName });
//   const history = hub.join(viewerId, name);   // viewer-joined: a chat-history for the newcomer
//   hub.rename(viewerId, name);         // viewer-renamed: no history (any viewer could ask it over and over)
//   const { message, notice } = hub.receive(viewerId, line.text);   // a chat-send's text
//   message: {type: 'chat', id, name, text, time[, camera: true]}: send it to everyone
//   notice: {type: 'chat-notice', reason}: send it back to that viewer only
//   const note = hub.note(text);        // the camera's own word (who talks back): send it to everyone
//   hub.nameOf(viewerId);               // the name a viewer's lines go under
//   hub.history();                      // the last messages, for a chat-history on a new data channel
//   hub.forget(viewerId);               // viewer-left
//   hub.forgetEveryone();               // a new signaling session
//
// A viewer speaks under the name it watched with (or renamed to), whatever a line says:
// never under the camera's own name (CAMERA_CHAT_NAME when it has none) nor another
// viewer's. The camera's own lines are marked `camera: true`.

import {
  BIDI_CONTROLS, CAMERA_CHAT_NAME, CHAT_BURST, CHAT_HISTORY_SIZE, CHAT_RATE, MAX_CHAT_TEXT, MessageType,
  TEXT_BREAKS,
} from './protocol.js';

/** A regular expression character class of these characters, each as a \u{...} escape. */
function charClass(chars) {
  return [...chars].map((ch) => `\\u{${ch.codePointAt(0).toString(16)}}`).join('');
}

const BREAKS = new RegExp(`[${charClass(TEXT_BREAKS)}]`, 'gu');
const DROPPED = new RegExp(`[\\p{Cc}${charClass(BIDI_CONTROLS)}]`, 'gu');
// Python's str.strip(): what isspace() says, which on cleaned text (no Cc left) is White_Space.
const EDGE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;

/**
 * peercam/shared/protocol.py clean_text: text a peer wrote, safe to log or show. Control
 * characters (ANSI escapes, carriage returns that forge log lines) and bidirectional
 * overrides go; line breaks and tabs become spaces.
 */
export function cleanText(text) {
  return text.replace(BREAKS, ' ').replace(DROPPED, '');
}

/** Python's str.strip() of cleaned text. */
function strip(text) {
  return text.replace(EDGE_SPACE, '');
}

/** Length in code points, as Python counts a str (an emoji is one, not two). */
function length(text) {
  return [...text].length;
}

/**
 * Python's str.casefold(), for comparing names: one case for each letter. Upper then lower
 * case, twice (capital sharp s: lower ß, upper SS, lower ss); the dotless i stays apart from
 * i, as in casefold (tests/test_web_chathub.py compares them for every character).
 */
export function fold(text) {
  const once = (part) => part.toUpperCase().toLowerCase();
  return text.split('\u0131').map((part) => once(once(part))).join('\u0131');
}

/** Python's f"{x:g}": six significant digits, no trailing zeros. */
export function formatG(x) {
  if (!Number.isFinite(x) || x === 0) return String(x);
  const trim = (digits) => (digits.includes('.') ? digits.replace(/\.?0+$/, '') : digits);
  const [mantissa, exponent] = x.toExponential(5).split('e');
  const power = Number(exponent);
  if (power < -4 || power >= 6) {
    return `${trim(mantissa)}e${power < 0 ? '-' : '+'}${String(Math.abs(power)).padStart(2, '0')}`;
  }
  return trim(x.toFixed(5 - power));
}

/** peercam/shared/ratelimit.py TokenBucket: a steady rate with room for bursts. */
class TokenBucket {
  constructor(rate, burst, now) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.now = now;
    this.updated = now();
  }

  /** Spend one token if there is one. */
  take() {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.updated) * this.rate);
    this.updated = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The chat of one stream: checks, stamps and keeps the last messages. */
export class ChatHub {
  #history = [];
  #nextId = 1;
  #buckets = new Map();
  #names = new Map(); // each viewer's name as its lines carry it ('': none it may use)
  #rate;
  #burst;
  #reserved;
  #cameraDisplay;
  #monotonic;
  #wallClock;

  /**
   * rate, burst: lines one viewer may send a second, and at once. cameraName: the
   * camera's display name, which no viewer may chat under. monotonic, wallClock: clocks
   * in seconds (for the rate limit, and the messages' time), for tests.
   */
  constructor({
    rate = CHAT_RATE, burst = CHAT_BURST, cameraName = '',
    monotonic = () => performance.now() / 1000, wallClock = () => Date.now() / 1000,
  } = {}) {
    this.#rate = rate;
    this.#burst = burst;
    this.#cameraDisplay = strip(cleanText(cameraName)) || CAMERA_CHAT_NAME;
    // Compared as shown: a control character or a space does not make the camera's name another.
    this.#reserved = new Set([fold(this.#cameraDisplay), fold(CAMERA_CHAT_NAME)]);
    this.#monotonic = monotonic;
    this.#wallClock = wallClock;
  }

  /**
   * A viewer came, with the name it watched with (checked by the server): its lines go
   * under it. Returns what the newcomer gets, once: the history.
   */
  join(viewerId, name) {
    this.rename(viewerId, name);
    return this.history();
  }

  /**
   * A viewer goes by another name. One that is the camera's, or another viewer's, is not
   * taken: that viewer speaks as viewer-ID.
   */
  rename(viewerId, name) {
    name = strip(cleanText(String(name ?? '')));
    const folded = fold(name);
    const taken = this.#reserved.has(folded)
      || [...this.#names].some(([other, held]) => other !== viewerId && fold(held) === folded);
    this.#names.set(viewerId, taken ? '' : name);
  }

  /** The last CHAT_HISTORY_SIZE messages, oldest first: a newcomer's chat-history. */
  history() {
    return [...this.#history];
  }

  /**
   * Check a viewer's line (a chat-send's text) and stamp it. Returns {message}, a chat
   * message for everyone, or {notice}, a chat-notice saying why not, for the sender only.
   * viewerId null: the camera's own line (this page's operator), under the camera's name.
   */
  receive(viewerId, text) {
    const refuse = (reason) => ({ notice: Object.freeze({ type: MessageType.CHAT_NOTICE, reason }) });
    if (typeof text !== 'string') return refuse('a chat line is text');
    text = strip(cleanText(text));
    if (!text) return refuse('empty message');
    const size = length(text);
    if (size > MAX_CHAT_TEXT) {
      return refuse(`message too long: ${size} characters, the limit is ${MAX_CHAT_TEXT}`);
    }
    let bucket = this.#buckets.get(viewerId);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.#rate, this.#burst, this.#monotonic);
      this.#buckets.set(viewerId, bucket);
    }
    if (!bucket.take()) return refuse(`slow down: at most ${formatG(this.#rate)} messages a second`);
    return { message: this.#record(viewerId, text) };
  }

  /**
   * A line of the camera's own about the stream (who talks back), recorded like any line;
   * not rate-limited: the camera's events make it, not a person typing. Returns the message.
   */
  note(text) {
    return this.#record(null, [...strip(cleanText(text))].slice(0, MAX_CHAT_TEXT).join(''));
  }

  /** The name a viewer's lines go under. */
  nameOf(viewerId) {
    return this.#names.get(viewerId) || `viewer-${[...viewerId].slice(0, 4).join('')}`;
  }

  #record(viewerId, text) {
    const name = viewerId === null ? this.#cameraDisplay : this.nameOf(viewerId);
    const message = Object.freeze({
      type: MessageType.CHAT,
      id: this.#nextId++,
      name,
      text,
      time: Math.round(this.#wallClock() * 1000) / 1000,
      ...(viewerId === null ? { camera: true } : {}), // as the server encodes it: no field when false
    });
    this.#history.push(message);
    if (this.#history.length > CHAT_HISTORY_SIZE) this.#history.shift();
    return message;
  }

  /** A viewer left: its name and rate limit go with it. */
  forget(viewerId) {
    this.#buckets.delete(viewerId);
    this.#names.delete(viewerId);
  }

  /** A new signaling session: viewer ids of the old one mean nothing any more. */
  forgetEveryone() {
    this.#buckets.clear();
    this.#names.clear();
  }
}
