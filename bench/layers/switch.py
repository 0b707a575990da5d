"""The layers benchmark's switch part: manual switches 720p -> 360p -> 720p on P2P and the
relay, with the new layer already running for another viewer (warm) or not (cold): how long
the picture stands still, and what it skips.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import signal
import sys
import time

from bench.harness import (
    AUTOGROUP_NICE_ENV,
    collect,
    free_port,
    percentile,
    prioritize,
    stop,
    wait_until_live,
)
from bench.layers.shared import (
    CPU_LAYERS,
    LOG_DIR,
    STARTUP_TIMEOUT,
    STREAM,
    WORKER_TIMEOUT,
    camera_args,
    cell,
    latency_ms,
    layer_list,
    load,
    start_tested,
)


def measure(opts: argparse.Namespace) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    began_load = load()
    runs = []
    for encoder_threads in opts.encoder_threads:
        series = "default" if encoder_threads is None else str(encoder_threads)
        server = start_tested(["serve", "--host", "127.0.0.1", "--port", str(port)],
                              "layers-switch-server.log")
        camera = start_tested(camera_args(url, CPU_LAYERS, "127.0.0.1"), f"layers-switch-camera-{series}.log",
                              encoder_threads=encoder_threads)
        try:
            wait_until_live(port, STREAM, {"server": server, "camera": camera}, STARTUP_TIMEOUT, LOG_DIR)
            # The relay encodes JPEG, no VP8: the experiment's series is P2P only.
            for path in ("p2p", "relay") if encoder_threads is None else ("p2p",):
                for warm in (False, True):
                    print(f"switch: {path}, {'warm' if warm else 'cold'} (VP8 threads: {series}) ...",
                          file=sys.stderr, flush=True)
                    run = in_worker(switch_worker, url, path, warm, opts.switches, opts.dwell)
                    runs.append({"encoder_threads": series, **run})
                    time.sleep(2.0)  # encoders and renditions of the last run stop
        finally:
            stop(camera)
            stop(server)
    return {"layers": CPU_LAYERS, "runs": runs, "rows": switch_rows(runs), "load_before": began_load,
            "load_after": load()}


def in_worker(target, *args):
    """``target(*args, autogroup_nice, queue)`` in a fresh process; what it puts on the queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=target, args=(*args, queue), daemon=True)
    worker.start()
    try:
        return collect(queue, "result", 1, [worker], WORKER_TIMEOUT + 120)[0]
    finally:
        worker.join(5)
        if worker.is_alive():
            worker.terminate()
            worker.join()


def switch_worker(url: str, path: str, warm: bool, switches: int, dwell: float, queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stderr = open(LOG_DIR / f"layers-switch-{path}-{'warm' if warm else 'cold'}.log", "w")  # noqa: SIM115
    if os.environ.get(AUTOGROUP_NICE_ENV):  # a session of its own, as prioritized as the camera
        os.setsid()
        prioritize(os.getpid())
    queue.put(("result", asyncio.run(switch_run(url, path, warm, switches, dwell))))


async def switch_run(url: str, path: str, warm: bool, switches: int, dwell: float) -> dict:
    import aiohttp
    import cv2
    from peercam.peers.testpattern import read_stamp

    import peercam
    from bench import fanout

    jpeg_quality = 80 if path == "relay" else None
    viewer = peercam.watch(url, STREAM, mode=path, quality="720p", jpeg_quality=jpeg_quality,
                           name=f"switch-{path}", first_frame_timeout=None,
                           ice=peercam.IceOptions(servers=[], hosts=["127.0.0.1"]))
    #: (arrival, width, height, capture ms, capture frame number), -1 where unreadable.
    seen: list[tuple] = []

    async def note_frames() -> None:
        async for frame in viewer.frames(keep=None):
            if frame.mode != path:
                continue
            if frame.mode == "relay":  # the header's number is the rendition's: read the picture's
                stamp = read_stamp(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY))
                number = stamp.frame if stamp else -1
            else:
                number = frame.number if frame.number is not None else -1
            capture_ms = round(frame.capture_time * 1000) if frame.capture_time is not None else -1
            seen.append((frame.arrived, frame.width, frame.height, capture_ms, number))

    companions: list = []
    tasks: list[asyncio.Task] = []
    session = aiohttp.ClientSession() if warm and path == "relay" else None
    sizes = {layer.name: (layer.width, layer.height) for layer in layer_list(CPU_LAYERS)}
    requests = []
    await viewer.start()
    running = asyncio.create_task(note_frames())
    try:
        if warm and path == "p2p":
            companions = [fanout.Viewer() for _ in range(2)]
            await asyncio.gather(*(c.join(url, STREAM, f"warm-{q}", q)
                                   for c, q in zip(companions, ("720p", "360p"), strict=True)))
        elif warm:
            tasks = [asyncio.create_task(relay_reader(session, url, q, jpeg_quality))
                     for q in ("720p", "360p")]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not seen and time.monotonic() < deadline and not running.done():
            await asyncio.sleep(0.1)
        if not seen:
            raise RuntimeError(f"switch run {path}: no frame within {STARTUP_TIMEOUT:g} s")
        await asyncio.sleep(dwell)
        current = "720p"
        for _ in range(switches):
            for target in ("360p", "720p"):
                requests.append({"time": time.time(), "from": current, "to": target})
                await viewer.set_quality(target, jpeg_quality)
                current = target
                await asyncio.sleep(dwell)
    finally:
        viewer.stop()
        try:
            await asyncio.wait_for(running, 10)
        except Exception as exc:  # noqa: BLE001 - the figures are in seen either way
            print(f"  switch viewer: {type(exc).__name__}: {exc}", file=sys.stderr)
        await viewer.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in companions), return_exceptions=True)
        if session is not None:
            await session.close()
    ends = [r["time"] for r in requests[1:]] + [math.inf]
    switches = [switch_figures(r, end, seen, sizes) for r, end in zip(requests, ends, strict=True)]
    return {"path": path, "warm": warm, "switches": switches, "frames": len(seen)}


async def relay_reader(session, url: str, quality: str, jpeg_quality: int | None) -> None:
    """A relay reader that keeps a rendition running: reads and drops every frame."""
    import aiohttp

    async with session.ws_connect(f"{url}/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "watch", "stream": STREAM, "name": f"warm-{quality}", "quality": quality,
                            **({"jpeg_quality": jpeg_quality} if jpeg_quality else {})})
        await ws.send_json({"type": "relay", "enabled": True})
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return


def switch_figures(request: dict, until: float, frames: list[tuple], sizes: dict) -> dict:
    """One switch's figures from the frames (arrival, width, height, capture ms, frame number); the next
    request comes at ``until``. skipped is -1 when the new size starts with the very captured frame the
    old one ended on (nothing skipped, one moment shown twice), lower when it goes back in time."""
    old, new = sizes[request["from"]], sizes[request["to"]]
    after = [f for f in frames if request["time"] <= f[0] < until]
    first_new = next((f for f in after if (f[1], f[2]) == new), None)
    figures = {"direction": f"{request['from']} -> {request['to']}", "switch_ms": None, "gap_ms": None,
               "skipped": None, "old_after_new": None, "old_latency_ms": None, "new_latency_ms": None}
    if first_new is None:
        return figures
    last_old = next((f for f in reversed(frames) if f[0] <= first_new[0] and (f[1], f[2]) == old), None)
    figures["switch_ms"] = (first_new[0] - request["time"]) * 1000
    figures["old_after_new"] = sum(1 for f in after if f[0] > first_new[0] and (f[1], f[2]) == old)
    figures["new_latency_ms"] = latency_ms(first_new)
    if last_old is not None:
        # How old each picture was on arrival: an old layer lagging the new one shows here.
        figures["old_latency_ms"] = latency_ms(last_old)
        figures["gap_ms"] = (first_new[0] - last_old[0]) * 1000
        if first_new[4] >= 0 and last_old[4] >= 0:
            figures["skipped"] = int(first_new[4] - last_old[4] - 1)
    return figures


def switch_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        for direction in ("720p -> 360p", "360p -> 720p"):
            done = [s for s in run["switches"] if s["direction"] == direction]
            def values(key, switches=done):
                return sorted(s[key] for s in switches if s[key] is not None)
            rows.append({"encoder_threads": run["encoder_threads"], "path": run["path"], "warm": run["warm"],
                         "direction": direction,
                         "switches": len(done), "completed": len(values("switch_ms")),
                         **{f"{key}_{stat}": (percentile(values(key), 0.5) if stat == "p50"
                                              else max(values(key))) if values(key) else None
                            for key in ("switch_ms", "gap_ms", "skipped") for stat in ("p50", "max")},
                         "old_latency_ms_p50": percentile(values("old_latency_ms"), 0.5)
                         if values("old_latency_ms") else None,
                         "new_latency_ms_p50": percentile(values("new_latency_ms"), 0.5)
                         if values("new_latency_ms") else None,
                         "old_after_new_max": max(values("old_after_new"), default=None)})
    return rows


def print_tables(result: dict) -> None:
    print("\nManual switches: peers.viewer.Viewer sends `quality`; cold = the new layer (or JPEG "
          "rendition) starts on the request, warm = another viewer already holds it. Switch = request to the "
          "first frame of the new size; gap = last frame of the old size to the first of the new; "
          "skipped = capture frame numbers between them (test-pattern stamps; -1: the new size starts with "
          "the very frame the old one ended on); latency = how old those two pictures were on arrival. VP8 "
          "threads: 'default' is peercam as it is, a number the experiment. "
          f"Load average {result['load_before']} before, {result['load_after']} after.\n")
    columns = ["direction", "path", "layer running", "VP8 threads", "switches", "switch ms p50 / max",
               "gap ms p50 / max", "frames skipped p50 / max", "latency old / new ms p50"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|" + "---:|" * (len(columns) - 4))
    for r in result["rows"]:
        done = f"{r['completed']}" + (f" of {r['switches']}" if r["completed"] != r["switches"] else "")
        print("| " + " | ".join([
            r["direction"], r["path"], "warm" if r["warm"] else "cold", r["encoder_threads"], done,
            f"{cell(r['switch_ms_p50'])} / {cell(r['switch_ms_max'])}",
            f"{cell(r['gap_ms_p50'])} / {cell(r['gap_ms_max'])}",
            f"{cell(r['skipped_p50'], 'd')} / {cell(r['skipped_max'], 'd')}",
            f"{cell(r['old_latency_ms_p50'])} / {cell(r['new_latency_ms_p50'])}"]) + " |")
        if r["old_after_new_max"]:
            print(f"  ({r['path']}: up to {r['old_after_new_max']} frames of the old size came after the "
                  "first new one)")


def draw(switch_ax, result: dict) -> None:
    """The picture gap of each kind of switch, p50 and max."""
    rows = result.get("rows", [])
    if rows:
        labels = [f"{r['path']} {'warm' if r['warm'] else 'cold'}"
                  + ("" if r["encoder_threads"] == "default" else f" ({r['encoder_threads']} thr.)")
                  + f"\n{r['direction']}" for r in rows]
        x = list(range(len(rows)))
        for offset, key in ((-0.2, "gap_ms_p50"), (0.2, "gap_ms_max")):
            switch_ax.bar([i + offset for i in x], [r[key] or 0 for r in rows], 0.4,
                          label=key.replace("_ms_", " "))
        switch_ax.set_xticks(x, labels, fontsize=6, rotation=30)
        switch_ax.set(title="Manual switches: picture gap", ylabel="ms")
        switch_ax.legend(fontsize=7)
        switch_ax.grid(axis="y", alpha=0.3)
