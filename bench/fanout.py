"""Usage: python3 -m bench.fanout [--viewers 1,4,8,16,32,64,100] [--baseline-viewers N,N,...]
                             [--seconds 8] [--warmup 1.5] [--procs 2] [--audio auto]
                             [--json bench/results/fanout.json]

P2P fan-out benchmark: one 640x480@30 VP8 camera, N WebRTC viewers. Starts a
signaling server on 127.0.0.1 and, in turn, two cameras publishing the test pattern:

- peercam: ``peercam camera`` encodes each frame once and sends the same packets to
  every viewer; with its sound as users run it (``--audio``, by default ``auto``: the
  test tone, Opus), which each light viewer receives too (``--audio none``: picture only);
- baseline: bench/baseline_camera.py, the aiortc-examples way (one
  ``MediaRelay().subscribe(track, buffered=False)`` per viewer, so one aiortc encoder
  per viewer). It runs for rising N (--baseline-viewers, by default the same as
  --viewers) until a row saturates it (min fps < 20 or camera CPU > 180%), then stops.

Viewers join incrementally (the N of one row stay for the next) over the project's
signaling protocol and client, as peercam's own viewer does: watch, then offer a
recvonly video transceiver and a "chat" data channel, ICE on 127.0.0.1 only, no STUN.
They run in --procs worker processes at nice 10 (in real use viewers are on other
machines: on a short CPU the camera under test should not be the one to wait). In
each worker the first viewer decodes; the others are light:

- light viewers keep aiortc's whole receive path (SRTP, RTP parsing, NACK, REMB,
  depacketizing, the jitter buffer) but decode nothing: in the worker only, the
  receiver's decoder queue is replaced by a recorder, so each reassembled frame is
  timed on the event loop where aiortc would hand it to its decoder thread. Decoding
  640x480 VP8 costs a few ms a frame: a hundred decoders on two cores would measure
  the viewers, not the camera.
- the decoding viewer reads each frame's test-pattern stamp (capture time, frame
  number).

Per row, over a --seconds window after a --warmup:

- camera CPU: % of one core, from /proc/PID/stat (all its threads);
- encoded fps / ms: peercam's own stats report at the end of the window (its last 2 s,
  via the server's API): frames its one encoder managed per second, and the wall time
  each took (waits for the GIL included);
- fps min / avg: frames each viewer got in the window (light and decoding alike);
- latency p50 / p95: glass to glass, from the decoding viewers only: decoded-frame
  arrival minus the stamp's capture time (one clock). It includes aiortc's jitter
  buffer, which releases a frame when the next one starts (~33 ms at 30 fps);
- light delay p95: how much later than its own earliest frame a light viewer's frames
  arrived relative to their RTP timestamps (arrival - RTP time, minus the viewer's
  minimum): queueing and jitter on the way, not absolute latency;
- dropped: frames missing between those received: gaps in the stamps' frame numbers
  (decoding viewers) and in RTP timestamps (light viewers, in frame intervals);
- kbit/s per viewer: what the light viewers received (aiortc's per-viewer encoders
  pick their own bitrate from REMB; peercam's encoder sends its configured 1.5 Mbit/s);
- viewers, server and other CPU, and the machine's busy share: the viewers share the
  cores with the camera (and "other" is whatever else ran), so a busy machine caps a row.

CPU per added viewer: least-squares slope of camera CPU over N, for each camera, over
its rows with full frame rate (min fps >= 27) on a machine not saturated (busy < 90%).
Targets (P2P, peercam): every viewer >= 29 fps up to N = 64; camera CPU at N = 64
under 60% of one core; CPU per added viewer at most 0.3% of one core, and at least 20x
lower than the baseline's.
Wrap measurement runs in ``flock /tmp/peercam-cpu.lock``: other runs on the machine
skew CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty

from aiortc import RTCPeerConnection, RTCSessionDescription
from peercam.peers.ice import IceOptions, restrict_host_addresses
from peercam.peers.signaling_client import SignalingClient

import peercam
from bench.harness import (
    ROOT,
    SATURATED,
    collect,
    cores,
    cpu_percent,
    free_port,
    least_squares_slope,
    percentile,
    print_if_saturated,
    print_verdicts,
    sample_cpu,
    start_peercam,
    start_process,
    stop,
    stream_summary,
    wait_until_live,
    write_json,
)
from peercam.shared.protocol import PROTOCOL_VERSION, Answer, Error, Hangup, Offer, StreamLive, Watch

LOG_DIR = ROOT / "bench" / "results"
#: Seconds for a stream to go live, and for a joining viewer's first frame.
STARTUP_TIMEOUT = 30.0
JOIN_TIMEOUT = 20.0
#: Seconds for workers to report: joins, or closing every peer connection.
WORKER_TIMEOUT = JOIN_TIMEOUT + 30
#: The baseline stops growing after a row below this frame rate or above this CPU.
BASELINE_MIN_FPS = 20.0
BASELINE_MAX_CPU = 180.0
#: The requirement's targets.
TARGET_FPS = 29.0
TARGET_VIEWERS = 64
TARGET_CPU_AT_TARGET_VIEWERS = 60.0
TARGET_PER_VIEWER_RATIO = 20.0
#: Camera CPU per added P2P viewer, % of one core (issue 28).
TARGET_CPU_PER_VIEWER = 0.3
RTP_CLOCK = 90000
#: Viewer workers yield the CPU to the cameras: in real use viewers run on other machines, so when
#: the two cores run short the camera under test should not be the one that waits.
VIEWER_NICENESS = 10


# Viewers (in the worker processes) ----------------------------------------------------------


class FrameRecorder:
    """Stands in for an RTCRtpReceiver's decoder queue: times each reassembled frame, decodes nothing.

    aiortc puts ``(codec, frame)`` here from the event loop once its jitter buffer has a
    whole frame, and ``None`` when the receiver stops; its decoder thread waits in
    ``get()`` until then.
    """

    def __init__(self, first_frame: asyncio.Future) -> None:
        self.frames: list[tuple[float, int, int]] = []  # (arrival, RTP timestamp, bytes)
        self._first_frame = first_frame
        self._stopped = threading.Event()

    def put(self, item) -> None:
        if item is None:
            self._stopped.set()
            return
        _, frame = item
        self.frames.append((time.time(), frame.timestamp, len(frame.data)))
        if not self._first_frame.done():
            self._first_frame.set_result(None)

    def get(self) -> None:
        self._stopped.wait()


class PacketRecorder(FrameRecorder):
    """Stands in for an audio receiver's decoder queue: times each Opus packet, decodes none."""


class KeyframeRecorder(FrameRecorder):
    """Also notes VP8 keyframes (bit 0 of the frame's first byte clear): the frame tuples
    bench/relay.py's p2p_figures reads."""

    def put(self, item) -> None:
        if item is None:
            super().put(item)
            return
        _, frame = item
        self.frames.append((time.time(), frame.timestamp, len(frame.data),
                            bool(frame.data) and not frame.data[0] & 1))
        if not self._first_frame.done():
            self._first_frame.set_result(None)


class Viewer:
    """One light viewer: its own signaling connection and a peer connection receiving the
    stream through aiortc's whole receive path, its decoder swapped for a FrameRecorder
    (and with ``audio``, the sound's too, for a PacketRecorder)."""

    decodes = False

    def __init__(self, audio: bool = False) -> None:
        self.error: str | None = None
        self.audio = audio
        #: (arrival, RTP timestamp, bytes)
        self.frames: list[tuple] = []
        self.audio_packets: list[tuple] = []
        self.first_frame: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client: SignalingClient | None = None
        self._pc: RTCPeerConnection | None = None
        self._tasks: list[asyncio.Task] = []

    async def join(self, server: str, stream: str, name: str, quality: str = "auto") -> None:
        """Watch (at ``quality``: a layer's name, or "auto"), offer, and wait for the first frame."""
        client = self._client = SignalingClient(server)
        welcome = await client.connect()
        messages = client.messages()
        await client.send(Watch(stream=stream, name=name, quality=quality, protocol=PROTOCOL_VERSION))
        await _next(messages, StreamLive)
        ice = IceOptions(servers=[], hosts=["127.0.0.1"])
        restrict_host_addresses(ice.host_addresses(welcome))
        pc = self._pc = RTCPeerConnection(ice.configuration(welcome))
        transceiver = pc.addTransceiver("video", direction="recvonly")
        pc.createDataChannel("chat")
        recorder = FrameRecorder(self.first_frame)
        self.frames = recorder.frames
        # Private, and aiortc is pinned: the receiver hands whole frames to this queue.
        transceiver.receiver._RTCRtpReceiver__decoder_queue = recorder
        if self.audio:
            sound = pc.addTransceiver("audio", direction="recvonly")
            packets = PacketRecorder(asyncio.get_running_loop().create_future())
            self.audio_packets = packets.frames
            sound.receiver._RTCRtpReceiver__decoder_queue = packets
        await pc.setLocalDescription(await pc.createOffer())
        await client.send(Offer(sdp=pc.localDescription.sdp))
        answer = await _next(messages, Answer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        self._tasks.append(asyncio.create_task(self._listen(messages)))
        await self.first_frame

    async def _listen(self, messages) -> None:
        """Read on (the signaling heartbeat needs it), noting a hangup or an error."""
        async for message in messages:
            if isinstance(message, (Hangup, Error)):
                self.error = f"{type(message).__name__}: {message.reason}"

    def take(self, start: float, end: float) -> dict:
        """The frames that arrived in [start, end); forgets those before ``end``."""
        frames = [f for f in self.frames if start <= f[0] < end]
        self.frames[:] = [f for f in self.frames if f[0] >= end]
        packets = [p for p in self.audio_packets if start <= p[0] < end]
        self.audio_packets[:] = [p for p in self.audio_packets if p[0] >= end]
        return {"decodes": self.decodes, "error": self.error, "frames": frames, "audio_packets": packets}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._pc is not None:
            await self._pc.close()
        if self._client is not None:
            await self._client.close()


class DecodingViewer(Viewer):
    """The one viewer per worker that decodes: peercam's own, through the library, as a user
    runs it. (arrival, capture ms, frame number), the last two None when the stamp was unreadable."""

    decodes = True

    async def join(self, server: str, stream: str, name: str) -> None:
        self._viewer = peercam.watch(server, stream, mode="p2p", name=name, first_frame_timeout=None,
                                     ice=IceOptions(servers=[], hosts=["127.0.0.1"]))
        await self._viewer.start()
        self._tasks.append(asyncio.create_task(self._take_frames()))
        await self.first_frame

    async def _take_frames(self) -> None:
        async for frame in self._viewer.frames(keep=None):  # every frame, for the counts
            stamp = frame.stamp
            self.frames.append((frame.arrived, *((stamp.time_ms, stamp.frame) if stamp else (None, None))))
            if not self.first_frame.done():
                self.first_frame.set_result(None)

    async def close(self) -> None:
        await super().close()
        await self._viewer.close()


async def _next(messages, wanted: type):
    """The next signaling message of type ``wanted``; an error or a hangup first fails the join."""
    async for message in messages:
        if isinstance(message, wanted):
            return message
        if isinstance(message, (Error, Hangup)):
            raise RuntimeError(f"waiting for {wanted.__name__}, got {message}")
    raise RuntimeError(f"signaling ended while waiting for {wanted.__name__}")


def viewer_worker(index: int, server: str, stream: str, commands, reports, audio: bool = False) -> None:
    """Join, measure and leave as the parent says: ("join", total), ("measure", start, end), ("stop",).
    ``audio``: the light viewers receive the sound too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    os.nice(VIEWER_NICENESS)
    asyncio.run(_serve_commands(index, server, stream, commands, reports, audio))


async def _serve_commands(index: int, server: str, stream: str, commands, reports, audio: bool) -> None:
    viewers: list[Viewer] = []
    while True:
        command, *args = await asyncio.to_thread(_next_command, commands)
        if command == "join":
            first = len(viewers)
            added = [DecodingViewer() if first + i == 0 else Viewer(audio) for i in range(args[0] - first)]
            viewers += added
            joins = [asyncio.wait_for(v.join(server, stream, f"bench-{index}-{first + i}"), JOIN_TIMEOUT)
                     for i, v in enumerate(added)]
            errors = [f"{type(e).__name__}: {e}" for e in await asyncio.gather(*joins, return_exceptions=True)
                      if e is not None]
            reports.put(("joined", errors))
        elif command == "measure":
            start, end = args
            await asyncio.sleep(max(0.0, end - time.time()) + 0.2)  # decoding lags arrival a little
            reports.put(("measured", [viewer.take(start, end) for viewer in viewers]))
        else:
            await asyncio.wait_for(asyncio.gather(*(v.close() for v in viewers), return_exceptions=True),
                                   WORKER_TIMEOUT / 2)
            reports.put(("stopped", None))
            return


def _next_command(commands) -> tuple:
    """The parent's next command; ("stop",) if the parent is gone."""
    while True:
        try:
            return commands.get(timeout=1)
        except Empty:
            parent = multiprocessing.parent_process()
            if parent is not None and not parent.is_alive():
                return ("stop",)


# The parent: cameras, viewer workers, rows ---------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """One side of the comparison."""

    name: str  # in the table and the JSON
    stream: str
    viewer_counts: list[int]
    #: Stop adding viewers after a row that saturates it.
    stops_when_saturated: bool
    #: peercam's sound (``peercam camera --audio``; the baseline has none, bench/audio.py compares).
    audio: str = "none"
    #: What runs: ``peercam camera``, or the baseline (bench/baseline_camera.py).
    program: str = "peercam"
    #: More flags for ``peercam camera`` (bench/standards.py: an RTSP source).
    flags: tuple[str, ...] = ()

    def start(self, server: str) -> subprocess.Popen:
        log = LOG_DIR / f"fanout-{self.stream}.log"
        if self.program == "peercam":
            return start_peercam(["camera", "--server", server, "--stream", self.stream,
                                  "--ice-host", "127.0.0.1", "--audio", self.audio, *self.flags], log,
                                 own_session=True)
        return start_process([sys.executable, "-m", "bench.baseline_camera", "--server", server,
                              "--stream", self.stream], log, own_session=True)


class ViewerPool:
    """The viewer worker processes of one camera, and the commands they follow."""

    def __init__(self, procs: int, server: str, stream: str, audio: bool = False) -> None:
        context = multiprocessing.get_context("spawn")
        self.reports = context.Queue()
        self.commands = [context.Queue() for _ in range(procs)]
        self.workers = [
            context.Process(target=viewer_worker, args=(i, server, stream, commands, self.reports, audio),
                            daemon=True)
            for i, commands in enumerate(self.commands)
        ]
        self.sizes = [0] * procs
        for worker in self.workers:
            worker.start()

    def _collect(self, kind: str, count: int) -> list:
        return collect(self.reports, kind, count, self.workers, WORKER_TIMEOUT)

    def grow(self, total: int) -> list[str]:
        """Spread ``total`` viewers over the workers (adding to those there); join errors."""
        procs = len(self.workers)
        shares = [total // procs + (i < total % procs) for i in range(procs)]
        growing = [i for i, share in enumerate(shares) if share > self.sizes[i]]
        for i in growing:
            self.commands[i].put(("join", shares[i]))
        self.sizes = [max(a, b) for a, b in zip(shares, self.sizes, strict=True)]
        return [error for errors in self._collect("joined", len(growing)) for error in errors]

    def start_measuring(self, start: float, end: float) -> None:
        for commands in self.commands:
            commands.put(("measure", start, end))

    def measured(self) -> list[dict]:
        return [viewer for batch in self._collect("measured", len(self.workers)) for viewer in batch]

    def close(self) -> None:
        """Every viewer hangs up; workers that do not finish in time are terminated."""
        for commands in self.commands:
            commands.put(("stop",))
        try:
            self._collect("stopped", len(self.workers))
        except RuntimeError as exc:
            print(f"  {exc}; terminating them", file=sys.stderr)
        for worker in self.workers:
            worker.join(2)
            if worker.is_alive():
                worker.terminate()
                worker.join()


def run_camera(camera: Camera, opts: argparse.Namespace, port: int, server: subprocess.Popen) -> list[dict]:
    """Start one camera, then one row per viewer count (viewers stay for the next row)."""
    url = f"http://127.0.0.1:{port}"
    process = camera.start(url)
    pool = None
    rows: list[dict] = []
    try:
        wait_until_live(port, camera.stream, {"server": server, camera.name: process}, STARTUP_TIMEOUT,
                        LOG_DIR)
        pool = ViewerPool(opts.procs, url, camera.stream, audio=camera.audio != "none")
        for count in camera.viewer_counts:
            print(f"{camera.name}: {count} viewers ...", file=sys.stderr, flush=True)
            errors = pool.grow(count)
            start = time.time() + opts.warmup
            end = start + opts.seconds
            pool.start_measuring(start, end)
            groups = {"camera": [process.pid], "server": [server.pid],
                      "viewers": [w.pid for w in pool.workers]}
            time.sleep(max(0.0, start - time.time()))
            before = sample_cpu(groups)
            time.sleep(max(0.0, end - time.time()))
            cpu = cpu_percent(before, sample_cpu(groups), opts.seconds)
            report = ((stream_summary(port, camera.stream) or {}).get("camera") or {}).get("stats")
            rows.append(summarize(camera.name, count, pool.measured(), cpu, errors, report, opts))
            if process.poll() is not None:
                raise RuntimeError(f"the {camera.name} camera exited with {process.returncode}; "
                                   f"see {LOG_DIR}")
            if camera.stops_when_saturated and (rows[-1]["fps_min"] < BASELINE_MIN_FPS
                                                or rows[-1]["camera_cpu_pct"] > BASELINE_MAX_CPU):
                break
    finally:
        if pool is not None:
            pool.close()
        stop(process)
    return rows


# Figures ---------------------------------------------------------------------------------


def stamp_gaps(frames: list[tuple]) -> int:
    """Frames missing between the decoded ones, from the stamps' frame numbers."""
    numbers = [number for _, _, number in frames if number is not None]
    return sum(b - a - 1 for a, b in itertools.pairwise(numbers) if b > a)


def rtp_gaps(frames: list[tuple], ticks_per_frame: float) -> int:
    """Frames missing between the received ones, from their RTP timestamps."""
    return sum(max(0, round((b - a) / ticks_per_frame) - 1)
               for (_, a, _), (_, b, _) in itertools.pairwise(frames))


def delays_over_best_ms(frames: list[tuple]) -> list[float]:
    """Arrival minus RTP time of each frame, minus the smallest such value: the delay on top of the
    best frame's (queueing and jitter; the RTP clock's origin is unknown, so nothing absolute)."""
    offsets = [arrived - timestamp / RTP_CLOCK for arrived, timestamp, _ in frames]
    best = min(offsets, default=0.0)
    return [(offset - best) * 1000 for offset in offsets]


def summarize(camera: str, count: int, viewers: list[dict], cpu: dict[str, float], errors: list[str],
              camera_report: dict | None, opts: argparse.Namespace) -> dict:
    """One row; ``camera_report``: the camera's latest stats report (peercam's only), or None."""
    fps = [len(v["frames"]) / opts.seconds for v in viewers]
    decoding = [v["frames"] for v in viewers if v["decodes"]]
    light = [v["frames"] for v in viewers if not v["decodes"]]
    latencies = sorted(arrived * 1000 - capture_ms for frames in decoding
                       for arrived, capture_ms, _ in frames if capture_ms is not None)
    delays = sorted(d for frames in light for d in delays_over_best_ms(frames))
    dropped = (sum(stamp_gaps(frames) for frames in decoding)
               + sum(rtp_gaps(frames, RTP_CLOCK / opts.fps) for frames in light))
    received = sum(len(v["frames"]) for v in viewers)
    # The sound's packets at the light viewers that receive it (bench/audio.py): none without sound.
    sound = [len(v["audio_packets"]) / opts.seconds for v in viewers if not v["decodes"]]
    capacity = 100 * cores()
    row = {
        "camera": camera,
        "viewers": count,
        "viewers_measured": len(viewers),
        "join_errors": errors,
        "viewer_errors": sorted({v["error"] for v in viewers if v["error"]}),
        "camera_cpu_pct": cpu["camera"],
        # peercam's own report over its last 2 s: how many frames its one encoder managed, and how long
        # each took (wall time, waits for the GIL included); the frames its per-viewer queues dropped
        # since each viewer joined.
        "camera_encoded_fps": camera_report and camera_report["fps"],
        "camera_encode_ms": camera_report and camera_report["encode_ms"],
        "camera_queue_drops_total": camera_report and sum(v.get("queue_drops", 0)
                                                          for v in camera_report.get("viewers", [])),
        "fps_min": min(fps, default=0.0),
        "fps_avg": sum(fps) / len(fps) if fps else 0.0,
        "decoding_viewers": len(decoding),
        "latency_p50_ms": percentile(latencies, 0.50),
        "latency_p95_ms": percentile(latencies, 0.95),
        "unreadable_stamps": sum(capture_ms is None for frames in decoding for _, capture_ms, _ in frames),
        "light_delay_p95_ms": percentile(delays, 0.95),
        "frames_received": received,
        "frames_dropped": dropped,
        "drop_pct": 100 * dropped / (received + dropped) if received + dropped else 0.0,
        "audio_packets_per_s_min": min(sound) if any(sound) else None,
        "kbit_per_s_per_viewer": (sum(size for frames in light for _, _, size in frames) * 8 / 1000
                                  / opts.seconds / len(light)) if light else None,
        "viewers_cpu_pct": cpu["viewers"],
        "server_cpu_pct": cpu["server"],
        "machine_cpu_pct": cpu["machine"],
        # Whatever else ran on the machine meanwhile (this script's own parent is negligible).
        "other_cpu_pct": max(0.0, cpu["machine"] - cpu["camera"] - cpu["server"] - cpu["viewers"]),
        "machine_capacity_pct": capacity,
    }
    # A row where some viewer got less than the full rate, or where the machine had no CPU to spare,
    # measures the shortage: it is left out of the per-viewer slope.
    row["full_rate"] = (row["fps_min"] >= SATURATED * opts.fps
                        and row["machine_cpu_pct"] < SATURATED * capacity)
    return row


def per_viewer_cost(rows: list[dict]) -> dict:
    """Camera CPU per added viewer: the least-squares slope over the full-rate rows."""
    used = [r for r in rows if r["full_rate"]]
    slope = least_squares_slope([(r["viewers"], r["camera_cpu_pct"]) for r in used])
    return {"cpu_pct_per_viewer": slope, "rows": [r["viewers"] for r in used]}


def verdicts(peercam: list[dict], costs: dict[str, dict]) -> list[dict]:
    """Each target: pass (True/False, None when not measured) and the numbers behind it."""
    up_to_target = [r for r in peercam if r["viewers"] <= TARGET_VIEWERS]
    worst = min(up_to_target, key=lambda r: r["fps_min"], default=None)
    at_target = next((r for r in peercam if r["viewers"] == TARGET_VIEWERS), None)
    ours, theirs = costs["peercam"]["cpu_pct_per_viewer"], costs["baseline"]["cpu_pct_per_viewer"]
    ratio = None
    if ours is not None and theirs is not None:
        ratio = theirs / ours if ours > 0 else float("inf")
    return [
        {
            "target": f"every viewer >= {TARGET_FPS:g} fps up to N = {TARGET_VIEWERS}",
            "pass": None if worst is None else worst["fps_min"] >= TARGET_FPS,
            "measured": "no rows" if worst is None
            else f"lowest {worst['fps_min']:.1f} fps (N = {worst['viewers']})",
        },
        {
            "target": f"camera CPU at N = {TARGET_VIEWERS} under "
                      f"{TARGET_CPU_AT_TARGET_VIEWERS:g}% of one core",
            "pass": None if at_target is None else at_target["camera_cpu_pct"] < TARGET_CPU_AT_TARGET_VIEWERS,
            "measured": "no row" if at_target is None else f"{at_target['camera_cpu_pct']:.0f}%",
        },
        {
            "target": f"camera CPU per added viewer at most {TARGET_CPU_PER_VIEWER:g}% of one core",
            "pass": None if ours is None else ours <= TARGET_CPU_PER_VIEWER,
            "measured": "not enough full-rate rows" if ours is None
            else f"{ours:.2f}% per viewer (N = {_span(costs['peercam']['rows'])})",
        },
        {
            "target": f"CPU per added viewer at least {TARGET_PER_VIEWER_RATIO:g}x lower than the baseline's",
            "pass": None if ratio is None else ratio >= TARGET_PER_VIEWER_RATIO,
            "measured": "not enough full-rate rows" if ratio is None
            else f"peercam {ours:.2f}% per viewer (N = {_span(costs['peercam']['rows'])}), "
                 f"baseline {theirs:.2f}% (N = {_span(costs['baseline']['rows'])}): "
                 + (f"{ratio:.0f}x" if ours > 0 else "peercam's cost is below the noise"),
        },
    ]


def _span(counts: list[int]) -> str:
    return ",".join(map(str, counts))


# Report ----------------------------------------------------------------------------------


def print_table(rows: list[dict], opts: argparse.Namespace) -> None:
    capacity = rows[0]["machine_capacity_pct"]
    print(f"\nFan-out: {opts.width}x{opts.height}@{opts.fps:g} VP8 test pattern, {opts.seconds:g} s measured "
          f"after {opts.warmup:g} s warm-up per row; viewers join incrementally in {opts.procs} processes "
          f"(one decoding viewer each, the rest light; nice {VIEWER_NICENESS}) on the same "
          f"{capacity // 100}-core machine as the cameras. CPU in % of one core. Encoded: peercam's own "
          "report (last 2 s). Latency: glass to glass at the decoding viewers. Light delay: arrival vs RTP "
          "time above each light viewer's best frame. Dropped: gaps in frame numbers (decoding) and RTP "
          f"timestamps (light). peercam's sound: --audio {opts.audio}. baseline = aiortc MediaRelay, one "
          "encoder per viewer, no sound.\n")
    columns = ["camera", "viewers", "camera CPU", "encoded fps / ms", "fps min / avg",
               "latency p50 / p95 ms", "light delay p95 ms", "dropped", "kbit/s per viewer", "viewers CPU",
               "server CPU", "other CPU", f"machine busy (of {capacity})"]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for r in rows:
        failed = len(r["join_errors"]) + len(r["viewer_errors"])
        kbps = r["kbit_per_s_per_viewer"]
        cells = [
            r["camera"],
            f"{r['viewers']}" + (f" ({failed} failed)" if failed else ""),
            f"{r['camera_cpu_pct']:.0f}%",
            "-" if r["camera_encoded_fps"] is None
            else f"{r['camera_encoded_fps']:.1f} / {r['camera_encode_ms']:.0f}",
            f"{r['fps_min']:.1f} / {r['fps_avg']:.1f}",
            f"{r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f}",
            "-" if r["light_delay_p95_ms"] != r["light_delay_p95_ms"] else f"{r['light_delay_p95_ms']:.0f}",
            f"{r['frames_dropped']} = {r['drop_pct']:.1f}%",
            "-" if kbps is None else f"{kbps:.0f}",
            *(f"{r[key]:.0f}%" for key in ("viewers_cpu_pct", "server_cpu_pct", "other_cpu_pct",
                                           "machine_cpu_pct")),
        ]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        print_if_saturated(r, f"{r['camera']} N={r['viewers']}", r["viewers_cpu_pct"], "the viewers")
        for error in (r["join_errors"] + r["viewer_errors"])[:5]:
            print(f"{r['camera']} N={r['viewers']}: {error}")


def print_costs(costs: dict[str, dict]) -> None:
    print()
    for name, cost in costs.items():
        slope = cost["cpu_pct_per_viewer"]
        print(f"CPU per added viewer, {name}: "
              + ("not measured (fewer than two full-rate rows)" if slope is None
                 else f"{slope:.2f}% of one core (slope over N = {_span(cost['rows'])})"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="1,4,8,16,32,64,100",
                        help="viewer counts for peercam, one row each")
    parser.add_argument("--baseline-viewers",
                        help="viewer counts for the MediaRelay baseline (default: --viewers), "
                             "until it saturates")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=1.5,
                        help="seconds after the joins, before each window")
    parser.add_argument("--procs", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--audio", default="auto", metavar="SOURCE",
                        help="peercam's sound, as `peercam camera --audio` takes it (default: auto, its "
                             "own default: the test tone); the light viewers receive it; none: picture only")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "fanout.json", help="where the results go")
    opts = parser.parse_args()
    opts.viewers = [int(n) for n in opts.viewers.split(",")]
    opts.baseline_viewers = ([int(n) for n in opts.baseline_viewers.split(",")] if opts.baseline_viewers
                             else opts.viewers)
    # What both cameras send (their defaults): the slope and drop counts use the frame rate.
    opts.width, opts.height, opts.fps = 640, 480, 30.0
    return opts


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    started = time.monotonic()
    port = free_port()
    most_viewers = max(opts.viewers + opts.baseline_viewers)
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port),
                            "--max-connections-per-address", str(most_viewers + 10)],
                           LOG_DIR / "fanout-server.log", own_session=True)
    cameras = [Camera("peercam", "fanout", opts.viewers, stops_when_saturated=False, audio=opts.audio),
               Camera("baseline", "fanout-baseline", opts.baseline_viewers, stops_when_saturated=True,
                      program="baseline")]
    rows: dict[str, list[dict]] = {}
    try:
        for camera in cameras:
            rows[camera.name] = run_camera(camera, opts, port, server)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except RuntimeError as exc:
        sys.exit(f"fanout: {exc}")
    finally:
        stop(server)
    costs = {name: per_viewer_cost(camera_rows) for name, camera_rows in rows.items()}
    results = verdicts(rows["peercam"], costs)
    every_row = rows["peercam"] + rows["baseline"]
    print_table(every_row, opts)
    print_costs(costs)
    print_verdicts(results)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s")
    write_json(opts.json, opts, {"rows": every_row, "per_viewer_cost": costs, "verdicts": results,
                                 "wall_seconds": round(wall, 1)})


if __name__ == "__main__":
    main()
