// What the player page asks for, read once from its URL: the stream (/view/NAME) and the
// picks its first steps need as well as the player (?quality=, ?jpeg_quality=, ?token=,
// ?ice=, ?connect_timeout=, and whether ?mode= is relay). early-watch.js sends the first
// `watch` with them and starts the first P2P session; the player sends every later watch
// (after a reconnect, or a refused name) and reads its other options itself.

import { MessageType, PROTOCOL_VERSION } from './protocol.js';
import { AUTO_QUALITY, JpegQualityRange, isJpegQuality, isQuality } from './layers.js';

/** The Python viewer's --connect-timeout default: a P2P session with no video by then has failed. */
const CONNECT_TIMEOUT_S = 5;

/** A `watch` for the stream, with the viewer's display name and picks (quality, jpegQuality: null, the camera's). */
export function watchMessage({ stream, token, quality, jpegQuality }, name) {
  return withQuality({ type: MessageType.WATCH, stream, name, token, protocol: PROTOCOL_VERSION },
    quality, jpegQuality);
}

/** The message (`watch` or `quality`) with the viewer's quality and, when it picked one, its JPEG quality. */
export function withQuality(message, quality, jpegQuality) {
  message.quality = quality;
  if (jpegQuality !== null) message.jpeg_quality = jpegQuality;
  return message;
}

function streamNameFromPath(pathname) {
  const encoded = pathname.replace(/^\/view\//, '');
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded; // malformed escapes: let the server reject the name
  }
}

/** ?quality=auto|LAYER (e.g. 480p, 360p@15); anything else is ignored, and said so. */
function qualityParam(params) {
  const quality = params.get('quality');
  if (quality === null || isQuality(quality)) return quality ?? AUTO_QUALITY;
  console.warn(`peercam: ignoring ?quality=${quality}: use auto or a layer such as 720p or 360p@15`);
  return AUTO_QUALITY;
}

/** ?jpeg_quality=50-95, the relay's JPEG quality; null (the camera's, adapted) otherwise. */
function jpegQualityParam(params) {
  const text = params.get('jpeg_quality');
  if (text === null) return null;
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (isJpegQuality(value)) return value;
  const { MIN, MAX } = JpegQualityRange;
  console.warn(`peercam: ignoring ?jpeg_quality=${text}: use a whole number from ${MIN} to ${MAX}`);
  return null;
}

/** ?NAME=S, a positive number of seconds; else the fallback. */
export function secondsParam(params, name, fallback) {
  const seconds = Number(params.get(name));
  return params.has(name) && seconds > 0 ? seconds : fallback;
}

/**
 * This page's request: {stream, token, quality, jpegQuality, iceTransportPolicy, relayOnly,
 * connectTimeoutMs}.
 */
export const pageRequest = Object.freeze((() => {
  const params = new URLSearchParams(location.search);
  return {
    stream: streamNameFromPath(location.pathname),
    token: params.get('token') ?? '', // when the server runs with --auth all
    quality: qualityParam(params),
    jpegQuality: jpegQualityParam(params),
    iceTransportPolicy: params.get('ice') === 'turn' ? 'relay' : 'all', // the browser's word for TURN only
    relayOnly: params.get('mode') === 'relay', // DeliveryMode.RELAY: no P2P session comes
    connectTimeoutMs: secondsParam(params, 'connect_timeout', CONNECT_TIMEOUT_S) * 1000, // for tests
  };
})());
