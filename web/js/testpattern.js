// Reads the timing code that peers/testpattern.py draws into each test-pattern frame:
// 3 rows of 32 black/white blocks, one block in from the top-left corner, carrying
// six 16-bit words MSB-first: time[47:32], time[31:16], time[15:0], frame[31:16],
// frame[15:0] and a check word, the CRC-16/CCITT-FALSE of those five, big-endian. Keep this in
// step with peers/testpattern.py: tests/testpattern_cases.json runs against both readers.

const BITS_PER_ROW = 32;
const ROWS = 3;
const WORDS = 6;

/**
 * Side of one code block in pixels (16 at 640 wide; a fraction where width / 40 is one,
 * so a picture scaled to another width, a quality layer, keeps its code readable).
 */
export function blockSize(width) {
  return Math.max(4, width / 40);
}

/** Where block k starts (and block k - 1 ends). */
function edge(k, b) {
  return Math.floor(k * b + 0.5);
}

/** Width and height of the top-left band holding the code, border included. */
export function codeRegion(width) {
  const b = blockSize(width);
  return { width: edge(BITS_PER_ROW + 2, b), height: edge(ROWS + 2, b) };
}

/**
 * The stamp in the frame `source` shows now: {timeMs, frame}, or null when the
 * frame carries no readable code. `source` is a <video> (read at its intrinsic
 * size) or any other canvas image source with width/height; `canvas` is a scratch
 * canvas the caller keeps, so nothing is allocated per frame.
 */
export function readStamp(source, canvas) {
  const width = source.videoWidth ?? source.width;
  const height = source.videoHeight ?? source.height;
  const region = codeRegion(width);
  if (!width || region.width > width || region.height > height) return null;

  if (canvas.width !== region.width) canvas.width = region.width;
  if (canvas.height !== region.height) canvas.height = region.height;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(source, 0, 0, region.width, region.height, 0, 0, region.width, region.height);
  const pixels = context.getImageData(0, 0, region.width, region.height).data;

  const words = readWords(pixels, region.width, blockSize(width));
  if (checkWord(words.slice(0, 5)) !== words[5]) return null;
  return {
    // 48 and 32 bit values: multiply rather than shift, JS shifts are 32-bit.
    timeMs: words[0] * 2 ** 32 + words[1] * 2 ** 16 + words[2],
    frame: words[3] * 2 ** 16 + words[4],
  };
}

/** CRC-16/CCITT-FALSE (polynomial 0x1021, start 0xFFFF) of 16-bit words, big-endian. */
function checkWord(words) {
  let crc = 0xffff;
  for (const word of words) {
    for (const byte of [word >> 8, word & 0xff]) {
      crc ^= byte << 8;
      for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

function readWords(pixels, stride, b) {
  const words = new Array(WORDS).fill(0);
  for (let bit = 0; bit < WORDS * 16; bit++) {
    const row = Math.floor(bit / BITS_PER_ROW);
    const col = bit % BITS_PER_ROW;
    const on = blockLuma(pixels, stride, (col + 1) * b, (row + 1) * b, b) > 128;
    const word = Math.floor(bit / 16);
    words[word] = (words[word] << 1) | (on ? 1 : 0);
  }
  return words;
}

/**
 * Mean luma of the central half of the block at (x, y) (fractional pixels, as
 * peers/testpattern.py reads it): edges blur under compression and scaling.
 */
function blockLuma(pixels, stride, x, y, b) {
  const size = Math.max(1, Math.floor(b / 2));
  const x0 = Math.floor(x + b / 4 + 0.5);
  const y0 = Math.floor(y + b / 4 + 0.5);
  let sum = 0;
  for (let dy = 0; dy < size; dy++) {
    let i = ((y0 + dy) * stride + x0) * 4;
    for (let dx = 0; dx < size; dx++, i += 4) {
      sum += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
    }
  }
  return sum / (size * size);
}
