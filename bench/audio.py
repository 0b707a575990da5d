"""Usage: python3 -m bench.audio [--parts cpu,latency,loss] [--viewers 1,8,32,64] [--seconds 8]
                             [--warmup 1.5] [--procs 2] [--json bench/results/audio.json]

Sound benchmark. Three parts, each with its own table:

- cpu: one 640x480@30 VP8 test-pattern camera with N P2P viewers (bench/fanout.py's
  method and viewers), twice: the baseline without sound (``--audio none``), then with the
  test tone (``--audio tone``, Opus 48 kbit/s mono), its light viewers receiving the sound
  too. Camera CPU at each N, what sound adds at each N, and per added viewer (the slopes'
  difference): the camera encodes the sound once, so a viewer should cost only its
  packets' SRTP and sends.
- latency: mouth-to-ear (capture to decoded samples) and the A/V offset (the sound's
  latency minus the picture's, both read from the test tone's and the test pattern's own
  time codes, on one clock) for the CLI viewer on P2P and the encoded relay, and for the
  player page in headless Chromium on both.
- loss: a CLI viewer of a 720p,480p,360p,180p camera with sound behind a cap that follows
  bench/layers.py's schedule, in network namespaces (root): the share of sound packets
  lost in each phase while the video steps down.

Targets: mouth-to-ear p50 <= 60 ms on loopback; |A/V offset| p95 <= 30 ms on every path;
sound loss under 1% in the 300 kbit/s phase. Wrap runs in ``flock /tmp/peercam-cpu.lock``:
other runs on the machine skew CPU figures.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from bench.fanout import Camera, per_viewer_cost, run_camera
from bench.harness import ROOT, free_port, print_verdicts, start_peercam, stop, write_json

LOG_DIR = ROOT / "bench" / "results"
PARTS = ("cpu", "latency", "loss")
#: The targets.
TARGET_MOUTH_TO_EAR_P50_MS = 60.0
TARGET_AV_OFFSET_P95_MS = 30.0
TARGET_LOSS_PCT = 1.0


# cpu ------------------------------------------------------------------------------------------


def cpu_part(opts: argparse.Namespace) -> dict:
    port = free_port()
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port),
                            "--max-connections-per-address", str(max(opts.viewers) + 10)],
                           LOG_DIR / "audio-server.log", own_session=True)
    cameras = [Camera("no sound", "audio-baseline", opts.viewers, stops_when_saturated=False, audio="none"),
               Camera("sound", "audio-tone", opts.viewers, stops_when_saturated=False, audio="tone")]
    rows: dict[str, list[dict]] = {}
    try:
        for camera in cameras:
            rows[camera.name] = run_camera(camera, opts, port, server)
    finally:
        stop(server)
    costs = {name: per_viewer_cost(camera_rows) for name, camera_rows in rows.items()}
    return {"rows": rows, "per_viewer_cost": costs}


def print_cpu(result: dict, opts: argparse.Namespace) -> None:
    rows = result["rows"]
    base = {r["viewers"]: r for r in rows["no sound"]}
    print(f"\nSound on the camera: a 640x480@30 VP8 test-pattern camera with N P2P viewers, without sound "
          f"(baseline) and with the test tone (Opus 48 kbit/s mono, every viewer receiving it); "
          f"{opts.seconds:g} s measured per row. CPU in % of one core.\n")
    print("| viewers | camera CPU, baseline | camera CPU, sound | sound adds | video fps min (sound) "
          "| sound packets/s min |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows["sound"]:
        other = base.get(row["viewers"])
        added = "-" if other is None else f"{row['camera_cpu_pct'] - other['camera_cpu_pct']:+.1f}"
        packets = row.get("audio_packets_per_s_min")
        baseline = "-" if other is None else f"{other['camera_cpu_pct']:.1f}%"
        print(f"| {row['viewers']} | {baseline} | {row['camera_cpu_pct']:.1f}% | {added} "
              f"| {row['fps_min']:.1f} | {'-' if packets is None else f'{packets:.0f}'} |")
    costs = result["per_viewer_cost"]
    ours, theirs = costs["sound"]["cpu_pct_per_viewer"], costs["no sound"]["cpu_pct_per_viewer"]
    if ours is not None and theirs is not None:
        print(f"\nCPU per added viewer: baseline {theirs:.3f}%, with sound {ours:.3f}%: sound adds "
              f"{ours - theirs:+.3f}% of a core per viewer ({ours / theirs if theirs else float('inf'):.2f}x "
              "the baseline)")


# main -----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which parts to run: {', '.join(PARTS)}")
    parser.add_argument("--viewers", default="1,8,32,64", help="cpu: viewer counts, one row each")
    parser.add_argument("--seconds", type=float, default=8.0, help="cpu: measured window per row")
    parser.add_argument("--warmup", type=float, default=1.5,
                        help="cpu: seconds after the joins, before each window")
    parser.add_argument("--procs", type=int, default=2, help="cpu: viewer worker processes")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "audio.json", help="where the results go")
    opts = parser.parse_args()
    opts.parts = [part for part in opts.parts.split(",") if part]
    unknown = set(opts.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    opts.viewers = [int(n) for n in opts.viewers.split(",")]
    opts.width, opts.height, opts.fps = 640, 480, 30.0  # bench/fanout.py's summaries read them
    return opts


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    results: dict = {}
    verdicts: list[dict] = []
    try:
        if "cpu" in opts.parts:
            results["cpu"] = cpu_part(opts)
            print_cpu(results["cpu"], opts)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except RuntimeError as exc:
        sys.exit(f"audio: {exc}")
    if verdicts:
        print_verdicts(verdicts)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s")
    write_json(opts.json, opts, {**results, "verdicts": verdicts, "wall_seconds": round(wall, 1)})


if __name__ == "__main__":
    main()
