"""Usage: python3 bench/relay.py [--clients 10,50,100,200] [--seconds 10] [--json bench/results/relay.json]

Relay fan-out benchmark. Starts a signaling server and a test-pattern camera on
127.0.0.1, then for each client count N runs N relay WebSocket clients spread over
--procs worker processes. Clients parse only the 20-byte relay header (no JPEG
decoding) and record arrival time, sequence number and size. After a warm-up, one
measured window gives per N:

- per-client fps (min/avg) and frames dropped (gaps in the camera's sequence numbers),
  with how many frames no client got at all (skipped before or at the server's fan-out:
  the camera's latest-wins send, or a server too busy to hand each frame out alone);
- latency p50/p95: arrival wall time minus the header's capture time (one machine, one
  clock), so it spans capture -> JPEG encode -> camera -> server -> client event loop
  (a busy client process adds its own queueing);
- server and camera CPU (% of one core, from /proc/PID/stat), server RSS;
- the CPU the client processes themselves used, and the rest of the machine's load: they
  share the cores with the server and the camera, so a saturated machine caps a row.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout: import the tree's own relay frame parser

import aiohttp  # noqa: E402
from harness import (  # noqa: E402
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
    wait_until_live,
    write_json,
)

from signaling.relayframe import parse_relay_frame  # noqa: E402

STREAM = "bench"
LOG_DIR = ROOT / "bench" / "results"
#: Seconds for the server, the camera's stream, or every client's first frame to show up.
STARTUP_TIMEOUT = 30.0
#: The target: this many relay viewers at full rate, the server under this share of one core.
TARGET_CLIENTS = 200
TARGET_FPS = 29.0
TARGET_SERVER_CPU = 50.0
#: Seconds for client workers to report: slack to spawn, or to close many sockets.
WORKER_TIMEOUT = STARTUP_TIMEOUT + 30


# Client worker processes ----------------------------------------------------------


def client_worker(url: str, count: int, window, queue) -> None:
    """Run `count` relay clients; report ("ready", n receiving), then ("result", per client)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    queue.put(("result", asyncio.run(_run_clients(url, count, window, queue))))


async def _run_clients(url: str, count: int, window, queue) -> list[dict]:
    loop = asyncio.get_running_loop()
    first_frames = [loop.create_future() for _ in range(count)]
    arrivals: list[list[tuple[float, int, int, int]]] = [[] for _ in range(count)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(_relay_client(session, url, arrivals[i], first_frames[i]))
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
    start, end = window[0], window[1]
    return [
        {
            "error": None if isinstance(error, asyncio.CancelledError) else str(error),
            # (sequence, latency ms, bytes) of each frame that arrived in the window
            "frames": [(seq, (arrived - capture_us / 1e6) * 1000, size)
                       for arrived, seq, capture_us, size in frames if start <= arrived < end],
        }
        for error, frames in zip(errors, arrivals, strict=True)
    ]


async def _relay_client(session: aiohttp.ClientSession, url: str,
                        arrivals: list, first_frame: asyncio.Future) -> None:
    """One viewer on the relay; runs until cancelled, raises if the server ends it."""
    try:
        async with session.ws_connect(url, compress=0) as ws:
            welcome = await ws.receive_json(timeout=STARTUP_TIMEOUT)
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {welcome}")
            await ws.send_json({"type": "watch", "stream": STREAM})
            await ws.send_json({"type": "relay", "enabled": True})
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    arrived = time.time()  # before parsing: parsing is the client's cost
                    header, _ = parse_relay_frame(msg.data)
                    arrivals.append((arrived, header.sequence, header.capture_time_us, len(msg.data)))
                    if not first_frame.done():
                        first_frame.set_result(True)
                elif msg.type is aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "error":
                    raise RuntimeError(f"server error: {msg.data}")
            raise RuntimeError(f"server closed the socket ({ws.close_code})")
    finally:
        if not first_frame.done():
            first_frame.set_result(False)


# One round: N clients --------------------------------------------------------------


def run_round(clients: int, opts: argparse.Namespace, port: int,
              server: subprocess.Popen, camera: subprocess.Popen) -> dict:
    context = multiprocessing.get_context("spawn")
    window = context.RawArray("d", 2)  # measured window [start, end) in Unix seconds; 0 = not yet
    queue = context.Queue()
    url = f"http://127.0.0.1:{port}/ws"
    shares = [clients // opts.procs + (i < clients % opts.procs) for i in range(opts.procs)]
    workers = [context.Process(target=client_worker, args=(url, share, window, queue), daemon=True)
               for share in shares if share]
    try:
        for worker in workers:
            worker.start()
        receiving = sum(collect(queue, "ready", len(workers), workers, WORKER_TIMEOUT))
        if receiving < clients:
            print(f"  warning: only {receiving} of {clients} clients receive frames", file=sys.stderr)
        window[0] = time.time() + opts.warmup
        window[1] = window[0] + opts.seconds
        time.sleep(window[0] - time.time())
        groups = {"server": [server.pid], "camera": [camera.pid], "clients": [w.pid for w in workers]}
        before = sample_cpu(groups)
        time.sleep(window[1] - time.time())
        after = sample_cpu(groups)
        server_rss = rss_mb(server.pid)
        batches = collect(queue, "result", len(workers), workers, WORKER_TIMEOUT)
        results = [client for batch in batches for client in batch]
        for worker in workers:
            worker.join(10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
    return summarize(clients, opts, results, cpu_percent(before, after, opts.seconds), server_rss)


def summarize(clients: int, opts: argparse.Namespace, results: list[dict],
              cpu: dict[str, float], server_rss: float) -> dict:
    fps = [len(r["frames"]) / opts.seconds for r in results]
    latencies = sorted(latency for r in results for _, latency, _ in r["frames"])
    received = sum(len(r["frames"]) for r in results)
    dropped = 0
    for r in results:
        sequences = [seq for seq, _, _ in r["frames"]]
        dropped += sum((b - a - 1) % 2**32 for a, b in itertools.pairwise(sequences))
    # Sequence numbers no client saw were lost for everyone: upstream of the per-reader slots.
    seen = {seq for r in results for seq, _, _ in r["frames"]}
    sequence_span = max(seen) - min(seen) + 1 if seen else 0
    return {
        "clients": clients,
        "failed": sum(r["error"] is not None for r in results),
        "errors": sorted({r["error"] for r in results if r["error"]})[:5],
        "fps_min": min(fps, default=0.0),
        "fps_avg": sum(fps) / len(fps) if fps else 0.0,
        "stream_fps": sequence_span / opts.seconds,
        "latency_p50_ms": percentile(latencies, 0.50),
        "latency_p95_ms": percentile(latencies, 0.95),
        "latency_max_ms": latencies[-1] if latencies else float("nan"),
        "frames_received": received,
        "frames_dropped": dropped,
        "drop_pct": 100 * dropped / (received + dropped) if received + dropped else 0.0,
        "frames_no_client_got": sequence_span - len(seen),
        "mbit_per_s_out": sum(size for r in results for _, _, size in r["frames"]) * 8 / opts.seconds / 1e6,
        "server_cpu_pct": cpu["server"],
        "camera_cpu_pct": cpu["camera"],
        "clients_cpu_pct": cpu["clients"],
        "machine_cpu_pct": cpu["machine"],
        # Whatever else ran on the machine meanwhile (this script's own parent is negligible).
        "other_cpu_pct": max(0.0, cpu["machine"] - cpu["server"] - cpu["camera"] - cpu["clients"]),
        "machine_capacity_pct": 100 * cores(),
        "server_rss_mb": server_rss,
    }


# Report ---------------------------------------------------------------------------


def print_table(rows: list[dict], opts: argparse.Namespace) -> None:
    capacity = rows[0]["machine_capacity_pct"]
    print(f"\nRelay: {opts.seconds:g} s measured after {opts.warmup:g} s warm-up; clients in "
          f"{opts.procs} processes on the same {capacity // 100}-core machine as the server and camera. "
          "CPU in % of one core. Dropped: sequence gaps summed over clients; in brackets, how many "
          "frames no client got.\n")
    columns = ["clients", "fps min / avg", "stream fps", "latency p50 / p95 ms", "dropped (missed by all)",
               "Mbit/s out", "server CPU", "camera CPU", "clients CPU", "other CPU",
               f"machine busy (of {capacity})", "server RSS MB"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---:|" * len(columns))
    for r in rows:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        cells = [
            f"{r['clients']}{failed}",
            f"{r['fps_min']:.1f} / {r['fps_avg']:.1f}",
            f"{r['stream_fps']:.1f}",
            f"{r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f}",
            f"{r['frames_dropped']} = {r['drop_pct']:.1f}% ({r['frames_no_client_got']})",
            f"{r['mbit_per_s_out']:.0f}",
            *(f"{r[key]:.0f}%" for key in ("server_cpu_pct", "camera_cpu_pct", "clients_cpu_pct",
                                           "other_cpu_pct", "machine_cpu_pct")),
            f"{r['server_rss_mb']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        print_if_saturated(r, f"N={r['clients']}", r["clients_cpu_pct"], "the client processes")
        for error in r["errors"]:
            print(f"N={r['clients']}: client error: {error}")


def verdicts(rows: list[dict]) -> list[dict]:
    """The relay target: pass (None when its row was not run) and the numbers behind it."""
    row = next((r for r in rows if r["clients"] == TARGET_CLIENTS), None)
    return [{
        "target": f"{TARGET_CLIENTS} relay viewers each >= {TARGET_FPS:g} fps, "
                  f"server CPU <= {TARGET_SERVER_CPU:g}% of one core",
        "pass": None if row is None
        else row["fps_min"] >= TARGET_FPS and row["server_cpu_pct"] <= TARGET_SERVER_CPU,
        "measured": "no row" if row is None
        else f"lowest {row['fps_min']:.1f} fps, server CPU {row['server_cpu_pct']:.0f}%",
    }]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="10,50,100,200", help="client counts, one round each")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "relay.json", help="where the results go")
    opts = parser.parse_args()
    opts.clients = [int(n) for n in opts.clients.split(",")]
    return opts


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    port = opts.port or free_port()
    # Every client comes from 127.0.0.1: lift the per-address connection limit above them all.
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port),
                            "--max-connections-per-address", str(max(opts.clients) + 10)],
                           LOG_DIR / "relay-server.log", own_session=True)
    camera = None
    try:
        camera = start_peercam(["camera", "--server", f"http://127.0.0.1:{port}", "--stream", STREAM,
                                "--ice-host", "127.0.0.1"], LOG_DIR / "relay-camera.log", own_session=True)
        wait_until_live(port, STREAM, {"server": server, "camera": camera}, STARTUP_TIMEOUT, LOG_DIR)
        rows = []
        for clients in opts.clients:
            print(f"{clients} clients ...", file=sys.stderr, flush=True)
            rows.append(run_round(clients, opts, port, server, camera))
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        if camera is not None:
            stop(camera)
        stop(server)
    print_table(rows, opts)
    results = verdicts(rows)
    print_verdicts(results)
    write_json(opts.json, opts, {"rows": rows, "verdicts": results})


if __name__ == "__main__":
    main()
