"""The signaling protocol: every JSON message, defined once.

The server and the Python peers both use these structures; web/js/protocol.js
follows the same names. A message is a JSON object whose ``type`` field picks one
of the structures below. Binary WebSocket messages are reserved for relay frames.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

PROTOCOL_VERSION = 4
#: The protocol of a client that does not say (``protocol`` in publish and watch is new in 4).
#: The server still serves it: it sends such a client protocol 3's names (``encode``).
OLDEST_PROTOCOL = 3

#: A text message larger than this is refused with a ``too-large`` error.
MAX_TEXT_MESSAGE_BYTES = 64 * 1024

#: Chat limits, checked by the camera (the chat hub).
MAX_CHAT_TEXT = 500
MAX_NAME = 32
#: The chat hub keeps this many last messages for newcomers (``chat-history``).
CHAT_HISTORY_SIZE = 50
#: Chat lines one viewer may send: a steady rate (lines a second) with room for a burst.
CHAT_RATE = 5.0
CHAT_BURST = 10.0
#: The camera's name in chat when it has none; no viewer may take it, nor the camera's own.
CAMERA_CHAT_NAME = "camera"

#: Stream names appear in URLs, file names and logs: keep them short and plain, matched in full
#: (``fullmatch``: ``$`` alone would let a trailing newline through). The first character is
#: a letter or digit, so no name is ``.`` or ``..``.
STREAM_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: Bidirectional overrides and isolates: they can make a line read backwards in a log or a page.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Line and paragraph breaks and tabs: clean_text turns each into a space.
_TEXT_BREAKS = frozenset("\n\r\t\u2028\u2029")

#: The video codec a camera encodes with: "vp8" (the default) or "h264".
Codec = Literal["vp8", "h264"]
#: How relay frames carry the picture: the camera's encoded video frames (WebCodecs, PyAV),
#: or JPEG pictures (any browser).
RelayFormat = Literal["encoded", "jpeg"]
#: The audio codec a camera encodes its sound with (once, for every viewer).
AudioCodec = Literal["opus"]

# Bounded values for what peers report and announce: finite, never negative, and within
# what any real stream reaches, so a report cannot put 1e300 fps or a megabyte of text
# into the server's API.
Count = Annotated[int, Meta(ge=0, le=2**53)]
Fps = Annotated[float, Meta(ge=0, le=1000)]
Pixels = Annotated[int, Meta(ge=0, le=16384)]
Kbps = Annotated[float, Meta(ge=0, le=10_000_000)]
Millis = Annotated[float, Meta(ge=0, le=3_600_000)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
ShortText = Annotated[str, Meta(max_length=64)]


class ErrorCode:
    """The ``code`` values of an ``error`` message."""

    #: Not valid JSON.
    BAD_JSON = "bad-json"
    #: Not an object, a field missing or of the wrong type, a figure out of range.
    BAD_MESSAGE = "bad-message"
    #: A ``type`` the server does not know.
    UNKNOWN_TYPE = "unknown-type"
    #: A text message over MAX_TEXT_MESSAGE_BYTES, or an SDP over the server's limit.
    TOO_LARGE = "too-large"
    #: A binary message from anyone but a camera, or a viewer that holds the floor (talk back).
    BINARY_NOT_ALLOWED = "binary-not-allowed"
    #: A relay frame the server refuses (see the relay frame's checks); the camera stays connected.
    BAD_RELAY_FRAME = "bad-relay-frame"
    #: A display name that is not printable, too long, or taken on the stream (the camera's too).
    BAD_NAME = "bad-name"
    #: A token missing, wrong, expired or for another role or stream.
    BAD_TOKEN = "bad-token"
    #: Too many messages too fast (``--max-message-rate``, renames, relay frames).
    RATE_LIMITED = "rate-limited"
    #: The stream has ``--max-viewers`` readers already.
    STREAM_FULL = "stream-full"
    #: The server has ``--max-streams`` streams with a camera or a reservation already.
    TOO_MANY_STREAMS = "too-many-streams"
    #: The client's address holds ``--max-connections-per-address`` connections already.
    TOO_MANY_CONNECTIONS = "too-many-connections"
    #: A stream name that is not 1-64 of ``A-Z a-z 0-9 _ . -``, starting with a letter or digit.
    BAD_STREAM_NAME = "bad-stream-name"
    #: Another camera publishes this name already (on this instance or another).
    STREAM_TAKEN = "stream-taken"
    #: The stream has no camera now: a viewer's offer, candidate or chat line found nobody to go to.
    NO_SUCH_STREAM = "no-such-stream"
    #: A routed message to anyone but the sender's own camera or viewers.
    UNKNOWN_PEER = "unknown-peer"
    #: A message out of turn: an offer before ``watch``, a routed type sent the wrong way.
    WRONG_STATE = "wrong-state"
    #: Reserved, not sent: a client that stops reading is closed with WebSocket close code 1008
    #: ("too slow: outbox full") instead.
    OVERLOADED = "overloaded"
    #: A socket that neither watched nor published within 10 s; the server then closes it.
    IDLE_TIMEOUT = "idle-timeout"


class _Message(msgspec.Struct, tag_field="type", omit_defaults=True):
    """Base of every message: the subclass tag is the ``type`` field."""


class IceServer(msgspec.Struct, omit_defaults=True):
    """One STUN or TURN server, shaped like the browser's RTCIceServer."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceCandidate(
    msgspec.Struct,
    rename={"sdp_mid": "sdpMid", "sdp_mline_index": "sdpMLineIndex"},
):
    """A trickled candidate, shaped like the browser's RTCIceCandidateInit."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


#: msgspec searches a pattern (``re.search``): anchor it at both ends with ``\A`` and ``\Z``,
#: since ``$`` also matches before a trailing newline and would let "480p\n" through.
_LAYER_NAME = r"[0-9]{2,5}p(@[0-9]{1,3}(\.[0-9]{1,3})?)?"
#: A quality layer's name: its height, and its frame rate when below the capture's.
LayerName = Annotated[str, Meta(pattern=rf"\A{_LAYER_NAME}\Z")]
#: What a viewer asks for: a layer by name, or "auto" (follow the network).
Quality = Annotated[str, Meta(pattern=rf"\A(auto|{_LAYER_NAME})\Z")]
JpegQuality = Annotated[int, Meta(ge=1, le=100)]
#: The protocol a camera or viewer speaks.
ClientProtocol = Annotated[int, Meta(ge=OLDEST_PROTOCOL, le=1000)]


class LayerInfo(msgspec.Struct, omit_defaults=True):
    """One quality layer a camera offers: each is encoded once, for all its viewers."""

    name: LayerName
    width: Annotated[int, Meta(ge=2, le=16384)]
    height: Annotated[int, Meta(ge=2, le=16384)]
    fps: Annotated[float, Meta(gt=0, le=1000)]
    #: The source's own pictures, as they came (an RTSP camera's, a WHIP publisher's): not
    #: encoded by the camera, which cannot make a keyframe on request, so a viewer starts or
    #: moves to this layer at the source's next keyframe.
    passthrough: bool = False


class AudioInfo(msgspec.Struct, omit_defaults=True):
    """A camera's sound: one Opus stream, encoded once for every viewer."""

    codec: AudioCodec = "opus"
    sample_rate: Literal[48000] = 48000
    channels: Annotated[int, Meta(ge=1, le=2)] = 1
    bitrate: Annotated[int, Meta(ge=6000, le=510000)] = 48000


class StreamInfo(msgspec.Struct, omit_defaults=True):
    """What a camera publishes about its video: the top layer's size, and every layer; and its
    sound, if it has any (``audio``)."""

    width: Annotated[int, Meta(ge=2, le=16384)]
    height: Annotated[int, Meta(ge=2, le=16384)]
    fps: Annotated[float, Meta(gt=0, le=1000)]
    codec: Codec
    #: Largest first; a camera that names none offers one layer, its own size.
    layers: Annotated[list[LayerInfo], Meta(max_length=8)] = []
    #: The relay's JPEG quality for readers that pick none.
    jpeg_quality: JpegQuality = 80
    #: None: a camera without sound.
    audio: AudioInfo | None = None
    #: What the camera publishes from, when it says: "rtsp://host/path" (never credentials),
    #: "whip". Empty for the camera's own capture.
    source: Annotated[str, Meta(max_length=200)] = ""

    def layer_list(self) -> list[LayerInfo]:
        """The layers, or the one the picture itself makes when the camera named none."""
        return self.layers or [LayerInfo(name=f"{self.height}p", width=self.width, height=self.height,
                                         fps=self.fps)]


# Client -> server ---------------------------------------------------------------


class Publish(_Message, tag="publish"):
    """A camera claims a stream name; one camera per name."""

    stream: str
    info: StreamInfo
    name: str = ""  # display name in chat
    token: str = ""  # needed when the server's --auth is publish or all
    protocol: ClientProtocol = OLDEST_PROTOCOL  # the protocol it speaks; 3 when it does not say


class Watch(_Message, tag="watch"):
    """A viewer follows a stream, live or not yet live, at the quality it picks."""

    stream: str
    name: str = ""  # display name in chat and in the stream's viewer list
    token: str = ""  # needed when the server's --auth is all
    quality: Quality = "auto"  # a layer's name, or "auto": follow the network
    jpeg_quality: JpegQuality | None = None  # on a JPEG relay; None: the camera's, adapted
    protocol: ClientProtocol = OLDEST_PROTOCOL  # the protocol it speaks; 3 when it does not say


class SetQuality(_Message, tag="quality"):
    """A viewer picks another layer (or "auto") and, on a JPEG relay, another JPEG quality."""

    quality: Quality = "auto"
    jpeg_quality: JpegQuality | None = None


class Percentiles(msgspec.Struct):
    """A distribution's median and 95th percentile."""

    p50: Annotated[float, Meta(ge=-3_600_000, le=3_600_000)]
    p95: Annotated[float, Meta(ge=-3_600_000, le=3_600_000)]


class ViewerAudioStats(msgspec.Struct, omit_defaults=True):
    """A viewer's sound: what arrived, what was lost, and how late it plays (from the capture
    time) and against the picture (``av_offset_ms``: the sound's latency minus the picture's;
    positive: the sound is late)."""

    codec: AudioCodec = "opus"
    packets: Count = 0
    packets_lost: Count = 0
    jitter_ms: Millis | None = None
    latency_ms: Percentiles | None = None
    av_offset_ms: Percentiles | None = None


class ViewerStats(msgspec.Struct, omit_defaults=True):
    """A viewer's compact report of what it gets; fields it cannot measure stay null."""

    #: "whep": a WHEP player, whose stats the server makes from the camera's reports.
    mode: Literal["p2p", "relay", "whep"]
    fps: Fps
    frames: Count = 0
    width: Pixels = 0
    height: Pixels = 0
    bitrate_kbps: Kbps = 0.0
    latency_ms: Millis | None = None
    frames_dropped: Count | None = None
    packets_lost: Count | None = None
    jitter_ms: Millis | None = None
    rtt_ms: Millis | None = None
    freezes: Count | None = None
    decoder: ShortText | None = None
    #: The layer being received now, and how often it changed.
    layer: LayerName | None = None
    layer_switches: Count | None = None
    jpeg_quality: JpegQuality | None = None  # on a JPEG relay
    relay_format: RelayFormat | None = None  # on the relay
    audio: ViewerAudioStats | None = None  # None: no sound (the stream has none, or the path carries none)


class CameraViewerStats(msgspec.Struct, omit_defaults=True):
    """The camera's view of one P2P viewer, from RTCP receiver reports and its queue."""

    id: ShortText
    frames_sent: Count = 0
    queue_drops: Count = 0
    keyframe_requests: Count = 0
    rtt_ms: Millis | None = None
    packets_lost: Count | None = None
    fraction_lost: Fraction | None = None
    layer: LayerName | None = None  # the layer this viewer gets now
    quality: Quality | None = None  # what it asked for
    layer_switches: Count = 0
    bitrate_estimate_kbps: Kbps | None = None  # its REMB, where it sends one
    audio_packets_sent: Count | None = None  # None: it gets no sound
    audio_packets_dropped: Count | None = None  # its sender fell behind: the oldest dropped


class CameraLayerStats(msgspec.Struct, omit_defaults=True):
    """One layer as the camera runs it: encoded only while someone reads it."""

    name: LayerName
    active: bool
    viewers: Count = 0
    frames_encoded: Count = 0
    encode_ms: Millis = 0.0
    keyframes: Count = 0
    jpeg_qualities: Annotated[list[JpegQuality], Meta(max_length=8)] = []
    relay_encoded: bool = False  # its encoded frames go to the relay too
    #: The source's pictures passed through (frames_encoded counts none of them).
    passthrough: bool = False
    #: A passthrough layer's measured time between the source's keyframes (its GOP): what a
    #: viewer joining it may wait. None until two have come.
    keyframe_interval: Annotated[float, Meta(ge=0, le=3600)] | None = None


class CameraAudioStats(msgspec.Struct, omit_defaults=True):
    """The camera's sound encoder: one for every viewer."""

    codec: AudioCodec = "opus"
    channels: Annotated[int, Meta(ge=1, le=2)] = 1
    packets_encoded: Count = 0
    encode_ms: Millis = 0.0
    relay_packets: Count = 0
    viewers: Count = 0  # P2P viewers whose sender takes the packets


class CameraStats(msgspec.Struct, omit_defaults=True):
    """The camera's side of the stream: its capture and encoders, and each P2P viewer."""

    fps: Fps
    encode_ms: Millis
    frames_encoded: Count = 0
    frames_skipped: Count = 0
    keyframes: Count = 0
    relay_frames: Count = 0
    viewers: Annotated[list[CameraViewerStats], Meta(max_length=1000)] = []
    layers: Annotated[list[CameraLayerStats], Meta(max_length=8)] = []
    audio: CameraAudioStats | None = None


class Stats(_Message, tag="stats"):
    """Every few seconds, from each viewer: what it measures."""

    stats: ViewerStats


class CameraStatsReport(_Message, tag="camera-stats"):
    """Every few seconds, from the camera: its side of the stream."""

    stats: CameraStats


class ChatMessage(_Message, tag="chat"):
    """One stamped chat message, as the camera (the chat hub) sends it to everyone.

    ``id`` increases by one per message of the stream: it orders messages and lets a
    viewer that gets one both on its data channel and from the server keep one copy.
    ``camera`` marks the camera's own lines (its operator's): only the camera sends chat
    messages, so no viewer can set it, whatever name it picks.
    """

    id: Count
    name: str
    text: str
    time: Annotated[float, Meta(ge=0, le=2**34)]  # Unix seconds, stamped by the camera
    camera: bool = False

    def __post_init__(self) -> None:
        self.name, self.text = clean_text(self.name), clean_text(self.text)


class Rename(_Message, tag="rename"):
    """A viewer picks another display name (chat, the stream's viewer list)."""

    name: str


class Relay(_Message, tag="relay"):
    """A viewer asks for (or leaves) its stream's relay: frames over this socket, in
    ``format``, at the quality it picked (watch, quality)."""

    enabled: bool
    format: RelayFormat = "jpeg"
    #: The viewer plays the camera's sound from relay frames (Opus) too; a client that
    #: does not say gets none (it may not know the audio frame).
    audio: bool = False


# Routed both ways ---------------------------------------------------------------


class RoutedMessage(_Message, kw_only=True):
    """A message between a camera and one viewer, passed on by the server.

    ``to`` is required from a camera and optional from a viewer (whose messages
    always go to its stream's camera); the server fills in ``from`` when routing.
    """

    #: The roles that may send this message (the other side receives it).
    senders: ClassVar[frozenset[str]] = frozenset({"viewer", "camera"})

    #: The peer it goes to: required from a camera, optional from a viewer.
    to: ShortText | None = None
    #: The peer it came from, filled in by the server.
    sender: ShortText | None = msgspec.field(default=None, name="from")


class Offer(RoutedMessage, tag="offer"):
    """SDP offer. Viewers offer (recvonly video + a "chat" data channel)."""

    senders: ClassVar[frozenset[str]] = frozenset({"viewer"})

    sdp: str


class Answer(RoutedMessage, tag="answer"):
    """The camera's SDP answer to a viewer's offer."""

    senders: ClassVar[frozenset[str]] = frozenset({"camera"})

    sdp: str


class Candidate(RoutedMessage, tag="candidate"):
    """A trickled ICE candidate; ``candidate: null`` means end of candidates."""

    candidate: IceCandidate | None = None


class Hangup(RoutedMessage, tag="hangup"):
    """Either side closed its peer connection, and says why (a bad offer, say)."""

    reason: str

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


class ChatSend(RoutedMessage, tag="chat-send"):
    """A viewer's chat line for the camera to stamp and share (data channel or signaling).

    It goes out under the name the viewer watched with (or renamed to): a line names no one.
    """

    senders: ClassVar[frozenset[str]] = frozenset({"viewer"})

    text: str

    def __post_init__(self) -> None:
        self.text = clean_text(self.text)


class ChatHistory(RoutedMessage, tag="chat-history"):
    """The last messages, for a newcomer."""

    senders: ClassVar[frozenset[str]] = frozenset({"camera"})

    messages: list[ChatMessage]


class TalkStart(RoutedMessage, tag="talk-start"):
    """A viewer asks for the floor: to talk through the camera's speaker. One speaker at a
    time; the camera answers with ``talking`` (to everyone) or ``talk-refused``."""

    senders: ClassVar[frozenset[str]] = frozenset({"viewer"})


class TalkStop(RoutedMessage, tag="talk-stop"):
    """The speaker gives the floor back; or, from the camera (``to`` the speaker), the turn
    ends (the operator took the floor, or the turn reached ``--talk-max``), and ``reason``
    says why."""

    reason: str = ""

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


class TalkRefused(RoutedMessage, tag="talk-refused"):
    """The floor was not given, and why: someone else is talking (from the camera), or this
    viewer may not talk (from the server: ``--talk off``, a token without the talk right)."""

    senders: ClassVar[frozenset[str]] = frozenset({"camera"})

    reason: str

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


class LayerChanged(RoutedMessage, tag="layer"):
    """Which layer a viewer gets from now on, and why: from the camera for P2P, from the
    server on the relay (with its JPEG quality on a JPEG relay). ``reason`` is empty for a choice the
    viewer made and says why otherwise, e.g. "12% loss"."""

    senders: ClassVar[frozenset[str]] = frozenset({"camera"})

    layer: LayerName
    width: Annotated[int, Meta(ge=2, le=16384)]
    height: Annotated[int, Meta(ge=2, le=16384)]
    reason: Annotated[str, Meta(max_length=200)] = ""
    jpeg_quality: JpegQuality | None = None

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


class ChatNotice(RoutedMessage, tag="chat-notice"):
    """The camera refused a chat line (too long, too fast) and says why."""

    senders: ClassVar[frozenset[str]] = frozenset({"camera"})

    reason: str

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


# Server -> client ---------------------------------------------------------------


class Welcome(_Message, tag="welcome"):
    """First message on every connection."""

    peer_id: str
    ice_servers: list[IceServer]
    protocol: int
    #: Local addresses a Python peer's ICE may offer unless it was given its own.
    ice_hosts: list[str] = []


class IceServers(_Message, tag="ice-servers"):
    """Fresh TURN credentials, sent before the welcome's expire, for peer connections made from now on."""

    ice_servers: list[IceServer]


class Published(_Message, tag="published"):
    """The name is the camera's. ``ice_servers`` is the full list (TURN credentials too).
    ``talk``: viewers may talk back here (``--talk``), each turn at most ``talk_max`` seconds."""

    stream: str
    ice_servers: list[IceServer] = []
    talk: bool = False
    talk_max: Annotated[float, Meta(gt=0, le=86400)] = 60.0


class Watching(_Message, tag="watching"):
    """Acknowledges ``watch``; ``live`` says whether a camera is there now.

    ``ice_servers`` is the full list: with auth on, TURN credentials come only from here
    (and the ``ice-servers`` refreshes after it), never to a client that is nobody yet.
    """

    stream: str
    live: bool
    ice_servers: list[IceServer] = []
    #: Whether this viewer may ask for the floor (``talk-start``): ``--talk`` and its token.
    talk: bool = False
    #: Why it may not, when it may not: talk is off on the server, or its token lacks the right.
    talk_reason: str = ""


class Talking(_Message, tag="talking"):
    """Who holds the floor now, from the camera (the floor's keeper) to every viewer of its
    stream through the server; ``peer_id`` None: nobody talks."""

    peer_id: ShortText | None = None
    name: str = ""
    #: When the turn began (Unix seconds, the camera's clock).
    since: Annotated[float, Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        self.name = clean_text(self.name)[:64]


class StreamLive(_Message, tag="stream-live"):
    """The stream's camera is there: a viewer may offer now."""

    stream: str
    camera_id: str  # the camera's peer id: the ``from`` of what it sends a viewer
    info: StreamInfo


class StreamEnded(_Message, tag="stream-ended"):
    """The camera left; viewers stay subscribed and get ``stream-live`` again."""

    stream: str
    reason: str

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


class JpegRendition(msgspec.Struct, frozen=True, order=True):
    """A layer encoded as JPEG at one JPEG quality, for relay readers that asked for it."""

    layer: LayerName
    jpeg_quality: JpegQuality


class RelayFrames(_Message, tag="relay-frames"):
    """Tells the camera which relay frames to send (none: stop): what relay readers read now.
    ``encoded`` names the layers whose encoded frames to send, each frame once; ``audio``,
    whether to send its sound's Opus packets."""

    jpeg: Annotated[list[JpegRendition], Meta(max_length=16)] = []
    encoded: Annotated[list[LayerName], Meta(max_length=8)] = []
    audio: bool = False


class RelayKeyframe(_Message, tag="relay-keyframe"):
    """An encoded relay reader needs a keyframe of ``layer``: it is new, it switched layers,
    or it fell behind. ``urgent`` is false for the last: answered at most once a second,
    like a P2P viewer's PLI. The server merges the requests of all its readers."""

    layer: LayerName
    urgent: bool = True


class ViewerJoined(_Message, tag="viewer-joined"):
    """A viewer came; ``name`` is the one it watched with, the only name it may chat under.
    ``quality`` is the layer it asked for (or "auto")."""

    peer_id: str
    name: str = ""
    quality: Quality = "auto"


class ViewerQuality(_Message, tag="viewer-quality"):
    """A viewer picked another layer (or "auto"): its sender moves at that layer's next keyframe."""

    peer_id: str
    quality: Quality


class ViewerRenamed(_Message, tag="viewer-renamed"):
    """A viewer goes by another name from now on (its next chat lines carry it)."""

    peer_id: str
    name: str


class ViewerLeft(_Message, tag="viewer-left"):
    """The viewer is gone: the camera tears down its peer connection."""

    peer_id: str


class Error(_Message, tag="error"):
    """Something the client sent was refused.

    ``code`` (an ErrorCode) says what, ``reason`` why, in words. The socket stays open after
    any error but ``idle-timeout``, and no other client notices.
    """

    code: str
    reason: str

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)


ClientMessage = (
    Publish | Watch | SetQuality | Rename | Relay | Stats | CameraStatsReport | ChatMessage
    | Offer | Answer | Candidate | Hangup | ChatSend | ChatHistory | ChatNotice | LayerChanged
    | TalkStart | TalkStop | TalkRefused | Talking
)
ServerMessage = (
    Welcome | IceServers | Published | Watching | StreamLive | StreamEnded | RelayFrames | RelayKeyframe
    | ViewerJoined | ViewerQuality | ViewerRenamed | ViewerLeft | Offer | Answer | Candidate | Hangup
    | ChatSend | ChatHistory | ChatNotice | LayerChanged | ChatMessage | Error
    | TalkStart | TalkStop | TalkRefused | Talking
)
#: What travels on a viewer's "chat" data channel (the same messages as on signaling).
DataChannelMessage = ChatSend | ChatMessage | ChatHistory | ChatNotice
#: Messages the server passes between a camera and one of its viewers.
ROUTED_TYPES = tuple(RoutedMessage.__subclasses__())


def _tags(union: object) -> frozenset[str]:
    return frozenset(cls.__struct_config__.tag for cls in union.__args__)  # type: ignore[attr-defined]


CLIENT_TYPES = _tags(ClientMessage)
SERVER_TYPES = _tags(ServerMessage)
DATA_CHANNEL_TYPES = _tags(DataChannelMessage)


class ProtocolError(Exception):
    """A message that cannot be accepted; carries the ``error`` to send back."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def to_message(self) -> Error:
        return Error(code=self.code, reason=self.reason)


_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)
_data_channel_decoder = msgspec.json.Decoder(DataChannelMessage)
_raw_decoder = msgspec.json.Decoder()


def encode(message: _Message, protocol: int = PROTOCOL_VERSION) -> str:
    """``message`` as JSON text for a client that speaks ``protocol``. Protocol 3 named two
    fields of what the server sends otherwise: stream-live's ``camera_id`` was ``publisher``,
    a JPEG rendition's ``jpeg_quality`` (relay-frames) was ``quality``."""
    if protocol >= PROTOCOL_VERSION or not isinstance(message, (StreamLive, RelayFrames)):
        return _encoder.encode(message).decode()
    fields = msgspec.to_builtins(message)
    if isinstance(message, StreamLive):
        fields["publisher"] = fields.pop("camera_id")
    for rendition in fields.get("jpeg", ()):
        rendition["quality"] = rendition.pop("jpeg_quality")
    return _encoder.encode(fields).decode()


def _decode(data: str | bytes, decoder: msgspec.json.Decoder, known: frozenset[str]):
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_TEXT_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"message is {size} bytes; the limit is {MAX_TEXT_MESSAGE_BYTES}",
        )
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        try:
            raw = _raw_decoder.decode(data)
        except msgspec.DecodeError as json_exc:  # typed decoding stopped before the JSON broke
            raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {json_exc}") from None
        raise _explain(raw, known, exc) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}") from None


def _explain(raw: object, known: frozenset[str], exc: msgspec.ValidationError) -> ProtocolError:
    """Why well-formed JSON is not a valid message."""
    if not isinstance(raw, dict):
        return ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    kind = raw.get("type")
    if kind is None:
        return ProtocolError(ErrorCode.BAD_MESSAGE, "a message needs a 'type' field")
    if not isinstance(kind, str) or kind not in known:
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind!r}; expected one of {', '.join(sorted(known))}",
        )
    return ProtocolError(ErrorCode.BAD_MESSAGE, f"invalid {kind!r} message: {exc}")


def decode_client_message(data: str | bytes) -> ClientMessage:
    """Parse and validate a message a client sent; raises ProtocolError."""
    return _decode(data, _client_decoder, CLIENT_TYPES)


def decode_server_message(data: str | bytes) -> ServerMessage:
    """Parse and validate a message the server sent; raises ProtocolError."""
    return _decode(data, _server_decoder, SERVER_TYPES)


def decode_data_channel_message(data: str | bytes) -> DataChannelMessage:
    """Parse and validate a chat data channel message; raises ProtocolError."""
    return _decode(data, _data_channel_decoder, DATA_CHANNEL_TYPES)


def clean_text(text: str) -> str:
    """Text a peer wrote, safe to log, print on a terminal or show: control characters
    (ANSI escapes, carriage returns that forge log lines) and bidirectional overrides go;
    line breaks and tabs become spaces."""
    if text.isprintable():
        return text
    return "".join(
        " " if ch in _TEXT_BREAKS else ch
        for ch in text
        if ch in _TEXT_BREAKS
        or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
    )


def check_display_name(name: str) -> str:
    """A display name, trimmed; at most MAX_NAME characters and printable."""
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise ProtocolError(ErrorCode.BAD_NAME, f"names are at most {MAX_NAME} printable characters")
    return name


def check_stream_name(name: object) -> None:
    if not isinstance(name, str) or not STREAM_NAME_PATTERN.fullmatch(name):
        raise ProtocolError(
            ErrorCode.BAD_STREAM_NAME,
            f"bad stream name {str(name)[:80]!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )
