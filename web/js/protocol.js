// Generated from peercam/shared/protocol.py and relayframe.py by
// `python3 -m peercam.shared.protocoljs`: do not edit.
// tests/test_protocoljs.py fails when this file and the protocol differ.

export const PROTOCOL_VERSION = 4;

/** Chat limits, in characters; the camera (the chat hub) refuses longer ones. */
export const MAX_CHAT_TEXT = 500;
export const MAX_NAME = 32;

/** The chat hub: messages kept for newcomers; lines a viewer may send (a second, and a burst). */
export const CHAT_HISTORY_SIZE = 50;
export const CHAT_RATE = 5;
export const CHAT_BURST = 10;
/** The camera's name in chat when it has none: no viewer may take it. */
export const CAMERA_CHAT_NAME = 'camera';

/** clean_text turns TEXT_BREAKS into spaces and drops BIDI_CONTROLS and every control character (Cc). */
export const TEXT_BREAKS = '\u0009\u000a\u000d\u2028\u2029';
export const BIDI_CONTROLS = '\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069';

/** The relay frame's layout: a header, then the picture (web/js/relay-frame.js reads and writes it). */
export const RelayFrameLayout = Object.freeze({
  JPEG_VERSION: 1,
  ENCODED_VERSION: 2,
  AUDIO_VERSION: 3, // an Opus packet: width is its sample rate, height its channels
  BASE_HEADER_SIZE: 20, // the fields every frame has: no layer (layer 0)
  HEADER_SIZE: 22,
  LAYER_OFFSET: 20,
  KEYFRAME_FLAG: 1,
  MIN_JPEG_QUALITY: 1,
  MAX_JPEG_QUALITY: 100,
  CODECS: Object.freeze({ vp8: 1, h264: 2 }), // an encoded frame's codec byte
  AUDIO_CODECS: Object.freeze({ opus: 1 }), // an audio packet's codec byte
  SAMPLE_RATES: Object.freeze([48000]), // an audio packet's sample rates
});

/** The `type` field of every signaling message. */
export const MessageType = Object.freeze({
  PUBLISH: 'publish', // A camera claims a stream name; one camera per name.
  WATCH: 'watch', // A viewer follows a stream, live or not yet live, at the quality it picks.
  QUALITY: 'quality', // A viewer picks another layer (or "auto") and, on a JPEG relay, another JPEG quality.
  STATS: 'stats', // Every few seconds, from each viewer: what it measures.
  CAMERA_STATS: 'camera-stats', // Every few seconds, from the camera: its side of the stream.
  CHAT: 'chat', // One stamped chat message, as the camera (the chat hub) sends it to everyone.
  RENAME: 'rename', // A viewer picks another display name (chat, the stream's viewer list).
  RELAY: 'relay', // A viewer asks for (or leaves) its stream's relay: frames over this socket, in
  OFFER: 'offer', // SDP offer. Viewers offer (recvonly video + a "chat" data channel).
  ANSWER: 'answer', // The camera's SDP answer to a viewer's offer.
  CANDIDATE: 'candidate', // A trickled ICE candidate; ``candidate: null`` means end of candidates.
  HANGUP: 'hangup', // Either side closed its peer connection, and says why (a bad offer, say).
  CHAT_SEND: 'chat-send', // A viewer's chat line for the camera to stamp and share (data channel or signaling).
  CHAT_HISTORY: 'chat-history', // The last messages, for a newcomer.
  TALK_START: 'talk-start', // A viewer asks for the floor: to talk through the camera's speaker. One speaker at a
  TALK_STOP: 'talk-stop', // The speaker gives the floor back; or, from the camera (``to`` the speaker), the turn
  TALK_REFUSED: 'talk-refused', // The floor was not given, and why: someone else is talking (from the camera), or this
  LAYER: 'layer', // Which layer a viewer gets from now on, and why: from the camera for P2P, from the
  CHAT_NOTICE: 'chat-notice', // The camera refused a chat line (too long, too fast) and says why.
  WELCOME: 'welcome', // First message on every connection.
  ICE_SERVERS: 'ice-servers', // Fresh TURN credentials, sent before the welcome's expire, for peer connections made from now on.
  PUBLISHED: 'published', // The name is the camera's. ``ice_servers`` is the full list (TURN credentials too).
  WATCHING: 'watching', // Acknowledges ``watch``; ``live`` says whether a camera is there now.
  TALKING: 'talking', // Who holds the floor now, from the camera (the floor's keeper) to every viewer of its
  STREAM_LIVE: 'stream-live', // The stream's camera is there: a viewer may offer now.
  STREAM_ENDED: 'stream-ended', // The camera left; viewers stay subscribed and get ``stream-live`` again.
  RELAY_FRAMES: 'relay-frames', // Tells the camera which relay frames to send (none: stop): what relay readers read now.
  RELAY_KEYFRAME: 'relay-keyframe', // An encoded relay reader needs a keyframe of ``layer``: it is new, it switched layers,
  VIEWER_JOINED: 'viewer-joined', // A viewer came; ``name`` is the one it watched with, the only name it may chat under.
  VIEWER_QUALITY: 'viewer-quality', // A viewer picked another layer (or "auto"): its sender moves at that layer's next keyframe.
  VIEWER_RENAMED: 'viewer-renamed', // A viewer goes by another name from now on (its next chat lines carry it).
  VIEWER_LEFT: 'viewer-left', // The viewer is gone: the camera tears down its peer connection.
  ERROR: 'error', // Something the client sent was refused.
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
  BAD_TOKEN: 'bad-token',
  RATE_LIMITED: 'rate-limited',
  STREAM_FULL: 'stream-full',
  TOO_MANY_STREAMS: 'too-many-streams',
  TOO_MANY_CONNECTIONS: 'too-many-connections',
  BAD_STREAM_NAME: 'bad-stream-name',
  STREAM_TAKEN: 'stream-taken',
  NO_SUCH_STREAM: 'no-such-stream',
  UNKNOWN_PEER: 'unknown-peer',
  WRONG_STATE: 'wrong-state',
  OVERLOADED: 'overloaded',
  IDLE_TIMEOUT: 'idle-timeout',
});
