// A stream's recordings on the player page: the REC indicator while the server records
// it, and the list of its segments, each played in a <video> of its own below the live
// picture, which goes on untouched. The signaling protocol says nothing of recording, so
// both come from the API: the stream's state polled every few seconds, its segments
// read again when that state shows a segment began or ended.

const REFRESH_MS = 3000;

export class Recordings {
  #streamName;
  #token;
  #headers;
  #indicator = document.getElementById('rec');
  #section = document.getElementById('recordings');
  #list = document.getElementById('recordings-list');
  #empty = document.getElementById('recordings-empty');
  #video = document.getElementById('recording-video');
  #rows = new Map(); // file -> its <li>
  #listedFile; // the file being written when the list was read (undefined: not read yet)
  #records = null; // whether the server records, as the stream's info says (null: not read yet)

  /** token: the page's ?token= (under --auth all), sent with every request. */
  constructor(streamName, token) {
    this.#streamName = streamName;
    this.#token = token;
    this.#headers = token ? { Authorization: `Bearer ${token}` } : {};
  }

  start() {
    this.#refresh();
  }

  async #refresh() {
    try {
      const recording = await this.#recordingState();
      this.#showIndicator(recording);
      // Listing reads the stream's directory on the server: only when a segment begins or
      // ends (the file being written changes), not on every poll of every viewer. Not at
      // all on a server the info says records nothing: its 409 would be a console error on
      // every load. Before any info (the stream not live) it is asked: it lists the past.
      const file = recording?.file ?? null;
      if (this.#records !== false && file !== this.#listedFile) {
        await this.#refreshList();
        this.#listedFile = file;
      }
    } catch {
      // The server is away: keep what is on screen until it answers again.
    } finally {
      setTimeout(() => this.#refresh(), REFRESH_MS);
    }
  }

  /** The stream's `recording`; null when it is not live (404) or the server records nothing. */
  async #recordingState() {
    const response = await this.#get(`/api/streams/${encodeURIComponent(this.#streamName)}`);
    if (!response.ok) return null;
    const { recording } = await response.json();
    this.#records = recording !== null;
    return recording;
  }

  #showIndicator(recording) {
    const error = recording?.error ?? null;
    this.#indicator.hidden = !recording?.active && error === null;
    this.#indicator.dataset.state = error === null ? 'recording' : 'error';
    this.#indicator.title = error ?? 'recorded on the server';
    const text = error === null ? 'REC' : `REC stopped: ${error}`;
    // Rewritten only when it changes: it is a live region.
    if (this.#indicator.textContent !== text) this.#indicator.textContent = text;
  }

  async #refreshList() {
    const response = await this.#get(`/api/streams/${encodeURIComponent(this.#streamName)}/recordings`);
    // 409: this server records nothing (no --record-dir); 401/403: not for this token.
    if (!response.ok) {
      this.#section.hidden = true;
      return;
    }
    this.#show((await response.json()).reverse()); // newest first
    this.#section.hidden = false;
  }

  /** Update the rows in place, so a click or focus on one survives the refresh. */
  #show(segments) {
    const files = new Set(segments.map((segment) => segment.file));
    for (const [file, row] of this.#rows) {
      if (files.has(file)) continue;
      row.remove();
      this.#rows.delete(file);
    }
    segments.forEach((segment, index) => {
      let row = this.#rows.get(segment.file);
      if (row === undefined) {
        row = this.#row(segment);
        this.#rows.set(segment.file, row);
      }
      row.querySelector('.recording-duration').textContent = segment.recording
        ? 'recording now' : formatDuration(segment.duration);
      // The one being written grows: its size would be stale at once.
      row.querySelector('.recording-size').textContent = segment.recording ? '' : formatSize(segment.size);
      const here = this.#list.children[index] ?? null;
      if (here !== row) this.#list.insertBefore(row, here);
    });
    this.#empty.hidden = segments.length > 0;
  }

  #row(segment) {
    const row = element('li', 'recording');
    row.dataset.file = segment.file;
    const play = element('button', 'link-button recording-start', new Date(segment.start).toLocaleString());
    play.type = 'button';
    play.title = `play ${segment.file}`;
    play.addEventListener('click', () => this.#play(segment, row));
    row.append(play, element('span', 'recording-duration'), element('span', 'recording-size'));
    return row;
  }

  #play(segment, row) {
    // A <video> fetches its src itself: the token goes in the URL, not a header.
    const query = this.#token ? `?token=${encodeURIComponent(this.#token)}` : '';
    this.#video.src = `${segment.url}${query}`;
    this.#video.hidden = false;
    for (const other of this.#rows.values()) other.classList.toggle('playing', other === row);
    this.#video.play().catch(() => {}); // refused autoplay: its controls still start it
  }

  #get(path) {
    return fetch(path, { cache: 'no-store', headers: this.#headers });
  }
}

/** 75 -> "1:15"; null (not known) -> "–". */
function formatDuration(seconds) {
  if (seconds === null) return '–';
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

function formatSize(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1e3)} kB`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
