// The front page: a dashboard of the live streams, refreshed from /api/streams every two
// seconds, each with a thumbnail, its video format, its sound (codec and channels, or "no
// sound"), who is watching how, and a REC badge
// while the server records it; and a "Go live" form that opens the browser camera page
// (/publish/NAME). Under --auth all the page's ?token= goes with every request (as a
// Bearer header) and on to the player and publish links.

import { Thumbnails } from './thumbnails.js';

const REFRESH_MS = 2000;

const token = new URLSearchParams(location.search).get('token') ?? '';
const authorization = token ? { Authorization: `Bearer ${token}` } : {};
const list = document.getElementById('streams');
const empty = document.getElementById('empty');
const listStatus = document.getElementById('list-status');
const thumbnails = new Thumbnails(authorization);
const cards = new Map(); // stream name -> StreamCard

async function refresh() {
  try {
    const response = await fetch('/api/streams', { cache: 'no-store', headers: authorization });
    if (response.status === 401 || response.status === 403) {
      throw new Error(`${(await response.text()).trim()}: open this page with ?token=`);
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    showStreams(await response.json());
    listStatus.hidden = true;
  } catch (error) {
    // Keep the last list on screen: a server restart should not blank the page.
    listStatus.textContent = `Cannot list the streams (${error.message}), retrying…`;
    listStatus.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

/** Update the cards in place, so thumbnails stay put between refreshes. */
function showStreams(streams) {
  const nowSeconds = Date.now() / 1000;
  const live = new Set(streams.map((stream) => stream.name));
  for (const [name, card] of cards) {
    if (live.has(name)) continue;
    card.item.remove();
    cards.delete(name);
    thumbnails.forget(name);
  }
  streams.forEach((stream, index) => {
    let card = cards.get(stream.name);
    if (card === undefined) {
      card = new StreamCard(stream.name);
      cards.set(stream.name, card);
      thumbnails.show(stream.name, card.thumbnail);
    }
    card.update(stream, nowSeconds);
    if (list.children[index] !== card.item) list.insertBefore(card.item, list.children[index] ?? null);
  });
  empty.hidden = streams.length > 0;
}

/** One stream's <li class="stream" data-stream=NAME>. */
class StreamCard {
  item = element('li', 'stream');
  thumbnail = element('img', 'thumbnail');
  #resolution = element('span', 'resolution');
  #codec = element('span', 'codec');
  #audio = element('span', 'audio');
  #layers = element('span', 'layers');
  #uptime = element('span', 'uptime');
  #viewers = element('span', 'viewers');
  #viewersByMode = element('span', 'viewers-by-mode');
  #rec = element('span', 'rec-badge');

  constructor(name) {
    this.item.dataset.stream = name;
    const query = token ? `?token=${encodeURIComponent(token)}` : '';
    const href = `/view/${encodeURIComponent(name)}${query}`;

    const screen = element('a', 'stream-screen');
    screen.href = href;
    screen.tabIndex = -1; // the name below is the same link, for keyboards and screen readers
    this.thumbnail.alt = '';
    screen.append(this.thumbnail);

    const link = element('a', 'stream-name', name);
    link.href = href;
    const details = element('span', 'stream-details');
    details.append(this.#rec, this.#resolution, this.#codec, this.#audio, this.#layers, this.#uptime);
    const audience = element('span', 'stream-audience');
    audience.append(this.#viewers, this.#viewersByMode);
    this.item.append(screen, link, details, audience);
  }

  update(stream, nowSeconds) {
    this.#resolution.textContent = `${stream.width}x${stream.height}@${formatFps(stream.fps)}`;
    this.#codec.textContent = stream.codec;
    showAudio(this.#audio, stream.audio);
    // The quality layers viewers may pick from (one: the picture's own size).
    const layers = stream.layers ?? [];
    this.#layers.textContent = layers.length > 1 ? layers.map((layer) => layer.name).join(' · ') : '';
    this.#layers.title = layers.map((layer) => `${layer.name}: ${layer.width}x${layer.height}`
      + `@${formatFps(layer.fps)}`).join(', ');
    const minutes = Math.max(0, Math.floor((nowSeconds - stream.since) / 60));
    this.#uptime.textContent = `live for ${minutes}m`;
    showRecording(this.#rec, stream.recording);
    const count = stream.viewer_count;
    this.#viewers.textContent = count === 1 ? '1 viewer' : `${count} viewers`;
    const { p2p, relay, whep } = stream.viewers_by_mode;
    // WHEP players are P2P viewers of another kind: named apart only when there are some.
    const players = whep ? ` · ${whep} whep` : '';
    this.#viewersByMode.textContent = count ? `${p2p} p2p · ${relay} relay${players}` : '';
  }
}

/** The stream's sound: "opus mono" (its bitrate in the title), or "no sound" when it has none. */
function showAudio(label, audio) {
  label.dataset.audio = audio ? 'yes' : 'no';
  if (!audio) {
    label.textContent = 'no sound';
    label.title = 'the camera sends no sound';
    return;
  }
  const channels = audio.channels === 2 ? 'stereo' : 'mono';
  label.textContent = `${audio.codec} ${channels}`;
  const kbps = Math.round(audio.bitrate / 1000);
  label.title = `sound: ${audio.codec}, ${audio.sample_rate / 1000} kHz, ${channels}, ${kbps} kbit/s`;
}

/** REC while recording; when recording stopped on an error, says so (the title says why). */
function showRecording(badge, recording) {
  const error = recording?.error ?? null; // recording is null on a server that records nothing
  badge.hidden = !recording?.active && error === null;
  badge.dataset.state = error === null ? 'recording' : 'error';
  badge.textContent = error === null ? 'REC' : 'REC stopped';
  badge.title = error ?? 'recorded on the server';
}

function formatFps(fps) {
  return Number.isInteger(fps) ? String(fps) : fps.toFixed(1);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** "Go live": the browser camera page for the name typed (the token goes along). */
document.getElementById('go-live').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = document.getElementById('go-live-name').value.trim();
  location.href = `/publish/${encodeURIComponent(name)}${token ? `?token=${encodeURIComponent(token)}` : ''}`;
});

thumbnails.start();
refresh();
