// A signaling WebSocket that stays connected: JSON messages in and out, binary relay
// frames in, reconnecting with exponential backoff whenever the connection drops. The
// Python peers' SignalingClient is peers/signaling_client.py (with ServerList for reconnecting).

/**
 * Connection events, delivered through on() like message types. BINARY hands over
 * each binary message (an ArrayBuffer): those are relay frames.
 */
export const SignalingEvent = Object.freeze({ OPEN: 'open', CLOSE: 'close', BINARY: 'binary' });

/** The signaling endpoint of the server that served this page. */
export function defaultSignalingUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws`;
}

export class SignalingClient {
  #url;
  #early; // {socket, held}: a socket opened early (early-socket.js) the first connect() takes over, or null
  #adopted = null; // that socket once taken over
  #minDelayMs;
  #maxDelayMs;
  #delayMs;
  #socket = null;
  #reconnectTimer = null;
  #handlers = new Map();
  #closed = false;

  constructor(url = defaultSignalingUrl(), { minDelayMs = 500, maxDelayMs = 5000, early = null } = {}) {
    this.#url = url;
    this.#early = early;
    this.#minDelayMs = minDelayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#delayMs = minDelayMs;
  }

  /** Call handler(message) for each message of this type, or on a SignalingEvent. */
  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, []);
    this.#handlers.get(type).push(handler);
    return this;
  }

  /** Stop calling a handler that on() registered. */
  off(type, handler) {
    const handlers = this.#handlers.get(type) ?? [];
    const index = handlers.indexOf(handler);
    if (index >= 0) handlers.splice(index, 1);
    return this;
  }

  get connected() {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Whether the connection in use is the early socket connect() took over. */
  get onEarlySocket() {
    return this.#socket !== null && this.#socket === this.#adopted;
  }

  connect() {
    clearTimeout(this.#reconnectTimer);
    this.#closed = false;
    const early = this.#early;
    this.#early = null;
    // An early socket that already closed is of no use: its session (peer id) is gone.
    const adopted = early !== null && early.socket.readyState <= WebSocket.OPEN;
    const socket = adopted ? early.socket : new WebSocket(this.#url);
    if (adopted) this.#adopted = socket;
    socket.binaryType = 'arraybuffer'; // parsed at once, so no Blob round trip
    this.#socket = socket;
    socket.onopen = () => this.#emit(SignalingEvent.OPEN);
    socket.onmessage = (event) => this.#receive(event.data);
    // An error is always followed by close, so close alone drives reconnection.
    socket.onclose = () => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#emit(SignalingEvent.CLOSE);
      if (!this.#closed) this.#scheduleReconnect();
    };
    if (adopted && socket.readyState === WebSocket.OPEN) {
      this.#emit(SignalingEvent.OPEN);
      for (const data of early.held.splice(0)) this.#receive(data);
    }
  }

  /** Send one message; returns false (and drops it) while disconnected. */
  send(message) {
    if (!this.connected) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  /** Send one binary message (a relay frame); returns false while disconnected. */
  sendBinary(data) {
    if (!this.connected) return false;
    this.#socket.send(data);
    return true;
  }

  /** Bytes queued on the socket and not sent yet: a sender of frames backs off on it. */
  get bufferedAmount() {
    return this.#socket?.bufferedAmount ?? 0;
  }

  /** Close for good (no reconnection): the server sees the client leave at once. */
  close() {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#socket?.close(1000);
  }

  #receive(data) {
    // The server answered: it is up, so the next outage starts again at the shortest delay.
    this.#delayMs = this.#minDelayMs;
    if (typeof data !== 'string') {
      this.#emit(SignalingEvent.BINARY, data);
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn('signaling: ignoring a message that is not JSON');
      return;
    }
    this.#emit(message.type, message);
  }

  #emit(type, message) {
    // A copy: a handler may call off() on the way.
    for (const handler of [...(this.#handlers.get(type) ?? [])]) handler(message);
  }

  #scheduleReconnect() {
    const delay = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, this.#maxDelayMs);
    this.#reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
