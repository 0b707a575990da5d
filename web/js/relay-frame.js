// The relay frame: one picture, or one packet of sound, in one binary WebSocket message.
// peercam/shared/relayframe.py is the source of truth for this layout, and its constants
// come from there (RelayFrameLayout in protocol.js, generated); tests/relayframe_cases.json
// runs against both. The player reads frames, the browser camera writes them.
// A 22-byte header (network byte order), then the picture's bytes:
//
//   offset size  field
//   0      1     version: 1 JPEG picture, 2 encoded video frame, 3 encoded audio packet
//   1      1     header length in bytes (22; a reader skips what it does not know)
//   2      1     version 1: JPEG quality (1-100); versions 2 and 3: codec (1 VP8, 2 H.264; 1 Opus)
//   3      1     flags: version 2: bit 0 set on a keyframe; versions 1 and 3: 0 (reserved)
//   4      4     sequence number (uint32; +1 per frame of this rendition, gaps = frames not sent)
//   8      8     capture time (uint64, microseconds since the Unix epoch)
//   16     2     width; version 3: sample rate (Hz, 48000 for Opus)
//   18     2     height; version 3: channels (1 or 2)
//   20     1     layer: its index in the stream's info.layers (0: the top layer); version 3: 0
//   21     1     reserved (0)
//
// Version 2 carries one frame as the camera's encoder made it (VP8, or H.264 as Annex B
// NAL units): it decodes only after the frames before it, back to a keyframe. Version 3
// carries one Opus packet (20 ms), which decodes on its own.

import { RelayFrameLayout } from './protocol.js';

const {
  JPEG_VERSION, ENCODED_VERSION, AUDIO_VERSION, BASE_HEADER_SIZE, HEADER_SIZE, LAYER_OFFSET, KEYFRAME_FLAG,
  MIN_JPEG_QUALITY, MAX_JPEG_QUALITY, CODECS, AUDIO_CODECS, SAMPLE_RATES,
} = RelayFrameLayout;
const CODEC_NAMES = Object.fromEntries(Object.entries(CODECS).map(([name, number]) => [number, name]));
const AUDIO_CODEC_NAMES = Object.fromEntries(Object.entries(AUDIO_CODECS).map(([name, number]) => [number, name]));

export class RelayFrameError extends Error {}

/**
 * The header fields and the picture's bytes (`payload`, a view, not a copy) of one relay
 * frame: {format: 'jpeg'|'encoded'|'audio', jpegQuality (JPEG; 0 otherwise), codec ('vp8',
 * 'h264', 'opus'; null on JPEG), keyframe (encoded; true on audio), sequence, captureTimeMs,
 * width, height (audio: sample rate and channels), layer, payload}. Throws RelayFrameError
 * when `buffer` (an ArrayBuffer) is not one.
 */
export function parseRelayFrame(buffer) {
  if (buffer.byteLength < BASE_HEADER_SIZE) {
    throw new RelayFrameError(`relay frame of ${buffer.byteLength} bytes is shorter than its header`);
  }
  const header = new DataView(buffer);
  const version = header.getUint8(0);
  const headerSize = header.getUint8(1);
  if (![JPEG_VERSION, ENCODED_VERSION, AUDIO_VERSION].includes(version)
      || headerSize < BASE_HEADER_SIZE || headerSize > buffer.byteLength) {
    throw new RelayFrameError(
      `not a relay frame (version ${JPEG_VERSION}, ${ENCODED_VERSION} or ${AUDIO_VERSION})`);
  }
  const encoded = version === ENCODED_VERSION;
  const audio = version === AUDIO_VERSION;
  const byte2 = header.getUint8(2);
  const payload = new Uint8Array(buffer, headerSize);
  const width = header.getUint16(16);
  const height = header.getUint16(18);
  let codec = null;
  if (audio) {
    codec = AUDIO_CODEC_NAMES[byte2];
    if (codec === undefined) throw new RelayFrameError(`audio relay frame of unknown codec ${byte2}`);
    if (!SAMPLE_RATES.includes(width) || ![1, 2].includes(height)) {
      throw new RelayFrameError(`audio relay frame of ${width} Hz and ${height} channels: `
        + 'Opus is 48000 Hz, 1 or 2 channels');
    }
    if (payload.byteLength === 0) throw new RelayFrameError('audio relay frame without a packet');
  } else if (!encoded) {
    if (byte2 < MIN_JPEG_QUALITY || byte2 > MAX_JPEG_QUALITY) {
      throw new RelayFrameError(
        `relay frame of JPEG quality ${byte2}: the quality is ${MIN_JPEG_QUALITY} to ${MAX_JPEG_QUALITY}`);
    }
    if (payload[0] !== 0xff || payload[1] !== 0xd8) {
      throw new RelayFrameError('relay frame does not carry a JPEG picture');
    }
  } else {
    codec = CODEC_NAMES[byte2];
    if (codec === undefined) throw new RelayFrameError(`encoded relay frame of unknown codec ${byte2}`);
    if (payload.byteLength === 0) throw new RelayFrameError('encoded relay frame without a frame');
  }
  const jpeg = !encoded && !audio;
  return {
    format: audio ? 'audio' : encoded ? 'encoded' : 'jpeg',
    jpegQuality: jpeg ? byte2 : 0,
    codec,
    keyframe: audio || (encoded && (header.getUint8(3) & KEYFRAME_FLAG) !== 0),
    sequence: header.getUint32(4),
    // Microseconds pass Number's exact range (2**53) only in the year 2255.
    captureTimeMs: Number(header.getBigUint64(8)) / 1000,
    width,
    height,
    layer: headerSize > LAYER_OFFSET && !audio ? header.getUint8(LAYER_OFFSET) : 0,
    payload,
  };
}

/**
 * One relay frame, header and picture (or sound), as a camera sends it (a Uint8Array).
 * `fields`: {format: 'jpeg'|'encoded'|'audio', jpegQuality (JPEG), codec ('vp8', 'h264';
 * encoded; 'opus': audio), keyframe (encoded), sequence, captureTimeMs, width, height (audio:
 * sample rate and channels), layer}; `payload`: the picture's or the sound's bytes.
 */
export function packRelayFrame(fields, payload) {
  const encoded = fields.format === 'encoded';
  const audio = fields.format === 'audio';
  const frame = new Uint8Array(HEADER_SIZE + payload.byteLength);
  const header = new DataView(frame.buffer);
  header.setUint8(0, audio ? AUDIO_VERSION : encoded ? ENCODED_VERSION : JPEG_VERSION);
  header.setUint8(1, HEADER_SIZE);
  header.setUint8(2, audio ? AUDIO_CODECS[fields.codec] : encoded ? CODECS[fields.codec] : fields.jpegQuality);
  header.setUint8(3, encoded && fields.keyframe ? KEYFRAME_FLAG : 0);
  header.setUint32(4, fields.sequence >>> 0);
  header.setBigUint64(8, BigInt(Math.round(fields.captureTimeMs * 1000)));
  header.setUint16(16, fields.width);
  header.setUint16(18, fields.height);
  header.setUint8(LAYER_OFFSET, fields.layer ?? 0);
  frame.set(payload, HEADER_SIZE);
  return frame;
}
