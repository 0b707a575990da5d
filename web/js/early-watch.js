// The player's first steps, taken on the early socket (early-socket.js) before the rest of
// the page loads. The first `watch` goes out the moment the socket opens. The first P2P
// session's peer connection and offer are made ahead (p2p-transport.js: prepareOffer), set
// with the welcome's ICE servers as it comes. When the camera is live, that session starts
// here: the camera's answer, ICE, DTLS and the first picture come while the renderer's one
// thread is not yet busy with the player's two dozen modules. The player (player.js and the
// rest, fetched ahead into the cache by prefetchPlayer) loads from here after the first
// picture, or a failure, or PLAYER_WAIT_MS, whichever is first; at once where no session
// starts here (?mode=relay, a camera that is not live, an error). It takes over the socket
// with the messages it held, and its Delivery carries the session on (takeEarlySession).

import { earlySocket } from './early-socket.js';
import { MessageType } from './protocol.js';
import { loadName } from './display-name.js';
import { pageRequest, watchMessage } from './page-request.js';
import { P2PTransport, preparedIceServers, prepareOffer } from './p2p-transport.js';
import { loadTimeline } from './load-timeline.js';

/** The longest the player waits for the early session's first picture before it loads all the same. */
const PLAYER_WAIT_MS = 1000;
/** The most chat messages the early session keeps for the player (they come on its data channel). */
const MAX_HELD_CHATS = 100;

/** The viewer's display name, as the watch carries it (display-name.js: ?name=, else the remembered one). */
export const watchName = loadName(location.search);

const { socket } = earlySocket;
/** The session started here: {transport, camera, chats, failure} (see Delivery's `early`), or null. */
let session = null;
let watching = null; // the server's `watching`, once it came
let handedOver = false; // the player took over the socket: it starts every session from now on
let playerLoading = false;

/**
 * The player takes over: the socket's messages are its own from now on, and it gets the
 * session started here (null: none), for its Delivery to carry on.
 */
export function takeEarlySession() {
  handedOver = true;
  const taken = session;
  session = null;
  return taken;
}

/** The early socket closed before the player took it over: its session's signaling is gone with it. */
function socketClosed() {
  if (!handedOver) {
    session?.transport.stop();
    session = null;
  }
  loadPlayer();
}

/** Run `then` once the page is parsed: an async module such as this one may run before. */
function whenParsed(then) {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', then, { once: true });
  else then();
}

/**
 * Fetch the player's modules now, into the HTTP cache only (`prefetch`: no parsing on the
 * page's thread), so that their bytes are in before the camera's pictures share the link
 * with them: on a slow link they would otherwise compete, and the picture stall.
 */
function prefetchPlayer() {
  for (const preload of document.getElementById('player-modules').content.querySelectorAll('link')) {
    const link = document.createElement('link');
    link.rel = 'prefetch';
    link.href = preload.href;
    document.head.append(link);
  }
}

/** The rest of the page: the template's modules all at once (as the head's are), then player.js. */
function loadPlayer() {
  if (playerLoading) return;
  playerLoading = true;
  whenParsed(() => {
    document.head.append(document.getElementById('player-modules').content.cloneNode(true));
    import('./player.js');
  });
}

function send(message) {
  if (socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

/** The camera is live: start its P2P session here, where the page plays P2P first. */
function startSession({ camera_id: cameraId, info }) {
  const video = document.getElementById('video');
  if (pageRequest.relayOnly || watching === null || session !== null || video === null) {
    loadPlayer();
    return;
  }
  // As the player's Delivery will start it (talk: the server's grant; the page may still not
  // offer the microphone, on an insecure origin, and the audio section then goes unused).
  const camera = {
    cameraId, iceServers: watching.ice_servers ?? [], iceTransportPolicy: pageRequest.iceTransportPolicy,
    audio: info.audio ?? null, talk: watching.talk ?? false,
  };
  const started = { camera, chats: [], failure: null };
  started.transport = new P2PTransport({
    signaling: { send }, ...camera, video, connectTimeoutMs: pageRequest.connectTimeoutMs,
    onFrame: () => {
      loadTimeline.mark('first-frame');
      loadPlayer();
    },
    onFailure: (reason) => {
      started.failure = reason;
      loadPlayer();
    },
    onChat: (message) => {
      started.chats.push(message);
      if (started.chats.length > MAX_HELD_CHATS) started.chats.shift();
    },
  });
  session = started;
  started.transport.start();
}

/** A message the early socket received before the player took it over. */
function received(data) {
  if (handedOver || typeof data !== 'string') return;
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return; // the player's client says so
  }
  switch (message.type) {
    case MessageType.WELCOME:
      loadTimeline.mark('welcome');
      preparedIceServers(message.ice_servers);
      break;
    case MessageType.WATCHING:
      loadTimeline.mark('watching');
      watching = message;
      if (!message.live) loadPlayer(); // nothing to start until it is
      break;
    case MessageType.STREAM_LIVE:
      loadTimeline.mark('stream-live');
      startSession(message);
      break;
    case MessageType.ANSWER:
    case MessageType.CANDIDATE:
    case MessageType.HANGUP: {
      if (session === null || message.from !== session.camera.cameraId) break;
      session.transport.handleSignal(message);
      // Taken here: the player does not get it again with the others the socket held.
      const index = earlySocket.held.lastIndexOf(data);
      if (index >= 0) earlySocket.held.splice(index, 1);
      break;
    }
    case MessageType.ERROR:
      loadPlayer(); // a refused watch, say: the player says so and goes on
      break;
  }
}

// A socket the player adopts is open or opening (signaling-client.js): either way it carries
// this watch before the player hears of its opening (listeners run in the order added).
const watch = () => send(watchMessage(pageRequest, watchName));
if (socket.readyState === WebSocket.OPEN) watch();
else if (socket.readyState === WebSocket.CONNECTING) socket.addEventListener('open', watch, { once: true });

if (pageRequest.relayOnly || socket.readyState > WebSocket.OPEN) {
  loadPlayer();
} else {
  whenParsed(prefetchPlayer);
  prepareOffer(pageRequest.iceTransportPolicy);
  // What came before this module's imports did (held for the player, which still gets it),
  // then the rest as it comes, after the early socket's own handler has held it.
  for (const data of [...earlySocket.held]) received(data);
  socket.addEventListener('message', ({ data }) => received(data));
  socket.addEventListener('close', socketClosed, { once: true });
  setTimeout(loadPlayer, PLAYER_WAIT_MS);
}
