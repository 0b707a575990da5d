"""The layers benchmark's timeline part: one viewer at a time (auto on P2P, auto on the relay,
pinned to 720p) behind a bandwidth cap that follows a schedule, in network namespaces of its
own; per second and per phase what it got, and the verdicts on issue 11's and 22's targets.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.harness import ROOT, free_port, percentile, prioritize, stop
from bench.layers.shared import (
    FPS,
    HELPER,
    LOG_DIR,
    STARTUP_TIMEOUT,
    STREAM,
    TIMELINE_LAYERS,
    camera_args,
    cell,
    latency_ms,
    layer_list,
    load,
    start_tested,
)
from tests.support.netns import CAMERA_ADDRESS, VIEWER_ADDRESS, SplitNetwork, unavailable_reason

SCHEDULE = "none:10,1500:15,600:15,300:15,none:25"
QUICK_SCHEDULE = "none:4,1500:6,600:8,300:6,none:22"
#: The timeline's runs: (label = the viewer's --name, --mode, --quality).
RUNS = [("auto-p2p", "p2p", "auto"), ("auto-relay", "relay", "auto"), ("pinned-720p", "p2p", "720p")]
#: Seconds after a viewer's first frame before the schedule starts.
LEAD = 2.0
#: The phase of a run capped from the viewer's start (--start-cap): seconds from that start.
START_CAP_SECONDS, QUICK_START_CAP_SECONDS = 15.0, 10.0
#: Issue 11's targets.
TARGET_CAP = 600
TARGET_SETTLE_S = 5.0
TARGET_FPS = 24.0
TARGET_P95_MS = 300.0
TARGET_CLIMB_S = 20.0
#: Issue 22's: once settled, the picture never stands still longer than this.
TARGET_GAP_MS = 1000.0
TIMELY_MS = 1000.0

_LAYER_LINE = re.compile(r"layer (?:(\S+) -> )?(\S+) \((\d+)x(\d+)(?:, JPEG q(\d+))?\)(?:: (.*))?$")


# Helpers run as subprocesses (`python3 -m bench.layers _viewer|_poll ...`) -----------------------


def logged_viewer(frame_log: str, argv: list[str]) -> None:
    """`peercam view ARGV`, writing each frame it counts to ``frame_log``: arrival (Unix s), width,
    height, capture time (Unix ms), frame number (-1: unreadable), and the RTP packets aiortc's video
    jitter buffer held after the last packet it took (-1: none seen, as on the relay, or a receive
    path without aiortc's JitterBuffer). On the relay the frame number is the rendition's sequence
    number (the CLI does not decode)."""
    from aiortc import jitterbuffer
    from peercam.peers.viewer import framestats

    from peercam import cli

    out = open(frame_log, "w", buffering=1)  # noqa: SIM115 - open until the process exits
    add = framestats.FrameStats.add
    held = [-1]
    buffer_add = jitterbuffer.JitterBuffer.add

    def counted_buffer_add(self, packet):
        result = buffer_add(self, packet)
        if getattr(self, "_is_video", False):
            held[0] = sum(p is not None for p in getattr(self, "_packets", ()))
        return result

    def logged_add(self, width, height, stamp, arrived_unix) -> None:
        add(self, width, height, stamp, arrived_unix)
        out.write(f"{arrived_unix:.6f} {width} {height} {stamp.time_ms if stamp else -1} "
                  f"{stamp.frame if stamp else -1} {held[0]}\n")

    jitterbuffer.JitterBuffer.add = counted_buffer_add
    framestats.FrameStats.add = logged_add
    cli.main(argv)


def poll(url: str, interval: float = 1.0) -> None:
    """Print the server's /api/streams/NAME as one JSON line a second, with the time read."""
    import urllib.error
    import urllib.request

    next_at = time.time()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=interval) as response:
                summary = json.load(response)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            summary = None
        print(json.dumps({"t": time.time(), "summary": summary}), flush=True)
        next_at += interval
        time.sleep(max(0.0, next_at - time.time()))


# Measuring ---------------------------------------------------------------------------------------


def parse_schedule(text: str) -> list[tuple[int | None, float]]:
    phases = []
    for part in text.split(","):
        cap, _, seconds = part.partition(":")
        phases.append((None if cap in ("none", "0") else int(cap), float(seconds)))
    return phases


class LineReader:
    """Reads a process's text stream on a thread: (time.time(), line) of each line as it comes."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append((time.time(), line.rstrip("\n")))

    def wait_for(self, text: str, timeout: float, proc: subprocess.Popen) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(line for _, line in self.lines[-15:])
        raise RuntimeError(f"no {text!r} within {timeout:g} s:\n{tail}")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def measure(opts: argparse.Namespace) -> dict:
    reason = unavailable_reason()
    if reason:
        return {"skipped": reason}
    schedule = parse_schedule(opts.schedule)
    began_load = load()
    net = SplitNetwork()
    port = free_port()
    url = f"http://{CAMERA_ADDRESS}:{port}"
    in_camera_ns = net.prefix(net.camera_ns)
    processes: list[subprocess.Popen] = []
    runs = []
    try:
        server = start_tested(["serve", "--host", CAMERA_ADDRESS, "--port", str(port)],
                              "layers-timeline-server.log", in_camera_ns)
        processes.append(server)
        camera = start_tested(camera_args(url, TIMELINE_LAYERS, CAMERA_ADDRESS), "layers-timeline-camera.log",
                              in_camera_ns)
        processes.append(camera)
        poller = subprocess.Popen([*in_camera_ns, *HELPER, "_poll", f"{url}/api/streams/{STREAM}"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  start_new_session=True)
        prioritize(poller.pid)
        processes.append(poller)
        samples = LineReader(poller.stdout)
        wait_live(samples, {"server": server, "camera": camera, "poller": poller})
        # The schedule's runs first, so they measure as they did before the runs capped from the start.
        plans = [(schedule, False, f"through {opts.schedule}")]
        if opts.start_cap:
            plans.append(([(opts.start_cap, opts.start_cap_seconds)], True,
                          f"capped at {opts.start_cap} kbit/s from its start"))
        for plan, from_start, about in plans:
            for label, mode, quality in RUNS[: opts.timeline_runs]:
                print(f"timeline: {label} {about} ...", file=sys.stderr, flush=True)
                runs.append(timeline_run(net, url, label, mode, quality, plan, samples, from_start))
                net.cap(None)
    finally:
        net.cap(None)
        for proc in reversed(processes):
            stop(proc)
        net.remove()
    return {"layers": TIMELINE_LAYERS,
            "layer_kbps": {layer.name: layer.bitrate / 1000 for layer in layer_list(TIMELINE_LAYERS)},
            "schedule": [{"cap_kbit": cap, "seconds": s} for cap, s in schedule],
            "start_cap_kbit": opts.start_cap or None, "start_cap_seconds": opts.start_cap_seconds,
            "runs": runs, "load_before": began_load, "load_after": load()}


def wait_live(samples: LineReader, processes: dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        for name, proc in processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode}; see {LOG_DIR}")
        if samples.lines and (json.loads(samples.lines[-1][1])["summary"] or {}).get("live"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"stream {STREAM!r} not live within {STARTUP_TIMEOUT:g} s; see {LOG_DIR}")


def timeline_run(net: SplitNetwork, url: str, label: str, mode: str, quality: str,
                 schedule: list[tuple[int | None, float]], samples: LineReader, from_start: bool) -> dict:
    """One viewer through ``schedule`` from LEAD s after its first frame; ``from_start``: through its one
    phase, whose cap is on the link before the viewer starts, from the viewer's start."""
    name = f"{label}-from-start" if from_start else label  # its own --name and frame log
    frame_log = LOG_DIR / f"layers-{name}-frames.txt"
    total = sum(seconds for _, seconds in schedule)
    argv = ["view", "--server", url, "--stream", STREAM, "--json", "--ice-host", VIEWER_ADDRESS,
            "--name", name, "--mode", mode, "--quality", quality, "--duration", f"{LEAD + total + 1:g}",
            "--timeout", "20"]
    if from_start:
        net.cap(schedule[0][0])
    launched = time.time()
    proc = subprocess.Popen([*net.prefix(net.viewer_ns), *HELPER, "_viewer", str(frame_log), *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    prioritize(proc.pid)
    stderr = LineReader(proc.stderr)
    try:
        if from_start:  # no wait for a first frame: not getting one is what this run can find
            [(cap, seconds)] = schedule
            t0 = launched
            phases = [{"cap_kbit": cap, "start": t0, "end": t0 + seconds, "from_start": True}]
        else:
            t0 = stderr.wait_for("first frame", STARTUP_TIMEOUT, proc) + LEAD
            phases = []
            at = t0
            for cap, seconds in schedule:
                time.sleep(max(0.0, at - time.time()))
                net.cap(cap)
                phases.append({"cap_kbit": cap, "start": time.time(), "end": at + seconds})
                at += seconds
        time.sleep(max(0.0, phases[-1]["end"] - time.time()))
        net.cap(None)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        stop(proc)
    stderr.join(5)
    summary = None
    if stdout.strip():
        try:
            summary = json.loads(stdout.strip().splitlines()[-1])
        except ValueError:
            summary = None
    events = layer_events(stderr.lines)
    result = {"label": label, "mode": mode, "quality": quality, "from_start": from_start, "t0": t0,
              "summary": summary, "exit_code": proc.returncode,
              "events": [{**e, "t": round(e["time"] - t0, 2)} for e in events],
              "stderr": [f"{t - t0:7.2f} {line}" for t, line in stderr.lines],
              # The raw material, for another look (--reanalyse): the phases' times, this viewer's API
              # samples (Unix times); the frame log stays in bench/results/layers-NAME-frames.txt.
              "raw_phases": phases,
              "samples": viewer_samples(samples.lines, name, launched, phases[-1]["end"] + 1),
              "frame_log": str(frame_log)}
    return analyse_run(result)


# Analysis: figures from a run's raw material -----------------------------------------------------


def analyse_run(run: dict) -> dict:
    """A run's per-phase figures and per-second timeline, from its raw material."""
    if "raw_phases" not in run:  # a file from before they were kept: rebuilt from the phases' times
        run["raw_phases"] = [{"cap_kbit": p["cap_kbit"], "start": run["t0"] + p["start_s"],
                              "end": run["t0"] + p["end_s"]} for p in run["phases"]]
    run.setdefault("from_start", False)  # a file from before the runs capped from the start
    total = round(run["raw_phases"][-1]["end"] - run["t0"], 2)
    frame_log = Path(run.get("frame_log") or LOG_DIR / f"layers-{run['label']}-frames.txt")
    # (arrival, width, height, capture ms, frame number, jitter buffer packets: -1 where not logged)
    frames = [(*(float(v) for v in line.split()[:6]), -1.0)[:6] for line in frame_log.read_text().splitlines()
              if len(line.split()) >= 5]
    kbps = {layer.name: layer.bitrate / 1000 for layer in layer_list(TIMELINE_LAYERS)}
    t0, events, polled, phases = run["t0"], run["events"], run["samples"], run["raw_phases"]
    run["phases"] = [phase_summary(p, i, t0, frames, events, polled, run["mode"], kbps)
                     for i, p in enumerate(phases)]
    run["timeline"] = per_second(t0, total, phases, frames, events, polled)
    return run


def layer_events(lines: list[tuple[float, str]]) -> list[dict]:
    """The viewer's `layer ...` lines: the first (no reason) and every change after it."""
    events = []
    for t, line in lines:
        match = _LAYER_LINE.search(line)
        if match:
            old, new, width, height, jpeg, reason = match.groups()
            events.append({"time": t, "from": old, "layer": new, "width": int(width), "height": int(height),
                           "jpeg_quality": int(jpeg) if jpeg else None, "reason": reason or ""})
    return events


def rendition(event: dict | None) -> str | None:
    if event is None:
        return None
    return event["layer"] + (f" q{event['jpeg_quality']}" if event["jpeg_quality"] else "")


def viewer_samples(lines: list[tuple[float, str]], name: str, start: float, end: float) -> list[dict]:
    """The poller's samples in [start, end): this viewer's entry, and the camera's view of it."""
    out = []
    for _, line in lines:
        sample = json.loads(line)
        if not start <= sample["t"] < end or not sample["summary"]:
            continue
        summary = sample["summary"]
        viewer = next((v for v in summary.get("viewers", []) if v.get("name") == name), None)
        if viewer is None:
            continue
        camera_stats = (summary.get("camera") or {}).get("stats") or {}
        seen = next((v for v in camera_stats.get("viewers", []) if v.get("id") == viewer.get("id")), {})
        out.append({"t": sample["t"], "layer": viewer.get("layer"), "reason": viewer.get("layer_reason"),
                    "stats": viewer.get("stats") or {}, "camera_view": seen,
                    "camera_fps": camera_stats.get("fps"),
                    "relay": {k: (summary.get("relay") or {}).get(k)
                              for k in ("frames_sent", "frames_skipped")}})
    return out


def dropped_frames(frames: list[tuple], mode: str) -> int:
    """P2P: capture frame numbers missing between frames of one size; relay: capture times, in frame
    intervals (its sequence numbers count per rendition)."""
    missing = 0
    for a, b in zip(frames, frames[1:], strict=False):
        if mode == "p2p":
            if a[4] >= 0 and b[4] > a[4]:
                missing += int(b[4] - a[4] - 1)
        elif a[3] >= 0 and b[3] > a[3]:
            missing += max(0, round((b[3] - a[3]) / (1000 / FPS)) - 1)
    return missing


def window_figures(frames: list[tuple], start: float, end: float, mode: str) -> dict:
    inside = [f for f in frames if start <= f[0] < end]
    latencies = sorted(v for v in map(latency_ms, inside) if v is not None)
    seconds = end - start
    # The window's edges count as arrivals: a picture still at its start or end is a gap too.
    arrivals = [start, *(f[0] for f in inside), end]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return {
        "seconds": round(seconds, 2),
        "frames": len(inside),
        "fps": len(inside) / seconds if seconds > 0 else None,
        "latency_p50_ms": percentile(latencies, 0.5) if latencies else None,
        "latency_p95_ms": percentile(latencies, 0.95) if latencies else None,
        "latency_max_ms": latencies[-1] if latencies else None,
        # Frames a second that arrived under TIMELY_MS after capture: video one can watch live.
        "timely_fps": sum(latency < TIMELY_MS for latency in latencies) / seconds if seconds > 0 else None,
        # The longest the picture stood still: the wait between two arrivals.
        "longest_gap_ms": max(gaps) * 1000 if seconds > 0 else None,
        "dropped": dropped_frames(inside, mode),
    }


def fitting_since(start: float, end: float, events: list[dict], cap: int | None, kbps: dict) -> float | None:
    """P2P: from when on, until ``end``, every layer the viewer was on fits ``cap`` (its bitrate at most
    the cap); None when it ends the phase on one that does not."""
    if cap is None:
        return None
    current = [e for e in events if e["time"] < start]
    steps = ([(start, current[-1]["layer"])] if current else []) + [
        (e["time"], e["layer"]) for e in events if start <= e["time"] < end]
    since = None
    for t, layer in reversed(steps):
        if kbps.get(layer, math.inf) > cap:
            break
        since = t
    return since


def phase_summary(phase: dict, index: int, t0: float, frames: list[tuple], events: list[dict],
                  polled: list[dict], mode: str, kbps: dict) -> dict:
    start, end = phase["start"], phase["end"]
    from_start = phase.get("from_start", False)
    first_frame = next((f[0] for f in frames if start <= f[0] < end), None) if from_start else None
    # From the viewer's start nothing counts before its first frame: the wait for it is no gap.
    begins = start if first_frame is None else first_frame
    changes = [e for e in events if e["from"] is not None and start <= e["time"] < end]
    before = [e for e in events if e["time"] < end]
    settled_at = max(begins, changes[-1]["time"]) if changes else begins
    fits_at = fitting_since(start, end, events, phase["cap_kbit"], kbps) if mode == "p2p" else None
    fits_at = None if fits_at is None else max(begins, fits_at)
    after = window_figures(frames, settled_at, end, mode)
    # A report covers the 2 s before it: those from the first 2 s after settling still hold the old rate.
    in_phase = [s for s in polled if settled_at + 2 <= s["t"] < end]
    bitrates = [s["stats"]["bitrate_kbps"] for s in in_phase if s["stats"].get("bitrate_kbps") is not None]
    return {
        "phase": index,
        "cap_kbit": phase["cap_kbit"],
        "from_start": from_start,
        "start_s": round(start - t0, 2),
        "end_s": round(end - t0, 2),
        "first_frame_s": None if first_frame is None else round(first_frame - start, 2),
        "changes": len(changes),
        "first_change_s": round(changes[0]["time"] - start, 2) if changes else None,
        "settle_s": round(settled_at - start, 2),
        # P2P under a cap: from when on it stayed on layers that fit (None: it ended on one that does not).
        "fits_from_s": None if fits_at is None else round(fits_at - start, 2),
        "on_fitting_layers": None if fits_at is None else window_figures(frames, fits_at, end, mode),
        "settled_on": rendition(before[-1]) if before else None,
        "settled_layer": before[-1]["layer"] if before else None,
        "after_settling": after,
        "whole_phase": window_figures(frames, start, end, mode),
        # What issue 22's targets judge: from TARGET_SETTLE_S after the cap (from the start: after the
        # first frame) to the phase's end.
        "after_settle_target": window_figures(frames, min(begins + TARGET_SETTLE_S, end), end, mode),
        # The viewer's own reports (every 2 s) after settling: what it received, kbit/s; and what the
        # rendition would take at the camera's full frame rate (received, scaled by the frames missing).
        "bitrate_kbps_mean": sum(bitrates) / len(bitrates) if bitrates else None,
        "full_rate_kbps": None if not bitrates or not after["fps"]
        else sum(bitrates) / len(bitrates) * FPS / min(FPS, after["fps"]),
        "camera_fps_mean": _mean([s["camera_fps"] for s in polled if start <= s["t"] < end]),
    }


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def per_second(t0: float, total: float, phases: list[dict], frames: list[tuple], events: list[dict],
               polled: list[dict]) -> list[dict]:
    rows = []
    for second in range(int(total)):
        start, end = t0 + second, t0 + second + 1
        phase = next((p for p in phases if p["start"] - 0.5 <= start < p["end"]), phases[-1])
        sample = next((s for s in reversed(polled) if s["t"] < end), None)
        current = [e for e in events if e["time"] < end]
        inside = [f for f in frames if start <= f[0] < end]
        latencies = sorted(v for v in map(latency_ms, inside) if v is not None)
        view = (sample or {}).get("camera_view") or {}
        stats = (sample or {}).get("stats") or {}
        earlier = next((s for s in reversed(polled) if s["t"] < end - 1), None)
        requests = None
        if sample is not None and earlier is not None and "keyframe_requests" in view:
            requests = view["keyframe_requests"] - (earlier["camera_view"] or {}).get("keyframe_requests", 0)
        rows.append({
            "t": second,
            "cap_kbit": phase["cap_kbit"],
            "rendition": rendition(current[-1]) if current else None,
            "frames": len(inside),
            "latency_p50_ms": percentile(latencies, 0.5) if latencies else None,
            "latency_max_ms": latencies[-1] if latencies else None,
            "jitter_buffer_packets_max": max((int(f[5]) for f in inside if f[5] >= 0), default=None),
            "api_layer": (sample or {}).get("layer"),
            "api_fps": stats.get("fps"),
            "api_latency_ms": stats.get("latency_ms"),
            "api_bitrate_kbps": stats.get("bitrate_kbps"),
            "camera_loss_pct": None if view.get("fraction_lost") is None else 100 * view["fraction_lost"],
            "camera_rtt_ms": view.get("rtt_ms"),
            # Keyframe requests (PLI/FIR) the camera got from the viewer since the sample before, and
            # the viewer's REMB estimate: both feed the camera's choice.
            "camera_keyframe_requests": requests,
            "camera_remb_kbps": view.get("bitrate_estimate_kbps"),
            "events": [f"{e['from'] or ''} -> {rendition(e)}: {e['reason']}" if e["from"]
                       else f"start {rendition(e)}" for e in events if start <= e["time"] < end],
        })
    return rows


# Tables ------------------------------------------------------------------------------------------


def print_tables(result: dict) -> None:
    if "skipped" in result:
        print(f"\nTimeline skipped: {result['skipped']}")
        return
    print(f"\nTimeline: --layers {TIMELINE_LAYERS} "
          f"({', '.join(f'{k} {v:g}' for k, v in result['layer_kbps'].items())} kbit/s), the viewer in its "
          f"own namespace behind a token bucket; t = 0 is {LEAD:g} s after its first frame (capped from the "
          "start: the viewer's start). Per second: the "
          "rendition it was on (its stderr), frames it counted and their latency p50 / max (its frame log), "
          "the most RTP packets aiortc's jitter buffer held (JB pkts, of 512; P2P), "
          "then what /api/streams reported (the viewer's 2 s reports: layer, fps, latency median, kbit/s) "
          "and what the camera saw of it (RTCP loss, round trip, keyframe requests since the sample a "
          "second before, REMB kbit/s). "
          f"Load average {result['load_before']} before, {result['load_after']} after.")
    for run in result["runs"]:
        capped = (f", capped at {run['phases'][0]['cap_kbit']} kbit/s from its start" if run["from_start"]
                  else "")
        print(f"\n{run['label']} (--mode {run['mode']} --quality {run['quality']}){capped}:\n")
        columns = ["t s", "cap kbit/s", "rendition", "frames", "latency p50 / max ms", "JB pkts",
                   "API layer", "API fps", "API latency", "API kbit/s", "loss %", "RTT ms", "PLI", "REMB",
                   "events"]
        print("| " + " | ".join(columns) + " |")
        print("|" + "---:|" * (len(columns) - 1) + "---|")
        for r in run["timeline"]:
            print("| " + " | ".join([
                str(r["t"]), cell(r["cap_kbit"], "d", "none"), r["rendition"] or "-", str(r["frames"]),
                f"{cell(r['latency_p50_ms'])} / {cell(r['latency_max_ms'])}",
                cell(r.get("jitter_buffer_packets_max"), "d"), r["api_layer"] or "-",
                cell(r["api_fps"], ".1f"), cell(r["api_latency_ms"]), cell(r["api_bitrate_kbps"]),
                cell(r["camera_loss_pct"]), cell(r["camera_rtt_ms"]),
                cell(r["camera_keyframe_requests"], "d"), cell(r["camera_remb_kbps"]),
                "; ".join(r["events"])]) + " |")
    print_phases(result)


def fitting_figures(window: dict | None) -> str:
    return "-" if not window else f"{cell(window['fps'], '.1f')} / {cell(window['latency_p95_ms'])}"


def print_phases(result: dict) -> None:
    print("\nPer phase: settled on = the rendition at the phase's end; settle = cap change to the last "
          "change in the phase (0: none); \"from start\": the viewer started with the cap on, its times "
          "count from its start, and nothing counts before its first frame (settle: the later of the first "
          "frame and the last change); after settling = from then to the phase's end (fps, timely fps = "
          f"frames a second that arrived under {TIMELY_MS:g} ms after capture, longest gap between two "
          "arrivals or the window's edges, latency, drops from the frame log; kbit/s from the viewer's "
          "reports). Fits from (P2P under a cap): from when on every layer it was on had a bitrate within "
          "the cap, and the figures from then on.\n")
    columns = ["viewer", "cap kbit/s", "first frame s", "changes", "first change s", "settle s", "settled on",
               "window s", "fps", "timely fps", "longest gap ms", "latency p50 / p95 ms", "dropped", "kbit/s",
               "camera fps", "fits from s", "fps / p95 ms on fitting layers"]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for run in result["runs"]:
        for p in run["phases"]:
            w = p["after_settling"]
            print("| " + " | ".join([
                run["label"], cell(p["cap_kbit"], "d", "none") + (" from start" if p["from_start"] else ""),
                cell(p["first_frame_s"], ".1f"), str(p["changes"]),
                cell(p["first_change_s"], ".1f"), cell(p["settle_s"], ".1f"), p["settled_on"] or "-",
                cell(w["seconds"], ".1f"), cell(w["fps"], ".1f"), cell(w["timely_fps"], ".1f"),
                cell(w["longest_gap_ms"]), f"{cell(w['latency_p50_ms'])} / {cell(w['latency_p95_ms'])}",
                str(w["dropped"]),
                cell(p["bitrate_kbps_mean"]), cell(p["camera_fps_mean"], ".1f"),
                cell(p["fits_from_s"], ".1f"), fitting_figures(p["on_fitting_layers"])]) + " |")


# Verdicts ----------------------------------------------------------------------------------------


def judged(target: str, subject: dict | None, judge, *args) -> dict:
    """A verdict: ``judge(subject, *args)`` gives (pass, measured); "not run" without its run or phase."""
    if subject is None:
        return {"target": target, "pass": None, "measured": "not run"}
    passed, measured = judge(subject, *args)
    return {"target": target, "pass": passed, "measured": measured}


def settling(p: dict, mode: str, kbps: dict) -> tuple[bool, str, dict]:
    """Whether a capped phase's viewer settled on a rendition that fits the cap within TARGET_SETTLE_S of
    the cap's arrival (from the start: of its first frame), that in words, and its frames from then on."""
    cap, begins = p["cap_kbit"], p["first_frame_s"] or 0.0
    if mode == "p2p":
        # Settled on a layer that fits = from then on only layers that fit (a later step up that
        # still fits, such as a probe that holds, does not unsettle it).
        since, w = p["fits_from_s"], p["on_fitting_layers"] or p["after_settling"]
        ending = f"{p['settled_on']} ({kbps.get(p['settled_layer'], 0):g} kbit/s)"
        text = (f"on layers within {cap} kbit/s from {since:.1f} s, ending on {ending}" if since is not None
                else f"ended on {ending}")
        settled = since is not None and since - begins <= TARGET_SETTLE_S
    else:  # JPEG sizes are not in the layer list: what it received, scaled to the full frame rate
        w = p["after_settling"]
        text = (f"{p['settled_on']} from {p['settle_s']:.1f} s: {cell(p['bitrate_kbps_mean'])} kbit/s "
                f"received at {cell(w['fps'], '.1f')} fps, so ~{cell(p['full_rate_kbps'])} kbit/s at "
                f"{FPS:g} fps")
        settled = (p["full_rate_kbps"] or math.inf) <= cap and p["settle_s"] - begins <= TARGET_SETTLE_S
    first = f"first frame after {cell(p['first_frame_s'], '.1f')} s, " if p["from_start"] else ""
    changes = (f"{p['changes']} changes, first after {cell(p['first_change_s'], '.1f')} s, last after "
               f"{p['settle_s']:.1f} s")
    return settled, f"{text} ({first}{changes})", w


def settled_in_time(p: dict, mode: str, kbps: dict) -> tuple[bool, str]:
    return settling(p, mode, kbps)[:2]


def settled_rate(p: dict, mode: str, kbps: dict) -> tuple[bool, str]:
    w = settling(p, mode, kbps)[2]
    fps, p95 = w["fps"], w["latency_p95_ms"]
    return (fps is not None and p95 is not None and fps >= TARGET_FPS and p95 < TARGET_P95_MS,
            f"{cell(fps, '.1f')} fps, p95 {cell(p95)} ms over the last {w['seconds']:.1f} s "
            f"({w['dropped']} frames dropped)")


def settled_without_gaps(p: dict, mode: str, kbps: dict) -> tuple[bool, str]:
    settled, text, w = settling(p, mode, kbps)
    gap = w["longest_gap_ms"]
    return (settled and gap is not None and gap <= TARGET_GAP_MS,
            f"{text}; from then on the longest gap {cell(gap)} ms over {w['seconds']:.1f} s")


def keeps_coming(p: dict) -> tuple[bool, str]:
    w = p["after_settle_target"]
    gap, timely = w["longest_gap_ms"], w["timely_fps"]
    return (gap is not None and timely is not None and gap <= TARGET_GAP_MS and timely >= TARGET_FPS,
            f"longest gap {cell(gap)} ms, {cell(timely, '.1f')} timely fps of {cell(w['fps'], '.1f')} "
            f"({w['dropped']} dropped; the camera at {cell(p['camera_fps_mean'], '.1f')} fps) over the last "
            f"{w['seconds']:.1f} s")


def climbed_back(run: dict) -> tuple[bool | None, str]:
    last = run["phases"][-1] if run["phases"] else None
    if last is None or last["cap_kbit"] is not None:
        return None, "no uncapped phase at the end"
    top = next((e for e in run["events"] if e["layer"] == "720p" and e["from"] and e["from"] != "720p"
                and last["start_s"] <= e["t"] < last["end_s"]), None)
    before = [e for e in run["events"] if e["t"] < last["start_s"]]
    was_top = bool(before) and before[-1]["layer"] == "720p"
    climbed = 0.0 if was_top else (top["t"] - last["start_s"] if top else None)
    return (climbed is not None and climbed <= TARGET_CLIMB_S,
            f"after {climbed:.1f} s" if climbed is not None
            else f"not within the {last['end_s'] - last['start_s']:.0f} s phase "
                 f"(ended on {last['settled_on']})")


def verdicts(timeline: dict) -> list[dict]:
    """Issue 11's and issue 22's targets, judged on the timeline's results ("not run" without them)."""
    out = []
    kbps = timeline.get("layer_kbps", {})
    runs = {(run["label"], run["from_start"]): run for run in timeline.get("runs", [])}
    modes = {label: mode for label, mode, _ in RUNS}
    start_cap = timeline.get("start_cap_kbit")

    def phase(run, cap):
        return next((p for p in run["phases"] if p["cap_kbit"] == cap), None) if run else None

    keeps = (f"longest gap <= {TARGET_GAP_MS:g} ms and >= {TARGET_FPS:g} timely fps (under {TIMELY_MS:g} ms "
             "after capture)")
    for label, name in (("auto-p2p", "auto P2P viewer"), ("auto-relay", "auto relay viewer")):
        run, mode = runs.get((label, False)), modes[label]
        capped = phase(run, TARGET_CAP)
        under = f"{name}: under {TARGET_CAP} kbit/s"
        out += [
            judged(f"{under} settles within {TARGET_SETTLE_S:g} s on a layer that fits",
                   capped, settled_in_time, mode, kbps),
            judged(f"{under} >= {TARGET_FPS:g} fps, p95 latency < {TARGET_P95_MS:g} ms (after settling)",
                   capped, settled_rate, mode, kbps),
            judged(f"{name}: climbs back to 720p within {TARGET_CLIMB_S:g} s of the cap's end",
                   run, climbed_back),
            judged(f"{under} mid-stream, from {TARGET_SETTLE_S:g} s after the cap: {keeps}",
                   capped, keeps_coming)]
        if start_cap:
            started = phase(runs.get((label, True)), start_cap)
            capped_from_start = f"{name}: capped at {start_cap} kbit/s from its start"
            out += [
                judged(f"{capped_from_start}, on a layer that fits within {TARGET_SETTLE_S:g} s of its first "
                       f"frame and from then on never more than {TARGET_GAP_MS:g} ms without a frame",
                       started, settled_without_gaps, mode, kbps),
                judged(f"{capped_from_start}, from {TARGET_SETTLE_S:g} s after its first frame: {keeps}",
                       started, keeps_coming)]
    auto = phase(runs.get(("auto-p2p", False)), TARGET_CAP)
    pinned = phase(runs.get(("pinned-720p", False)), TARGET_CAP)
    if auto and pinned:
        a, p = auto["whole_phase"], pinned["whole_phase"]
        worse = (a["timely_fps"] or 0) - (p["timely_fps"] or 0) >= 5
        out.append({"target": f"a viewer pinned to 720p does visibly worse under {TARGET_CAP} kbit/s than "
                              f"auto: 5 fewer frames a second within {TIMELY_MS:g} ms of capture, over the "
                              "whole phase",
                    "pass": worse,
                    "measured": f"pinned {cell(p['timely_fps'], '.1f')} timely fps "
                                f"({cell(p['fps'], '.1f')} fps, "
                                f"p95 {cell(p['latency_p95_ms'])} ms, {p['dropped']} dropped); auto "
                                f"{cell(a['timely_fps'], '.1f')} ({cell(a['fps'], '.1f')} fps, p95 "
                                f"{cell(a['latency_p95_ms'])} ms, {a['dropped']} dropped)"})
    return out


# Chart -------------------------------------------------------------------------------------------


def draw(figure, grid, runs: list[dict]) -> None:
    """One column per run in the top four rows of ``grid``: rendition, fps, latency, kbit/s; caps shaded."""
    heights = {layer.name: layer.height for layer in layer_list(TIMELINE_LAYERS)}
    titles = {"auto-p2p": "auto, P2P", "auto-relay": "auto, relay (JPEG)",
              "pinned-720p": "pinned to 720p, P2P"}
    for column, run in enumerate(runs):
        axes = [figure.add_subplot(grid[row, column]) for row in range(4)]
        rendition_ax, fps_ax, latency_ax, rate_ax = axes
        for phase in run["phases"]:
            if phase["cap_kbit"]:
                for ax in axes:
                    ax.axvspan(phase["start_s"], phase["end_s"], color="tab:red",
                               alpha=0.05 + 0.12 * (1 - phase["cap_kbit"] / 1600))
                rendition_ax.text((phase["start_s"] + phase["end_s"]) / 2, 760, f"{phase['cap_kbit']} kbit/s",
                                  ha="center", fontsize=7)
        timeline = run["timeline"]
        t = [r["t"] + 0.5 for r in timeline]
        steps = [(e["t"], heights.get(e["layer"], 0)) for e in run["events"]]
        if steps:
            end = timeline[-1]["t"] + 1 if timeline else steps[-1][0]
            rendition_ax.step([max(0.0, s) for s, _ in steps] + [end], [h for _, h in steps] + [steps[-1][1]],
                              where="post", color="tab:blue")
            for event in run["events"]:
                if event["jpeg_quality"] and event["from"]:
                    rendition_ax.annotate(f"q{event['jpeg_quality']}",
                                          (max(0, event["t"]), heights[event["layer"]]), fontsize=6,
                                          xytext=(1, -8), textcoords="offset points")
        title = titles.get(run["label"], run["label"])
        if run["from_start"]:
            title += f", {run['phases'][0]['cap_kbit']} kbit/s from its start"
        rendition_ax.set(title=title, ylabel="layer (height)",
                         ylim=(100, 820), yticks=sorted(heights.values()))
        fps_ax.plot(t, [r["frames"] for r in timeline], color="tab:green", label="frames in each second")
        fps_ax.axhline(TARGET_FPS, color="grey", linestyle=":", linewidth=0.8, label=f"{TARGET_FPS:g} fps")
        fps_ax.set(ylabel="fps", ylim=(0, 33))
        latency_ax.plot(t, [r["latency_p50_ms"] for r in timeline], color="tab:purple", label="p50")
        latency_ax.plot(t, [r["latency_max_ms"] for r in timeline], color="tab:purple", alpha=0.4,
                        linewidth=0.8, label="max")
        latency_ax.axhline(TARGET_P95_MS, color="grey", linestyle=":", linewidth=0.8, label="300 ms")
        latency_ax.set(ylabel="latency ms (each second)", yscale="log")
        rate_ax.plot(t, [r["api_bitrate_kbps"] for r in timeline], color="tab:orange",
                     label="received (report)")
        rate_ax.step(t, [r["cap_kbit"] or math.nan for r in timeline], where="mid", color="tab:red",
                     linewidth=0.8, label="cap")
        rate_ax.set(ylabel="kbit/s", xlabel="s", yscale="log")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.set_xlim(0, (timeline[-1]["t"] + 1) if timeline else 1)
        if column == 0:
            for ax in (fps_ax, latency_ax, rate_ax):
                ax.legend(fontsize=7, loc="lower left")
