"""Usage: python3 -m bench.cluster [--setups single,single-redis,cluster] [--viewers 60] [--readers 150]
                               [--join-rate 5] [--format encoded] [--seconds 10] [--warmup 3]
                               [--quick] [--json bench/results/cluster.json]

Cluster benchmark (issue 16, ``peercam serve --redis``): one test-pattern camera
(640x480@30 VP8, its default layers), --viewers light P2P viewers and --readers raw
WebSocket relay readers, all on 127.0.0.1, in each of these setups (--setups), one after
the other, each on fresh processes:

- single: 1 instance without Redis, everyone on it: the baseline;
- single-redis: 1 instance with --redis, everyone on it: what Redis alone costs;
- cluster: 3 instances A, B, C sharing a fresh redis-server (tests/support/redisserver.py),
  the camera on A, the viewers and readers spread evenly over A, B and C, so two
  thirds of them reach the camera through Redis: their signaling goes over Redis
  pub/sub, and A publishes each relay frame once on peercam:relay:STREAM for B and C
  to fan out to their own readers.

The clients run in the same six worker processes in every setup (one of P2P viewers
and one of relay readers per slot A, B, C; in the 1-instance setups every slot is on
the one instance), so the client side costs the same. Everyone is pinned to the top
layer. Per setup:

- offer -> answer: in each P2P viewer (bench/fanout.py's light viewer, its signaling
  client timed), from just before its offer goes on the signaling WebSocket to the
  camera's answer coming off it: the routing there and back (through Redis for viewers
  on B and C) plus the camera's own answering. The viewers join at --join-rate joins
  a second in all (each slot's one every 3 / --join-rate s, the slots staggered), so
  that the camera answers one offer at a time rather than measuring its own queue;
  these are measured while the viewers join, before the window;
- P2P fps (min / median over viewers): the media goes camera to viewer directly, so
  this only shows the viewers were served;
- relay fps (min / median over readers), latency p50 / p95 (arrival wall time minus the
  capture time in the relay frame's header, one clock) and frames lost (sequence gaps),
  for readers on A and on B/C (bench/relay.py's readers and figures);
- CPU, % of one core over the window (/proc/PID/stat, all threads): each instance's
  server, redis-server, the camera, the client workers, and the machine;
- Redis traffic: INFO stats total_net_input_bytes / total_net_output_bytes over the
  window, in Mbit/s: with readers on B and C, one copy of the relay in and one out per
  other instance.

CPU, fps and latency are measured in a --seconds window after every client joined and a
--warmup. The relay's cost split is each instance's server CPU in the cluster setup
against the one instance's in the baseline: how much of it moved from the camera's
instance to the others, and what Redis and the extra hop add.

The target (issue 16): offer -> answer p95 of the viewers on B and C (through Redis) at
most 5 ms above that of the viewers of the 1-instance baseline measured in this run.

The full size (60 viewers, 150 readers, three servers, Redis and the camera) may well
saturate a 2-core machine: rows measured on a saturated machine say so, and their fps,
latency and offer -> answer times then measure the shared cores. --quick runs 6 viewers
and 15 readers in short windows: a smoke run. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from peercam.peers.signaling_client import SignalingClient

from bench import fanout, relay
from bench.harness import (
    ROOT,
    collect,
    cores,
    cpu_percent,
    free_port,
    percentile,
    print_if_saturated,
    print_verdicts,
    sample_cpu,
    start_peercam,
    stop,
    stream_summary,
    wait_until_live,
    write_json,
)
from peercam.shared.protocol import Answer, Offer
from tests.support.redisserver import RedisServer, unavailable_reason

STREAM = relay.STREAM
LOG_DIR = ROOT / "bench" / "results"
SETUPS = {"single": "1 instance (no Redis)", "single-redis": "1 instance + Redis",
          "cluster": "3 instances + Redis"}
SLOTS = "ABC"
STARTUP_TIMEOUT = 30.0
#: The target (issue 16): offer -> answer p95 through Redis at most this much above one instance's.
TARGET_OFFER_ANSWER_EXTRA_MS = 5.0
#: Seconds after a setup's processes stop, for sockets and CPU to settle before the next.
SETTLE_SECONDS = 2.0


# P2P viewer worker: bench/relay.py's, its joins paced and their offer -> answer timed ------------


class TimedSignalingClient(SignalingClient):
    """Notes when its offer goes out and the answer comes in (perf_counter, this process)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.offer_sent: float | None = None
        self.answer_received: float | None = None

    async def send(self, message) -> None:
        if isinstance(message, Offer):
            self.offer_sent = time.perf_counter()
        await super().send(message)

    async def _receive(self):
        message = await super()._receive()
        if isinstance(message, Answer) and self.answer_received is None:
            self.answer_received = time.perf_counter()
        return message


def p2p_worker(server: str, count: int, quality: str, first_join: float, interval: float,
               window, queue) -> None:
    """`count` light P2P viewers joining ``first_join`` s after start and then every ``interval`` s;
    ("ready", join errors), then ("result", per viewer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    os.nice(relay.VIEWER_NICENESS)
    queue.put(("result", asyncio.run(_run_p2p(server, count, quality, first_join, interval, window,
                                              queue))))


async def _run_p2p(server: str, count: int, quality: str, first_join: float, interval: float,
                   window, queue) -> list[dict]:
    # Viewer.join makes its client and recorder from fanout's module names.
    fanout.SignalingClient = TimedSignalingClient
    fanout.FrameRecorder = fanout.KeyframeRecorder
    viewers = [fanout.Viewer() for _ in range(count)]

    async def join(i: int, viewer: fanout.Viewer) -> None:
        await asyncio.sleep(first_join + i * interval)
        await asyncio.wait_for(viewer.join(server, STREAM, f"bench-p2p-{i}", quality), fanout.JOIN_TIMEOUT)

    outcomes = await asyncio.gather(*(join(i, v) for i, v in enumerate(viewers)), return_exceptions=True)
    errors = [f"{type(e).__name__}: {e}" for e in outcomes if e is not None]
    queue.put(("ready", errors))
    parent = multiprocessing.parent_process()
    while not window[1] or time.time() < window[1]:
        if parent is not None and not parent.is_alive():
            break
        await asyncio.sleep(0.1)
    results = []
    for viewer, outcome in zip(viewers, outcomes, strict=True):
        client = viewer._client
        timed = client is not None and client.offer_sent is not None and client.answer_received is not None
        results.append({
            "error": viewer.error or (f"{type(outcome).__name__}: {outcome}" if outcome else None),
            "frames": list(viewer.frames),
            "offer_answer_ms": (client.answer_received - client.offer_sent) * 1000 if timed else None,
        })
    await asyncio.wait_for(asyncio.gather(*(v.close() for v in viewers), return_exceptions=True),
                           relay.WORKER_TIMEOUT / 2)
    return results


# The processes of one setup ----------------------------------------------------------------


@dataclass
class Instance:
    letter: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def healthz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, ValueError):
        return {}  # not up yet, or 503 while it has no Redis


def wait_for_redis(instances: list[Instance]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for instance in instances:
        while healthz(instance.port).get("cluster", {}).get("redis") != "connected":
            if instance.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"instance {instance.letter} did not join Redis; see {LOG_DIR}")
            time.sleep(0.2)


def slot_shares(total: int) -> list[int]:
    """``total`` spread over the slots A, B, C (zeros kept: a slot's place is its instance)."""
    return [total // len(SLOTS) + (i < total % len(SLOTS)) for i in range(len(SLOTS))]


def run_setup(setup: str, opts: argparse.Namespace) -> dict:
    """Start the setup's Redis, instances and camera, measure one window, stop them all."""
    redis_server = RedisServer(free_port(), LOG_DIR) if setup != "single" else None
    instances: list[Instance] = []
    camera = None
    most = opts.viewers + opts.readers + 10  # every client comes from 127.0.0.1, and may be on one instance
    try:
        if redis_server is not None:
            redis_server.start()
        for letter in SLOTS if setup == "cluster" else SLOTS[0]:
            port = free_port()
            args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--max-connections-per-address",
                    str(most), "--max-viewers", str(most)]
            if redis_server is not None:
                args += ["--redis", redis_server.url]
            log = LOG_DIR / f"cluster-{setup}-{letter}.log"
            instances.append(Instance(letter, port, start_peercam(args, log, own_session=True)))
        if redis_server is not None:
            wait_for_redis(instances)
        camera = start_peercam(["camera", "--server", instances[0].url, "--stream", STREAM,
                                "--ice-host", "127.0.0.1"], LOG_DIR / f"cluster-{setup}-camera.log",
                               own_session=True)
        watched = {f"server {i.letter}": i.process for i in instances} | {"camera": camera}
        for instance in instances:  # B and C list the stream once A's camera record reaches them
            wait_until_live(instance.port, STREAM, watched, STARTUP_TIMEOUT, LOG_DIR)
        top = ((stream_summary(instances[0].port, STREAM) or {}).get("layers") or [{}])[0]
        if "name" not in top:
            raise RuntimeError("the stream announces no layers")
        opts.layer = f"{top['name']} ({top['width']}x{top['height']}@{top['fps']:g})"
        row = measure(setup, opts, instances, camera, redis_server, top["name"])
    finally:
        if camera is not None:
            stop(camera)
        for instance in instances:
            stop(instance.process)
        if redis_server is not None:
            redis_server.stop()
    time.sleep(SETTLE_SECONDS)
    return row


# One measured window ---------------------------------------------------------------------------


def redis_bytes(client) -> tuple[int, int]:
    stats = client.info("stats")
    return stats["total_net_input_bytes"], stats["total_net_output_bytes"]


def measure(setup: str, opts: argparse.Namespace, instances: list[Instance], camera: subprocess.Popen,
            redis_server: RedisServer | None, layer: str) -> dict:
    """Start the client workers, wait for every join, measure one window; the setup's row."""
    # (instance letter, kind, target, args): slot i on instance i, or on the one instance.
    spawn = []
    p2p_slots = sum(n > 0 for n in slot_shares(opts.viewers))
    for i, (viewers, readers) in enumerate(zip(slot_shares(opts.viewers), slot_shares(opts.readers),
                                               strict=True)):
        instance = instances[i] if len(instances) > 1 else instances[0]
        if viewers:
            # Joins interleaved over the slots, --join-rate a second in all.
            spawn.append((instance.letter, "p2p", p2p_worker,
                          (instance.url, viewers, layer, i / opts.join_rate, p2p_slots / opts.join_rate)))
        if readers:
            spawn.append((instance.letter, "relay", relay.client_worker,
                          (f"{instance.url}/ws", readers, opts.format, layer)))
    context = multiprocessing.get_context("spawn")
    window = context.RawArray("d", 2)  # measured window [start, end) in Unix seconds; 0 = not yet
    queues = [context.Queue() for _ in spawn]  # one each: every result is known to come from its slot
    workers = [context.Process(target=target, args=(*args, window, queue), daemon=True)
               for (_, _, target, args), queue in zip(spawn, queues, strict=True)]
    join_seconds = opts.viewers / opts.join_rate
    redis_client = None
    if redis_server is not None:
        import redis  # redis-py is optional: only the setups with Redis need it

        redis_client = redis.Redis.from_url(redis_server.url)
    try:
        for worker in workers:
            worker.start()
        ready = [collect(queue, "ready", 1, [worker], relay.WORKER_TIMEOUT + join_seconds)[0]
                 for queue, worker in zip(queues, workers, strict=True)]
        window[0] = time.time() + opts.warmup
        window[1] = window[0] + opts.seconds
        groups = {f"server {i.letter}": [i.process.pid] for i in instances}
        groups |= {"camera": [camera.pid], "clients": [w.pid for w in workers]}
        if redis_server is not None:
            groups["redis"] = [redis_server.pid]
        time.sleep(window[0] - time.time())
        before, bytes_before = sample_cpu(groups), redis_client and redis_bytes(redis_client)
        time.sleep(window[1] - time.time())
        after, bytes_after = sample_cpu(groups), redis_client and redis_bytes(redis_client)
        for name, proc in (*((f"server {i.letter}", i.process) for i in instances), ("camera", camera)):
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode} during the window; "
                                   f"see {LOG_DIR}")
        results = [collect(queue, "result", 1, [worker], relay.WORKER_TIMEOUT)[0]
                   for queue, worker in zip(queues, workers, strict=True)]
        for worker in workers:
            worker.join(10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
        if redis_client is not None:
            redis_client.close()
    cpu = cpu_percent(before, after, opts.seconds)
    receiving = sum(r for (_, kind, _, _), r in zip(spawn, ready, strict=True) if kind == "relay")
    if receiving < opts.readers:
        print(f"  warning: only {receiving} of {opts.readers} relay readers receive frames", file=sys.stderr)
    join_errors = [e for (_, kind, _, _), r in zip(spawn, ready, strict=True) if kind == "p2p" for e in r]
    by_group: dict[str, dict[str, list]] = {}
    for (letter, kind, _, _), batch in zip(spawn, results, strict=True):
        group = "A" if letter == "A" else "B/C"  # the camera's instance, or across Redis
        by_group.setdefault(group, {"p2p": [], "relay": []})[kind].extend(batch)
    servers = sum(v for k, v in cpu.items() if k.startswith("server "))
    row = {
        "setup": setup,
        "groups": {group: group_figures(clients, window[0], opts.seconds)
                   for group, clients in by_group.items()},
        "join_errors": join_errors[:5],
        "cpu_pct": {k: v for k, v in cpu.items() if k != "machine"},
        "servers_cpu_pct": servers,
        "machine_cpu_pct": cpu["machine"],
        "machine_capacity_pct": 100 * cores(),
        # Whatever else ran on the machine meanwhile (this script's own parent is negligible).
        "other_cpu_pct": max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")),
    }
    if redis_client is not None:
        row["redis_mbit_per_s_in"] = (bytes_after[0] - bytes_before[0]) * 8 / opts.seconds / 1e6
        row["redis_mbit_per_s_out"] = (bytes_after[1] - bytes_before[1]) * 8 / opts.seconds / 1e6
    return row


def group_figures(clients: dict[str, list], start: float, seconds: float) -> dict:
    """The P2P viewers' and relay readers' figures of one group (on A, or on B/C)."""
    offer_answer = sorted(v["offer_answer_ms"] for v in clients["p2p"] if v["offer_answer_ms"] is not None)
    return {
        "p2p_viewers": len(clients["p2p"]),
        "relay_readers": len(clients["relay"]),
        "offer_answer_ms": offer_answer,
        "offer_answer_p50_ms": percentile(offer_answer, 0.50),
        "offer_answer_p95_ms": percentile(offer_answer, 0.95),
        "p2p": relay.p2p_figures(clients["p2p"], start, seconds) if clients["p2p"] else None,
        "relay": relay.relay_figures(clients["relay"], start, seconds) if clients["relay"] else None,
    }


# Report ----------------------------------------------------------------------------------------


def _f(value, spec: str = ".0f", suffix: str = "") -> str:
    return "-" if value is None or value != value else f"{value:{spec}}{suffix}"


def print_tables(rows: list[dict], opts: argparse.Namespace) -> None:
    capacity = rows[0]["machine_capacity_pct"]
    print(f"\nCluster: one camera on instance A, {opts.viewers} light P2P viewers and {opts.readers} "
          f"{opts.format} relay readers spread evenly over the slots A, B, C (in the 1-instance setups all "
          f"on A), everyone on layer {opts.layer}. Offer -> answer: at the viewer, while the viewers joined "
          f"({opts.join_rate:g} joins/s in all). fps, latency, lost: {opts.seconds:g} s measured after "
          f"{opts.warmup:g} s warm-up; latency from the relay header's capture time. B/C: through Redis.\n")
    columns = ["setup", "clients on", "P2P viewers", "offer -> answer p50 / p95 ms", "P2P fps min / median",
               "relay readers", "relay fps min / median", "relay latency p50 / p95 ms", "relay lost"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * (len(columns) - 2))
    for r in rows:
        for group, g in sorted(r["groups"].items()):
            p2p, rel = g["p2p"], g["relay"]
            failed = (p2p or {}).get("failed", 0)
            cells = [
                SETUPS[r["setup"]],
                "A (camera's)" if r["setup"] == "cluster" and group == "A" else group,
                f"{g['p2p_viewers']}" + (f" ({failed} failed)" if failed else ""),
                f"{_f(g['offer_answer_p50_ms'], '.1f')} / {_f(g['offer_answer_p95_ms'], '.1f')}",
                "-" if p2p is None else f"{p2p['fps_min']:.1f} / {p2p['fps_median']:.1f}",
                f"{g['relay_readers']}" + (f" ({rel['failed']} failed)" if rel and rel["failed"] else ""),
                "-" if rel is None else f"{rel['fps_min']:.1f} / {rel['fps_median']:.1f}",
                "-" if rel is None else f"{_f(rel['latency_p50_ms'])} / {_f(rel['latency_p95_ms'])}",
                "-" if rel is None else f"{rel['frames_lost']} = {rel['lost_pct']:.1f}%",
            ]
            print("| " + " | ".join(cells) + " |")
    print(f"\nCPU in % of one core over the window (machine: {capacity}%); Redis in / out: its network "
          "bytes (INFO stats) over the window.\n")
    columns = ["setup", "server A", "server B", "server C", "servers", "Redis", "Redis in / out Mbit/s",
               "camera", "clients", "other", f"machine busy (of {capacity})"]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for r in rows:
        cpu = r["cpu_pct"]
        cells = [
            SETUPS[r["setup"]],
            *(_f(cpu.get(f"server {letter}"), ".0f", "%") for letter in SLOTS),
            f"{r['servers_cpu_pct']:.0f}%",
            _f(cpu.get("redis"), ".0f", "%"),
            f"{r['redis_mbit_per_s_in']:.1f} / {r['redis_mbit_per_s_out']:.1f}" if "redis_mbit_per_s_in" in r
            else "-",
            f"{cpu['camera']:.0f}%",
            f"{cpu['clients']:.0f}%",
            f"{r['other_cpu_pct']:.0f}%",
            f"{r['machine_cpu_pct']:.0f}%",
        ]
        print("| " + " | ".join(cells) + " |")
    print_split(rows)
    for r in rows:
        print_if_saturated(r, SETUPS[r["setup"]], r["cpu_pct"]["clients"], "the client workers")
        errors = r["join_errors"] + [e for g in r["groups"].values() for part in (g["p2p"], g["relay"])
                                     if part for e in part["errors"]]
        for error in errors[:5]:
            print(f"{SETUPS[r['setup']]}: error: {error}")


def print_split(rows: list[dict]) -> None:
    """How the servers' CPU (mostly the relay's fan-out, once everyone has joined) splits over the
    instances, against the one instance of the baseline."""
    cluster = next((r for r in rows if r["setup"] == "cluster"), None)
    if cluster is None:
        return
    cpu = cluster["cpu_pct"]
    parts = ", ".join(f"{letter} {cpu[f'server {letter}']:.0f}%" for letter in SLOTS)
    line = f"\nRelay cost split, 3 instances: {parts}, Redis {cpu['redis']:.0f}%"
    total = cluster["servers_cpu_pct"] + cpu["redis"]
    baseline = next((r for r in rows if r["setup"] == "single"), None)
    if baseline is not None and baseline["servers_cpu_pct"]:
        line += (f": {total:.0f}% in all against {baseline['servers_cpu_pct']:.0f}% for one instance alone "
                 f"({total / baseline['servers_cpu_pct']:.2f}x); server A alone "
                 f"{cpu['server A'] / baseline['servers_cpu_pct']:.2f}x the one instance's")
    print(line)


def verdicts(rows: list[dict]) -> list[dict]:
    """The target against the baseline measured in this run."""
    baseline = next((r["groups"]["A"] for r in rows if r["setup"] == "single"), None)
    cluster = next((r for r in rows if r["setup"] == "cluster"), None)
    remote = cluster["groups"].get("B/C") if cluster else None
    target = (f"offer -> answer p95 through Redis (3 instances, viewers on B/C) at most "
              f"+{TARGET_OFFER_ANSWER_EXTRA_MS:g} ms over 1 instance without Redis")
    if baseline is None or remote is None or not baseline["offer_answer_ms"] or not remote["offer_answer_ms"]:
        return [{"target": target, "pass": None, "measured": "needs the single and cluster setups"}]
    extra = remote["offer_answer_p95_ms"] - baseline["offer_answer_p95_ms"]
    local = cluster["groups"]["A"]["offer_answer_p95_ms"]
    with_redis = next((r["groups"]["A"]["offer_answer_p95_ms"] for r in rows if r["setup"] == "single-redis"),
                      None)
    return [{
        "target": target,
        "pass": extra <= TARGET_OFFER_ANSWER_EXTRA_MS,
        "measured": f"{remote['offer_answer_p95_ms']:.1f} ms vs {baseline['offer_answer_p95_ms']:.1f} ms: "
                    f"{extra:+.1f} ms (same run: viewers on A {_f(local, '.1f')} ms"
                    + (f", 1 instance + Redis {with_redis:.1f} ms" if with_redis is not None else "") + ")",
    }]


# Main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help=f"which setups, in this order ({', '.join(SETUPS)})")
    parser.add_argument("--viewers", type=int, help="light P2P viewers in all (default 60; quick 6)")
    parser.add_argument("--readers", type=int, help="relay readers in all (default 150; quick 15)")
    parser.add_argument("--join-rate", type=float, default=5.0,
                        help="P2P joins a second, over all slots: offers reach the camera one at a time")
    parser.add_argument("--format", choices=relay.FORMATS, default="encoded",
                        help="the readers' relay format")
    parser.add_argument("--seconds", type=float, help="measured window per setup (default 10; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds after the joins, before the window "
                                                     "(default 3; quick 2)")
    parser.add_argument("--quick", action="store_true",
                        help="6 viewers, 15 readers, 3 s windows: a smoke run")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "cluster.json", help="where the results go")
    opts = parser.parse_args()
    opts.setups = [s for s in opts.setups.split(",") if s]
    if unknown := set(opts.setups) - set(SETUPS):
        parser.error(f"unknown setup(s) {', '.join(sorted(unknown))}: use {', '.join(SETUPS)}")
    opts.viewers = opts.viewers if opts.viewers is not None else (6 if opts.quick else 60)
    opts.readers = opts.readers if opts.readers is not None else (15 if opts.quick else 150)
    opts.seconds = opts.seconds or (3.0 if opts.quick else 10.0)
    opts.warmup = opts.warmup or (2.0 if opts.quick else 3.0)
    return opts


def main() -> None:
    opts = parse_args()
    if any(s != "single" for s in opts.setups) and (reason := unavailable_reason()):
        sys.exit(f"cluster: {reason}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    started = time.monotonic()
    rows: list[dict] = []
    try:
        for setup in opts.setups:
            print(f"{SETUPS[setup]} ...", file=sys.stderr, flush=True)
            rows.append(run_setup(setup, opts))
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except RuntimeError as exc:
        sys.exit(f"cluster: {exc}")
    print_tables(rows, opts)
    results = verdicts(rows)
    print_verdicts(results)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s")
    write_json(opts.json, opts, {"rows": rows, "verdicts": results, "wall_seconds": round(wall, 1)})


if __name__ == "__main__":
    main()
