// Stream thumbnails from /streams/NAME/snapshot.jpg, refreshed every few seconds while
// the page is in view. Each snapshot makes the camera encode JPEG for the relay, so a
// hidden tab asks for none.

const REFRESH_MS = 3000;

export class Thumbnails {
  #images = new Map(); // stream name -> its <img>
  #loading = new Set(); // names with a snapshot on its way
  #headers;

  /** headers: sent with every snapshot request (the page's token, under --auth all). */
  constructor(headers = {}) {
    this.#headers = headers;
  }

  start() {
    setInterval(() => this.#refreshAll(), REFRESH_MS);
    document.addEventListener('visibilitychange', () => this.#refreshAll());
  }

  /** Keep `image` showing the latest snapshot of stream `name`. */
  show(name, image) {
    this.#images.set(name, image);
    this.#refresh(name);
  }

  forget(name) {
    const image = this.#images.get(name);
    if (image?.src.startsWith('blob:')) URL.revokeObjectURL(image.src);
    this.#images.delete(name);
  }

  #refreshAll() {
    if (document.visibilityState !== 'visible') return;
    for (const name of this.#images.keys()) this.#refresh(name);
  }

  // Fetched here rather than by <img src>: a failed snapshot (no frame yet, camera gone)
  // then keeps the last picture instead of showing a broken image.
  async #refresh(name) {
    // The server may hold a snapshot request for seconds (no frame yet): one at a time.
    if (this.#loading.has(name)) return;
    this.#loading.add(name);
    try {
      // The time in the query keeps any cache from answering with an old picture.
      const url = `/streams/${encodeURIComponent(name)}/snapshot.jpg?t=${Date.now()}`;
      const response = await fetch(url, { cache: 'no-store', headers: this.#headers });
      if (!response.ok) return;
      this.#replace(name, URL.createObjectURL(await response.blob()));
    } catch {
      // Server unreachable: the stream list says so; keep the last picture.
    } finally {
      this.#loading.delete(name);
    }
  }

  #replace(name, blobUrl) {
    const image = this.#images.get(name);
    if (image === undefined) { // the stream ended while its snapshot was on its way
      URL.revokeObjectURL(blobUrl);
      return;
    }
    const previous = image.src;
    image.src = blobUrl;
    if (previous.startsWith('blob:')) URL.revokeObjectURL(previous);
  }
}
