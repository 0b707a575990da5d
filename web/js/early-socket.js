// The player's signaling socket, opened as soon as this module arrives: player.html runs
// it on its own (async), and it imports nothing, so the socket's handshake and the server's
// first messages overlap with the loading of the page's other modules. player.js hands it
// to its SignalingClient (the `early` option), which replays what came meanwhile. Any
// other page that wants one includes it the same way.

// As signaling-client.js's defaultSignalingUrl(): this module waits for no other.
const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
socket.binaryType = 'arraybuffer';

/** The socket, the messages it held, and when it opened (performance.now(), or null). */
export const earlySocket = { socket, held: [], openedAt: null };

socket.onmessage = (event) => earlySocket.held.push(event.data);
socket.addEventListener('open', () => {
  earlySocket.openedAt = performance.now();
}, { once: true });
