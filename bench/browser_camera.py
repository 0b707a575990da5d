"""Usage: python3 -m bench.browser_camera [--viewers 1,2,4,6,8] [--seconds 8] [--warmup 3]
                                     [--procs 2] [--json bench/results/browser_camera.json]

Browser camera benchmark: how many P2P viewers a browser camera (/publish/NAME) serves at
full rate on this machine, against the Python camera on the same machine and in the same run.

Starts a signaling server on 127.0.0.1, then in turn:

- browser: headless Debian Chromium (/usr/bin/chromium through Playwright, tests/support/chromium.py's
  arguments plus the fake camera at 30 fps and no permission prompts) opens
  ``/publish/NAME?source=camera&autostart=1&resolution=480p&fps=30&max_viewers=M`` (M above the
  largest N, so no viewer is sent to the relay). The fake camera is 16:9, so the page
  publishes 854x480@30 VP8, one layer; each P2P viewer is one more VP8 encoder in Chromium.
- python: ``peercam camera`` (test pattern, 640x480@30 VP8, encoded once for all viewers).

For each camera, N viewers join incrementally (--viewers; those of a row stay for the next)
through bench/fanout.py's ViewerPool: aiortc viewers in --procs worker processes at nice 10,
the first in each worker decoding, the others counting reassembled frames without decoding.
Per row, over a --seconds window after a --warmup:

- fps min / avg: frames each viewer got in the window;
- camera CPU: % of one core. The browser's is the sum over Chromium's process tree (browser,
  renderer, GPU/utility processes: the descendants of this script whose name or command line
  is chromium, from /proc), Playwright's driver excluded; the Python camera's is its process;
- viewers, server, and the machine's busy share (the viewers share the cores with the camera).

CPU per added viewer: least-squares slope of camera CPU over N, over the rows where every
viewer got at least 27 fps. Verdict: the largest N up to which every viewer got >= 29 fps
("viewers at full rate"), for each camera; the page's default cap (4, web/js/publish.js)
should be within the browser camera's. Wrap measurement runs in
``flock /tmp/peercam-cpu.lock``: other runs on the machine skew CPU figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.fanout import LOG_DIR, STARTUP_TIMEOUT, ViewerPool, summarize
from bench.harness import (
    CLOCK_TICKS,
    cpu_percent,
    free_port,
    least_squares_slope,
    machine_busy_seconds,
    print_verdicts,
    sample_cpu,
    start_peercam,
    stop,
    wait_until_live,
    write_json,
)
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS

FAKE_MEDIA_ARGS = ["--use-fake-device-for-media-stream=fps=30", "--use-fake-ui-for-media-stream"]
#: Every viewer at least this many fps: "full rate".
TARGET_FPS = 29.0
#: Rows in the per-viewer slope: every viewer at least this (90% of 30 fps, as bench/fanout.py).
SLOPE_MIN_FPS = 27.0
#: The publish page's default P2P cap (web/js/publish.js DEFAULT_MAX_VIEWERS).
PAGE_DEFAULT_MAX_VIEWERS = 4


# Chromium's process tree ------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, comm, cmdline) for every process still readable."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat.rpartition(")")[2].split()[1])
        table[int(entry)] = (ppid, comm, cmdline)
    return table


def chromium_pids() -> list[int]:
    """Chromium's processes: descendants of this script named chromium (or run from its binary)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        _, comm, cmdline = table[pid]
        if "chromium" in comm.lower() or cmdline.split(" ", 1)[0].endswith("/chromium"):
            found.append(pid)
    return found


def _tree_seconds(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # gone
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


class TreeCpu:
    """CPU of Chromium's process tree over a window: per-process deltas, processes that come or go
    in the window counted from 0 or up to their last reading."""

    def start(self) -> None:
        self.before = _tree_seconds(chromium_pids())

    def stop(self) -> tuple[float, int]:
        after = _tree_seconds(chromium_pids())
        delta = sum(after[p] - self.before.get(p, 0.0) for p in after)
        return delta, len(after)


# Rows --------------------------------------------------------------------------------------


def measure(name: str, opts, port: int, stream: str, cpu_group: dict, tree: TreeCpu | None,
            extra_processes: dict) -> list[dict]:
    """Rows for one camera that is live on ``stream``."""
    url = f"http://127.0.0.1:{port}"
    pool = ViewerPool(opts.procs, url, stream)
    rows = []
    try:
        for count in opts.viewers:
            print(f"{name}: {count} viewers ...", file=sys.stderr, flush=True)
            errors = pool.grow(count)
            start = time.time() + opts.warmup
            end = start + opts.seconds
            pool.start_measuring(start, end)
            groups = {**cpu_group, "viewers": [w.pid for w in pool.workers]}
            time.sleep(max(0.0, start - time.time()))
            before = sample_cpu(groups)
            if tree is not None:
                tree.start()
                machine_before = machine_busy_seconds()
            time.sleep(max(0.0, end - time.time()))
            cpu = cpu_percent(before, sample_cpu(groups), opts.seconds)
            processes = None
            if tree is not None:
                seconds, processes = tree.stop()
                cpu["camera"] = seconds / opts.seconds * 100
                cpu["machine"] = (machine_busy_seconds() - machine_before) / opts.seconds * 100
            row = summarize(name, count, pool.measured(), cpu, errors, None, opts)
            row["chromium_processes"] = processes
            rows.append(row)
            for proc_name, proc in extra_processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"the {proc_name} exited with {proc.returncode}; see {LOG_DIR}")
    finally:
        pool.close()
    return rows


def run_python(opts, port: int, server: subprocess.Popen) -> list[dict]:
    stream = "bcam-python"
    camera = start_peercam(["camera", "--server", f"http://127.0.0.1:{port}", "--stream", stream,
                            "--ice-host", "127.0.0.1"],
                           LOG_DIR / "browser_camera-python.log", own_session=True)
    try:
        wait_until_live(port, stream, {"server": server, "camera": camera}, STARTUP_TIMEOUT, LOG_DIR)
        return measure("python", opts, port, stream, {"camera": [camera.pid], "server": [server.pid]}, None,
                       {"server": server, "Python camera": camera})
    finally:
        stop(camera)


def run_browser(opts, port: int, server: subprocess.Popen) -> list[dict]:
    from playwright.sync_api import sync_playwright

    stream = "bcam-browser"
    query = (f"source=camera&autostart=1&resolution=480p&fps=30&max_viewers={max(opts.viewers) + 4}"
             "&name=bench-camera")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_MEDIA_ARGS)
        try:
            page = browser.new_context(**CONTEXT_OPTIONS).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://127.0.0.1:{port}/publish/{stream}?{query}")
            page.wait_for_function("peercam.state() === 'live'", timeout=STARTUP_TIMEOUT * 1000)
            wait_until_live(port, stream, {"server": server}, STARTUP_TIMEOUT, LOG_DIR)
            if not chromium_pids():
                raise RuntimeError("no Chromium processes found under this script")
            rows = measure("browser", opts, port, stream, {"server": [server.pid]}, TreeCpu(),
                           {"server": server})
            for row in rows:
                row["page_errors"] = errors[:5]
        finally:
            browser.close()
    return rows


# Results -----------------------------------------------------------------------------------


def full_rate_viewers(rows: list[dict]) -> int:
    """The largest N up to which every row gave every viewer >= TARGET_FPS (0: not even the first)."""
    best = 0
    for row in sorted(rows, key=lambda r: r["viewers"]):
        if row["fps_min"] < TARGET_FPS or row["join_errors"] or row["viewer_errors"]:
            break
        best = row["viewers"]
    return best


def per_viewer_cost(rows: list[dict]) -> dict:
    used = [r for r in rows if r["fps_min"] >= SLOPE_MIN_FPS]
    return {"cpu_pct_per_viewer": least_squares_slope([(r["viewers"], r["camera_cpu_pct"]) for r in used]),
            "rows": [r["viewers"] for r in used]}


def verdicts(rows: dict[str, list[dict]], opts) -> list[dict]:
    browser, python = full_rate_viewers(rows["browser"]), full_rate_viewers(rows["python"])
    measured = max(opts.viewers)
    return [
        {
            "target": f"the page's default cap ({PAGE_DEFAULT_MAX_VIEWERS} P2P viewers) within the browser "
                      f"camera's viewers at full rate (>= {TARGET_FPS:g} fps)",
            # Every row at full rate, but none as large as the cap: not measured.
            "pass": True if browser >= PAGE_DEFAULT_MAX_VIEWERS
            else None if browser == measured else False,
            "measured": f"browser camera {browser}" + ("+" if browser == measured else "")
                        + f", Python camera {python}" + ("+" if python == measured else "")
                        + f" (of N = {','.join(map(str, opts.viewers))})",
        },
    ]


def print_table(rows: list[dict], opts) -> None:
    capacity = rows[0]["machine_capacity_pct"]
    print(f"\nBrowser camera vs Python camera: P2P viewers at 30 fps, {opts.seconds:g} s measured after "
          f"{opts.warmup:g} s warm-up per row; viewers (bench/fanout.py's, nice 10, {opts.procs} processes) "
          f"on the same {capacity // 100}-core machine. browser = headless Chromium, fake camera, "
          "854x480@30 VP8, one encoder per viewer; python = `peercam camera`, test pattern 640x480@30 VP8, "
          "one encoder. CPU in % of one core; browser CPU is Chromium's whole process tree.\n")
    columns = ["camera", "viewers", "fps min / avg", "camera CPU", "kbit/s per viewer", "viewers CPU",
               "server CPU", f"machine busy (of {capacity})"]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for r in rows:
        failed = len(r["join_errors"]) + len(r["viewer_errors"])
        kbps = r["kbit_per_s_per_viewer"]
        print("| " + " | ".join([
            r["camera"],
            f"{r['viewers']}" + (f" ({failed} failed)" if failed else ""),
            f"{r['fps_min']:.1f} / {r['fps_avg']:.1f}",
            f"{r['camera_cpu_pct']:.0f}%",
            "-" if kbps is None else f"{kbps:.0f}",
            f"{r['viewers_cpu_pct']:.0f}%",
            f"{r['server_cpu_pct']:.0f}%",
            f"{r['machine_cpu_pct']:.0f}%",
        ]) + " |")
    for r in rows:
        for error in (r["join_errors"] + r["viewer_errors"] + r.get("page_errors", []))[:5]:
            print(f"{r['camera']} N={r['viewers']}: {error}")


def print_costs(costs: dict[str, dict], rows: dict[str, list[dict]]) -> None:
    print()
    for name in ("browser", "python"):
        print(f"viewers at full rate (every viewer >= {TARGET_FPS:g} fps), {name}: "
              f"{full_rate_viewers(rows[name])} of up to {max(r['viewers'] for r in rows[name])}")
    for name, label in (("browser", "Chromium"), ("python", "Python camera")):
        slope = costs[name]["cpu_pct_per_viewer"]
        print(f"CPU per added viewer, {label}: "
              + ("not measured (fewer than two rows >= 27 fps)" if slope is None
                 else f"{slope:.1f}% of one core (slope over N = {','.join(map(str, costs[name]['rows']))})"))
    ours, theirs = costs["browser"]["cpu_pct_per_viewer"], costs["python"]["cpu_pct_per_viewer"]
    if ours is not None and theirs is not None and theirs > 0:
        print(f"Chromium CPU per viewer is {ours / theirs:.0f}x the Python camera's")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="1,2,4,6,8",
                        help="viewer counts, one row each, for both cameras")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after the joins, before each window (Chromium's encoders ramp up)")
    parser.add_argument("--procs", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--json", type=Path, default=LOG_DIR / "browser_camera.json",
                        help="where the results go")
    opts = parser.parse_args()
    opts.viewers = sorted(int(n) for n in opts.viewers.split(","))
    opts.width, opts.height, opts.fps = 640, 480, 30.0  # summarize() counts RTP gaps at this rate
    return opts


def main() -> None:
    opts = parse_args()
    if not shutil.which(CHROMIUM):
        sys.exit(f"browser_camera: {CHROMIUM} is not installed (apt-get install chromium)")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    port = free_port()
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port),
                            "--max-connections-per-address", str(2 * max(opts.viewers) + 10)],
                           LOG_DIR / "browser_camera-server.log", own_session=True)
    rows: dict[str, list[dict]] = {}
    try:
        rows["browser"] = run_browser(opts, port, server)
        rows["python"] = run_python(opts, port, server)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except RuntimeError as exc:
        sys.exit(f"browser_camera: {exc}")
    finally:
        stop(server)
    costs = {name: per_viewer_cost(camera_rows) for name, camera_rows in rows.items()}
    results = verdicts(rows, opts)
    every_row = rows["browser"] + rows["python"]
    print_table(every_row, opts)
    print_costs(costs, rows)
    print_verdicts(results)
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s")
    write_json(opts.json, opts, {
        "rows": every_row, "per_viewer_cost": costs, "verdicts": results,
        "viewers_at_full_rate": {name: full_rate_viewers(r) for name, r in rows.items()},
        "wall_seconds": round(wall, 1)})


if __name__ == "__main__":
    main()
