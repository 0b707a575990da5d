// The signaling protocol's names, for the browser.
// signaling/protocol.py is the source of truth: change it there first, then mirror it here.

export const PROTOCOL_VERSION = 1;

/** Chat limits, in characters; the camera (the chat hub) refuses longer ones. */
export const MAX_CHAT_TEXT = 500;
export const MAX_NAME = 32;

/** The `type` field of every signaling message. */
export const MessageType = Object.freeze({
  // Client -> server
  PUBLISH: 'publish',
  WATCH: 'watch', // {stream, name}
  RELAY: 'relay', // {enabled}: relay frames arrive as binary messages (see relay-frame.js)
  STATS: 'stats', // {stats: ViewerStats}, every few seconds (see viewer-stats.js)
  CAMERA_STATS: 'camera-stats', // {stats: CameraStats}, from the camera
  // Routed both ways (the server fills in `from`)
  OFFER: 'offer',
  ANSWER: 'answer',
  CANDIDATE: 'candidate',
  HANGUP: 'hangup',
  // Chat: also on the P2P "chat" data channel
  CHAT_SEND: 'chat-send', // {name, text}, to the camera
  CHAT_HISTORY: 'chat-history', // {messages}, from the camera
  CHAT_NOTICE: 'chat-notice', // {reason}: the camera refused a chat-send
  CHAT: 'chat', // {id, name, text, time}: one stamped message, to every viewer
  // Server -> client
  WELCOME: 'welcome',
  ICE_SERVERS: 'ice-servers', // {ice_servers}: fresh TURN credentials for new connections
  PUBLISHED: 'published',
  WATCHING: 'watching',
  STREAM_LIVE: 'stream-live',
  STREAM_ENDED: 'stream-ended',
  RELAY_FRAMES: 'relay-frames', // to a camera
  VIEWER_JOINED: 'viewer-joined',
  VIEWER_LEFT: 'viewer-left',
  ERROR: 'error',
});

/** The `code` values of an `error` message. */
export const ErrorCode = Object.freeze({
  BAD_JSON: 'bad-json',
  BAD_MESSAGE: 'bad-message',
  UNKNOWN_TYPE: 'unknown-type',
  TOO_LARGE: 'too-large',
  BINARY_NOT_ALLOWED: 'binary-not-allowed',
  BAD_RELAY_FRAME: 'bad-relay-frame',
  BAD_NAME: 'bad-name',
  BAD_STREAM_NAME: 'bad-stream-name',
  STREAM_TAKEN: 'stream-taken',
  NO_SUCH_STREAM: 'no-such-stream',
  UNKNOWN_PEER: 'unknown-peer',
  WRONG_STATE: 'wrong-state',
  OVERLOADED: 'overloaded',
});
