"""Usage: python3 -m bench.standards [--parts cpu,join] [--viewers 1,8,32] [--seconds 8] [--warmup 1.5]
                                [--procs 2] [--bitrate 2500] [--joins 12]
                                [--json bench/results/standards.json]

The standard clients (docs/standards.md), measured on this machine, on loopback only.

cpu: what an RTSP camera costs the camera peer. A real RTSP camera (gst-rtsp-server,
tests/support/rtspcamera.py) serves a 1920x1080@30 H.264 clip (ffmpeg's testsrc2, x264
Constrained Baseline at --bitrate kbit/s, a keyframe a second) as it is. In turn:

- passthrough: ``peercam camera --source rtsp://...``: the camera's pictures go out as
  they came;
- baseline: the same camera with ``--no-passthrough --codec h264 --bitrate B``: decoded
  and encoded again (x264 veryfast, one thread), as a camera without passthrough does.

Each serves N P2P viewers (bench/fanout.py's: light viewers that keep aiortc's whole
receive path but decode nothing, and one decoding viewer per worker process, at nice 10),
a row per N, viewers joining incrementally. Per row: the camera's CPU (% of one core,
/proc), the frame rate its viewers got, and the machine's busy share. The ratio is the
baseline's CPU over passthrough's in the same run. The clip is easy content: a real
camera's costs more to encode, and the same to pass through.

join: what passing through costs a joining viewer. A passthrough camera cannot make a
keyframe on request, so a viewer starts at the source's next one. For an RTSP camera
(640x360@30, live x264) with a keyframe every 1 s and every 2 s, --joins viewers (the
library's watch(), P2P) join one at a time at random moments; each one's time from
watch() to its first decoded frame. baseline: the same camera --no-passthrough, which
encodes a keyframe at once for each joiner.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from peercam.peers.ice import IceOptions

import peercam
from bench.fanout import Camera, run_camera
from bench.harness import (
    ROOT,
    free_port,
    print_verdicts,
    start_peercam,
    stop,
    wait_until_live,
    write_json,
)
from tests.support.rtspcamera import RtspCamera, rtsp_camera_available

LOG_DIR = ROOT / "bench" / "results"
#: The clip outlasts every row of both cameras (each RTSP client gets it from its start).
CLIP_SECONDS = 150
#: The passthrough camera's CPU at 32 viewers, against the baseline's in the same run.
TARGET_RATIO = 3.0


def make_clip(bitrate_kbps: int) -> Path:
    """The 1080p clip, made once per bitrate (about 30 s of CPU)."""
    path = LOG_DIR / f"standards-1080p-{bitrate_kbps}k.mkv"
    if not path.exists():
        print(f"making {path.name} ...", file=sys.stderr, flush=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part.mkv")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=1920x1080:rate=30", "-t", str(CLIP_SECONDS), "-c:v", "libx264",
                        "-preset", "veryfast", "-tune", "zerolatency",
                        "-profile:v", "baseline", "-g", "30", "-bf", "0", "-b:v", f"{bitrate_kbps}k",
                        "-maxrate", f"{bitrate_kbps}k", "-bufsize", f"{bitrate_kbps}k", str(partial)],
                       check=True)
        partial.rename(path)
    return path


def cpu_rows(opts: argparse.Namespace) -> dict[str, list[dict]]:
    clip = make_clip(opts.bitrate)
    port = free_port()
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port),
                            "--max-connections-per-address", str(max(opts.viewers) + 10)],
                           LOG_DIR / "standards-server.log", own_session=True)
    rows: dict[str, list[dict]] = {}
    try:
        transcode = ("--no-passthrough", "--codec", "h264", "--bitrate", str(opts.bitrate))
        for name, flags in (("passthrough", ()), ("baseline", transcode)):
            with RtspCamera(file=str(clip)) as rtsp:
                camera = Camera(name, f"rtsp-{name}", opts.viewers, stops_when_saturated=False,
                                flags=("--source", rtsp.url, "--layers", "1080p", *flags))
                rows[name] = run_camera(camera, opts, port, server)
    finally:
        stop(server)
    return rows


def cpu_verdicts(rows: dict[str, list[dict]]) -> list[dict]:
    ours = {row["viewers"]: row for row in rows["passthrough"]}
    theirs = {row["viewers"]: row for row in rows["baseline"]}
    most = max(set(ours) & set(theirs), default=None)
    if most is None:
        return [{"target": "passthrough CPU", "pass": None, "measured": "no rows"}]
    ratio = theirs[most]["camera_cpu_pct"] / max(ours[most]["camera_cpu_pct"], 0.1)
    return [{
        "target": f"RTSP camera CPU with {most} viewers at least {TARGET_RATIO:g}x lower passed through "
                  "than decoded and encoded",
        "pass": ratio >= TARGET_RATIO and ours[most]["fps_min"] >= 0.9 * 30,
        "measured": f"{ours[most]['camera_cpu_pct']:.0f}% vs {theirs[most]['camera_cpu_pct']:.0f}% of a core "
                    f"({ratio:.1f}x); viewers' lowest {ours[most]['fps_min']:.1f} fps vs "
                    f"{theirs[most]['fps_min']:.1f}",
    }]


def print_cpu(rows: dict[str, list[dict]], opts: argparse.Namespace) -> None:
    print(f"\nRTSP camera, 1920x1080@30 H.264 at {opts.bitrate} kbit/s: the camera peer's CPU (% of one "
          f"core) with N P2P viewers, {opts.seconds:g} s per row. passthrough: the camera's pictures as "
          "they came; baseline: decoded and encoded again (--no-passthrough --codec h264). fps: the "
          "viewers' lowest / average. Machine: busy share of all cores.\n")
    print("| viewers | passthrough CPU | baseline CPU | ratio | passthrough fps | baseline fps | "
          "machine busy (passthrough / baseline) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    theirs = {row["viewers"]: row for row in rows.get("baseline", [])}
    for ours in rows.get("passthrough", []):
        other = theirs.get(ours["viewers"])
        cells = [str(ours["viewers"]), f"{ours['camera_cpu_pct']:.0f}%",
                 f"{other['camera_cpu_pct']:.0f}%" if other else "-",
                 f"{other['camera_cpu_pct'] / max(ours['camera_cpu_pct'], 0.1):.1f}x" if other else "-",
                 f"{ours['fps_min']:.1f} / {ours['fps_avg']:.1f}",
                 f"{other['fps_min']:.1f} / {other['fps_avg']:.1f}" if other else "-",
                 f"{ours['machine_cpu_pct']:.0f}% / "
                 + (f"{other['machine_cpu_pct']:.0f}%" if other else "-")]
        print("| " + " | ".join(cells) + " |")


async def first_frame_times(url: str, stream: str, joins: int) -> list[float]:
    """Milliseconds from watch() to the first decoded frame, for viewers that join one at a
    time, each after a random pause (so they land anywhere in the source's GOP)."""
    times = []
    for _ in range(joins):
        await asyncio.sleep(random.uniform(0.2, 1.3))
        started = time.monotonic()
        async with peercam.watch(url, stream, mode="p2p", ice=IceOptions(servers=[], hosts=["127.0.0.1"]),
                                 audio=False) as viewer:
            await anext(viewer.frames())
            times.append((time.monotonic() - started) * 1000)
    return times


def join_rows(opts: argparse.Namespace) -> list[dict]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port)],
                           LOG_DIR / "standards-join-server.log", own_session=True)
    rows = []
    try:
        for gop_seconds in (1, 2):
            row = {"gop_seconds": gop_seconds}
            with RtspCamera(gop=30 * gop_seconds) as rtsp:
                transcode = ["--no-passthrough", "--codec", "h264"]
                for name, flags in (("passthrough", []), ("baseline", transcode)):
                    stream = f"join-{name}-{gop_seconds}"
                    camera = start_peercam(["camera", "--server", url, "--stream", stream, "--source",
                                            rtsp.url, "--layers", "360p", "--ice-host", "127.0.0.1", *flags],
                                           LOG_DIR / f"standards-{stream}.log", own_session=True)
                    try:
                        wait_until_live(port, stream, {"server": server, "camera": camera}, 30, LOG_DIR)
                        print(f"join: {name}, a keyframe every {gop_seconds} s ...", file=sys.stderr,
                              flush=True)
                        row[name] = sorted(asyncio.run(first_frame_times(url, stream, opts.joins)))
                    finally:
                        stop(camera)
            rows.append(row)
    finally:
        stop(server)
    return rows


def _p(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


def print_join(rows: list[dict], opts: argparse.Namespace) -> None:
    print(f"\nJoining an RTSP camera (640x360@30): ms from watch() to the first decoded frame, {opts.joins} "
          "viewers joining one at a time at random moments. passthrough: the viewer waits for the source's "
          "next keyframe; baseline: --no-passthrough, a keyframe encoded for each joiner.\n")
    print("| keyframe every | passthrough p50 / p95 / max | baseline p50 / p95 / max | p50 difference |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        ours, theirs = row["passthrough"], row["baseline"]
        cells = [f"{row['gop_seconds']} s", *(f"{statistics.median(v):.0f} / {_p(v, 0.95):.0f} / {max(v):.0f}"
                                             for v in (ours, theirs)),
                 f"+{statistics.median(ours) - statistics.median(theirs):.0f} ms"]
        print("| " + " | ".join(cells) + " |")


def join_verdicts(rows: list[dict]) -> list[dict]:
    """A joiner waits at most one GOP more than with a keyframe on request."""
    verdicts = []
    for row in rows:
        ours, theirs = row["passthrough"], row["baseline"]
        extra = max(ours) - statistics.median(theirs)
        verdicts.append({
            "target": f"a viewer joining a passthrough camera (keyframe every {row['gop_seconds']} s) waits "
                      "at most one keyframe interval longer than with a keyframe on request",
            "pass": extra <= row["gop_seconds"] * 1000 + 150,
            "measured": f"slowest join {max(ours):.0f} ms, baseline p50 {statistics.median(theirs):.0f} ms",
        })
    return verdicts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="cpu,join", help="comma-separated: cpu, join")
    parser.add_argument("--viewers", default="1,8,32", help="viewer counts, one row each")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=1.5,
                        help="seconds after the joins, before each window")
    parser.add_argument("--procs", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--bitrate", type=int, default=2500, help="the RTSP camera's bitrate, kbit/s")
    parser.add_argument("--joins", type=int, default=12, help="viewers joining, per camera and GOP")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "standards.json", help="where the results go")
    opts = parser.parse_args()
    opts.parts = opts.parts.split(",")
    opts.viewers = [int(n) for n in opts.viewers.split(",")]
    opts.width, opts.height, opts.fps = 1920, 1080, 30.0  # what bench.fanout's rows count against
    return opts


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if not rtsp_camera_available():
        sys.exit("standards: gst-rtsp-server is missing (apt-get install python3-gi "
                 "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
    started = time.monotonic()
    results: dict = {}
    verdicts: list[dict] = []
    try:
        if "cpu" in opts.parts:
            results["cpu"] = cpu_rows(opts)
            print_cpu(results["cpu"], opts)
            verdicts += cpu_verdicts(results["cpu"])
        if "join" in opts.parts:
            results["join"] = join_rows(opts)
            print_join(results["join"], opts)
            verdicts += join_verdicts(results["join"])
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except RuntimeError as exc:
        sys.exit(f"standards: {exc}")
    print_verdicts(verdicts)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s")
    write_json(opts.json, opts, {**results, "verdicts": verdicts, "wall_seconds": round(wall, 1)})


if __name__ == "__main__":
    main()
