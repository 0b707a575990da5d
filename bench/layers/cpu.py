"""The layers benchmark's cpu part: what each active layer costs the camera, with 8 light P2P
viewers spread over 1 to 4 layers, and each layer's encode time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import time

from bench.harness import (
    AUTOGROUP_NICE_ENV,
    collect,
    cores,
    cpu_percent,
    free_port,
    prioritize,
    sample_cpu,
    stop,
    stream_summary,
    wait_until_live,
)
from bench.layers.shared import (
    CPU_LAYERS,
    FPS,
    HEIGHT,
    LOG_DIR,
    STARTUP_TIMEOUT,
    STREAM,
    WIDTH,
    WORKER_TIMEOUT,
    camera_args,
    layer_list,
    load,
    start_tested,
)

#: The rows: viewers per layer (the first row has none: capture only).
LAYOUTS = [{}, {"720p": 8}, {"720p": 4, "480p": 4}, {"720p": 3, "480p": 3, "360p": 2},
           {"720p": 2, "480p": 2, "360p": 2, "240p": 2}]


def light_worker(server: str, commands, reports) -> None:
    """Light P2P viewers (bench/fanout.py's): ("join", [(name, quality)]), ("measure", start, end),
    ("leave",), ("stop",)."""
    from bench import fanout

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(fanout.VIEWER_NICENESS)
    if os.environ.get(AUTOGROUP_NICE_ENV):  # a session of its own, yielding to the camera's
        os.setsid()
        prioritize(os.getpid(), fanout.VIEWER_NICENESS)

    async def serve() -> None:
        viewers: list[tuple[str, fanout.Viewer]] = []
        while True:
            command, *args = await asyncio.to_thread(fanout._next_command, commands)
            if command == "join":
                added = [(quality, fanout.Viewer()) for _, quality in args[0]]
                joins = [asyncio.wait_for(v.join(server, STREAM, name, quality), STARTUP_TIMEOUT)
                         for (name, _), (quality, v) in zip(args[0], added, strict=True)]
                outcomes = await asyncio.gather(*joins, return_exceptions=True)
                errors = [f"{type(e).__name__}: {e}" for e in outcomes if e is not None]
                viewers += added
                reports.put(("joined", errors))
            elif command == "measure":
                start, end = args
                await asyncio.sleep(max(0.0, end - time.time()) + 0.2)
                reports.put(("measured", [{"quality": q, **v.take(start, end)} for q, v in viewers]))
            elif command == "leave":
                await asyncio.gather(*(v.close() for _, v in viewers), return_exceptions=True)
                viewers = []
                reports.put(("left", None))
            else:
                await asyncio.gather(*(v.close() for _, v in viewers), return_exceptions=True)
                reports.put(("stopped", None))
                return

    asyncio.run(serve())


class LightViewers:
    """One worker process of light viewers, driven by commands."""

    def __init__(self, server: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.commands, self.reports = context.Queue(), context.Queue()
        self.worker = context.Process(target=light_worker, daemon=True,
                                      args=(server, self.commands, self.reports))
        self.worker.start()

    def ask(self, command: tuple, reply: str):
        self.commands.put(command)
        return collect(self.reports, reply, 1, [self.worker], WORKER_TIMEOUT)[0]

    def close(self) -> None:
        try:
            self.ask(("stop",), "stopped")
        except RuntimeError as exc:
            print(f"  light viewers: {exc}; terminating them", file=sys.stderr)
        self.worker.join(5)
        if self.worker.is_alive():
            self.worker.terminate()
            self.worker.join()


def camera_report(port: int) -> dict:
    return ((stream_summary(port, STREAM) or {}).get("camera") or {}).get("stats") or {}


def measure(opts: argparse.Namespace) -> dict:
    began_load = load()
    rows = [row for threads in opts.encoder_threads for row in measure_series(opts, threads)]
    return {"layers": CPU_LAYERS, "rows": rows, "load_before": began_load, "load_after": load()}


def measure_series(opts: argparse.Namespace, encoder_threads: int | None) -> list[dict]:
    """One row per layout; ``encoder_threads``: None for peercam as it is, else the experiment's."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    series = "default" if encoder_threads is None else str(encoder_threads)
    server = start_tested(["serve", "--host", "127.0.0.1", "--port", str(port)], "layers-cpu-server.log")
    camera = start_tested(camera_args(url, CPU_LAYERS, "127.0.0.1"),
                          f"layers-cpu-camera-threads-{series}.log", encoder_threads=encoder_threads)
    viewers = None
    rows = []
    try:
        wait_until_live(port, STREAM, {"server": server, "camera": camera}, STARTUP_TIMEOUT, LOG_DIR)
        viewers = LightViewers(url)
        for layout in LAYOUTS:
            label = " / ".join(f"{n} {q}" for q, n in layout.items()) or "none"
            print(f"cpu: {label} (VP8 threads: {series}) ...", file=sys.stderr, flush=True)
            errors = []
            if layout:
                wanted = [(f"cpu-{q}-{i}", q) for q, n in layout.items() for i in range(n)]
                errors = viewers.ask(("join", wanted), "joined")
            time.sleep(opts.cpu_warmup)
            start = time.time()
            end = start + opts.seconds
            viewers.commands.put(("measure", start, end))
            groups = {"camera": [camera.pid], "server": [server.pid], "viewers": [viewers.worker.pid]}
            before, first = sample_cpu(groups), camera_report(port)
            reports = []
            while time.time() < end - 0.05:
                time.sleep(min(2.0, max(0.0, end - time.time())))
                reports.append(camera_report(port))
            cpu = cpu_percent(before, sample_cpu(groups), opts.seconds)
            measured = collect(viewers.reports, "measured", 1, [viewers.worker], WORKER_TIMEOUT)[0]
            rows.append({"encoder_threads": series,
                         **cpu_row(layout, cpu, first, reports, measured, errors, opts.seconds)})
            if layout:
                viewers.ask(("leave",), "left")
                time.sleep(2.0)  # the layers' encoders stop once their viewers are gone
            for name, proc in (("server", server), ("camera", camera)):
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited with {proc.returncode}; see {LOG_DIR}")
    finally:
        if viewers is not None:
            viewers.close()
        stop(camera)
        stop(server)
    return rows


def cpu_row(layout: dict, cpu: dict, first: dict, reports: list[dict], measured: list[dict],
            errors: list[str], seconds: float) -> dict:
    layers = {}
    for index, layer in enumerate(layer_list(CPU_LAYERS)):
        def stat(report, key, i=index):
            entries = report.get("layers") or []
            return entries[i].get(key) if i < len(entries) else None
        encode = [stat(r, "encode_ms") for r in reports if stat(r, "active")]
        encoded = [stat(r, "frames_encoded") for r in (first, reports[-1] if reports else {})]
        layers[layer.name] = {
            "viewers": layout.get(layer.name, 0),
            "active": any(stat(r, "active") for r in reports),
            "encode_ms": sum(encode) / len(encode) if encode else None,
            "encoded_fps": (encoded[1] - encoded[0]) / seconds if None not in encoded else None,
        }
    fps = [len(v["frames"]) / seconds for v in measured]
    capacity = 100 * cores()
    return {
        "layers_active": len(layout),
        "viewers_per_layer": layout,
        "camera_cpu_pct": cpu["camera"],
        "server_cpu_pct": cpu["server"],
        "viewers_cpu_pct": cpu["viewers"],
        "machine_cpu_pct": cpu["machine"],
        "other_cpu_pct": max(0.0, cpu["machine"] - cpu["camera"] - cpu["server"] - cpu["viewers"]),
        "machine_capacity_pct": capacity,
        "camera_fps": reports[-1].get("fps") if reports else None,
        "layers": layers,
        "viewers_fps_min": min(fps) if fps else None,
        "viewers_fps_by_layer": {q: min(len(v["frames"]) / seconds for v in measured if v["quality"] == q)
                                 for q in layout},
        "kbit_per_s_by_layer": {q: sum(size for v in measured if v["quality"] == q
                                       for *_, size in v["frames"]) * 8 / 1000 / seconds / layout[q]
                                for q in layout},
        "errors": errors + sorted({v["error"] for v in measured if v["error"]}),
    }


def print_tables(result: dict, opts: argparse.Namespace) -> None:
    names = [layer.name for layer in layer_list(CPU_LAYERS)]
    print(f"\nCamera CPU per active layers: {WIDTH}x{HEIGHT}@{FPS:g} VP8 test pattern, "
          "VP8 threads per encoder 'default' as peercam runs (libvpx: one per core), a number in the "
          "experiment that sets it, "
          f"--layers {CPU_LAYERS}, 8 light P2P viewers (no decoding, nice 10) pinned with --quality; "
          f"{opts.seconds:g} s after {opts.cpu_warmup:g} s. CPU in % of one core. Encode ms: the camera's "
          "own average per frame (wall time, GIL waits included), and in brackets the frames it encoded "
          "per second. "
          f"Load average {result['load_before']} before, {result['load_after']} after.\n")
    columns = ["VP8 threads", "layers active", "viewers per layer", "camera CPU",
               *(f"{name} encode ms (fps)" for name in names), "viewers' fps min", "viewers CPU", "other CPU",
               f"machine busy (of {result['rows'][0]['machine_capacity_pct'] if result['rows'] else 0})"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---:|" * len(columns))
    for r in result["rows"]:
        cells = [r["encoder_threads"], str(r["layers_active"]),
                 " / ".join(f"{n} {q}" for q, n in r["viewers_per_layer"].items()) or "none (capture only)",
                 f"{r['camera_cpu_pct']:.0f}%"]
        for name in names:
            layer = r["layers"][name]
            if not layer["active"] or layer["encode_ms"] is None:
                cells.append("-")
            else:  # (a window too short to count two reports has no frame rate)
                fps = "?" if layer["encoded_fps"] is None else f"{layer['encoded_fps']:.0f}"
                cells.append(f"{layer['encode_ms']:.1f} ({fps})")
        cells += ["-" if r["viewers_fps_min"] is None else f"{r['viewers_fps_min']:.1f}",
                  *(f"{r[key]:.0f}%" for key in ("viewers_cpu_pct", "other_cpu_pct", "machine_cpu_pct"))]
        print("| " + " | ".join(cells) + " |")
        for error in r["errors"][:3]:
            print(f"  {error}")


def draw(cpu_ax, encode_ax, result: dict) -> None:
    """Camera CPU per active layers, and each layer's encode ms, on these two axes."""
    cpu_rows = result.get("rows", [])
    if cpu_rows:
        names = [layer.name for layer in layer_list(CPU_LAYERS)]
        series = list(dict.fromkeys(r["encoder_threads"] for r in cpu_rows))
        layouts = [r["viewers_per_layer"] for r in cpu_rows if r["encoder_threads"] == series[0]]
        x = list(range(len(layouts)))
        labels = ["\n".join(f"{n} on {q}" for q, n in layout.items()) or "no viewers" for layout in layouts]
        width = 0.8 / len(series)
        for k, threads in enumerate(series):
            rows = [r for r in cpu_rows if r["encoder_threads"] == threads]
            positions = [i - 0.4 + (k + 0.5) * width for i in x[: len(rows)]]
            cpu_ax.bar(positions, [r["camera_cpu_pct"] for r in rows], width,
                       label="peercam (one thread per encoder)" if threads == "default"
                       else f"experiment: {threads} thread(s) per encoder")
            for position, r in zip(positions, rows, strict=True):
                cpu_ax.annotate(f"{r['camera_cpu_pct']:.0f}", (position, r["camera_cpu_pct"]), ha="center",
                                fontsize=6, xytext=(0, 2), textcoords="offset points")
        cpu_ax.set_xticks(x, labels, fontsize=6)
        cpu_ax.set(title="Camera CPU, 8 P2P viewers on 0-4 layers", ylabel="% of one core")
        cpu_ax.legend(fontsize=7)
        width = 0.8 / (len(names) * len(series))
        for k, name in enumerate(names):
            for j, threads in enumerate(series):
                rows = [r for r in cpu_rows if r["encoder_threads"] == threads]
                slot = k * len(series) + j
                encode_ax.bar([i - 0.4 + (slot + 0.5) * width for i in x[: len(rows)]],
                              [(r["layers"][name]["encode_ms"] or 0) if r["layers"][name]["active"] else 0
                               for r in rows], width, color=f"C{k}", edgecolor=f"C{k}",
                              label=name if j == 0 else None,
                              **({"fill": False, "hatch": "////"} if j else {}))
        encode_ax.set_xticks(x, labels, fontsize=6)
        encode_ax.set(title="Encode ms per frame and layer (hatched: experiment)", ylabel="ms", yscale="log")
        encode_ax.legend(fontsize=7)
        for ax in (cpu_ax, encode_ax):
            ax.grid(axis="y", alpha=0.3)
