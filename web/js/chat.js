// Chat with the others watching the stream. The camera is the hub: it stamps each
// message with an id and sends it to everyone, over the P2P "chat" data channel and
// through the server. A P2P viewer so gets each message (and the history) twice: the
// log keeps one copy per id, in id order.

import { MessageType } from './protocol.js';
import { saveName } from './display-name.js';

/** Messages the page keeps (in memory and on screen); older ones scroll away for good. */
export const MAX_MESSAGES = 200;

/** Chat messages in id order, one per id. */
export class ChatLog {
  #messages = [];
  #ids = new Set();

  get size() {
    return this.#messages.length;
  }

  /** Forget the oldest message (the log is over its bound). */
  dropOldest() {
    const [oldest] = this.#messages.splice(0, 1);
    if (oldest !== undefined) this.#ids.delete(oldest.id);
  }

  /** Keep a message; returns its place in the order, or -1 when its id is already here. */
  add(message) {
    if (this.#ids.has(message.id)) return -1;
    this.#ids.add(message.id);
    // Late arrivals are rare and recent: search from the end.
    let index = this.#messages.length;
    while (index > 0 && this.#messages[index - 1].id > message.id) index--;
    this.#messages.splice(index, 0, message);
    return index;
  }

  clear() {
    this.#messages = [];
    this.#ids.clear();
  }

  /** [{id, name, text, time}] in order. */
  get messages() {
    return [...this.#messages];
  }
}

export class Chat {
  #log = new ChatLog();
  #view;
  #transmit;
  #name;
  #logCamera = null; // the camera whose ids the log holds
  #cameraLive = false;

  /**
   * view: a ChatView; name: the display name ('' until the viewer picks one);
   * transmit(message): sends a chat-send to the camera and returns how it went
   * ('data-channel' or 'signaling'), or null when it could not go out;
   * rename(name): tells the server (lines go out under the name the server knows).
   */
  constructor({ view, name, transmit, rename }) {
    this.#view = view;
    this.#transmit = transmit;
    this.#name = name;
    view.showName(name);
    view.onSend((text) => this.send(text));
    view.onName((picked) => {
      this.#name = saveName(picked);
      view.showName(this.#name);
      rename(this.#name);
    });
  }

  get name() {
    return this.#name;
  }

  /** [{id, name, text}] as shown; the camera's own lines also have `camera: true`. */
  messages() {
    return this.#log.messages.map(({ id, name, text, camera }) => (
      camera ? { id, name, text, camera: true } : { id, name, text }));
  }

  /** The server would not take the name: the view says why. */
  nameRefused(reason) {
    this.#view.showNotice(`Name not taken: ${reason}`);
  }

  /** A chat, chat-history or chat-notice from the camera, by either path. */
  receive(message) {
    switch (message.type) {
      case MessageType.CHAT:
        this.#add(message);
        break;
      case MessageType.CHAT_HISTORY:
        for (const stamped of message.messages) this.#add(stamped);
        break;
      case MessageType.CHAT_NOTICE:
        this.#view.showNotice(`Not sent: ${message.reason}`);
        break;
    }
  }

  /** The stream's camera is `cameraId` (its peer id) from now on. */
  cameraLive(cameraId) {
    // Ids count from where that camera's hub started: a new camera connection (or the
    // same camera after a restart) may number from 1 again. Its history refills the log.
    if (cameraId !== this.#logCamera) {
      this.#log.clear();
      this.#view.clear();
      this.#logCamera = cameraId;
    }
    this.#cameraLive = true;
  }

  cameraGone() {
    this.#cameraLive = false;
  }

  /** Send a chat line; returns how it went out, or null (the view says why). */
  send(text) {
    if (!text.trim()) return null;
    if (!this.#name) {
      this.#view.showNotice('Pick a name first.');
      return null;
    }
    if (!this.#cameraLive) {
      this.#view.showNotice('The camera is offline: chat runs through it.');
      return null;
    }
    const route = this.#transmit({ type: MessageType.CHAT_SEND, text });
    if (route === null) this.#view.showNotice('Not connected, try again in a moment.');
    return route;
  }

  #add(message) {
    const index = this.#log.add(message);
    if (index < 0) return;
    this.#view.insert(message, index);
    while (this.#log.size > MAX_MESSAGES) {
      this.#log.dropOldest();
      this.#view.removeOldest();
    }
  }
}
