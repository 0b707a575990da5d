// Which relay format the page asks for: the camera's encoded frames where this browser
// decodes them (WebCodecs: HTTPS or localhost only), else JPEG, which any browser shows.

import { canDecode } from './relay-decoder.js';

/** What ?relay_format= accepts. */
export const RelayFormat = Object.freeze({ AUTO: 'auto', ENCODED: 'encoded', JPEG: 'jpeg' });

/**
 * Ask the browser now which codecs it decodes, so that the answer is in hand when the
 * relay is needed: the first answer can take tens of milliseconds (Chromium starts its
 * media service), and a viewer falling back to the relay should not wait for it.
 */
export function prepareRelayFormats() {
  for (const codec of ['vp8', 'h264']) canDecode(codec);
}

/** 'encoded' or 'jpeg': the format to ask for, `wanted` (a RelayFormat) for a camera's `codec`. */
export async function chooseRelayFormat(wanted, codec) {
  if (wanted === RelayFormat.JPEG) return RelayFormat.JPEG;
  if (await canDecode(codec)) return RelayFormat.ENCODED;
  if (wanted === RelayFormat.ENCODED) {
    const why = typeof VideoDecoder === 'undefined' ? 'no WebCodecs here (HTTPS or localhost only)'
      : `this browser cannot decode ${codec}`;
    console.warn(`peercam: ?relay_format=encoded, but ${why}: the relay sends JPEG`);
  }
  return RelayFormat.JPEG;
}
