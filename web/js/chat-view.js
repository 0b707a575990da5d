// The chat panel's elements: messages, input, notices and the name form.
// Everything from other viewers goes in as textContent: markup typed in chat shows as typed.

import { MAX_CHAT_TEXT, MAX_NAME } from './protocol.js';

const NOTICE_MS = 6000;

let timeFormat = null; // made with the first message: an Intl formatter costs ms the page's start-up can use

export class ChatView {
  #list = document.getElementById('chat-messages');
  #chatForm = document.getElementById('chat-form');
  #input = document.getElementById('chat-input');
  #sendButton = document.getElementById('chat-send');
  #count = document.getElementById('chat-count');
  #notice = document.getElementById('chat-notice');
  #nameForm = document.getElementById('name-form');
  #nameInput = document.getElementById('name-input');
  #identity = document.getElementById('chat-identity');
  #identityName = document.getElementById('chat-identity-name');
  #noticeTimer = null;

  constructor() {
    // The camera's limits, from protocol.js: the inputs enforce them and say so.
    this.#input.maxLength = MAX_CHAT_TEXT;
    this.#nameInput.maxLength = MAX_NAME;
    document.getElementById('name-limit').textContent = `(up to ${MAX_NAME} characters)`;
    this.#input.addEventListener('input', () => this.#showCount());
    this.#showCount();
    document.getElementById('name-change').addEventListener('click', () => this.#askName());
  }

  /** Call handler(text) on send; the input empties when it returns other than null. */
  onSend(handler) {
    this.#chatForm.addEventListener('submit', (event) => {
      event.preventDefault();
      if (handler(this.#input.value) === null) return;
      this.#input.value = '';
      this.#showCount();
    });
  }

  /** Call handler(name) when the viewer submits the name form. */
  onName(handler) {
    this.#nameForm.addEventListener('submit', (event) => {
      event.preventDefault();
      handler(this.#nameInput.value);
    });
  }

  /** The name chat uses; none yet (''): ask for one, and chat waits for it. */
  showName(name) {
    const named = name !== '';
    this.#nameForm.hidden = named;
    this.#identity.hidden = !named;
    this.#input.disabled = this.#sendButton.disabled = !named;
    this.#identityName.textContent = name;
    // At the next frame, when the page is laid out anyway: now, at start-up, focus() would
    // lay it out on the spot, in the way of the first picture.
    const field = named ? this.#input : this.#nameInput;
    requestAnimationFrame(() => field.focus({ preventScroll: true }));
  }

  /**
   * Show a message at position `index` of the log. The camera's own lines (`camera`, which
   * only the camera can set) are marked: a viewer may pick a name like it, never the mark.
   */
  insert({ id, name, text, time, camera = false }, index) {
    const item = document.createElement('li');
    item.className = camera ? 'chat-message chat-camera' : 'chat-message';
    item.dataset.id = String(id);
    const sent = new Date(time * 1000);
    const stamp = document.createElement('time');
    stamp.className = 'chat-time';
    stamp.dateTime = sent.toISOString();
    stamp.title = sent.toLocaleString();
    timeFormat ??= new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
    stamp.textContent = timeFormat.format(sent);
    const sender = span('chat-name', name);
    sender.title = camera ? `${name} (the camera)` : name; // the panel clips long names
    if (camera) stamp.prepend(span('chat-badge', 'camera'));
    item.append(sender, stamp, span('chat-text', text));

    // Follow new messages only for a reader at the bottom: do not yank one scrolled up.
    const list = this.#list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    list.insertBefore(item, list.children[index] ?? null);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  clear() {
    this.#list.replaceChildren();
  }

  removeOldest() {
    this.#list.firstElementChild?.remove();
  }

  showNotice(text) {
    this.#notice.textContent = text;
    this.#notice.hidden = false;
    clearTimeout(this.#noticeTimer);
    this.#noticeTimer = setTimeout(() => { this.#notice.hidden = true; }, NOTICE_MS);
  }

  #askName() {
    this.#nameInput.value = this.#identityName.textContent;
    this.#nameForm.hidden = false;
    this.#nameInput.focus();
    this.#nameInput.select();
  }

  #showCount() {
    this.#count.textContent = `${this.#input.value.length}/${MAX_CHAT_TEXT}`;
  }
}

function span(className, text) {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = text;
  return node;
}
