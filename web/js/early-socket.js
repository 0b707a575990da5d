// The player's signaling socket, opened by player.html's inline script before the page's
// stylesheet and modules load, so that its handshake and the server's first messages
// overlap with them. player.js hands it to its SignalingClient (the `early` option),
// which replays what came meanwhile; early-watch.js sends the first watch on it.

/** The socket, the messages it held, and when it opened (performance.now(), or null). */
export const earlySocket = window.peercamEarlySocket;
