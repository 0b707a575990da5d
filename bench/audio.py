"""Usage: python3 -m bench.audio [--parts cpu,latency,loss,talk] [--viewers 1,8,32,64] [--seconds 8]
                             [--warmup 1.5] [--procs 2] [--talk-seconds 8] [--runs 3]
                             [--json bench/results/audio.json]

Sound benchmark. Four parts, each with its own table:

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
- talk: talk back's mouth-to-speaker latency, on loopback. A library Camera (this
  script's ``_talk_camera``, test pattern and tone, ``talk_duplex="full"``) reads each
  beep of the talk it receives (``Camera.talk()`` frames into peers/testtone.py's
  ToneReader: the beep's capture time from its own time code, against when the camera
  had decoded it). The speakers talk the test tone, made as it is sent: the CLI (``peercam
  view --talk tone``) and the player page in headless Chromium (its microphone is the
  test tone from web/js/testtone.js, written into a MediaStreamTrackGenerator as it is
  due), each on P2P and the relay, --talk-seconds per turn, --runs turns per path (fresh
  viewers, the paths in turns), pooled. The baseline, measured in the same run by the
  same viewers at the same time: the camera's own tone to them (mouth to ear, as in the
  latency part; the median of each run's p50 and p95).

Targets: mouth-to-ear p50 <= 60 ms on loopback; |A/V offset| p95 <= 30 ms on every path;
sound loss under 1% in the 300 kbit/s phase; mouth to speaker p50 <= 60 ms on loopback.
Wrap runs in ``flock /tmp/peercam-cpu.lock``: other runs on the machine skew CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from peercam.peers.testtone import PERIOD, ToneReader

import peercam
from bench.fanout import Camera, per_viewer_cost, run_camera
from bench.harness import (
    ROOT,
    free_port,
    percentile,
    print_verdicts,
    start_peercam,
    stop,
    wait_until_live,
    write_json,
)
from bench.layers.shared import HELPER, STREAM, TIMELINE_LAYERS, camera_args
from bench.layers.timeline import SCHEDULE, LineReader, parse_schedule, wait_live
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS
from tests.support.netns import CAMERA_ADDRESS, VIEWER_ADDRESS, SplitNetwork, unavailable_reason

LOG_DIR = ROOT / "bench" / "results"
PARTS = ("cpu", "latency", "loss", "talk")
#: The targets.
TARGET_MOUTH_TO_EAR_P50_MS = 60.0
TARGET_AV_OFFSET_P95_MS = 30.0
TARGET_LOSS_PCT = 1.0
TARGET_MOUTH_TO_SPEAKER_P50_MS = 60.0


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


# latency --------------------------------------------------------------------------------------

#: The paths measured: (label, viewer, peercam view's flags / the page's query).
PATHS = [("CLI, P2P", "cli", ["--mode", "p2p"]), ("CLI, relay (encoded)", "cli", ["--mode", "relay",
         "--relay-format", "encoded"]), ("page, P2P", "page", "mode=p2p"),
         ("page, relay (encoded)", "page", "mode=relay&relay_format=encoded")]


def latency_part(opts: argparse.Namespace) -> list[dict]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stream = "audio-latency"
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port)],
                           LOG_DIR / "audio-latency-server.log", own_session=True)
    camera = start_peercam(["camera", "--server", url, "--stream", stream, "--audio", "tone", "--ice-host",
                            "127.0.0.1"], LOG_DIR / "audio-latency-camera.log", own_session=True)
    rows = []
    try:
        wait_until_live(port, stream, {"server": server, "camera": camera}, 30, LOG_DIR)
        for label, viewer, how in PATHS:
            print(f"latency: {label} ...", file=sys.stderr, flush=True)
            audio = (cli_audio(url, stream, how, opts.latency_seconds) if viewer == "cli"
                     else page_audio(url, stream, how, opts.latency_seconds))
            rows.append({"path": label, **audio})
    finally:
        stop(camera)
        stop(server)
    return rows


def cli_audio(url: str, stream: str, flags: list[str], seconds: float) -> dict:
    """``peercam view --json``'s sound figures after ``seconds``."""
    argv = [sys.executable, "-m", "peercam", "view", "--server", url, "--stream", stream, "--json",
            "--ice-host", "127.0.0.1", "--warmup", "2", "--duration", f"{seconds:g}", *flags]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    lines = done.stdout.strip().splitlines()
    audio = (json.loads(lines[-1]) if lines else {}).get("audio") or {}
    return {"latency_ms": audio.get("latency_ms"), "av_offset_ms": audio.get("av_offset_ms"),
            "packets": audio.get("packets"), "packets_lost": audio.get("packets_lost")}


def page_audio(url: str, stream: str, query: str, seconds: float) -> dict:
    """The player page's sound figures (``peercam.stats().audio``: the last ten beeps) after
    ``seconds``; its sound plays muted, as it does until a viewer unmutes it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(**CONTEXT_OPTIONS).new_page()
            page.goto(f"{url}/view/{stream}?{query}")
            page.wait_for_function("() => window.peercam && window.peercam.stats().audio", timeout=30_000)
            time.sleep(seconds)
            audio = page.evaluate("() => window.peercam.stats().audio")
        finally:
            browser.close()
    return {"latency_ms": audio.get("latencyMs"), "av_offset_ms": audio.get("avOffsetMs"),
            "packets": audio.get("packets"), "packets_lost": audio.get("packetsLost")}


def print_latency(rows: list[dict], opts: argparse.Namespace) -> None:
    print("\nSound on each path: a 640x480@30 VP8 test-pattern camera with the test tone (Opus 48 kbit/s), "
          f"on loopback, {opts.latency_seconds:g} s per path. Mouth to ear: the tone's capture to its "
          "decoded samples (the CLI) or to the page's audio output (the page: the last ten beeps). A/V "
          "offset: the sound's latency minus the picture's (positive: the sound is late).\n")
    print("| path | mouth to ear p50 / p95 ms | A/V offset p50 / p95 ms | sound packets (lost) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['path']} | {_pair(row['latency_ms'])} | {_pair(row['av_offset_ms'])} "
              f"| {row['packets'] if row['packets'] is not None else '-'} ({row['packets_lost']}) |")


def _pair(figure: dict | None) -> str:
    return "-" if not figure else f"{figure['p50']:.0f} / {figure['p95']:.0f}"


def latency_verdicts(rows: list[dict]) -> list[dict]:
    loopback = [r for r in rows if r["latency_ms"]]
    worst = max(loopback, key=lambda r: r["latency_ms"]["p50"], default=None)
    offsets = [r for r in rows if r["av_offset_ms"]]
    widest = max(offsets, key=lambda r: abs(r["av_offset_ms"]["p95"]), default=None)
    return [
        {"target": f"mouth to ear p50 <= {TARGET_MOUTH_TO_EAR_P50_MS:g} ms on loopback, every path",
         "pass": None if worst is None or len(loopback) < len(rows)
         else worst["latency_ms"]["p50"] <= TARGET_MOUTH_TO_EAR_P50_MS,
         "measured": ", ".join(f"{r['path']} {_pair(r['latency_ms'])}" for r in rows)},
        {"target": f"|A/V offset| p95 <= {TARGET_AV_OFFSET_P95_MS:g} ms on every path",
         "pass": None if widest is None or len(offsets) < len(rows)
         else abs(widest["av_offset_ms"]["p95"]) <= TARGET_AV_OFFSET_P95_MS,
         "measured": ", ".join(f"{r['path']} {_pair(r['av_offset_ms'])}" for r in rows)},
    ]


# loss -----------------------------------------------------------------------------------------


def loss_part(opts: argparse.Namespace) -> dict:
    """A CLI viewer in auto, P2P, behind bench/layers.py's cap schedule: the sound lost per phase,
    from the viewer's own reports (the server's API, polled once a second)."""
    reason = unavailable_reason()
    if reason:
        return {"skipped": reason}
    schedule = parse_schedule(opts.schedule)
    net = SplitNetwork()
    port = free_port()
    url = f"http://{CAMERA_ADDRESS}:{port}"
    in_camera = net.prefix(net.camera_ns)
    processes: list[subprocess.Popen] = []
    phases = []
    try:
        processes.append(start_peercam(["serve", "--host", CAMERA_ADDRESS, "--port", str(port)],
                                       LOG_DIR / "audio-loss-server.log", own_session=True, prefix=in_camera))
        processes.append(start_peercam([*camera_args(url, TIMELINE_LAYERS, CAMERA_ADDRESS), "--audio",
                                        "tone"], LOG_DIR / "audio-loss-camera.log", own_session=True,
                                       prefix=in_camera))
        poller = subprocess.Popen([*in_camera, *HELPER, "_poll", f"{url}/api/streams/{STREAM}"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  start_new_session=True)
        processes.append(poller)
        samples = LineReader(poller.stdout)
        wait_live(samples, {"server": processes[0], "camera": processes[1], "poller": poller})
        total = sum(seconds for _, seconds in schedule)
        viewer = subprocess.Popen([*net.prefix(net.viewer_ns), sys.executable, "-m", "peercam", "view",
                                   "--server", url, "--stream", STREAM, "--json", "--ice-host",
                                   VIEWER_ADDRESS, "--name", "audio-loss", "--duration", f"{total + 6:g}"],
                                  cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(viewer)
        _wait(lambda: _viewer_audio(samples.lines, time.time() - 2) is not None, 30, "the viewer's sound")
        time.sleep(3)
        for cap, seconds in schedule:
            change_cap(net, cap)
            start = time.time()
            time.sleep(seconds)
            phases.append({"cap_kbit": cap, "start": start, "end": time.time()})
        net.cap(None)
        viewer.wait(30)
    finally:
        net.cap(None)
        for proc in reversed(processes):
            stop(proc)
        net.remove()
    for phase in phases:
        first = _viewer_audio(samples.lines, phase["start"])
        last = _viewer_audio(samples.lines, phase["end"])
        if first is None or last is None:
            continue
        lost = last.get("packets_lost", 0) - first.get("packets_lost", 0)
        got = last.get("packets", 0) - first.get("packets", 0)
        phase.update(packets=got, lost=lost, loss_pct=100 * lost / (got + lost) if got + lost else None,
                     layer=last.get("layer"))
    return {"schedule": opts.schedule, "phases": phases}


def change_cap(net: SplitNetwork, kbit: int | None) -> None:
    """Move the link's cap to ``kbit`` (None: as good as none) keeping what its queue holds, as
    a real link whose rate changes does: replacing or deleting the token bucket would drop
    the packets queued in it, and count them as the sound's loss."""
    rate = f"{kbit}kbit" if kbit is not None else "10gbit"
    subprocess.run([*net.prefix(net.camera_ns), "tc", "qdisc", "change", "dev", net.camera_link, "root",
                    "tbf", "rate", rate, "burst", "16kb", "latency", "150ms"],
                   capture_output=True, timeout=10)
    if kbit is not None:  # no token bucket there yet: make one
        probe = subprocess.run([*net.prefix(net.camera_ns), "tc", "qdisc", "show", "dev", net.camera_link],
                               capture_output=True, text=True, timeout=10)
        if "tbf" not in probe.stdout:
            net.cap(kbit)


def _viewer_audio(lines: list[tuple[float, str]], at: float) -> dict | None:
    """The loss viewer's latest sound report at time ``at`` (with its layer), or None."""
    found = None
    for _, line in lines:
        sample = json.loads(line)
        if sample["t"] > at or not sample["summary"]:
            continue
        viewers = sample["summary"].get("viewers", [])
        viewer = next((v for v in viewers if v.get("name") == "audio-loss"), None)
        audio = ((viewer or {}).get("stats") or {}).get("audio")
        if audio:
            found = {**audio, "layer": viewer.get("layer")}
    return found


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:g} s; see {LOG_DIR}")
        time.sleep(0.2)


def print_loss(result: dict) -> None:
    if "skipped" in result:
        print(f"\nSound under a cap: skipped ({result['skipped']})")
        return
    print(f"\nSound under a cap: a 1280x720 camera ({TIMELINE_LAYERS}) with the test tone, a CLI viewer in "
          f"auto on P2P behind a token bucket following {result['schedule']} (kbit/s:seconds). Sound lost in "
          "each phase, from the viewer's own reports.\n")
    print("| cap kbit/s | seconds | layer at the end | sound packets | lost |")
    print("|---:|---:|---|---:|---:|")
    for phase in result["phases"]:
        loss = phase.get("loss_pct")
        lost = "-" if loss is None else f"{phase['lost']} = {loss:.2f}%"
        print(f"| {phase['cap_kbit'] or 'none'} | {phase['end'] - phase['start']:.0f} "
              f"| {phase.get('layer') or '-'} | {phase.get('packets', '-')} | {lost} |")


def loss_verdicts(result: dict) -> list[dict]:
    worst = [p for p in result.get("phases", []) if p["cap_kbit"] == 300 and p.get("loss_pct") is not None]
    return [{"target": f"sound loss under {TARGET_LOSS_PCT:g}% in the 300 kbit/s phase",
             "pass": None if not worst else all(p["loss_pct"] < TARGET_LOSS_PCT for p in worst),
             "measured": "not measured" if not worst
             else ", ".join(f"{p['loss_pct']:.2f}% ({p['lost']} of {p['lost'] + p['packets']})"
                            for p in worst)}]


# talk -----------------------------------------------------------------------------------------

#: The paths talked over: (label, viewer, peercam view's flags / the page's query).
TALK_PATHS = [("CLI, P2P", "cli", ["--mode", "p2p"]),
              ("CLI, relay", "cli", ["--mode", "relay", "--relay-format", "encoded"]),
              ("page, P2P", "page", "mode=p2p"),
              ("page, relay", "page", "mode=relay&relay_format=encoded")]

#: The page's microphone, for the talk part: the test tone (web/js/testtone.js), 20 ms at a
#: time as each is due (its last sample), into a MediaStreamTrackGenerator, so its time codes
#: are the times it was made, as `peercam view --talk tone`'s are.
TONE_MICROPHONE = """
navigator.mediaDevices.getUserMedia = async () => {
  const { tone, SAMPLE_RATE } = await import('/static/js/testtone.js');
  const CHUNK = 960;
  const generator = new MediaStreamTrackGenerator({ kind: 'audio' });
  const writer = generator.writable.getWriter();
  const nowSamples = () => (performance.timeOrigin + performance.now()) * SAMPLE_RATE / 1000;
  let next = Math.floor(nowSamples() / CHUNK) * CHUNK + CHUNK;
  const timer = setInterval(() => {
    if (generator.readyState === 'ended') { clearInterval(timer); return; }
    const now = nowSamples();
    if (now - next > 0.2 * SAMPLE_RATE) next = Math.floor(now / CHUNK) * CHUNK; // fell behind
    while (next + CHUNK <= now) {
      writer.write(new AudioData({ format: 's16', sampleRate: SAMPLE_RATE, numberOfFrames: CHUNK,
        numberOfChannels: 1, timestamp: next / SAMPLE_RATE * 1e6, data: tone(next, CHUNK) }));
      next += CHUNK;
    }
  }, 2);
  return new MediaStream([generator]);
};
"""


def talk_part(opts: argparse.Namespace) -> list[dict]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stream = "audio-talk"
    server = start_peercam(["serve", "--host", "127.0.0.1", "--port", str(port), "--talk", "viewers"],
                           LOG_DIR / "audio-talk-server.log", own_session=True)
    with open(LOG_DIR / "audio-talk-camera.log", "wb") as log:
        camera = subprocess.Popen([sys.executable, "-m", "bench.audio", "_talk_camera", url, stream],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
                                  start_new_session=True)
    heard = LineReader(camera.stdout)
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in TALK_PATHS}
    try:
        wait_until_live(port, stream, {"server": server, "camera": camera}, 30, LOG_DIR)
        for run in range(opts.runs):  # the paths in turns: a machine that gets busier weighs on all
            for index, (label, viewer, how) in enumerate(TALK_PATHS):
                name = f"talk-{run}-{index}"
                print(f"talk: {label}, run {run + 1} of {opts.runs} ...", file=sys.stderr, flush=True)
                baseline = (cli_talk(url, stream, name, how, opts.talk_seconds) if viewer == "cli"
                            else page_talk(url, stream, name, how, opts.talk_seconds))
                beeps = [json.loads(line) for _, line in list(heard.lines)]
                beeps = [beep for beep in beeps if beep["speaker"] == name]
                runs[label].append({"beeps": beeps, "baseline": baseline})
    finally:
        stop(camera)
        stop(server)
    return [talk_row(label, path_runs) for label, path_runs in runs.items()]


def cli_talk(url: str, stream: str, name: str, flags: list[str], seconds: float) -> dict | None:
    """``peercam view --talk tone`` for ``seconds``; its own mouth to ear (the camera's tone)."""
    argv = [sys.executable, "-m", "peercam", "view", "--server", url, "--stream", stream, "--json",
            "--name", name, "--ice-host", "127.0.0.1", "--talk", "tone", "--warmup", "2",
            "--duration", f"{seconds + 2:g}", *flags]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    if "peercam view: talking" not in done.stderr:
        raise RuntimeError(f"{name} did not talk: {done.stderr.strip()[-500:]}")
    lines = done.stdout.strip().splitlines()
    return ((json.loads(lines[-1]) if lines else {}).get("audio") or {}).get("latency_ms")


def page_talk(url: str, stream: str, name: str, query: str, seconds: float) -> dict | None:
    """The player page talks the tone (a click: talk until the next) for ``seconds``; its own
    mouth to ear (``peercam.stats().audio``: the camera's tone, the last ten beeps)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**CONTEXT_OPTIONS)
            context.add_init_script(TONE_MICROPHONE)
            page = context.new_page()
            page.goto(f"{url}/view/{stream}?{query}&name={name}")
            page.wait_for_function("() => window.peercam && peercam.state() === 'playing' "
                                   "&& peercam.talk().allowed", timeout=30_000)
            page.click("#talk-button")
            page.wait_for_function("() => peercam.talk().sending", timeout=10_000)
            time.sleep(seconds)
            audio = page.evaluate("() => peercam.stats().audio") or {}
            page.click("#talk-button")
        finally:
            browser.close()
    return audio.get("latencyMs")


def talk_row(label: str, runs: list[dict]) -> dict:
    """One path's figures: the beeps' latencies pooled over its runs; the baseline's p50 and p95,
    the median of the runs'."""
    beeps = [beep for run in runs for beep in run["beeps"]]
    latencies = sorted(1000 * (beep["heard"] - beep["capture"]) for beep in beeps)
    expected = 0  # beeps made while each turn was heard: first to last, every half second
    for run in runs:
        times = sorted(beep["capture"] for beep in run["beeps"])
        expected += round((times[-1] - times[0]) / PERIOD) + 1 if times else 0
    baselines = [run["baseline"] for run in runs if run["baseline"]]
    row = {"path": label, "runs": len(runs), "beeps": len(beeps), "beeps_expected": expected,
           "talk_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)}
           if latencies else None,
           "baseline_ms": {"p50": statistics.median(b["p50"] for b in baselines),
                           "p95": statistics.median(b["p95"] for b in baselines)} if baselines else None}
    talk, base = row["talk_ms"], row["baseline_ms"]
    row["ratio_p50"] = talk["p50"] / base["p50"] if talk and base and base["p50"] > 0 else None
    return row


def print_talk(rows: list[dict], opts: argparse.Namespace) -> None:
    print("\nTalk back, mouth to speaker: a viewer talks the test tone (made as it is sent) to a library "
          "camera on loopback, which reads each beep from Camera.talk() (capture, by the beep's time code, "
          f"to decoded at the camera); {opts.talk_seconds:g} s turns, {opts.runs} per path, pooled. "
          "Baseline: the camera's own tone to the same viewer at the same time (mouth to ear; the median "
          "of the runs' p50 and p95).\n")
    print("| path | mouth to speaker p50 / p95 ms | beeps read (expected) "
          "| baseline: mouth to ear p50 / p95 ms | p50 ratio to the baseline |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        ratio = "-" if row["ratio_p50"] is None else f"{row['ratio_p50']:.2f}x"
        print(f"| {row['path']} | {_pair(row['talk_ms'])} | {row['beeps']} ({row['beeps_expected']}) "
              f"| {_pair(row['baseline_ms'])} | {ratio} |")


def talk_verdicts(rows: list[dict]) -> list[dict]:
    measured = [r for r in rows if r["talk_ms"]]
    return [{"target": f"mouth to speaker p50 <= {TARGET_MOUTH_TO_SPEAKER_P50_MS:g} ms on loopback, "
             "every path",
             "pass": None if len(measured) < len(rows)
             else all(r["talk_ms"]["p50"] <= TARGET_MOUTH_TO_SPEAKER_P50_MS for r in rows),
             "measured": ", ".join(f"{r['path']} {_pair(r['talk_ms'])}" for r in rows)}]


def talk_camera(url: str, stream: str) -> None:
    """The talk part's camera: prints each beep it hears in talk back, one JSON line each."""
    async def run() -> None:
        ice = peercam.IceOptions(servers=[], hosts=["127.0.0.1"])
        async with peercam.Camera(url, stream, source="testsrc", audio="tone", ice=ice,
                                  talk_duplex="full") as camera:
            readers: dict[str, ToneReader] = {}
            async for speaker, frame in camera.talk():
                reader = readers.setdefault(speaker, ToneReader())
                for beep in reader.feed(frame.samples, frame.arrived):
                    print(json.dumps({"speaker": speaker, "capture": beep.capture_time,
                                      "heard": beep.heard_time, "unread": reader.beeps_unread}), flush=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


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
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="latency: seconds per path")
    parser.add_argument("--schedule", default=SCHEDULE, help="loss: the cap schedule, kbit/s:seconds,...")
    parser.add_argument("--talk-seconds", type=float, default=8.0, help="talk: seconds of each turn")
    parser.add_argument("--runs", type=int, default=3, help="talk: turns per path, each by a fresh viewer")
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
        if "latency" in opts.parts:
            results["latency"] = latency_part(opts)
            print_latency(results["latency"], opts)
            verdicts += latency_verdicts(results["latency"])
        if "loss" in opts.parts:
            results["loss"] = loss_part(opts)
            print_loss(results["loss"])
            verdicts += loss_verdicts(results["loss"])
        if "talk" in opts.parts:
            results["talk"] = talk_part(opts)
            print_talk(results["talk"], opts)
            verdicts += talk_verdicts(results["talk"])
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
    if len(sys.argv) == 4 and sys.argv[1] == "_talk_camera":
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        talk_camera(sys.argv[2], sys.argv[3])
    else:
        main()
