"""Usage: python3 -m bench.standards [--parts cpu,join,whip,whep] [--viewers 1,8,32] [--seconds 8]
                                [--warmup 1.5] [--procs 2] [--bitrate 2500] [--joins 12] [--runs 6]
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

whip: a WHIP publisher's first picture. A viewer (the library's watch(), P2P) waits for
the stream; ffmpeg 9 (PyPI's imageio-ffmpeg: 640x360@30 Constrained Baseline, a keyframe a
second, Opus) publishes to ``POST /whip/{name}``; the time from ffmpeg's start to the
viewer's first decoded frame, over --runs runs. baseline: peercam's own camera (the
library's Camera, test pattern, 640x360) in the same place, from its start().

whep: a WHEP player's first picture. In headless Chromium, whip-whep's WHEPClient
(tests/support/whipwhepsite.py) and peercam's own player page (/view/NAME?mode=p2p, the
baseline) take turns on one camera, --runs each: the time from the page's load to its
first decoded frame.
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
import urllib.request
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
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS
from tests.support.rtspcamera import RtspCamera, rtsp_camera_available
from tests.support.whipwhepsite import PageSite, ffmpeg_exe, ffmpeg_whip_command

LOG_DIR = ROOT / "bench" / "results"
#: The clip outlasts every row of both cameras (each RTSP client gets it from its start).
CLIP_SECONDS = 150
#: The decoded-and-encoded camera's CPU over the passthrough camera's, with one viewer.
TARGET_RATIO = 5.0


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
    """Passing through spares the camera the decode and the encode: far less CPU with one
    viewer (the camera's own work), and less at every N (the per-viewer sending is the same)."""
    ours = {row["viewers"]: row for row in rows["passthrough"]}
    theirs = {row["viewers"]: row for row in rows["baseline"]}
    common = sorted(set(ours) & set(theirs))
    if not common:
        return [{"target": "passthrough CPU", "pass": None, "measured": "no rows"}]
    first = common[0]
    ratio = theirs[first]["camera_cpu_pct"] / max(ours[first]["camera_cpu_pct"], 0.1)
    saved = [theirs[n]["camera_cpu_pct"] - ours[n]["camera_cpu_pct"] for n in common]
    return [
        {"target": f"an RTSP camera with {first} viewer(s): at least {TARGET_RATIO:g}x less CPU passed "
                   "through than decoded and encoded",
         "pass": ratio >= TARGET_RATIO,
         "measured": f"{ours[first]['camera_cpu_pct']:.0f}% vs {theirs[first]['camera_cpu_pct']:.0f}% of a "
                     f"core ({ratio:.1f}x)"},
        {"target": "at every viewer count: less CPU passed through, and its viewers at full rate",
         "pass": min(saved) > 0 and min(ours[n]["fps_min"] for n in common) >= 0.9 * 30,
         "measured": "saved " + ", ".join(f"{s:.0f}% (N = {n})" for s, n in zip(saved, common, strict=True))
                     + f"; lowest viewer {min(ours[n]['fps_min'] for n in common):.1f} fps"},
    ]


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


ICE = IceOptions(servers=[], hosts=["127.0.0.1"])


def wait_for_server(port: int, server: subprocess.Popen, timeout: float = 20.0) -> None:
    """Until the server answers /healthz (fails if it exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}; see {LOG_DIR}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout:g} s")


async def first_picture(url: str, stream: str, publish) -> float:
    """Milliseconds from ``publish()`` (which starts a publisher of ``stream``) to the first
    frame a viewer already waiting for it decodes."""
    async with peercam.watch(url, stream, mode="p2p", ice=ICE, wait=30, audio=False) as viewer:
        frames = viewer.frames()
        first = asyncio.ensure_future(anext(frames))
        await asyncio.sleep(0.5)  # the viewer is waiting on the server before the publisher starts
        started = time.monotonic()
        stop = await publish()
        try:
            await asyncio.wait_for(first, 30)
            return (time.monotonic() - started) * 1000
        finally:
            await stop()


async def whip_times(url: str, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ffmpeg": [], "baseline": []}
    for run in range(runs):
        async def ffmpeg(stream=f"whip-{run}"):
            process = await asyncio.create_subprocess_exec(
                *ffmpeg_whip_command(f"{url}/whip/{stream}", seconds=20), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            async def stop():
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)  # it sends DELETE
                await process.wait()
            return stop

        async def library_camera(stream=f"own-{run}"):
            camera = peercam.Camera(url, stream, source="testsrc", width=640, height=360, ice=ICE,
                                    audio="none")
            await camera.start()
            return camera.close

        times["ffmpeg"].append(await first_picture(url, f"whip-{run}", ffmpeg))
        times["baseline"].append(await first_picture(url, f"own-{run}", library_camera))
    return {name: sorted(values) for name, values in times.items()}


def whip_rows(opts: argparse.Namespace) -> dict[str, list[float]]:
    if ffmpeg_exe() is None:
        raise RuntimeError("the whip part needs ffmpeg 9: pip install 'imageio-ffmpeg==0.8.1'")
    port = free_port()
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port), "--ice-host",
                            "127.0.0.1"], LOG_DIR / "standards-whip-server.log", own_session=True)
    try:
        wait_for_server(port, server)
        print("whip: ffmpeg and the library's camera ...", file=sys.stderr, flush=True)
        return asyncio.run(whip_times(f"http://127.0.0.1:{port}", opts.runs))
    finally:
        stop(server)


def whep_rows(opts: argparse.Namespace) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder = LOG_DIR / "standards-whep-site"
    folder.mkdir(parents=True, exist_ok=True)
    site = PageSite(folder)
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port), "--allowed-origin",
                            site.origin], LOG_DIR / "standards-whep-server.log", own_session=True)
    camera = None
    times: dict[str, list[float]] = {"whep": [], "baseline": []}
    try:
        wait_for_server(port, server)
        camera = start_peercam(["camera", "--server", url, "--stream", "whep", "--ice-host", "127.0.0.1",
                                "--width", "640", "--height", "360"], LOG_DIR / "standards-whep-camera.log",
                               own_session=True)
        wait_until_live(port, "whep", {"server": server, "camera": camera}, 30, LOG_DIR)
        print("whep: whip-whep's WHEPClient and the player page, in turn ...", file=sys.stderr, flush=True)
        pages = {"whep": f"{site.origin}/whep.html?url={url}/whep/whep",
                 "baseline": f"{url}/view/whep?mode=p2p"}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for run in range(opts.runs):
                    for name in (("whep", "baseline") if run % 2 == 0 else ("baseline", "whep")):
                        context = browser.new_context(**CONTEXT_OPTIONS)
                        page = context.new_page()
                        started = time.monotonic()
                        page.goto(pages[name])
                        page.wait_for_function("document.getElementById('video').getVideoPlaybackQuality()"
                                               ".totalVideoFrames > 0", timeout=30_000)
                        times[name].append((time.monotonic() - started) * 1000)
                        context.close()
                        time.sleep(1.0)  # the camera lets the last viewer go
            finally:
                browser.close()
    finally:
        if camera is not None:
            stop(camera)
        stop(server)
        site.close()
    return {name: sorted(values) for name, values in times.items()}


def print_first_pictures(title: str, rows: dict[str, list[float]]) -> None:
    print(f"\n{title}\n")
    print("| | p50 ms | min | max | runs |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} | "
              f"{len(values)} |")


def first_picture_verdict(part: str, rows: dict[str, list[float]], ours: str, slack_ms: float) -> dict:
    """The standard client's p50 within ``slack_ms`` of peercam's own."""
    mine, theirs = statistics.median(rows[ours]), statistics.median(rows["baseline"])
    return {"target": f"{part}: first picture p50 within {slack_ms:g} ms of peercam's own client's",
            "pass": mine <= theirs + slack_ms,
            "measured": f"{ours} {mine:.0f} ms, baseline {theirs:.0f} ms"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="cpu,join,whip,whep",
                        help="comma-separated: cpu, join, whip, whep")
    parser.add_argument("--viewers", default="1,8,32", help="viewer counts, one row each")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=1.5,
                        help="seconds after the joins, before each window")
    parser.add_argument("--procs", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--bitrate", type=int, default=2500, help="the RTSP camera's bitrate, kbit/s")
    parser.add_argument("--joins", type=int, default=12, help="viewers joining, per camera and GOP")
    parser.add_argument("--runs", type=int, default=6,
                        help="first pictures measured, per client (whip, whep)")
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
        if "whip" in opts.parts:
            results["whip"] = whip_rows(opts)
            print_first_pictures("WHIP: ms from a publisher's start to the first frame of a viewer waiting "
                                 "for it. ffmpeg: its whip muxer (640x360@30 H.264, a keyframe a second); "
                                 "baseline: peercam's library Camera (test pattern, 640x360), from start().",
                                 results["whip"])
            # ffmpeg answers no PLI: a viewer may wait for its next keyframe (a second).
            verdicts.append(first_picture_verdict("WHIP", results["whip"], "ffmpeg", 1000))
        if "whep" in opts.parts:
            results["whep"] = whep_rows(opts)
            print_first_pictures("WHEP: ms from a page's load to its first decoded frame, in Chromium. "
                                 "whep: whip-whep's WHEPClient; baseline: peercam's player page (P2P).",
                                 results["whep"])
            verdicts.append(first_picture_verdict("WHEP", results["whep"], "whep", 150))
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
