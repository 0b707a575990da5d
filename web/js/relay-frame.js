// The relay frame: one JPEG picture in one binary WebSocket message.
// signaling/relayframe.py is the source of truth for this layout: change it there first,
// then mirror it here. A 22-byte header (network byte order), then the JPEG bytes:
//
//   offset size  field
//   0      1     version (1)
//   1      1     header length in bytes (22; a reader skips what it does not know)
//   2      1     JPEG quality (1-100)
//   3      1     flags (0; reserved)
//   4      4     sequence number (uint32; +1 per frame of this layer and quality, gaps = drops)
//   8      8     capture time (uint64, microseconds since the Unix epoch)
//   16     2     width
//   18     2     height
//   20     1     layer: its index in the stream's info.layers (0: the top layer)
//   21     1     reserved (0)

const RELAY_FRAME_VERSION = 1;
const HEADER_SIZE = 20; // the fields every version 1 frame has
const LAYER_OFFSET = 20;

export class RelayFrameError extends Error {}

/**
 * The header fields and the JPEG bytes (a view, not a copy) of one relay frame;
 * throws RelayFrameError when `buffer` (an ArrayBuffer) is not one.
 */
export function parseRelayFrame(buffer) {
  if (buffer.byteLength < HEADER_SIZE) {
    throw new RelayFrameError(`relay frame of ${buffer.byteLength} bytes is shorter than its header`);
  }
  const header = new DataView(buffer);
  const version = header.getUint8(0);
  const headerSize = header.getUint8(1);
  if (version !== RELAY_FRAME_VERSION || headerSize < HEADER_SIZE || headerSize > buffer.byteLength) {
    throw new RelayFrameError(`not a version ${RELAY_FRAME_VERSION} relay frame`);
  }
  return {
    quality: header.getUint8(2),
    sequence: header.getUint32(4),
    // Microseconds pass Number's exact range (2**53) only in the year 2255.
    captureTimeMs: Number(header.getBigUint64(8)) / 1000,
    width: header.getUint16(16),
    height: header.getUint16(18),
    layer: headerSize > LAYER_OFFSET ? header.getUint8(LAYER_OFFSET) : 0,
    jpeg: new Uint8Array(buffer, headerSize),
  };
}
