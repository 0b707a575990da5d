"""signaling/registry: the StreamRegistry's rules, with fake clients, a fake listener (the
cluster) and a fake clock; no sockets. The clients of another instance are real
RemoteClients whose way to their instance is a fake that records what it is given."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import pytest
from peercam.signaling.registry.client import Client
from peercam.signaling.registry.connection import Connection
from peercam.signaling.registry.mirror import Mirror
from peercam.signaling.registry.remoteclient import ClientRecord, RemoteClient
from peercam.signaling.registry.streams import StreamRegistry
from peercam.signaling.settings.limits import Limits

from peercam.shared.protocol import (
    Answer,
    CameraStats,
    ChatMessage,
    ErrorCode,
    Hangup,
    JpegRendition,
    LayerChanged,
    Offer,
    ProtocolError,
    Published,
    RelayFrames,
    StreamEnded,
    StreamInfo,
    StreamLive,
    ViewerJoined,
    ViewerLeft,
    ViewerStats,
    Watching,
)

from .test_websocket import jpeg_relay_frame

INFO = StreamInfo(width=640, height=480, fps=30, codec="vp8")  # one layer: 480p
TOP = JpegRendition("480p", 80)  # what a relay reader of INFO's camera reads at first
RESERVED_REASON = "this name is now reserved for the holder of its publish token"


class FakeClient:
    """A client connected here, as the registry uses one: it records what it is sent."""

    is_local = True

    def __init__(self, id: str) -> None:
        self.id = id
        self.role: str | None = None
        self.stream: str | None = None
        self.name = ""
        self.with_token = False
        self.quality, self.jpeg_quality = "auto", None
        self.layer: str | None = None
        self.layer_reason = ""
        self.relay_jpeg_quality: int | None = None
        self.relay_reader = None
        self.stats: ViewerStats | CameraStats | None = None
        self.stats_at = 0.0
        self.sent: list = []  # messages, and texts from other instances, in order
        self.frames: list[bytes] = []  # relay frames
        self.frame_came = asyncio.Event()
        self.hung_up = asyncio.Event()
        self.ws = SimpleNamespace(send_bytes=self._send_bytes)

    def __repr__(self) -> str:
        return f"<FakeClient {self.id}>"

    @property
    def relay_format(self) -> str | None:
        return self.relay_reader.format if self.relay_reader is not None else None

    def take(self) -> list:
        """What it was sent since the last take."""
        sent, self.sent = self.sent, []
        return sent

    def send(self, message) -> None:
        self.sent.append(message)

    def send_text(self, text: str) -> None:
        self.sent.append(text)

    def undelivered_bytes(self) -> int:
        return 0

    def send_binary_now(self, data: bytes) -> bool:
        self.frames.append(data)
        self.frame_came.set()
        return True

    async def _send_bytes(self, data: bytes) -> None:
        self.send_binary_now(data)

    async def hang_up(self, reason: str, code: int = 1000) -> None:
        self.hung_up.set()


class FakeListener:
    """The cluster, as the registry tells it what its own clients do: a list of calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def take(self) -> list[tuple]:
        calls, self.calls = self.calls, []
        return calls

    def client_changed(self, conn) -> None:
        self.calls.append(("changed", conn.id))

    def client_gone(self, conn, reason: str) -> None:
        self.calls.append(("gone", conn.id, reason))

    def chat(self, stream: str, message: ChatMessage) -> None:
        self.calls.append(("chat", stream, message))

    def relay_frame(self, stream: str, data: bytes) -> None:
        self.calls.append(("relay-frame", stream, data))

    def relay_renditions(self, stream: str, node: str, jpeg: list[JpegRendition]) -> None:
        self.calls.append(("renditions", stream, node, jpeg))

    def reserved(self, stream: str) -> None:
        self.calls.append(("reserved", stream))

    def ended(self, stream: str, reason: str) -> None:
        self.calls.append(("ended", stream, reason))


class FakeInstance:
    """Another server instance, as its clients' RemoteClients reach it: what they are sent,
    and what relay readers here ask its cameras for."""

    node = "n2"

    def __init__(self) -> None:
        self.delivered: list[tuple] = []
        self.asked: list[tuple] = []

    def client(self, id: str, role: str, stream: str = "lab", **fields) -> RemoteClient:
        return RemoteClient(self.node, ClientRecord(id=id, role=role, stream=stream, **fields),
                            self._deliver, self._ask_relay)

    def _deliver(self, node: str, stream: str, to: str, message) -> None:
        self.delivered.append((node, stream, to, message))

    def _ask_relay(self, node: str, stream: str, jpeg: list[JpegRendition], encoded: list[str],
                   audio: bool) -> None:
        self.asked.append((node, stream, jpeg, encoded, audio))


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_registry(**limits) -> tuple[StreamRegistry, FakeListener, FakeClock]:
    clock, listener = FakeClock(), FakeListener()
    registry = StreamRegistry(Limits(**limits), clock=clock)
    registry.listener = listener
    return registry, listener, clock


def refused(code: str, change, *args, **kwargs) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        change(*args, **kwargs)
    assert caught.value.code == code, caught.value.reason
    return caught.value


def publish(registry: StreamRegistry, id: str, stream: str = "lab", **kwargs) -> FakeClient:
    camera = FakeClient(id)
    registry.publish(camera, stream, INFO, **kwargs)
    assert camera.sent.pop(0) == Published(stream=stream)
    return camera


def watch(registry: StreamRegistry, id: str, stream: str = "lab", name: str = "") -> FakeClient:
    viewer = FakeClient(id)
    registry.watch(viewer, stream, name)
    assert type(viewer.take()[0]) is Watching  # (and stream-live, when the camera is there)
    return viewer


async def hung_up(client: FakeClient) -> None:
    await asyncio.wait_for(client.hung_up.wait(), 2)


def test_the_registry_and_the_clients_are_what_the_cluster_and_the_registry_take_them_for():
    """Nothing checks types here: this holds StreamRegistry to the Mirror the cluster uses,
    and both kinds of client (and this file's fake) to the Client the registry uses."""
    for name, member in vars(Mirror).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            shape = [(p.name, p.kind, p.default is p.empty)
                     for p in inspect.signature(member).parameters.values()]
            real = [(p.name, p.kind, p.default is p.empty)
                    for p in inspect.signature(getattr(StreamRegistry, name)).parameters.values()]
            assert real == shape, name
    registry = StreamRegistry()
    assert all(hasattr(registry, name) for name in Mirror.__annotations__)
    wanted = [name for name in vars(Client) if not name.startswith("_")]
    assert {"id", "is_local", "role", "stream", "send"} <= set(wanted)
    here = Connection(None, "127.0.0.1", outbox_limit=4)
    elsewhere = FakeInstance().client("r1", "viewer")
    for client in (here, elsewhere, FakeClient("f1")):
        missing = [name for name in wanted if not hasattr(client, name)]
        assert not missing, (client, missing)
    assert here.is_local and not elsewhere.is_local


# -- publish -----------------------------------------------------------------------------------


def test_one_camera_per_name_and_a_second_is_refused():
    registry, listener, clock = make_registry()
    camera = publish(registry, "c1", display_name="Cam")
    stream = registry.get("lab")
    assert stream is not None and stream.camera is camera and stream.since == clock.now
    assert (camera.role, camera.stream, camera.name) == ("camera", "lab", "Cam")
    assert listener.take() == [("changed", "c1")]

    for with_token in (False, True):  # a token wins only a reserved name
        intruder = FakeClient("c2")
        error = refused(ErrorCode.STREAM_TAKEN, registry.publish, intruder, "lab", INFO,
                        with_token=with_token)
        assert "lab" in error.reason
        assert intruder.role is None and intruder.take() == []
    assert stream.camera is camera and camera.take() == [] and listener.take() == []
    refused(ErrorCode.WRONG_STATE, registry.publish, camera, "other", INFO)  # one role each
    refused(ErrorCode.BAD_STREAM_NAME, registry.publish, FakeClient("c3"), "../x", INFO)
    assert [s.name for s in registry.live_streams()] == ["lab"]


async def test_a_reservation_takes_a_name_from_its_camera_without_a_token():
    registry, listener, _ = make_registry()
    camera = publish(registry, "c1")
    viewer = watch(registry, "v1")
    camera.take(), listener.take()
    left: list[tuple[str, bool]] = []
    registry.on_camera.append(lambda stream, live: left.append((stream.name, live)))

    registry.reserve("lab")
    ended = StreamEnded(stream="lab", reason=RESERVED_REASON)
    assert camera.take() == [ended] and viewer.take()[-1] == ended
    await hung_up(camera)
    assert camera.role is None and left == [("lab", False)]
    assert listener.take() == [("gone", "c1", RESERVED_REASON), ("reserved", "lab")]
    stream = registry.get("lab")
    assert stream is not None and stream.reserved and not stream.live
    assert registry.reserved_names() == ["lab"]

    # The holder of its token publishes; the viewer who stayed meets it.
    holder = publish(registry, "c2", with_token=True)
    assert holder.take() == [ViewerJoined(peer_id="v1")]
    assert viewer.take() == [StreamLive(stream="lab", camera_id="c2", info=INFO)]
    registry.reserve("lab")  # again: its holder has the token and stays
    assert stream.camera is holder and holder.take() == []
    refused(ErrorCode.STREAM_TAKEN, registry.publish, FakeClient("c3"), "lab", INFO, with_token=True)


async def test_a_camera_with_the_token_takes_a_reserved_name_from_one_without():
    """The edge asks a token for a reserved name; the registry lets the token win."""
    registry, listener, _ = make_registry()
    registry.reserve("lab")
    squatter = publish(registry, "c1")
    refused(ErrorCode.STREAM_TAKEN, registry.publish, FakeClient("c2"), "lab", INFO)
    listener.take()
    holder = publish(registry, "c3", with_token=True)
    reason = "this name is reserved for the holder of its publish token"
    assert squatter.take() == [StreamEnded(stream="lab", reason=reason)]
    await hung_up(squatter)
    assert registry.get("lab").camera is holder
    assert listener.take() == [("gone", "c1", reason), ("changed", "c3")]


# -- watch and routing ---------------------------------------------------------------------------


def test_a_viewer_waits_for_its_camera_and_they_meet_when_it_comes():
    registry, listener, _ = make_registry()
    viewer = FakeClient("v1")
    registry.watch(viewer, "lab", "vic")
    assert viewer.take() == [Watching(stream="lab", live=False)]
    assert (viewer.role, viewer.stream, viewer.name) == ("viewer", "lab", "vic")
    assert registry.live_streams() == [] and listener.take() == [("changed", "v1")]

    camera = FakeClient("c1")
    registry.publish(camera, "lab", INFO)
    assert camera.take() == [Published(stream="lab"), ViewerJoined(peer_id="v1", name="vic")]
    assert viewer.take() == [StreamLive(stream="lab", camera_id="c1", info=INFO)]

    late = FakeClient("v2")
    registry.watch(late, "lab", quality="480p")
    assert late.take() == [Watching(stream="lab", live=True),
                           StreamLive(stream="lab", camera_id="c1", info=INFO)]
    assert camera.take() == [ViewerJoined(peer_id="v2", quality="480p")]
    assert viewer.take() == []
    refused(ErrorCode.BAD_NAME, registry.watch, FakeClient("v3"), "lab", "VIC")  # names are unique


def test_routed_messages_go_between_a_viewer_and_its_camera_by_id():
    registry, _, _ = make_registry()
    camera = publish(registry, "c1")
    viewer = watch(registry, "v1")
    other_camera = publish(registry, "c2", "other")
    other_viewer = watch(registry, "v2", "other")

    assert registry.route_target(viewer, Offer(sdp="v=0")) is camera
    assert registry.route_target(viewer, Offer(sdp="v=0", to="c1")) is camera
    assert registry.route_target(camera, Answer(sdp="v=0", to="v1")) is viewer
    assert registry.route_target(viewer, Hangup(reason="bye")) is camera
    assert registry.route_target(camera, Hangup(reason="bye", to="v1")) is viewer
    assert registry.route_target(other_camera, Answer(sdp="v=0", to="v2")) is other_viewer

    # Unknown ids, and ids of another stream.
    for to in ("nobody", "v2"):
        error = refused(ErrorCode.UNKNOWN_PEER, registry.route_target, camera, Answer(sdp="v=0", to=to))
        assert to in error.reason
    refused(ErrorCode.UNKNOWN_PEER, registry.route_target, viewer, Offer(sdp="v=0", to="c2"))
    refused(ErrorCode.BAD_MESSAGE, registry.route_target, camera, Answer(sdp="v=0"))
    # Each type goes its own way only.
    refused(ErrorCode.WRONG_STATE, registry.route_target, viewer, Answer(sdp="v=0"))
    refused(ErrorCode.WRONG_STATE, registry.route_target, camera, Offer(sdp="v=0", to="v1"))
    # Nobody yet, and a viewer whose camera is not there.
    refused(ErrorCode.WRONG_STATE, registry.route_target, FakeClient("x"), Offer(sdp="v=0"))
    waiting = watch(registry, "v3", "empty")
    refused(ErrorCode.NO_SUCH_STREAM, registry.route_target, waiting, Offer(sdp="v=0"))


# -- limits --------------------------------------------------------------------------------------


def test_a_stream_takes_at_most_its_viewers_counting_http_readers():
    registry, _, _ = make_registry(viewers_per_stream=2)
    camera = publish(registry, "c1")
    first, _ = watch(registry, "v1"), watch(registry, "v2")
    camera.take()
    third = FakeClient("v3")
    error = refused(ErrorCode.STREAM_FULL, registry.watch, third, "lab")
    assert "2 viewers" in error.reason
    assert third.role is None and third.take() == [] and camera.take() == []
    refused(ErrorCode.STREAM_FULL, registry.add_http_reader, "lab")

    registry.remove(first)
    stream = registry.add_http_reader("lab")  # an MJPEG reader takes the place
    refused(ErrorCode.STREAM_FULL, registry.watch, third, "lab")
    registry.remove_http_reader(stream)
    watch(registry, "v3")
    assert len(stream.viewers) == 2


def test_only_cameras_and_reservations_count_against_the_streams_limit():
    registry, _, _ = make_registry(streams=2)
    for name in ("a", "b", "c"):  # watching made-up names takes no camera's place
        watch(registry, f"v-{name}", name)
    publish(registry, "c1", "a")
    leaving = publish(registry, "c2", "b")
    error = refused(ErrorCode.TOO_MANY_STREAMS, registry.publish, FakeClient("c3"), "d", INFO)
    assert "2 streams" in error.reason
    assert registry.get("d") is None  # a refused name leaves nothing behind
    refused(ErrorCode.TOO_MANY_STREAMS, registry.reserve, "e")

    registry.remove(leaving)
    registry.reserve("e")  # the place is free again, and a reservation holds it
    refused(ErrorCode.TOO_MANY_STREAMS, registry.publish, FakeClient("c4"), "c", INFO)
    registry.end("e", "done")
    publish(registry, "c4", "c")


def test_the_registry_clock_stamps_a_camera_start_and_stats():
    registry, listener, clock = make_registry()
    camera = publish(registry, "c1")
    viewer = watch(registry, "v1")
    started = clock.now
    clock.now += 30
    registry.report_stats(viewer, ViewerStats(mode="p2p", fps=25))
    clock.now += 5
    registry.report_stats(camera, CameraStats(fps=30, encode_ms=4))
    assert (viewer.stats_at, camera.stats_at) == (started + 30, started + 35)
    summary = registry.get("lab").summary()
    assert summary["since"] == started and summary["viewers"][0]["stats"]["fps"] == 25
    assert listener.take()[-2:] == [("changed", "v1"), ("changed", "c1")]
    refused(ErrorCode.WRONG_STATE, registry.report_stats, viewer, CameraStats(fps=30, encode_ms=4))


# -- leaving -------------------------------------------------------------------------------------


def test_viewers_and_cameras_leaving_are_told_to_the_other_side():
    registry, listener, _ = make_registry()
    camera = publish(registry, "c1")
    viewer, staying = watch(registry, "v1"), watch(registry, "v2")
    camera.take(), staying.take(), listener.take()
    cameras: list[tuple[str, bool]] = []
    registry.on_camera.append(lambda stream, live: cameras.append((stream.name, live)))

    registry.remove(viewer, "closed")
    assert camera.take() == [ViewerLeft(peer_id="v1")] and staying.take() == []
    assert listener.take() == [("gone", "v1", "closed")]

    registry.remove(camera, "camera disconnected")
    assert staying.take() == [StreamEnded(stream="lab", reason="camera disconnected")]
    assert cameras == [("lab", False)] and listener.take() == [("gone", "c1", "camera disconnected")]
    stream = registry.get("lab")
    assert stream is not None and not stream.live  # the viewer waits for the next camera
    registry.remove(staying)
    assert registry.get("lab") is None


async def test_an_ended_stream_tells_its_camera_and_viewers_and_frees_its_name():
    registry, listener, _ = make_registry()
    registry.reserve("lab")
    camera = publish(registry, "c1", with_token=True)
    viewer = watch(registry, "v1")
    camera.take(), viewer.take(), listener.take()
    assert registry.end("lab", "admin ended it")
    ended = StreamEnded(stream="lab", reason="admin ended it")
    assert camera.take() == [ended] and viewer.take() == [ended]
    await hung_up(camera)
    assert listener.take() == [("ended", "lab", "admin ended it"), ("gone", "c1", "admin ended it")]
    assert registry.reserved_names() == [] and not registry.end("nothing", "no")
    assert listener.take() == []

    # Ended on another instance: the camera here is ended by this one, and nobody is told back.
    registry.reserve("lab", here=False)
    camera = publish(registry, "c2", with_token=True)
    listener.take()
    assert registry.end("lab", "ended elsewhere", here=False)
    ended = StreamEnded(stream="lab", reason="ended elsewhere")
    assert camera.take()[-1] == ended and viewer.take()[-1] == ended
    await hung_up(camera)
    assert listener.take() == [("gone", "c2", "ended elsewhere")] and registry.reserved_names() == []


# -- clients of another instance -------------------------------------------------------------------


def test_a_viewer_of_another_instance_meets_the_camera_here_and_is_answered_there():
    registry, listener, _ = make_registry()
    elsewhere = FakeInstance()
    waiting = elsewhere.client("r0", "viewer")
    assert registry.attach(waiting)
    camera = publish(registry, "c1")  # it meets the viewer who waited elsewhere, told there
    assert camera.take() == [ViewerJoined(peer_id="r0")] and elsewhere.delivered == []
    registry.remove(waiting, "closed")
    camera.take(), listener.take()
    remote = elsewhere.client("r1", "viewer", name="rita", quality="480p")
    assert registry.attach(remote)
    assert camera.take() == [ViewerJoined(peer_id="r1", name="rita", quality="480p")]
    stream = registry.get("lab")
    assert stream.viewers["r1"] is remote and stream.summary()["viewer_count"] == 1
    assert list(registry.local_clients()) == [camera]
    refused(ErrorCode.BAD_NAME, registry.watch, FakeClient("v1"), "lab", "Rita")  # its name too

    # The camera answers it through its instance; what it sends is told there, not here.
    answer = Answer(sdp="v=0", to="r1")
    target = registry.route_target(camera, answer)
    assert target is remote
    target.send(answer)
    assert elsewhere.delivered == [("n2", "lab", "r1", answer)]
    registry.layer_changed(remote, "360p", "loss")  # its own instance keeps its layer
    assert remote.layer is None and stream.layer_switches["p2p"] == 0

    registry.remove(remote, "closed")
    assert camera.take() == [ViewerLeft(peer_id="r1")]
    assert listener.take() == []  # its own instance told the others


def test_a_camera_of_another_instance_meets_the_viewers_here():
    registry, listener, clock = make_registry()
    elsewhere = FakeInstance()
    viewer = watch(registry, "v1", name="vic")
    listener.take()
    remote = elsewhere.client("r1", "camera", info=INFO, since=1234.5)
    assert registry.attach(remote)
    assert viewer.take() == [StreamLive(stream="lab", camera_id="r1", info=INFO)]
    late = watch(registry, "v2")
    assert elsewhere.delivered == []  # its instance tells it of the viewers here
    stream = registry.get("lab")
    assert stream.since == 1234.5 != clock.now and stream.viewers["v2"] is late
    assert registry.route_target(viewer, Offer(sdp="v=0")) is remote
    listener.take()

    # Its name is taken here, even from a camera with the token of a reserved name: a
    # camera without one is evicted by its own instance.
    registry.reserve("lab", here=False)
    refused(ErrorCode.STREAM_TAKEN, registry.publish, FakeClient("c1"), "lab", INFO, with_token=True)
    assert stream.camera is remote and listener.take() == []  # a reservation from elsewhere
    cameras: list[tuple[str, bool]] = []
    registry.on_camera.append(lambda s, live: cameras.append((s.name, live)))
    registry.remove(remote, "the camera left")
    assert viewer.take() == [StreamEnded(stream="lab", reason="the camera left")]
    assert cameras == [] and listener.take() == []  # (recording and the cluster: cameras here only)


def test_a_camera_here_keeps_its_name_from_one_of_another_instance():
    registry, _, _ = make_registry()
    camera = publish(registry, "c1")
    viewer = watch(registry, "v1")
    camera.take()
    assert not registry.attach(FakeInstance().client("r1", "camera", info=INFO))
    assert registry.get("lab").camera is camera
    assert viewer.take() == [] and camera.take() == []
    # A camera record without its stream's info is not one yet.
    assert not registry.attach(FakeInstance().client("r2", "camera", stream="new"))
    assert registry.get("new") is None


def test_messages_from_other_instances_reach_only_clients_here():
    registry, listener, _ = make_registry()
    elsewhere = FakeInstance()
    camera = publish(registry, "c1")
    viewer = watch(registry, "v1")
    remote = elsewhere.client("r1", "viewer")
    registry.attach(remote)
    camera.take(), listener.take()

    assert registry.deliver("lab", "v1", '{"type": "answer"}') is viewer
    assert registry.deliver("lab", "c1", '{"type": "offer"}') is camera
    assert viewer.take() == ['{"type": "answer"}'] and camera.take() == ['{"type": "offer"}']
    for stream, to in (("lab", "r1"), ("lab", "nobody"), ("gone", "v1")):
        assert registry.deliver(stream, to, "{}") is None
    registry.chat_here("lab", '{"type": "chat"}')
    assert viewer.take() == ['{"type": "chat"}'] and camera.take() == []
    assert elsewhere.delivered == []

    line = ChatMessage(id=1, name="cam", text="hello", time=1.0, camera=True)
    registry.broadcast_chat(camera, line)
    assert viewer.take() == [line] and elsewhere.delivered == []  # its instance has it from the cluster
    assert listener.take() == [("chat", "lab", line)]
    refused(ErrorCode.WRONG_STATE, registry.broadcast_chat, viewer, line)

    registry.layer_changed(viewer, "480p", "")  # from the camera, through another instance
    assert viewer.layer == "480p" and listener.take() == [("changed", "v1")]


async def test_relay_readers_here_read_a_camera_of_another_instance():
    registry, _, _ = make_registry()
    elsewhere = FakeInstance()
    registry.attach(elsewhere.client("r1", "camera", info=INFO))
    viewer = watch(registry, "v1")
    viewer.take()
    registry.set_relay(viewer, True)
    assert elsewhere.asked == [("n2", "lab", [TOP], [], False)]
    assert viewer.take() == [LayerChanged(layer="480p", width=640, height=480, jpeg_quality=80)]
    registry.set_remote_demand("lab", "n3", [JpegRendition("480p", 60)], [])  # the camera's instance's
    assert elsewhere.asked == [("n2", "lab", [TOP], [], False)]

    frame = jpeg_relay_frame(1, jpeg_quality=80)
    registry.relay_from_elsewhere("lab", frame)
    await asyncio.wait_for(viewer.frame_came.wait(), 2)
    assert viewer.frames == [frame]

    # The camera's instance says it makes another JPEG quality: the reader reads the nearest.
    made = [JpegRendition("480p", 50)]
    registry.set_renditions_made("lab", "n3", made)  # not the camera's instance: no change
    assert viewer.take() == []
    registry.set_renditions_made("lab", "n2", made)
    [moved] = viewer.take()
    assert (moved.layer, moved.jpeg_quality) == ("480p", 50) and "nearest" in moved.reason

    registry.remove(viewer)
    assert elsewhere.asked[-1] == ("n2", "lab", [], [], False)


def test_relay_readers_of_another_instance_read_a_camera_here():
    registry, listener, _ = make_registry()
    camera = publish(registry, "c1")
    listener.take()
    wanted = [JpegRendition("480p", 60)]
    registry.set_remote_demand("lab", "n2", wanted, [])
    assert camera.take() == [RelayFrames(jpeg=wanted)]
    assert listener.take() == [("renditions", "lab", "n2", wanted)]

    read = jpeg_relay_frame(1, jpeg_quality=60)
    registry.relay_frame(camera, read)
    registry.relay_frame(camera, jpeg_relay_frame(2, jpeg_quality=80))  # read nowhere else
    assert listener.take() == [("relay-frame", "lab", read)]
    registry.relay_from_elsewhere("lab", read)  # the camera is here: frames come from it only
    assert registry.get("lab").relay.frames_in == 2

    registry.forget_demand_of("n2")  # its instance is gone
    assert camera.take() == [RelayFrames()]
    registry.relay_frame(camera, jpeg_relay_frame(3, jpeg_quality=60))
    assert listener.take() == []
