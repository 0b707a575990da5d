"""Fuzzing the live server and camera: garbage in, an error out, nothing breaks.

hypothesis generates what a broken or hostile client might send: random JSON, messages
with a real ``type`` and wrong fields, huge strings, binary frames, garbage SDP offers
and ICE candidates, odd chat lines, relay toggles, stats of the wrong shape. It sends
them over 20 WebSockets at once: 12 viewers of the "fuzz" stream (their routed
messages reach the real camera) and 8 clients that never joined. Each message is
followed by a marker the server refuses by name (an unknown type), so the replies to a
message are exactly the errors that come before its marker, and a marker that never
comes back means the server closed the socket.

Then: the server answers /healthz, the camera is alive and still publishing on its
first connection, it lets go of every fuzz viewer once their sockets close, and a new
viewer still gets full frame rate.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import re
import struct
import time
import typing

import aiohttp
import msgspec
import pytest
from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from peercam.peers.ice import restrict_host_addresses, rtc_configuration
from peercam.signaling.settings.limits import Limits

from peercam.shared.protocol import (
    CLIENT_TYPES,
    ROUTED_TYPES,
    SERVER_TYPES,
    Answer,
    ClientMessage,
    ErrorCode,
    Offer,
    ProtocolError,
    Publish,
    Relay,
    Stats,
    decode_client_message,
)
from peercam.shared.ratelimit import TokenBucket

from .conftest import (
    LOOPBACK,
    assert_nothing_lost,
    assert_plays,
    frames_sent_to,
    free_port,
    get_json,
    stop_viewers_at_a_camera_report,
    wait_until,
)

STREAM = "fuzz"
VIEWER_SOCKETS = 12
IDLE_SOCKETS = 8
MAX_EXAMPLES = 200
#: Seconds for one example's messages and all their markers to come back.
EXCHANGE_TIMEOUT = 10.0
#: The lab's server runs with the default limits.
LIMITS = Limits()
ERROR_CODES = frozenset(v for k, v in vars(ErrorCode).items() if k.isupper())


# Keeping the camera's ICE on loopback ---------------------------------------------------

#: aioice resolves names like this by multicast DNS.
_MDNS_NAME = re.compile(r"^[a-zA-Z0-9-]{1,63}\.local$")


def _names_only_loopback(line: str) -> bool:
    # aiortc splits a candidate at its first ':' and then on whitespace: check both ways.
    for token in line.split() + line.split(":", 1)[-1].split():
        if _MDNS_NAME.match(token):
            return False
        try:
            if str(ipaddress.ip_address(token)) != "127.0.0.1":
                return False
        except ValueError:
            pass
    return True


def stays_on_loopback(text: str, sdp: bool = False) -> bool:
    """False if the camera's ICE could take an address other than 127.0.0.1 from ``text``.

    The camera sends connectivity checks to whatever address a viewer's offer or
    candidates name, and resolves ``*.local`` names by multicast, so every string
    these tests generate names no other address. In SDP only candidate lines count
    (its c= and a=rtcp lines hold 0.0.0.0, which ICE never uses).
    """
    if not sdp:
        return _names_only_loopback(text)
    return all(_names_only_loopback(line) for line in text.splitlines() if "candidate" in line)


# Strategies -------------------------------------------------------------------------------

text = st.text(max_size=40).filter(stays_on_loopback)
odd_text = st.one_of(
    text,
    st.text(st.characters(codec="utf-8"), max_size=80).filter(stays_on_loopback),  # controls, RTL, emoji
    st.sampled_from(["", "   ", "\x00", "\u202e\u202d", "\ufeff", "<script>alert(1)</script>", "🙂" * 300,
                     "x" * 500, "x" * 501, "\n" * 40, "é" * 33]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


@st.composite
def huge_strings(draw) -> str:
    """Up to ~200 KB: a short seed repeated, sizes clustered around the 64 KiB limit."""
    seed = draw(st.text(min_size=1, max_size=8))
    size = draw(st.integers(1, 200_000) | st.sampled_from([501, 65_000, 65_536, 65_537, 200_000]))
    value = (seed * (size // len(seed) + 1))[:size]
    assume(stays_on_loopback(value))
    return value


def _struct_in(annotation) -> type | None:
    """The msgspec Struct in a field's annotation (``IceCandidate | None`` -> IceCandidate)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def shaped_like(cls: type, depth: int = 0) -> st.SearchStrategy[dict]:
    """A dict with some of ``cls``'s field names, each holding anything (right type or not)."""
    fields = {}
    for field in msgspec.structs.fields(cls):
        nested = _struct_in(field.type)
        value = (json_values | huge_strings()) if depth == 0 else json_values
        if nested is not None and depth < 2:
            value = value | shaped_like(nested, depth + 1)
        fields[field.encode_name] = value
    return st.fixed_dictionaries({}, optional={**fields, "junk": json_values})


MESSAGE_CLASSES = {cls.__struct_config__.tag: cls for cls in typing.get_args(ClientMessage)}


def typed_messages(tags=None) -> st.SearchStrategy[dict]:
    """A message with a real ``type`` (the server's own, too) and random or wrong-typed fields."""
    tags = sorted(tags or CLIENT_TYPES | SERVER_TYPES)

    def build(tag: str) -> st.SearchStrategy[dict]:
        if tag not in MESSAGE_CLASSES:  # the server's own messages
            return st.dictionaries(text, json_values).map(lambda d: {**d, "type": tag})
        return shaped_like(MESSAGE_CLASSES[tag]).map(lambda d: {**d, "type": tag})

    return st.sampled_from(tags).flatmap(build)


def garbage_sdp(real_sdp: str) -> st.SearchStrategy[str]:
    """Random text, a truncated real offer, or a real offer with absurd lines mixed in."""
    lines = real_sdp.splitlines()
    absurd = st.sampled_from([
        "m=video 99999999 RTP/SAVPF 96", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=application 9 bogus",
        "a=rtpmap:96 VP8/-90000", "a=fingerprint:sha-256 ZZ:ZZ", "a=fingerprint:md5 00",
        "a=setup:sideways", "a=mid:" + "m" * 1000, "a=group:BUNDLE 0 1 2 3 4 5", "a=ice-ufrag:",
        "a=ice-pwd:short", "a=ssrc:-1 cname:x", "a=extmap:99999 urn:x", "a=rtcp-fb:96 " + "nack " * 50,
        "b=AS:-1", "a=sctp-port:70000", "a=max-message-size:-5", "a=candidate:x x x x 127.0.0.1 x typ host",
        "a=candidate:1 1 udp 1 127.0.0.1 99999 typ host", "a=candidate:1 1 udp 1 not-an-ip 9 typ host",
        "a=end-of-candidates", "v=1", "o=- x x IN IP4", "c=IN IP9 nowhere", "a=", "=", "",
    ]) | text.map(lambda t: "a=" + t)

    kinds_of_line = sorted({line.split(":")[0].split(" ")[0] for line in lines})  # m=video, a=mid, ...

    @st.composite
    def mangled(draw) -> str:
        out = list(lines)
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(out)))
            operation = draw(st.sampled_from(["insert", "delete", "duplicate", "drop a kind"]))
            if operation == "insert" or not out:
                out.insert(at, draw(absurd))
            elif operation == "delete":
                del out[min(at, len(out) - 1)]
            elif operation == "duplicate":
                out.insert(at, out[min(at, len(out) - 1)])
            else:  # every line of one kind: a section, its mid, its codecs
                kind = draw(st.sampled_from(kinds_of_line))
                out = [line for line in out if line.split(":")[0].split(" ")[0] != kind]
        return draw(st.sampled_from(["\r\n", "\n"])).join(out)

    truncated = st.integers(0, len(real_sdp)).map(lambda n: real_sdp[:n])
    return st.one_of(st.text(max_size=300), truncated, mangled()).filter(
        lambda sdp: stays_on_loopback(sdp, sdp=True))


candidate_tokens = st.sampled_from([
    "1", "0", "-1", "4294967296", "udp", "tcp", "sctp", "127.0.0.1", "127.0.0.1.1", "not-an-ip", "::zz",
    "99999", "typ", "host", "srflx", "relay", "prflx", "bogus", "raddr", "rport", "tcptype", "passive",
])
candidate_strings = st.one_of(
    text,
    st.lists(candidate_tokens, max_size=14).map(lambda tokens: "candidate:" + " ".join(tokens)),
    st.builds("candidate:{} {} {} {} 127.0.0.1 {} typ {}".format,
              text.filter(lambda t: t and not t.isspace()), st.integers(-1, 3),
              st.sampled_from(["udp", "tcp"]), st.integers(-1, 2**32), st.integers(-1, 70_000),
              st.sampled_from(["host", "srflx", "relay", "x"])),
)
candidate_messages = st.fixed_dictionaries({
    "type": st.just("candidate"),
    "candidate": st.none() | st.fixed_dictionaries(
        {"candidate": candidate_strings},
        optional={"sdpMid": st.none() | st.sampled_from(["0", "1", ""]) | text | st.integers(),
                  "sdpMLineIndex": st.none() | st.integers(-5, 2**40) | text}),
}, optional={"to": st.none() | text})


def payloads(real_sdp: str) -> st.SearchStrategy[str | bytes]:
    """One WebSocket message, each kind about as likely (offers twice): text (mostly JSON) or binary."""
    offers = st.fixed_dictionaries({"type": st.just("offer"), "sdp": garbage_sdp(real_sdp)},
                                   optional={"to": st.none() | text})
    json_kinds = [
        json_values,
        typed_messages(),
        typed_messages(["stats", "camera-stats"]),
        offers,
        offers,  # twice: they make the camera work hardest
        candidate_messages,
        st.fixed_dictionaries({"type": st.just("chat-send"), "text": odd_text | huge_strings()},
                              optional={"name": odd_text}),
        st.fixed_dictionaries({"type": st.just("relay"), "enabled": st.booleans() | json_values}),
        st.fixed_dictionaries({"type": st.sampled_from(sorted(CLIENT_TYPES)), "junk": huge_strings()}),
    ]
    truncated_json = st.tuples(typed_messages().map(json.dumps), st.floats(0, 1)).map(
        lambda pair: pair[0][: int(len(pair[0]) * pair[1])])
    raw_text = text | huge_strings() | st.sampled_from(["{", "[", "nul", '"', '{"type":', "1e400", "[1e400]",
                                                        '{"type": "hangup", "reason": 1e400}', "{}" * 1000])
    binary = st.one_of(
        st.binary(max_size=2048),
        typed_messages().map(lambda message: json.dumps(message).encode()),
        st.builds(lambda seq, tail: struct.pack("!BBBBIQHH", 1, 20, 80, 0, seq, 0, 640, 480) + tail,
                  st.integers(0, 2**32 - 1), st.binary(max_size=64)),  # a relay frame header
    )
    return st.one_of(*(kind.map(json.dumps) for kind in json_kinds), truncated_json, raw_text, binary)


# The oracle -------------------------------------------------------------------------------

ANY = "any documented code, or none: the sender's state decides"


def expected_reply(payload: str | bytes, from_fuzz_viewer: bool) -> str | None:
    """The error code the server must answer ``payload`` with, None for no error, or ANY.

    What fails to parse fails the same way in every state, so the protocol's own
    decoder predicts the code, and an SDP over the limit is too large from anyone. Of
    the other messages that parse, a viewer's routed messages (to its camera, no
    ``to``) of the types viewers send, relay toggles and stats must go through; the
    types only a camera sends are refused.
    """
    if isinstance(payload, bytes):
        return ErrorCode.BINARY_NOT_ALLOWED  # no fuzz socket ever publishes
    try:
        message = decode_client_message(payload)
    except ProtocolError as exc:
        return exc.code
    except Exception:  # the decoder's own bug: still some refusal, and the socket stays open
        return ANY
    if isinstance(message, (Offer, Answer)) and len(message.sdp) > LIMITS.max_sdp_bytes:
        return ErrorCode.TOO_LARGE
    routed = isinstance(message, ROUTED_TYPES)
    if from_fuzz_viewer and routed and "viewer" not in message.senders:
        return ErrorCode.WRONG_STATE  # e.g. an answer: only the camera sends those
    to_its_camera = routed and message.to is None
    if from_fuzz_viewer and (to_its_camera or isinstance(message, (Relay, Stats))):
        return None
    return ANY


def offer_without_video_line(sdp: str) -> str:
    """A real offer whose video section lost its m= line (its attributes stay)."""
    lines = [line for line in sdp.splitlines() if not line.startswith("m=video")]
    return json.dumps({"type": "offer", "sdp": "\r\n".join(lines) + "\r\n"})


def publishes(payload: str | bytes) -> bool:
    """A valid publish would make a fuzz socket a camera: binary would then mean relay frames."""
    try:
        return isinstance(decode_client_message(payload), Publish)
    except Exception:
        return False


# The sockets ---------------------------------------------------------------------------------


class FuzzSocket:
    """One fuzzing WebSocket; opened again (a new peer) if the server ever closed it.

    An idle one (it never watches) is closed by the server's idle rule ``Limits.idle_seconds``
    after it connects, whatever it sends: on a slow machine the fuzz outlasts that, and a
    close that comes with the rule's error is the rule's, not the fuzz's (``closed_as_idle``).
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, index: int, viewer: bool,
                 tally: collections.Counter) -> None:
        self.session, self.url, self.index, self.viewer, self.tally = session, url, index, viewer, tally
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.inbox: asyncio.Queue[dict | None] = asyncio.Queue()
        self.peer_ids: list[str] = []
        #: Every offer this socket sent, and how many the camera answered or refused (a
        #: hangup about the offer): where it got stuck, if it did.
        self.offers: list[str] = []
        self.offers_replied = 0
        self._markers = 0
        self._reader: asyncio.Task | None = None
        self.closed_as_idle = False
        # Under the server's message rate (text only): the fuzz is about content, not rate.
        self._pace = TokenBucket(0.8 * LIMITS.messages_per_second, LIMITS.message_burst // 2)

    @property
    def open(self) -> bool:
        return self.ws is not None and not self.ws.closed and not self._reader.done()

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0)
        self.closed_as_idle = False
        self.inbox = asyncio.Queue()
        self.offers, self.offers_replied = [], 0
        self._reader = asyncio.create_task(self._read())
        welcome = await self._next("welcome")
        self.peer_ids.append(welcome["peer_id"])
        if self.viewer:
            watch = {"type": "watch", "stream": STREAM, "name": f"fuzz-{self.index}"}
            await self._send_text(json.dumps(watch))
            assert (await self._next("watching"))["live"], "the fuzz stream is not live"

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                message = json.loads(msg.data)
                self.tally[f"received {message['type']}"] += 1
                if message["type"] == "answer" or "your offer" in message.get("reason", ""):
                    self.offers_replied += 1
                if message.get("code") == ErrorCode.IDLE_TIMEOUT:
                    self.closed_as_idle = True
                    self.tally["closed as idle"] += 1
                self.inbox.put_nowait(message)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.tally["received relay frames"] += 1
            else:
                break
        self.inbox.put_nowait(None)  # closed

    async def _next(self, type_: str) -> dict:
        while (message := await self.inbox.get()) is not None:
            if message["type"] == type_:
                return message
        raise AssertionError(f"socket {self.index} closed while waiting for {type_!r}")

    async def _send_text(self, text: str) -> None:
        while not self._pace.take():
            await asyncio.sleep(1 / self._pace.rate)
        await self.ws.send_str(text)

    async def exchange(self, messages: list[str | bytes]) -> list[list[dict] | None]:
        """Send each message, then its marker: the errors in reply to each (None: closed before)."""
        markers = []
        try:
            for message in messages:
                self._markers += 1
                markers.append(f"fuzz-marker-{self.index}-{self._markers}")
                if isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    if message.startswith('{"type": "offer"'):
                        self.offers.append(message)
                    await self._send_text(message)
                await self._send_text(json.dumps({"type": markers[-1]}))
        except ConnectionError:
            pass  # the socket closed: the markers that never come back say after what
        replies: list[list[dict] | None] = []
        for marker in markers:
            errors: list[dict] = []
            while True:
                message = await self.inbox.get()
                if message is None:
                    self.inbox.put_nowait(None)
                    replies.append(None)
                    break
                if message["type"] != "error":
                    continue  # the camera's answers, hangups, chat; a stream's news
                if marker in message.get("reason", ""):
                    assert message["code"] == ErrorCode.UNKNOWN_TYPE, message
                    replies.append(errors)
                    break
                errors.append(message)
        # Messages after the one whose send failed were never sent: closed before, like theirs.
        return replies + [None] * (len(messages) - len(replies))

    async def offer_answered(self, sdp: str, timeout: float) -> bool:
        """Whether a valid offer from this viewer still gets an answer, whatever it sent before.

        The camera handles each viewer's messages in order on one task: once an answer
        comes after this offer, that task is alive (a dead one answers nothing later).
        """
        while not self.inbox.empty():
            self.inbox.get_nowait()
        await self._send_text(json.dumps({"type": "offer", "sdp": sdp}))
        try:
            await asyncio.wait_for(self._next("answer"), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)


async def open_sockets(url: str, tally: collections.Counter):
    """The session and its sockets: the viewers of the fuzz stream first, then the idle ones."""
    session = aiohttp.ClientSession()
    sockets = [FuzzSocket(session, url, i, viewer=i < VIEWER_SOCKETS, tally=tally)
               for i in range(VIEWER_SOCKETS + IDLE_SOCKETS)]
    await asyncio.gather(*(s.connect() for s in sockets))
    return session, sockets


async def viewers_not_answered(sockets: list[FuzzSocket], sdp: str) -> list[FuzzSocket]:
    viewers = [s for s in sockets if s.viewer]
    answered = await asyncio.gather(*(s.offer_answered(sdp, timeout=8) for s in viewers))
    return [s for s, ok in zip(viewers, answered, strict=True) if not ok]


async def close_sockets(session: aiohttp.ClientSession, sockets: list[FuzzSocket]) -> None:
    await asyncio.gather(*(s.close() for s in sockets))
    await session.close()


async def real_offer() -> str:
    """A real viewer's offer (recvonly video + "chat"), with loopback candidates only."""
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()  # its candidates now name closed ports: the camera's checks go nowhere
    return sdp


async def run_batch(sockets: list[FuzzSocket], batch: list[tuple[int, str | bytes]]):
    """Send a batch (each socket's share in order, the sockets at once); the replies by message."""
    for index in {i for i, _ in batch}:
        if not sockets[index].open:
            sockets[index].tally["sockets opened again"] += 1
            await sockets[index].connect()
    by_socket: dict[int, list[str | bytes]] = collections.defaultdict(list)
    for index, payload in batch:
        by_socket[index].append(payload)
    results = await asyncio.gather(*(sockets[i].exchange(messages) for i, messages in by_socket.items()))
    return [(index, payload, reply)
            for (index, messages), replies in zip(by_socket.items(), results, strict=True)
            for payload, reply in zip(messages, replies, strict=True)]


# The test -------------------------------------------------------------------------------------


def check_reply(index: int, viewer: bool, payload: str | bytes, reply: list[dict] | None,
                closed_as_idle: bool = False) -> None:
    shown = repr(payload[:300]) + (f"... ({len(payload)} bytes)" if len(payload) > 300 else "")
    if closed_as_idle:
        return  # the idle rule closed it meanwhile (a slow machine): its replies are cut short
    assert reply is not None, f"the server closed socket {index} after {shown}"
    assert len(reply) <= 1, f"more than one error for {shown}: {reply}"
    for error in reply:
        assert error.get("code") in ERROR_CODES and error.get("reason"), f"bad error for {shown}: {error}"
    expected = expected_reply(payload, viewer)
    got = reply[0]["code"] if reply else None
    if expected is ANY:
        return
    assert got == expected, f"socket {index} ({'viewer' if viewer else 'idle'}) sent {shown}: " \
                            f"expected {expected or 'no error'}, got {reply}"


@pytest.mark.parametrize("layout", ["alone", "across-instances"])
def test_fuzzed_messages_get_errors_and_break_nothing(lab, layout, request):
    """across-instances: every fuzz socket on one instance, the camera on another, both on
    one Redis: the routed garbage crosses Redis to the camera, and the answers come back."""
    if layout == "alone":
        lab.start_server()
        camera = lab.start_camera(STREAM)
    else:
        redis_url = request.getfixturevalue("redis_server").url
        lab.start_server("--redis", redis_url)
        port = free_port()
        lab.start("server-of-the-camera", "serve", "--port", str(port), "--redis", redis_url)
        camera_server = f"http://127.0.0.1:{port}"
        wait_until(lambda: get_json(f"{camera_server}/healthz"), 15, "the camera's instance")
        camera = lab.start(f"camera-{STREAM}", "camera", "--server", camera_server, "--stream", STREAM,
                               *LOOPBACK)
        wait_until(lambda: (lab.api(f"/api/streams/{STREAM}") or {}).get("live"), 15,
                   "the fuzzed instance to list the camera")
    camera_id = get_json(f"{lab.url}/api/streams/{STREAM}")["camera"]["id"]
    tally: collections.Counter = collections.Counter()
    started = time.monotonic()

    restrict_host_addresses(["127.0.0.1"])
    try:
        with asyncio.Runner() as runner:
            real_sdp = runner.run(real_offer())
            session, sockets = runner.run(open_sockets(f"{lab.url.replace('http', 'ws')}/ws", tally))
            batches = st.lists(st.tuples(st.integers(0, len(sockets) - 1), payloads(real_sdp)),
                               min_size=1, max_size=6)

            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
            @given(batch=batches)
            @example(batch=[(0, offer_without_video_line(real_sdp))])  # aiortc then fails to close
            def fuzz(batch):
                assume(not any(publishes(payload) for _, payload in batch))
                tally["examples"] += 1
                tally["messages"] += len(batch)
                outcomes = runner.run(asyncio.wait_for(run_batch(sockets, batch), EXCHANGE_TIMEOUT))
                for index, payload, reply in outcomes:
                    for error in reply or []:
                        tally[f"error {error.get('code')}"] += 1
                    check_reply(index, sockets[index].viewer, payload, reply, sockets[index].closed_as_idle)

            try:
                fuzz()
                fuzz_seconds = time.monotonic() - started
                # Whatever garbage came before, every fuzz viewer can still negotiate.
                stuck = runner.run(viewers_not_answered(sockets, real_sdp))
            finally:
                runner.run(close_sockets(session, sockets))
    finally:
        restrict_host_addresses([])
    print(f"\nfuzz: {fuzz_seconds:.1f} s; " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
    # The culprit: the last offer it replied to (and then choked on), or the next one.
    assert not stuck, "the camera no longer answers a valid offer from " + "; ".join(
        f"viewer {s.peer_ids[-1]}, which had {len(s.offers)} offers replied to up to offer "
        f"{s.offers_replied}; offers {s.offers_replied} and {s.offers_replied + 1}:\n"
        + "\n".join(offer[:6000] for offer in s.offers[max(0, s.offers_replied - 1):s.offers_replied + 1])
        for s in stuck)

    # Nothing broke: the server, the camera on its first connection, its stream.
    assert get_json(f"{lab.url}/healthz")["status"] == "ok"
    assert camera.proc.poll() is None, f"the camera died:\n{camera.log()[-3000:]}"
    stream = get_json(f"{lab.url}/api/streams/{STREAM}")
    assert stream["live"] and stream["camera"]["id"] == camera_id, stream

    # The camera lets go of every fuzz viewer once their sockets are gone.
    fuzz_ids = {peer for s in sockets for peer in s.peer_ids}

    def camera_viewers() -> tuple[set[str], set[str]]:
        """Viewer ids in the camera's latest report, and in the server's list."""
        stream = get_json(f"{lab.url}/api/streams/{STREAM}") or {}
        stats = (stream.get("camera") or {}).get("stats") or {}
        return {v["id"] for v in stats.get("viewers", [])}, {v["id"] for v in stream.get("viewers", [])}

    wait_until(lambda: not (fuzz_ids & camera_viewers()[0]) and not camera_viewers()[1], 20,
               "the camera to drop every fuzz viewer from its stats", interval=0.5)

    viewer = lab.start_viewer(STREAM, "--name", "after-fuzz")
    # Its stats reports still come (an empty list above could be a stale one).
    wait_until(lambda: (ids := camera_viewers())[0] and ids[0] == ids[1], 30,
               "the camera to report the new viewer", interval=0.5)
    # And it gets the stream whole: every frame the camera sends it arrives and decodes.
    stream = stop_viewers_at_a_camera_report(lambda: get_json(f"{lab.url}/api/streams/{STREAM}"),
                                             {"after-fuzz": viewer})
    summary = viewer.summary(timeout=25)
    assert_plays(summary)
    assert_nothing_lost(summary, frames_sent_to(stream, ["after-fuzz"])["after-fuzz"])
