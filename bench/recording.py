"""Usage: python3 -m bench.recording [--streams 1,4,8] [--seconds 20] [--soak-minutes 10]
                                  [--json bench/results/recording.json]

Server-side recording (issue: "Recording"). Starts a server with --record-dir on
127.0.0.1 and, per row, N streams at 640x480@30 VP8. Each stream's camera is a replay
camera: 10 s of the test pattern encoded once with peercam's own encoder, sent in a loop
at 30 fps exactly as a camera sends its relay frames (encoded version 2 frames, only
while the server asks for them). It costs the machine almost nothing, so the server's
share of the cores is what is measured. Per N, three windows of --seconds each:

- idle: the N cameras connected, nobody reading (the camera sends nothing);
- baseline: one encoded relay reader per stream (a raw WebSocket client), the cost of
  receiving each stream's frames and handing them out once;
- recording: each stream recorded (PUT /api/streams/{name}/recording), nobody else reading.

Server CPU per recorded stream is (recording - idle) / N. Target: under 3% of one core.
Then the soak: the largest N recorded for --soak-minutes (10), the server's RSS sampled
every 10 s; target: flat (the least-squares slope under 1 MB per minute after the first
minute, when buffers fill).

First, the camera side: a real `peercam camera` with one P2P viewer, its CPU measured before
and after recording starts (it encodes the top layer for the viewer already; recording
adds sending those frames once more, and no encoding). Target: the ratio under 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import cv2
from peercam.peers.camera.encoder import VideoEncoder
from peercam.peers.testpattern import Stamp, TestPattern

from bench.harness import (
    ROOT,
    cpu_percent,
    free_port,
    least_squares_slope,
    print_verdicts,
    rss_mb,
    sample_cpu,
    start_peercam,
    stop,
    wait_until_live,
    write_json,
)
from peercam.shared.relayframe import RelayFrameHeader

WIDTH, HEIGHT, FPS = 640, 480, 30
LOOP_FRAMES = 300  # 10 s, a keyframe at its start
LOG_DIR = ROOT / "bench" / "results"
TARGET_CPU_PER_STREAM = 3.0
TARGET_SLOPE_MB_PER_MIN = 1.0
TARGET_CAMERA_RATIO = 1.2


def encode_loop() -> list[tuple[bytes, bool]]:
    """10 s of the test pattern, encoded once as a camera's top layer would be."""
    pattern = TestPattern(WIDTH, HEIGHT)
    encoder = VideoEncoder("vp8", WIDTH, HEIGHT, FPS, 1_200_000)
    frames = []
    for n in range(LOOP_FRAMES):
        i420 = cv2.cvtColor(pattern.render(Stamp(n * 33, n)), cv2.COLOR_BGR2YUV_I420)
        frames += [(bytes(p), p.is_keyframe) for p in encoder.encode(i420, n * 3000, n == 0)]
    return frames


async def replay_camera(url: str, stream: str, frames: list[tuple[bytes, bool]],
                        stop_at: asyncio.Event) -> None:
    """Publish ``stream`` and send the loop at 30 fps while the server asks for encoded frames."""
    info = {"width": WIDTH, "height": HEIGHT, "fps": FPS, "codec": "vp8",
            "layers": [{"name": f"{HEIGHT}p", "width": WIDTH, "height": HEIGHT, "fps": FPS}]}
    async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=0) as ws:
        await ws.receive_json()  # welcome
        await ws.send_json({"type": "publish", "stream": stream, "info": info})
        wanted = False
        sequence, index = 0, 0

        async def listen() -> None:
            nonlocal wanted, index
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if data.get("type") == "relay-frames":
                        wanted = bool(data.get("encoded"))
                    elif data.get("type") == "relay-keyframe":
                        index = 0  # the loop's keyframe next, as a camera answers at its next frame

        listener = asyncio.create_task(listen())
        began = time.monotonic()
        while not stop_at.is_set():
            due = began + sequence / FPS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if wanted:
                data, keyframe = frames[index % len(frames)]
                header = RelayFrameHeader(sequence, int(time.time() * 1e6), WIDTH, HEIGHT, codec="vp8",
                                          keyframe=keyframe)
                await ws.send_bytes(header.pack(data))
            sequence += 1
            index += 1
        listener.cancel()


async def relay_reader(url: str, stream: str, stop_at: asyncio.Event) -> int:
    async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=0) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "watch", "stream": stream})
        await ws.send_json({"type": "relay", "enabled": True, "format": "encoded"})
        frames = 0
        while not stop_at.is_set():
            try:
                message = await asyncio.wait_for(ws.receive(), 0.5)
            except TimeoutError:
                continue
            frames += message.type is aiohttp.WSMsgType.BINARY
        return frames


def put_recording(port: int, stream: str, enabled: bool) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/streams/{stream}/recording", method="PUT",
                                     data=json.dumps({"enabled": enabled}).encode())
    urllib.request.urlopen(request, timeout=5).read()


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.load(response)


async def measure(pid: int, seconds: float) -> float:
    before = sample_cpu({"server": [pid]})
    await asyncio.sleep(seconds)
    return cpu_percent(before, sample_cpu({"server": [pid]}), seconds)["server"]


async def server_rows(opts: argparse.Namespace, frames: list, record_dir: Path) -> tuple[list[dict], dict]:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    server = start_peercam(["serve", "--port", str(port), "--record-dir", str(record_dir)],
                           LOG_DIR / "recording-server.log")
    rows, soak = [], {}
    try:
        for _ in range(100):
            try:
                api(port, "/healthz")
                break
            except OSError:
                await asyncio.sleep(0.1)
        for n in opts.streams:
            stop_at = asyncio.Event()
            names = [f"rec{n}-{i}" for i in range(n)]
            cameras = [asyncio.create_task(replay_camera(url, name, frames, stop_at)) for name in names]
            while {s["name"] for s in api(port, "/api/streams")} < set(names):
                await asyncio.sleep(0.1)
            idle = await measure(server.pid, opts.seconds)
            reader_stop = asyncio.Event()
            readers = [asyncio.create_task(relay_reader(url, name, reader_stop)) for name in names]
            await asyncio.sleep(2)  # the readers' first keyframes
            baseline = await measure(server.pid, opts.seconds)
            reader_stop.set()
            read = await asyncio.gather(*readers)
            for name in names:
                put_recording(port, name, True)
            await asyncio.sleep(2)
            recording = await measure(server.pid, opts.seconds)
            states = [api(port, f"/api/streams/{name}")["recording"] for name in names]
            row = {"streams": n, "idle_cpu_pct": idle, "baseline_cpu_pct": baseline,
                   "recording_cpu_pct": recording,
                   "recording_cpu_per_stream_pct": (recording - idle) / n,
                   "baseline_cpu_per_stream_pct": (baseline - idle) / n,
                   "reader_fps": min(read) / (opts.seconds + 2),
                   "frames_dropped": sum(s["frames_dropped"] for s in states),
                   "errors": sum(s["errors"] for s in states), "server_rss_mb": rss_mb(server.pid)}
            rows.append(row)
            print(f"  {n} streams: server {idle:.1f}% idle, {baseline:.1f}% with a relay reader each, "
                  f"{recording:.1f}% recording -> {row['recording_cpu_per_stream_pct']:.2f}% per stream",
                  flush=True)
            if n == max(opts.streams) and opts.soak_minutes > 0:
                soak = await soak_row(opts, server.pid)
            for name in names:
                put_recording(port, name, False)
            stop_at.set()
            await asyncio.gather(*cameras, return_exceptions=True)
    finally:
        stop(server)
    return rows, soak


async def soak_row(opts: argparse.Namespace, pid: int) -> dict:
    print(f"  soak: {max(opts.streams)} streams recorded for {opts.soak_minutes:g} min", flush=True)
    began = time.monotonic()
    samples = []
    while time.monotonic() - began < opts.soak_minutes * 60:
        samples.append(((time.monotonic() - began) / 60, rss_mb(pid)))
        await asyncio.sleep(10)
    settled = [(t, rss) for t, rss in samples if t >= 1] or samples
    slope = least_squares_slope(settled)
    return {"minutes": opts.soak_minutes, "rss_first_mb": samples[0][1], "rss_last_mb": samples[-1][1],
            "slope_mb_per_min": slope, "samples": samples}


async def camera_row(opts: argparse.Namespace, record_dir: Path) -> dict:
    """A real camera with a P2P viewer: its CPU before and after the server records it."""
    port = free_port()
    server = start_peercam(["serve", "--port", str(port), "--record-dir", str(record_dir)],
                           LOG_DIR / "recording-camera-server.log")
    camera = viewer = None
    try:
        await asyncio.sleep(1)
        camera = start_peercam(["camera", "--server", f"http://127.0.0.1:{port}", "--stream", "cam",
                                "--ice-host", "127.0.0.1"], LOG_DIR / "recording-camera.log")
        processes = {"server": server, "camera": camera}
        await asyncio.to_thread(wait_until_live, port, "cam", processes, 30, LOG_DIR)
        viewer = start_peercam(["view", "--server", f"http://127.0.0.1:{port}", "--stream", "cam",
                                "--ice-host", "127.0.0.1", "--mode", "p2p"], LOG_DIR / "recording-viewer.log")
        await asyncio.sleep(5)  # connected and settled
        before = sample_cpu({"camera": [camera.pid]})
        await asyncio.sleep(opts.seconds)
        without = cpu_percent(before, sample_cpu({"camera": [camera.pid]}), opts.seconds)["camera"]
        put_recording(port, "cam", True)
        await asyncio.sleep(2)
        before = sample_cpu({"camera": [camera.pid]})
        await asyncio.sleep(opts.seconds)
        with_recording = cpu_percent(before, sample_cpu({"camera": [camera.pid]}), opts.seconds)["camera"]
        return {"camera_cpu_pct": without, "camera_cpu_recording_pct": with_recording,
                "ratio": with_recording / without if without else None}
    finally:
        for process in (viewer, camera, server):
            if process is not None:
                stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,4,8", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=20.0, help="each measured window")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="0: no soak")
    parser.add_argument("--json", type=Path, help="write the results here")
    opts = parser.parse_args()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    frames = encode_loop()
    record_dir = Path(tempfile.mkdtemp(prefix="peercam-bench-recording-"))
    try:
        print("Camera CPU before and after its stream is recorded (one P2P viewer):")
        camera = asyncio.run(camera_row(opts, record_dir / "camera"))
        print(f"Recording on the server, 640x480@30 VP8 replay cameras, windows of {opts.seconds:g} s:")
        rows, soak = asyncio.run(server_rows(opts, frames, record_dir / "server"))
    finally:
        shutil.rmtree(record_dir, ignore_errors=True)

    print("\n| streams | server idle | + a relay reader each (baseline) | recording | recording per stream "
          "| baseline per stream | frames dropped | errors | server RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['streams']} | {r['idle_cpu_pct']:.1f}% | {r['baseline_cpu_pct']:.1f}% | "
              f"{r['recording_cpu_pct']:.1f}% | {r['recording_cpu_per_stream_pct']:.2f}% | "
              f"{r['baseline_cpu_per_stream_pct']:.2f}% | {r['frames_dropped']} | {r['errors']} | "
              f"{r['server_rss_mb']:.0f} MB |")
    if soak:
        print(f"\nSoak: {max(opts.streams)} streams for {soak['minutes']:g} min: server RSS "
              f"{soak['rss_first_mb']:.0f} -> {soak['rss_last_mb']:.0f} MB, "
              f"slope {soak['slope_mb_per_min']:.2f} MB/min after the first minute")
    print(f"\nCamera CPU with one P2P viewer: {camera['camera_cpu_pct']:.1f}% before recording, "
          f"{camera['camera_cpu_recording_pct']:.1f}% while recorded (x{camera['ratio']:.2f})")

    worst = max(r["recording_cpu_per_stream_pct"] for r in rows)
    verdicts = [
        {"target": f"server CPU per recorded stream < {TARGET_CPU_PER_STREAM:g}% of a core "
                   f"({', '.join(map(str, opts.streams))} streams)",
         "pass": worst < TARGET_CPU_PER_STREAM, "measured": f"{worst:.2f}% at worst"},
        {"target": f"camera CPU when recording starts: no encoder more (ratio < {TARGET_CAMERA_RATIO:g})",
         "pass": camera["ratio"] is not None and camera["ratio"] < TARGET_CAMERA_RATIO,
         "measured": f"x{camera['ratio']:.2f}" if camera["ratio"] else "no figure"},
    ]
    if soak:
        verdicts.append({"target": f"server memory flat over {soak['minutes']:g} min of recording",
                         "pass": soak["slope_mb_per_min"] is not None
                         and soak["slope_mb_per_min"] < TARGET_SLOPE_MB_PER_MIN,
                         "measured": f"{soak['slope_mb_per_min']:.2f} MB/min"})
    print_verdicts(verdicts)
    if opts.json:
        write_json(opts.json, opts, {"rows": rows, "soak": soak, "camera": camera, "verdicts": verdicts})


if __name__ == "__main__":
    main()
