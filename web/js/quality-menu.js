// The quality menu (#quality): "auto", then each layer the stream's camera offers,
// largest first. It is rebuilt when a camera with other layers comes; the viewer's pick
// stays as it is (a camera without that layer sends the nearest one it has).

import { AUTO_QUALITY } from './layers.js';

export class QualityMenu {
  #select = document.getElementById('quality');

  /** Call handler(quality) when the viewer picks "auto" or a layer's name. */
  onPicked(handler) {
    this.#select.addEventListener('change', () => handler(this.#select.value));
  }

  /** The layers on offer ([{name, width, height, fps}], largest first; none before a camera) and the pick. */
  show(layers, chosen) {
    const options = [option(AUTO_QUALITY, 'auto', 'follow the network')];
    for (const { name, width, height, fps } of layers) {
      options.push(option(name, name, `${width}x${height} at ${fps} fps`));
    }
    if (!options.some((o) => o.value === chosen)) {
      // Picked in the URL, or offered by an earlier camera: kept until the viewer picks again.
      const known = layers.length > 0;
      options.push(option(chosen, known ? `${chosen} (not offered)` : chosen,
        known ? 'this camera has no such layer: it sends the nearest one' : ''));
    }
    this.#select.replaceChildren(...options);
    this.#select.value = chosen;
  }
}

function option(value, text, title) {
  const element = document.createElement('option');
  element.value = value;
  element.textContent = text;
  element.title = title;
  return element;
}
