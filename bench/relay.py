"""Usage: python3 -m bench.relay [--formats encoded,jpeg] [--clients 10,50,100,200]
                             [--compare-viewers 1,4] [--repeats 2] [--seconds 10] [--warmup 2]
                             [--procs 2] [--json bench/results/relay.json]

Relay benchmark: the encoded relay (version 2 relay frames: the camera's own VP8/H.264
frames) against the JPEG relay (version 1) and against P2P, all in one run, on one
signaling server and one test-pattern camera (640x480@30 VP8, its default layers) on
127.0.0.1. Two parts:

1. Per-viewer comparison (--compare-viewers K, each --repeats times, interleaved): the
   camera alone with K P2P viewers, then K encoded relay clients, then K JPEG relay
   clients (and once with nobody: the idle camera). Everyone is pinned to the top
   layer, so all read the same layer. Per row:
   - kbit/s per viewer: for P2P the frames' bytes as aiortc reassembles them (light
     viewers: bench/fanout.py's, aiortc's whole receive path without decoding); for the
     relay each WebSocket message (the 22-byte header and the frame). Transport
     overhead (RTP/SRTP/UDP, WebSocket/TCP) is left out on both sides;
   - ratio: that over the P2P rows' median for the same K (the target: encoded <= 1.3x);
   - camera CPU (% of one core, /proc/PID/stat, all threads) and its ratio to P2P's
     (the target: encoded no higher than P2P; the camera encodes the layer once either
     way), server CPU, keyframes the clients saw in the window.
2. Fan-out (--clients N for each of --formats, formats interleaved per N): N raw
   WebSocket clients in --procs worker processes. They parse the relay header (version
   1 and 2), never decode, and check each layer's sequence numbers: frames lost are the
   gaps; for encoded frames a frame after a gap (or a client's first frame) must be a
   keyframe, else it is counted as undecodable. Per N and format:
   - per-client fps (min / median) in the measured window, and the stream's own fps;
   - frames lost (gaps summed over clients; in brackets frames no client got at all);
   - undecodable deliveries (encoded: a non-keyframe after a gap; must be 0);
   - first frame after the relay request, p50 / max over clients (they all ask at once);
   - latency p50/p95: arrival wall time minus the header's capture time (one clock);
   - Mbit/s out, server, camera and client CPU, the rest of the machine, server RSS.

The machine is shared: rows that ran on a saturated machine say so, and every verdict
compares with a baseline measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench.harness import (
    ROOT,
    collect,
    cores,
    cpu_percent,
    free_port,
    percentile,
    print_if_saturated,
    print_verdicts,
    rss_mb,
    sample_cpu,
    start_peercam,
    stop,
    stream_summary,
    wait_until_live,
    write_json,
)
from peercam.shared.relayframe import parse_relay_frame

STREAM = "bench"
LOG_DIR = ROOT / "bench" / "results"
FORMATS = ("encoded", "jpeg")
#: Seconds for the server, the camera's stream, or every client's first frame to show up.
STARTUP_TIMEOUT = 30.0
#: The targets (issue 13): 200 encoded relay clients at full rate with the server under 20% of a
#: core; an encoded relay viewer within 1.3x the P2P bitrate of its layer; the camera's CPU
#: with encoded relay viewers no higher than with P2P viewers. JPEG keeps the earlier target.
TARGET_CLIENTS = 200
TARGET_FPS = 29.0
TARGET_SERVER_CPU = {"encoded": 20.0, "jpeg": 50.0}
TARGET_BITRATE_RATIO = 1.3
#: Seconds for client workers to report: slack to spawn, or to close many sockets.
WORKER_TIMEOUT = STARTUP_TIMEOUT + 30
#: Seconds after a comparison row's viewers leave, for the camera to stop what they needed.
SETTLE_SECONDS = 2.0
#: Viewer workers yield the CPU to the camera and the server (as bench/fanout.py's do).
VIEWER_NICENESS = 10


# Relay client worker processes -------------------------------------------------------


def client_worker(url: str, count: int, fmt: str, quality: str, window, queue) -> None:
    """Run `count` relay clients; report ("ready", n receiving), then ("result", per client)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    queue.put(("result", asyncio.run(_run_clients(url, count, fmt, quality, window, queue))))


async def _run_clients(url: str, count: int, fmt: str, quality: str, window, queue) -> list[dict]:
    loop = asyncio.get_running_loop()
    first_frames = [loop.create_future() for _ in range(count)]
    clients = [{"asked": None, "frames": []} for _ in range(count)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(_relay_client(session, url, fmt, quality, clients[i], first_frames[i]))
                 for i in range(count)]
        await asyncio.wait(first_frames, timeout=STARTUP_TIMEOUT)
        queue.put(("ready", sum(f.done() and f.result() for f in first_frames)))
        # The parent sets the window once every worker is ready; stay on until it closes.
        parent = multiprocessing.parent_process()
        while not window[1] or time.time() < window[1]:
            if parent is not None and not parent.is_alive():
                break
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        errors = await asyncio.gather(*tasks, return_exceptions=True)
    return [
        {
            "error": None if isinstance(error, asyncio.CancelledError) else str(error),
            "asked": client["asked"],
            # (arrival, layer, sequence, capture µs, bytes, keyframe, version, JPEG quality): every
            # frame, so that continuity is checked from the first; the parent picks the window's.
            "frames": client["frames"],
        }
        for error, client in zip(errors, clients, strict=True)
    ]


async def _relay_client(session: aiohttp.ClientSession, url: str, fmt: str, quality: str,
                        client: dict, first_frame: asyncio.Future) -> None:
    """One viewer on the relay; runs until cancelled, raises if the server ends it."""
    frames = client["frames"]
    try:
        async with session.ws_connect(url, compress=0) as ws:
            welcome = await ws.receive_json(timeout=STARTUP_TIMEOUT)
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {welcome}")
            await ws.send_json({"type": "watch", "stream": STREAM, "quality": quality})
            client["asked"] = time.time()
            await ws.send_json({"type": "relay", "enabled": True, "format": fmt})
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    arrived = time.time()  # before parsing: parsing is the client's cost
                    header, _ = parse_relay_frame(msg.data)
                    frames.append((arrived, header.layer, header.sequence, header.capture_time_us,
                                   len(msg.data), header.keyframe, msg.data[0], header.jpeg_quality))
                    if not first_frame.done():
                        first_frame.set_result(True)
                elif msg.type is aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "error":
                    raise RuntimeError(f"server error: {msg.data}")
            raise RuntimeError(f"server closed the socket ({ws.close_code})")
    finally:
        if not first_frame.done():
            first_frame.set_result(False)


# P2P viewer worker (the comparison's baseline) ----------------------------------------


def p2p_worker(server: str, count: int, quality: str, window, queue) -> None:
    """`count` light P2P viewers (bench/fanout.py's); ("ready", errors), then ("result", per viewer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(VIEWER_NICENESS)
    queue.put(("result", asyncio.run(_run_p2p(server, count, quality, window, queue))))


async def _run_p2p(server: str, count: int, quality: str, window, queue) -> list[dict]:
    from bench import fanout  # bench/fanout.py: its light viewer (aiortc's receive path, no decoding)

    fanout.FrameRecorder = fanout.KeyframeRecorder  # Viewer.join makes its recorder from the module's name
    viewers = [fanout.Viewer() for _ in range(count)]
    joins = [asyncio.wait_for(v.join(server, STREAM, f"bench-p2p-{i}", quality), fanout.JOIN_TIMEOUT)
             for i, v in enumerate(viewers)]
    errors = [f"{type(e).__name__}: {e}" for e in await asyncio.gather(*joins, return_exceptions=True)
              if e is not None]
    queue.put(("ready", errors))
    parent = multiprocessing.parent_process()
    while not window[1] or time.time() < window[1]:
        if parent is not None and not parent.is_alive():
            break
        await asyncio.sleep(0.1)
    results = [{"error": v.error, "frames": list(v.frames)} for v in viewers]
    await asyncio.wait_for(asyncio.gather(*(v.close() for v in viewers), return_exceptions=True),
                           WORKER_TIMEOUT / 2)
    return results


# Running workers for one measured window -------------------------------------------------


def measure(opts: argparse.Namespace, server: subprocess.Popen, camera: subprocess.Popen,
            spawn: list[tuple]) -> tuple[list[dict], list, dict[str, float], float, float]:
    """Start the workers (target, args without window and queue), wait for them, measure one window.

    Returns the workers' results, their ready reports, CPU % per group, the window's start and the
    server's RSS at its end.
    """
    context = multiprocessing.get_context("spawn")
    window = context.RawArray("d", 2)  # measured window [start, end) in Unix seconds; 0 = not yet
    queue = context.Queue()
    workers = [context.Process(target=target, args=(*args, window, queue), daemon=True)
               for target, args in spawn]
    try:
        for worker in workers:
            worker.start()
        ready = collect(queue, "ready", len(workers), workers, WORKER_TIMEOUT)
        window[0] = time.time() + opts.warmup
        window[1] = window[0] + opts.seconds
        time.sleep(window[0] - time.time())
        groups = {"server": [server.pid], "camera": [camera.pid], "clients": [w.pid for w in workers]}
        before = sample_cpu(groups)
        time.sleep(window[1] - time.time())
        after = sample_cpu(groups)
        for name, proc in (("server", server), ("camera", camera)):
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode} during a row; see {LOG_DIR}")
        server_rss = rss_mb(server.pid)
        batches = collect(queue, "result", len(workers), workers, WORKER_TIMEOUT)
        for worker in workers:
            worker.join(10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
    results = [client for batch in batches for client in batch]
    return results, ready, cpu_percent(before, after, opts.seconds), window[0], server_rss


def shares(total: int, procs: int) -> list[int]:
    return [n for n in (total // procs + (i < total % procs) for i in range(procs)) if n]


# Figures of relay clients ------------------------------------------------------------------


def relay_figures(results: list[dict], start: float, seconds: float) -> dict:
    """Per-client counts in [start, start + seconds), with sequence continuity checked from each
    client's first frame.

    Each rendition (a layer's encoded frames, or a layer at one JPEG quality) numbers its own
    frames, and a reader follows one at a time: a move to another (the hub's ``auto`` ladder)
    starts afresh, and for encoded frames it must start at a keyframe.
    """
    end = start + seconds
    fps, latencies, lost, undecodable, keyframes, sizes, got = [], [], 0, 0, 0, 0, 0
    seen: dict[tuple[int, int, int], set[int]] = {}  # per rendition, the sequence numbers any client got
    first_ms = []
    for r in results:
        frames = r["frames"]
        if frames and r["asked"] is not None:
            first_ms.append((frames[0][0] - r["asked"]) * 1000)
        rendition, expected = None, None  # what the client reads now, and its next sequence number
        in_window = 0
        for arrived, layer, seq, capture_us, size, keyframe, version, jpeg_quality in frames:
            inside = start <= arrived < end
            moved = (version, layer, jpeg_quality) != rendition
            gap = moved or seq != expected
            if inside:
                in_window += 1
                latencies.append((arrived - capture_us / 1e6) * 1000)
                sizes += size
                keyframes += bool(keyframe)
                seen.setdefault((version, layer, jpeg_quality), set()).add(seq)
                if gap and not moved:
                    lost += (seq - expected) % 2**32
                if version == 2 and gap and not keyframe:
                    undecodable += 1  # a decoder has nothing to decode it from
            rendition, expected = (version, layer, jpeg_quality), (seq + 1) % 2**32
        fps.append(in_window / seconds)
        got += in_window
    latencies.sort()
    first_ms.sort()
    spans = {rendition: max(s) - min(s) + 1 for rendition, s in seen.items()}
    received = sum(len(s) for s in seen.values())
    return {
        "failed": sum(r["error"] is not None for r in results),
        "errors": sorted({r["error"] for r in results if r["error"]})[:5],
        "fps_min": min(fps, default=0.0),
        "fps_median": statistics.median(fps) if fps else 0.0,
        "fps_avg": sum(fps) / len(fps) if fps else 0.0,
        "stream_fps": max(spans.values(), default=0) / seconds,  # the rendition read most
        "latency_p50_ms": percentile(latencies, 0.50),
        "latency_p95_ms": percentile(latencies, 0.95),
        "first_frame_p50_ms": percentile(first_ms, 0.50),
        "first_frame_max_ms": first_ms[-1] if first_ms else float("nan"),
        "frames_received": got,
        "frames_lost": lost,
        "lost_pct": 100 * lost / (got + lost) if got + lost else 0.0,
        # Sequence numbers no client saw were lost for everyone: upstream of the per-reader slots.
        "frames_no_client_got": sum(spans.values()) - received,
        "undecodable": undecodable,
        "keyframes_per_client": keyframes / len(results) if results else 0.0,
        "mbit_per_s_out": sizes * 8 / seconds / 1e6,
        "kbit_per_s_per_client": sizes * 8 / seconds / 1000 / len(results) if results else 0.0,
    }


def p2p_figures(results: list[dict], start: float, seconds: float, fps_nominal: float = 30.0) -> dict:
    end = start + seconds
    fps, sizes, keyframes, lost = [], 0, 0, 0
    for r in results:
        frames = [f for f in r["frames"] if start <= f[0] < end]
        fps.append(len(frames) / seconds)
        sizes += sum(f[2] for f in frames)
        keyframes += sum(bool(f[3]) for f in frames)
        lost += sum(max(0, round((b[1] - a[1]) / (90000 / fps_nominal)) - 1)
                    for a, b in itertools.pairwise(frames))
    return {
        "failed": sum(r["error"] is not None for r in results),
        "errors": sorted({r["error"] for r in results if r["error"]})[:5],
        "fps_min": min(fps, default=0.0),
        "fps_median": statistics.median(fps) if fps else 0.0,
        "frames_lost": lost,
        "keyframes_per_client": keyframes / len(results) if results else 0.0,
        "kbit_per_s_per_client": sizes * 8 / seconds / 1000 / len(results) if results else 0.0,
    }


def machine_figures(cpu: dict[str, float], server_rss: float) -> dict:
    return {
        "server_cpu_pct": cpu["server"],
        "camera_cpu_pct": cpu["camera"],
        "clients_cpu_pct": cpu["clients"],
        "machine_cpu_pct": cpu["machine"],
        # Whatever else ran on the machine meanwhile (this script's own parent is negligible).
        "other_cpu_pct": max(0.0, cpu["machine"] - cpu["server"] - cpu["camera"] - cpu["clients"]),
        "machine_capacity_pct": 100 * cores(),
        "server_rss_mb": server_rss,
    }


# Part 1: per-viewer comparison -------------------------------------------------------------


def compare_row(mode: str, viewers: int, opts: argparse.Namespace, port: int, layer: str,
                server: subprocess.Popen, camera: subprocess.Popen) -> dict:
    """K viewers of one kind (or none: "idle") alone on the camera, on ``layer``."""
    if mode == "p2p":
        spawn = [(p2p_worker, (f"http://127.0.0.1:{port}", viewers, layer))]
    elif mode in FORMATS:
        spawn = [(client_worker, (f"http://127.0.0.1:{port}/ws", viewers, mode, layer))]
    else:
        spawn = []
    results, ready, cpu, start, rss = measure(opts, server, camera, spawn)
    errors = [e for batch in ready if isinstance(batch, list) for e in batch]
    if mode == "p2p":
        figures = p2p_figures(results, start, opts.seconds)
    elif mode in FORMATS:
        figures = relay_figures(results, start, opts.seconds)
    else:
        figures = {"failed": 0, "errors": [], "fps_min": None, "fps_median": None, "frames_lost": 0,
                   "keyframes_per_client": None, "kbit_per_s_per_client": None}
    row = {"mode": mode, "viewers": viewers, **figures, **machine_figures(cpu, rss)}
    row["errors"] = (errors + row["errors"])[:5]
    time.sleep(SETTLE_SECONDS)  # the camera stops what they needed before the next row
    return row


def compare_summary(rows: list[dict]) -> list[dict]:
    """Per (mode, K): medians over the repeats, and ratios to P2P's for the same K."""
    summary = []
    for (viewers, mode), group in itertools.groupby(
            sorted(rows, key=lambda r: (r["viewers"], MODES.index(r["mode"]))),
            key=lambda r: (r["viewers"], r["mode"])):
        group = list(group)
        entry = {"mode": mode, "viewers": viewers, "repeats": len(group)}
        for key in ("kbit_per_s_per_client", "camera_cpu_pct", "server_cpu_pct", "fps_min",
                    "keyframes_per_client"):
            values = [r[key] for r in group if r[key] is not None]
            entry[key] = statistics.median(values) if values else None
            entry[key + "_all"] = values
        entry["frames_lost"] = sum(r["frames_lost"] for r in group)
        entry["failed"] = sum(r["failed"] for r in group)
        summary.append(entry)
    for entry in summary:
        p2p = next((e for e in summary if e["mode"] == "p2p" and e["viewers"] == entry["viewers"]), None)
        for key, ratio in (("kbit_per_s_per_client", "bitrate_vs_p2p"),
                           ("camera_cpu_pct", "camera_cpu_vs_p2p")):
            entry[ratio] = (entry[key] / p2p[key] if p2p and entry[key] is not None and p2p[key] else None)
    return summary


MODES = ("idle", "p2p", "encoded", "jpeg")


# Part 2: fan-out -------------------------------------------------------------------------


def fanout_row(fmt: str, clients: int, opts: argparse.Namespace, port: int, layer: str,
               server: subprocess.Popen, camera: subprocess.Popen) -> dict:
    url = f"http://127.0.0.1:{port}/ws"
    spawn = [(client_worker, (url, share, fmt, layer)) for share in shares(clients, opts.procs)]
    results, ready, cpu, start, rss = measure(opts, server, camera, spawn)
    receiving = sum(ready)
    if receiving < clients:
        print(f"  warning: only {receiving} of {clients} clients receive frames", file=sys.stderr)
    row = {"format": fmt, "clients": clients, **relay_figures(results, start, opts.seconds),
           **machine_figures(cpu, rss)}
    time.sleep(SETTLE_SECONDS)
    return row


# Report ---------------------------------------------------------------------------------


def _f(value, spec: str = ".0f", suffix: str = "") -> str:
    return "-" if value is None or value != value else f"{value:{spec}}{suffix}"


def _each(entry: dict, key: str, spec: str = ".0f") -> str:
    """Every repeat's value of ``key``."""
    return ", ".join(f"{v:{spec}}" for v in entry[key + "_all"])


def print_compare(rows: list[dict], summary: list[dict], opts: argparse.Namespace, layer: str) -> None:
    capacity = rows[0]["machine_capacity_pct"]
    print(f"\nPer viewer, on the top layer ({layer}, {opts.layer_size} VP8): {opts.seconds:g} s measured "
          f"after {opts.warmup:g} s warm-up per row, each kind alone on the camera, {opts.repeats} "
          "interleaved repeats; medians "
          f"(each repeat in brackets). kbit/s: frame bytes per viewer (relay: with its 22-byte header). "
          f"CPU in % of one core (machine: {capacity}%).\n")
    columns = ["viewers", "kind", "kbit/s per viewer", "vs P2P", "camera CPU", "vs P2P", "server CPU",
               "fps min", "keyframes per viewer", "lost"]
    print("| " + " | ".join(columns) + " |")
    print("|---:|---|" + "---:|" * (len(columns) - 2))
    for e in summary:
        label = {"idle": "nobody (idle camera)", "p2p": "P2P", "encoded": "encoded relay",
                 "jpeg": "JPEG relay"}[e["mode"]]
        cells = [
            str(e["viewers"]) + (f" ({e['failed']} failed)" if e["failed"] else ""),
            label,
            "-" if e["kbit_per_s_per_client"] is None
            else f"{e['kbit_per_s_per_client']:.0f} ({_each(e, 'kbit_per_s_per_client')})",
            _f(e["bitrate_vs_p2p"], ".2f", "x"),
            f"{e['camera_cpu_pct']:.1f}% ({_each(e, 'camera_cpu_pct', '.1f')})",
            _f(e["camera_cpu_vs_p2p"], ".2f", "x"),
            f"{e['server_cpu_pct']:.1f}%",
            _f(e["fps_min"], ".1f"),
            _f(e["keyframes_per_client"], ".1f"),
            str(e["frames_lost"]),
        ]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        print_if_saturated(r, f"{r['mode']} K={r['viewers']}", r["clients_cpu_pct"], "the viewers")
        for error in r["errors"]:
            print(f"{r['mode']} K={r['viewers']}: error: {error}")


def print_fanout(rows: list[dict], opts: argparse.Namespace) -> None:
    capacity = rows[0]["machine_capacity_pct"]
    print(f"\nFan-out: {opts.seconds:g} s measured after {opts.warmup:g} s warm-up; raw WebSocket clients "
          f"(no decoding) in {opts.procs} processes on the same {capacity // 100}-core machine as the server "
          "and camera. CPU in % of one core. Lost: sequence gaps summed over clients (in brackets: frames "
          "no client got); undecodable: encoded frames after a gap that were not keyframes. First frame: "
          "from the relay request, all clients asking at once.\n")
    columns = ["clients", "format", "fps min / median", "stream fps", "lost (missed by all)", "undecodable",
               "first frame p50 / max ms", "latency p50 / p95 ms", "Mbit/s out", "server CPU",
               "camera CPU", "clients CPU", "other CPU", f"machine busy (of {capacity})", "server RSS MB"]
    print("| " + " | ".join(columns) + " |")
    print("|---:|---|" + "---:|" * (len(columns) - 2))
    for r in rows:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        cells = [
            f"{r['clients']}{failed}",
            r["format"],
            f"{r['fps_min']:.1f} / {r['fps_median']:.1f}",
            f"{r['stream_fps']:.1f}",
            f"{r['frames_lost']} = {r['lost_pct']:.1f}% ({r['frames_no_client_got']})",
            str(r["undecodable"]),
            f"{_f(r['first_frame_p50_ms'])} / {_f(r['first_frame_max_ms'])}",
            f"{r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f}",
            f"{r['mbit_per_s_out']:.0f}",
            *(f"{r[key]:.0f}%" for key in ("server_cpu_pct", "camera_cpu_pct", "clients_cpu_pct",
                                           "other_cpu_pct", "machine_cpu_pct")),
            f"{r['server_rss_mb']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    for fmt in FORMATS:
        mine = [r for r in rows if r["format"] == fmt]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            per = (hi["server_cpu_pct"] - lo["server_cpu_pct"]) / (hi["clients"] - lo["clients"]) \
                if hi["clients"] != lo["clients"] else None
            if per is not None:
                frames = per / 100 / 30 * 1e6  # µs per frame per client at 30 fps
                print(f"\n{fmt}: server {per:.3f}% of a core per added client (N = {lo['clients']} to "
                      f"{hi['clients']}), about {frames:.0f} µs per frame per client")
    for r in rows:
        print_if_saturated(r, f"{r['format']} N={r['clients']}", r["clients_cpu_pct"], "the client processes")
        for error in r["errors"]:
            print(f"{r['format']} N={r['clients']}: client error: {error}")


def verdicts(summary: list[dict], rows: list[dict]) -> list[dict]:
    """The targets: pass (None when not measured) and the numbers behind them, each against a baseline
    of this run."""
    results = []
    encoded = [e for e in summary if e["mode"] == "encoded" and e["bitrate_vs_p2p"] is not None]
    jpeg = {e["viewers"]: e for e in summary if e["mode"] == "jpeg"}
    results.append({
        "target": f"bandwidth per encoded relay viewer <= {TARGET_BITRATE_RATIO:g}x P2P of the same layer",
        "pass": None if not encoded else all(e["bitrate_vs_p2p"] <= TARGET_BITRATE_RATIO for e in encoded),
        "measured": "no rows" if not encoded else "; ".join(
            f"K={e['viewers']}: {e['bitrate_vs_p2p']:.2f}x"
            + (f" (JPEG {jpeg[e['viewers']]['bitrate_vs_p2p']:.2f}x)"
               if jpeg.get(e["viewers"], {}).get("bitrate_vs_p2p") else "") for e in encoded),
    })
    cpu = [e for e in summary if e["mode"] == "encoded" and e["camera_cpu_vs_p2p"] is not None]
    p2p = {e["viewers"]: e for e in summary if e["mode"] == "p2p"}

    def overlap(e: dict) -> str:
        """Whether a higher median is within the run's noise: some repeat of encoded at or below
        some repeat of P2P."""
        if e["camera_cpu_vs_p2p"] <= 1.0:
            return ""
        return (" (repeats overlap: within this run's noise)"
                if min(e["camera_cpu_pct_all"]) <= max(p2p[e["viewers"]]["camera_cpu_pct_all"]) else "")

    results.append({
        "target": "camera CPU with only encoded relay viewers <= with only P2P viewers",
        "pass": None if not cpu else all(e["camera_cpu_vs_p2p"] <= 1.0 for e in cpu),
        "measured": "no rows" if not cpu else "; ".join(
            f"K={e['viewers']}: {e['camera_cpu_pct']:.1f}% vs "
            f"{e['camera_cpu_pct'] / e['camera_cpu_vs_p2p']:.1f}% = {e['camera_cpu_vs_p2p']:.2f}x{overlap(e)}"
            + (f" (JPEG {jpeg[e['viewers']]['camera_cpu_vs_p2p']:.2f}x)"
               if jpeg.get(e["viewers"], {}).get("camera_cpu_vs_p2p") else "") for e in cpu),
    })
    for fmt in FORMATS:
        row = next((r for r in rows if r["clients"] == TARGET_CLIENTS and r["format"] == fmt), None)
        limit = TARGET_SERVER_CPU[fmt]
        baseline = next((r for r in rows if r["clients"] == TARGET_CLIENTS and r["format"] != fmt), None)
        results.append({
            "target": f"{TARGET_CLIENTS} {fmt} relay clients each >= {TARGET_FPS:g} fps, "
                      f"server CPU < {limit:g}% of one core (and no undecodable frame)",
            "pass": None if row is None
            else (row["fps_min"] >= TARGET_FPS and row["server_cpu_pct"] < limit and row["undecodable"] == 0),
            "measured": "no row" if row is None
            else f"lowest {row['fps_min']:.1f} fps, {row['frames_lost']} lost, "
                 f"{row['undecodable']} undecodable, "
                 f"server CPU {row['server_cpu_pct']:.0f}%"
                 + (f" ({baseline['format']} in this run: {baseline['server_cpu_pct']:.0f}%, "
                    f"{baseline['fps_min']:.1f} fps)" if baseline else ""),
        })
    return results


# Main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="relay formats for the fan-out rows (encoded, jpeg), interleaved per N")
    parser.add_argument("--clients", default="10,50,100,200", help="fan-out client counts, one round each")
    parser.add_argument("--compare-viewers", default="1,4",
                        help="viewer counts K for the per-viewer comparison (P2P, encoded, JPEG); "
                             "'' skips it")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of each comparison row")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--procs", type=int, default=2, help="client worker processes (fan-out)")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "relay.json", help="where the results go")
    opts = parser.parse_args()
    opts.clients = [int(n) for n in opts.clients.split(",") if n]
    opts.formats = [f for f in opts.formats.split(",") if f]
    if unknown := set(opts.formats) - set(FORMATS):
        parser.error(f"unknown format(s) {', '.join(sorted(unknown))}: use {', '.join(FORMATS)}")
    opts.compare_viewers = [int(n) for n in opts.compare_viewers.split(",") if n]
    return opts


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    started = time.monotonic()
    port = opts.port or free_port()
    # Every client comes from 127.0.0.1: lift the per-address connection limit above them all.
    most = max(opts.clients + opts.compare_viewers, default=0)
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port),
                            "--max-connections-per-address", str(most + 10),
                            "--max-viewers", str(most + 10)],
                           LOG_DIR / "relay-server.log", own_session=True)
    camera = None
    compare_rows: list[dict] = []
    fanout_rows: list[dict] = []
    try:
        camera = start_peercam(["camera", "--server", f"http://127.0.0.1:{port}", "--stream", STREAM,
                                "--ice-host", "127.0.0.1"], LOG_DIR / "relay-camera.log", own_session=True)
        wait_until_live(port, STREAM, {"server": server, "camera": camera}, STARTUP_TIMEOUT, LOG_DIR)
        layers = (stream_summary(port, STREAM) or {}).get("layers") or []
        if not layers:
            raise RuntimeError("the stream announces no layers")
        layer = layers[0]["name"]
        opts.layer_size = f"{layers[0]['width']}x{layers[0]['height']}@{layers[0]['fps']:g}"
        if opts.compare_viewers:
            print("idle camera ...", file=sys.stderr, flush=True)
            compare_rows.append(compare_row("idle", 0, opts, port, layer, server, camera))
        for repeat, viewers in itertools.product(range(opts.repeats), opts.compare_viewers):
            for mode in ("p2p", "encoded", "jpeg"):
                print(f"compare {repeat + 1}/{opts.repeats}: {viewers} {mode} ...", file=sys.stderr,
                      flush=True)
                compare_rows.append(compare_row(mode, viewers, opts, port, layer, server, camera))
        for clients in opts.clients:
            for fmt in opts.formats:
                print(f"fan-out: {clients} {fmt} clients ...", file=sys.stderr, flush=True)
                fanout_rows.append(fanout_row(fmt, clients, opts, port, layer, server, camera))
            if camera.poll() is not None:
                raise RuntimeError(f"the camera exited with {camera.returncode}; see {LOG_DIR}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        if camera is not None:
            stop(camera)
        stop(server)
    summary = compare_summary(compare_rows)
    if compare_rows:
        print_compare(compare_rows, summary, opts, layer)
    if fanout_rows:
        print_fanout(fanout_rows, opts)
    results = verdicts(summary, fanout_rows)
    print_verdicts(results)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s")
    write_json(opts.json, opts, {"layer": layer, "compare_rows": compare_rows, "compare": summary,
                                 "rows": fanout_rows, "verdicts": results, "wall_seconds": round(wall, 1)})


if __name__ == "__main__":
    main()
