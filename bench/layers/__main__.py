"""Usage: python3 -m bench.layers [--parts cpu,timeline,switch,fanout] [--quick]
                             [--autogroup-nice N] [--encoder-threads default,N]
                             [--schedule CAP:SECONDS,...] [--start-cap KBIT]
                             [--json bench/results/layers.json] [--svg FILE] [--reanalyse FILE]

Quality layers (issue 11): what each layer costs the camera, how `auto` follows a
bandwidth cap, and how long a manual switch leaves the picture still. A 1280x720@30 VP8
test-pattern camera, in four parts (--parts picks some):

cpu: the camera with --layers 720p,480p,360p,240p on 127.0.0.1 and 8 P2P viewers spread
  over 1, 2, 3 and 4 layers with `quality` in their watch (8 on 720p; 4+4; 3/3/2;
  2/2/2/2), plus a row with no viewer (capture only). The viewers are bench/fanout.py's
  light viewers (aiortc's whole receive path, RTCP included, but no decoding) in one
  worker process at nice 10, so they do not take the CPU the camera needs. Per row,
  over --seconds after a warm-up: the camera's CPU (% of one core, /proc/PID/stat, all
  its threads), each layer's encode ms (the camera's own moving average, wall time of
  colour conversion and encoding, GIL waits included: the mean of its reports in the
  window) and encoded fps (its frames_encoded over the window), the viewers' fps.
  --encoder-threads adds a series per entry: "default" is peercam as it is (one thread
  per layer's encoder, since libvpx's thread per core made parallel layers fight), a
  number runs the same camera with that many threads per VP8 encoder (set from outside,
  an experiment).

timeline: two network namespaces (tests/support/netns.py): the server and a camera with
  --layers 720p,480p,360p,180p in one, the viewer in the other behind a tc token bucket
  on the camera's end of the link. Three runs, one viewer each, through the cap
  schedule (--schedule; by default no cap 10 s, 1500 kbit/s 15 s, 600 15 s, 300 15 s,
  no cap 25 s), from 2 s after its first frame, so each cap arrives mid-stream:
    - `peercam view --quality auto` (P2P; the camera moves it between layers),
    - `peercam view --mode relay --quality auto` (the server moves it between layer and
      JPEG quality renditions),
    - `peercam view --quality 720p` (P2P, pinned: the comparison).
  Then the same viewers again, each started while a cap is already on the link
  (--start-cap, 600 kbit/s by default; 0 skips these runs), measured for one phase of
  15 s (--quick: 10) from the viewer's start, "600 from start" in the tables (issue 22:
  an auto P2P viewer froze there). Its timeline's t = 0 is the viewer's start.
  The viewer is the real CLI (`peercam.cli.main`) with hooks that only watch: each frame
  it counts (FrameStats.add) is also written to a log, capture time and frame number
  included, so per-phase fps and latency are exact, with how many RTP packets aiortc's
  video jitter buffer holds. Once a second a poller inside the camera's namespace reads
  /api/streams/NAME: the viewer's reported layer, fps, latency and bitrate (its stats
  report every 2 s; latency there is the median of its last 30 frames, so it stands
  still while no frame arrives), and what the camera sees of it (RTCP loss, round
  trip, keyframe requests, REMB). Layer changes and their reasons come from the
  viewer's stderr, timed as they are printed (the `layer` message rides the capped
  link's signaling socket, so it can come a second after the API shows the change).
  Per phase: the rendition it settled on, time to settle (cap change to the last
  change in the phase; 0 when nothing changed), then over the rest of the phase fps,
  timely fps (frames a second that arrived under 1 s after capture, by the test
  pattern's capture time), the longest gap (ms between two arrivals, the window's edges
  counting as arrivals: the longest the picture stood still), latency p50/p95 and
  dropped frames (P2P: gaps in capture frame numbers; relay: gaps in capture times, as
  relay sequence numbers count per rendition). Capped from the start, times count from
  the viewer's start, the time to its first frame is reported, and nothing before that
  frame counts (the wait for it is no gap; settling is at that frame at the earliest).
  For P2P also "fits from": from when on every layer it was on had a bitrate within the
  cap (the settle verdict uses it: a later step up that still fits does not unsettle
  it); for the relay, the bitrate its rendition would take at 30 fps (received, scaled
  by the frames missing).

switch: manual switches, 720p -> 360p -> 720p, --switches times each way, on P2P and the
  relay, with the layer switched to already running for another viewer ("warm": two
  light viewers or relay readers hold 720p and 360p) or not ("cold": it starts on the
  request); P2P again for each --encoder-threads experiment. The viewer is
  peers.viewer.Viewer in a worker process; it sends the signaling `quality` message, as
  the page's menu does. Each frame's test-pattern stamp is read
  (P2P: from the decoded frame, as the CLI does; relay: this bench decodes the JPEG).
  Per switch: the request to the first frame of the new size ("switch ms"), the gap
  between the last frame of the old size and the first of the new (ms, and capture
  frame numbers skipped: 0 means none, -1 that the new size starts with the frame the
  old one ended on, less that the picture goes back), and how old both pictures were.

fanout: bench/fanout.py's small rows (--viewers 1,8,32 --baseline-viewers 1,4
  --seconds 5): the per-viewer CPU advantage over the baseline, against the figures in
  docs/benchmarks.md, "P2P fan-out" (0.45% vs 16.6% per viewer, 37x). With --autogroup-nice its slope is taken
  over the rows at >= 27 fps, whatever the machine's other programs used.

Targets (verdicts, not assertions), from issue 11: under 600 kbit/s the auto P2P viewer
settles within 5 s on a layer that fits, keeps >= 24 fps and p95 latency < 300 ms; after
the cap is lifted it climbs back to 720p within 20 s; a viewer pinned to 720p does
visibly worse under the same cap (5 more frames a second under 1 s old for auto). From
issue 22: capped from its start, the auto viewer is on a layer that fits within 5 s of
its first frame and from then on never goes more than 1 s without a frame; under 600
kbit/s, mid-stream and from the start, from 5 s after the cap (from the start: after
the first frame) its longest gap is <= 1000 ms and it gets >= 24 timely fps. The relay
viewer is judged by all but the pinned comparison. Prints tables, writes --json and
draws --svg (timelines with the caps shaded, one column per run, those capped from the
start included; camera CPU and encode ms per active layers, switch gaps). The timeline
needs root (network namespaces); without it that part is skipped, saying why.
--reanalyse FILE measures nothing: it recomputes the figures, verdicts and chart from a
results file and the frame logs beside it (after a change to this analysis, or to look
again).

Run it under `flock /tmp/peercam-cpu.lock` on a machine otherwise idle; the load average
at the start and end of each part is in the JSON. On a machine that other sessions keep
busy, --autogroup-nice -10 (root) gives the sessions it starts (server, camera,
viewers) precedence: with autogroup scheduling a process's nice counts only inside its
own session. It sets $PEERCAM_BENCH_AUTOGROUP_NICE (bench/harness.py), which any
benchmark honours.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from bench.harness import AUTOGROUP_NICE_ENV, cores, print_verdicts, write_json
from bench.layers import cpu, fanout, switch, timeline
from bench.layers.shared import FPS, HEIGHT, LOG_DIR, WIDTH, load, threaded_camera


def verdicts(results: dict) -> list[dict]:
    """Every part's verdicts: the timeline's ("not run" where it did not run), the fan-out's."""
    return timeline.verdicts(results.get("timeline") or {}) + fanout.verdicts(results.get("fanout") or {})


def draw(results: dict, path: Path) -> None:
    """Timelines (one column per run: rendition, fps, latency, kbit/s; caps shaded) over camera CPU per
    active layers and the switch gaps."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    runs = (results.get("timeline") or {}).get("runs", [])
    columns = max(1, len(runs))
    figure = plt.figure(figsize=(5 * max(3, columns), 15))
    grid = figure.add_gridspec(5, max(3, columns), height_ratios=[1, 1, 1, 1, 1.3])
    timeline.draw(figure, grid, runs)
    cpu.draw(figure.add_subplot(grid[4, 0]), figure.add_subplot(grid[4, 1]), results.get("cpu") or {})
    switch.draw(figure.add_subplot(grid[4, 2]), results.get("switch") or {})
    figure.suptitle(f"peercam quality layers, {WIDTH}x{HEIGHT}@{FPS:g} VP8 test pattern on {cores()} cores, "
                    f"{time.strftime('%Y-%m-%d')}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench.layers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="cpu,timeline,switch,fanout",
                        help="which parts to run: cpu, timeline, switch, fanout")
    parser.add_argument("--quick", action="store_true",
                        help="shorter windows, a shorter schedule, the auto P2P run only, fewer switches")
    parser.add_argument("--seconds", type=float, help="cpu: measured window per row (default 10; quick 4)")
    parser.add_argument("--cpu-warmup", type=float, default=3.0, help="cpu: seconds after the joins")
    parser.add_argument("--encoder-threads",
                        help="cpu: a series of rows per entry: 'default' is peercam as it is (one thread "
                             "per layer's encoder), a number runs the camera with that many threads per "
                             "encoder, an experiment (default: default)")
    parser.add_argument("--schedule",
                        help=f"timeline: CAP:SECONDS,... (default {timeline.SCHEDULE}; "
                             f"quick {timeline.QUICK_SCHEDULE})")
    parser.add_argument("--timeline-runs", type=int, help="timeline: the first N of auto-p2p, auto-relay, "
                                                          "pinned-720p (default 3; quick 1)")
    parser.add_argument("--start-cap", type=int, default=timeline.TARGET_CAP, metavar="KBIT",
                        help=f"timeline: the same viewers again, each started behind this cap and measured "
                             f"for {timeline.START_CAP_SECONDS:g} s (quick "
                             f"{timeline.QUICK_START_CAP_SECONDS:g}); 0 skips them "
                             f"(default {timeline.TARGET_CAP})")
    parser.add_argument("--switches", type=int,
                        help="switch: round trips 720p -> 360p -> 720p (default 5; quick 2)")
    parser.add_argument("--dwell", type=float, default=3.0, help="switch: seconds on each layer")
    parser.add_argument("--autogroup-nice", type=int, metavar="N",
                        help="run the server, camera and viewers in sessions at this autogroup nice "
                             "(-20..19; root): on a machine that other sessions keep busy, -10 gives the "
                             "processes under test the CPU they ask for (light viewers get N + 10)")
    parser.add_argument("--reanalyse", type=Path, metavar="FILE",
                        help="measure nothing: figures, verdicts and chart again from a results file (the "
                             "timeline's frame logs must still be in bench/results)")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "layers.json", help="where the results go")
    parser.add_argument("--svg", type=Path, help="the chart (default: --json's name with .svg)")
    opts = parser.parse_args()
    opts.parts = [p.strip() for p in opts.parts.split(",") if p.strip()]
    unknown = set(opts.parts) - {"cpu", "timeline", "switch", "fanout"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    opts.seconds = opts.seconds or (4.0 if opts.quick else 10.0)
    threads = opts.encoder_threads or "default"
    opts.encoder_threads = [None if t.strip() == "default" else int(t) for t in threads.split(",")]
    opts.schedule = opts.schedule or (timeline.QUICK_SCHEDULE if opts.quick else timeline.SCHEDULE)
    opts.timeline_runs = opts.timeline_runs or (1 if opts.quick else 3)
    opts.start_cap_seconds = timeline.QUICK_START_CAP_SECONDS if opts.quick else timeline.START_CAP_SECONDS
    opts.switches = opts.switches or (2 if opts.quick else 5)
    opts.svg = opts.svg or opts.json.with_suffix(".svg")
    return opts


def report(results: dict, opts: argparse.Namespace) -> list[dict]:
    """Print each part's tables and the verdicts; returns the verdicts."""
    printers = {"cpu": cpu.print_tables, "timeline": lambda r, _: timeline.print_tables(r),
                "switch": lambda r, _: switch.print_tables(r), "fanout": lambda r, _: None}
    for part, result in results.items():
        if "error" not in result:
            printers[part](result, opts)
    results_verdicts = verdicts(results)
    print_verdicts(results_verdicts)
    return results_verdicts


def reanalyse(opts: argparse.Namespace) -> None:
    """Figures, verdicts and chart again from a results file (and the timeline's frame logs beside it)."""
    stored = json.loads(opts.reanalyse.read_text())
    measured_with = stored["config"]
    for key in ("seconds", "cpu_warmup"):
        setattr(opts, key, measured_with.get(key, getattr(opts, key)))
    results = {part: stored[part] for part in ("cpu", "timeline", "switch", "fanout") if part in stored}
    for run in (results.get("timeline") or {}).get("runs", []):
        timeline.analyse_run(run)
    results_verdicts = report(results, opts)
    write_json(opts.json, opts, {**results, "verdicts": results_verdicts, "measured_with": measured_with,
                                 "reanalysed_from": str(opts.reanalyse),
                                 "wall_seconds": stored.get("wall_seconds")})
    draw(results, opts.svg)
    print(f"wrote {opts.svg}")


def main() -> None:
    # The helpers the parts start as subprocesses (shared.HELPER).
    if len(sys.argv) > 2 and sys.argv[1] == "_viewer":
        timeline.logged_viewer(sys.argv[2], sys.argv[3:])
        return
    if len(sys.argv) > 3 and sys.argv[1] == "_camera":
        threaded_camera(int(sys.argv[2]), sys.argv[3:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "_poll":
        timeline.poll(sys.argv[2])
        return
    opts = parse_args()
    if opts.reanalyse:
        reanalyse(opts)
        return
    if opts.autogroup_nice is not None:
        os.environ[AUTOGROUP_NICE_ENV] = str(opts.autogroup_nice)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"load average at the start: {load()}", file=sys.stderr)
    measures = {"cpu": cpu.measure, "timeline": timeline.measure, "switch": switch.measure,
                "fanout": fanout.measure}
    results: dict = {}
    failed = []
    try:
        for part in opts.parts:
            try:
                results[part] = measures[part](opts)
            except RuntimeError as exc:
                print(f"layers: {part}: {exc}", file=sys.stderr)
                results[part] = {"error": str(exc)}
                failed.append(part)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    results_verdicts = report(results, opts)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s; load average at the end: {load()}")
    write_json(opts.json, opts, {**results, "verdicts": results_verdicts, "wall_seconds": round(wall, 1)})
    draw(results, opts.svg)
    print(f"wrote {opts.svg}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
