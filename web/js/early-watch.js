// The player's first steps, taken on the early socket (early-socket.js) while the page's
// other modules load: its first `watch` goes out the moment the socket opens, so the
// server's welcome, watching and stream-live are there, held, when the player starts; and
// the first P2P session's peer connection and offer are made ahead (p2p-transport.js:
// prepareOffer), set with the welcome's ICE servers as it comes, ready to go out with
// stream-live. player.html runs this on its own (async) as soon as its few imports are in;
// the player sends every later watch.

import { earlySocket } from './early-socket.js';
import { MessageType } from './protocol.js';
import { loadName } from './display-name.js';
import { pageRequest, watchMessage } from './page-request.js';
import { preparedIceServers, prepareOffer } from './p2p-transport.js';

/** The viewer's display name, as the watch carries it (display-name.js: ?name=, else the remembered one). */
export const watchName = loadName(location.search);

const { socket } = earlySocket;
const send = () => socket.send(JSON.stringify(watchMessage(pageRequest, watchName)));
// A socket the player adopts is open or opening (signaling-client.js): either way it carries
// this watch before the player hears of its opening (listeners run in the order added).
if (socket.readyState === WebSocket.OPEN) send();
else if (socket.readyState === WebSocket.CONNECTING) socket.addEventListener('open', send, { once: true });

/** The welcome is the server's first message (its held copy stays for the player). */
function welcomed(data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return; // the player's client says so
  }
  if (message.type === MessageType.WELCOME) preparedIceServers(message.ice_servers);
}

if (!pageRequest.relayOnly && socket.readyState <= WebSocket.OPEN) {
  prepareOffer(pageRequest.iceTransportPolicy);
  // It may have come before this module's imports did.
  if (earlySocket.held.length > 0) welcomed(earlySocket.held[0]);
  else socket.addEventListener('message', ({ data }) => welcomed(data), { once: true });
}
