// Quality layers: what a viewer may ask for, and which layer the picture comes in now.
//
// A camera encodes a few layers (stream-live's info.layers, largest first), each once.
// The viewer asks for one by name, or for "auto" (follow the network), in `watch` and
// later in `quality`. What it gets comes in `layer` messages (LayerChanged in
// peercam/shared/protocol.py): from the camera (they carry its `from`) for P2P, from the
// server for the relay, with the relay's JPEG quality. As the Python viewer does
// (peers/viewer/viewer.py: _layer_changed), the latest of each path is kept and the one of the
// path in use is shown.

/** The quality that follows the network. */
export const AUTO_QUALITY = 'auto';

/** Quality in peercam/shared/protocol.py: "auto" or a layer's name, e.g. "480p" or "360p@15". */
const QUALITY_PATTERN = /^(auto|[0-9]{2,5}p(@[0-9]{1,3}(\.[0-9]{1,3})?)?)$/;

/** The relay JPEG qualities a viewer may pick, as `peercam view --jpeg-quality`. */
export const JpegQualityRange = Object.freeze({ MIN: 50, MAX: 95 });

/** The paths a picture comes by, named as DeliveryMode's transport modes. */
export const Path = Object.freeze({ P2P: 'p2p', RELAY: 'relay' });

export function isQuality(text) {
  return typeof text === 'string' && QUALITY_PATTERN.test(text);
}

export function isJpegQuality(value) {
  return Number.isInteger(value) && value >= JpegQualityRange.MIN && value <= JpegQualityRange.MAX;
}

/** A stream's layers: info.layers, or the one its picture makes when the camera names none. */
export function layersOf(info) {
  if (info.layers?.length) return info.layers;
  return [{ name: `${info.height}p`, width: info.width, height: info.height, fps: info.fps }];
}

/**
 * How far the camera's frame numbers (the test pattern's) advance per frame of this
 * layer: 2 for a layer at half the capture's rate, which takes every other frame.
 */
export function frameStep(info, layerName) {
  const layer = info?.layers?.find((l) => l.name === layerName);
  return layer ? Math.max(1, Math.round(info.fps / layer.fps)) : 1;
}

/** "480p (854x480)", and on the relay "480p (854x480) JPEG q65". */
export function describeLayer({ layer, width, height, jpegQuality }) {
  return `${layer} (${width}x${height})${jpegQuality ? ` JPEG q${jpegQuality}` : ''}`;
}

/** Why the picture moved, in words: "720p -> 480p: 12% loss"; '' for the viewer's own pick. */
export function describeMove(previous, current) {
  if (!current?.reason) return '';
  let move = current.layer;
  if (previous && previous.layer !== current.layer) {
    move = `${previous.layer} -> ${current.layer}`;
  } else if (previous?.jpegQuality && current.jpegQuality && previous.jpegQuality !== current.jpegQuality) {
    move = `${current.layer} JPEG q${previous.jpegQuality} -> q${current.jpegQuality}`;
  }
  return `${move}: ${current.reason}`;
}

/** The layer each path delivers, and the one of the path in use. */
export class LayerTracker {
  /** How often the layer shown changed (its name; a JPEG quality alone is no switch). */
  switches = 0;

  #latest = new Map(); // path -> {layer, width, height, reason, jpegQuality}
  #path;
  #shown = null;
  #lastName = null; // of the last layer shown, kept across forget() so a new camera's counts
  #onChange;

  /**
   * `path`: the one in use now. onChange({previous, current, announced}) whenever the
   * layer shown changes: `announced` when a `layer` message for the path in use did it
   * (its reason says why), not when the path changed.
   */
  constructor(path, onChange) {
    this.#path = path;
    this.#onChange = onChange;
  }

  /** {layer, width, height, reason, jpegQuality} of the path in use, or null before it is known. */
  get current() {
    return this.#shown;
  }

  /** A `layer` message, from the camera watched or from the server. */
  received(message) {
    const path = message.from ? Path.P2P : Path.RELAY;
    const layer = {
      layer: message.layer,
      width: message.width,
      height: message.height,
      reason: message.reason ?? '',
      jpegQuality: message.jpeg_quality ?? null,
    };
    this.#latest.set(path, layer);
    if (path === this.#path) this.#show(layer, true);
  }

  /** Frames come by this path from now on. */
  use(path) {
    if (path === this.#path) return;
    this.#path = path;
    this.#show(this.#latest.get(path) ?? null, false);
  }

  /** Forget a path's layer (its next session says it again), or every path's. */
  forget(path = null) {
    if (path === null) this.#latest.clear();
    else this.#latest.delete(path);
  }

  #show(layer, announced) {
    const previous = this.#shown;
    this.#shown = layer;
    if (layer !== null) {
      if (this.#lastName !== null && layer.layer !== this.#lastName) this.switches += 1;
      this.#lastName = layer.layer;
    }
    this.#onChange({ previous, current: layer, announced });
  }
}
