// The player's signaling socket, opened as soon as the page's HTML is in: player.html runs
// this module on its own (async), so the socket's handshake and the server's first messages
// overlap with the loading of the page's other modules. player.js hands it to its
// SignalingClient, which replays what came meanwhile. Any other page that wants one
// includes it the same way.

import { loadTimeline } from './load-timeline.js';
import { openEarly } from './signaling-client.js';

/** The open (or opening) socket and the messages it held; see openEarly(). */
export const earlySocket = openEarly();
earlySocket.socket.addEventListener('open', () => loadTimeline.mark('ws-open'), { once: true });
