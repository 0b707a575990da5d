"""Usage: python3 -m bench.all [--out bench/results] [--quick]

Every benchmark in one command (about 30 minutes on a 2-core machine): the P2P fan-out
against the per-viewer-encoding baseline (bench/fanout.py), latency, first frame and
fallback (bench/latency.py), the relay (bench/relay.py), quality layers
(bench/layers/: camera CPU per active layers, auto through a bandwidth cap schedule,
manual switch gaps; its fan-out rows are left to bench/fanout.py here), recording
(bench/recording.py: server CPU per recorded stream, memory over 10 minutes), and the
browser camera's P2P viewers at full rate against the Python camera's
(bench/browser_camera.py), and three instances on Redis against one alone
(bench/cluster.py: offer to answer time, relay across instances, each instance's and
Redis's CPU; it needs redis-server and redis-py), sound (bench/audio.py: what it costs
the camera per viewer, mouth-to-ear latency and A/V offset per path, loss under a cap, talk
back's mouth-to-speaker latency), and
the standard clients (bench/standards.py: an RTSP camera's CPU passed through against
decoded and encoded; it needs gst-rtsp-server).
Each prints its tables as it finishes and writes its JSON; this script then prints every
target's verdict, writes them with a description of the machine to OUT/all.json, and
draws OUT/benchmarks.svg (bench.layers draws OUT/layers.svg). docs/benchmarks.md shows
committed copies of both charts next to the tables (docs/benchmarks.svg, docs/layers.svg).

Run it on an otherwise idle machine: the figures are CPU shares and frame rates on
shared cores. --quick runs fewer rows and shorter windows, to check that it all works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench.harness import ROOT, cores, print_verdicts

BENCH = ROOT / "bench"
#: name -> (module, its arguments for a full run, for a --quick run)
RUNS = {
    "fanout": ("bench.fanout", [], ["--viewers", "1,8,32", "--baseline-viewers", "1,4", "--seconds", "3"]),
    "latency": ("bench.latency", [], ["--quick"]),
    "relay": ("bench.relay", ["--clients", "50,100,200", "--seconds", "8"],
              ["--clients", "200", "--seconds", "3", "--compare-viewers", "1", "--repeats", "1"]),
    # Its fan-out rows (--parts fanout) would repeat bench/fanout.py's above.
    "layers": ("bench.layers", ["--parts", "cpu,timeline,switch"],
               ["--quick", "--parts", "cpu,timeline,switch"]),
    "recording": ("bench.recording", [], ["--streams", "1,4", "--seconds", "5", "--soak-minutes", "0"]),
    "cluster": ("bench.cluster", [], ["--quick"]),
    "browser_camera": ("bench.browser_camera", [], ["--viewers", "1,4", "--seconds", "3", "--warmup", "2"]),
    "audio": ("bench.audio", [], ["--viewers", "1,8", "--seconds", "3", "--latency-seconds", "8",
                                  "--schedule", "none:4,600:6,300:8,none:4", "--talk-seconds", "4",
                                  "--runs", "1"]),
    "standards": ("bench.standards", [], ["--viewers", "1,8", "--seconds", "3"]),
}


def machine() -> dict:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    chromium = shutil.which("chromium")
    return {
        "cpu": model,
        "cores": cores(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: metadata.version(name) for name in ("aiortc", "aioice", "av", "aiohttp")},
        "chromium": subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
        if chromium else None,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def run(name: str, out: Path, quick: bool) -> dict | None:
    module, full, short = RUNS[name]
    path = out / f"{name}.json"
    path.unlink(missing_ok=True)
    print(f"\n=== {name}: python3 -m {module} {' '.join(short if quick else full)}", flush=True)
    began = time.monotonic()
    code = subprocess.run([sys.executable, "-m", module, *(short if quick else full),
                           "--json", str(path)], cwd=ROOT).returncode
    print(f"=== {name}: {time.monotonic() - began:.0f} s, exit {code}", flush=True)
    return json.loads(path.read_text()) if path.exists() else None


def draw(results: dict, about: dict, path: Path) -> None:
    """Four panels: fan-out CPU and frame rate against N, latency per path, relay."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: a small, searchable SVG
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    fanout_cpu, fanout_fps, latency, relay = axes.flat
    for camera, style in (("peercam", "o-"), ("baseline", "s--")):
        rows = [r for r in (results.get("fanout") or {}).get("rows", []) if r["camera"] == camera]
        label = ("peercam (encode once)" if camera == "peercam"
                 else "baseline (MediaRelay, encoder per viewer)")
        n = [r["viewers"] for r in rows]
        fanout_cpu.plot(n, [r["camera_cpu_pct"] for r in rows], style, label=label)
        fanout_fps.plot(n, [r["fps_min"] for r in rows], style, label=label)
    fanout_cpu.set(title="P2P fan-out: camera CPU", xlabel="viewers", ylabel="% of one core")
    fanout_fps.axhline(29, color="grey", linewidth=0.8, linestyle=":", label="target 29 fps")
    fanout_fps.set(title="P2P fan-out: slowest viewer", xlabel="viewers", ylabel="fps", ylim=(0, 32))
    for axis in (fanout_cpu, fanout_fps):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)

    paths = [r for r in (results.get("latency") or {}).get("rows", []) if "p95_ms" in r.get("data", {})]
    positions = range(len(paths))
    latency.bar([p - 0.2 for p in positions], [r["data"]["p50_ms"] for r in paths], 0.4, label="p50")
    latency.bar([p + 0.2 for p in positions], [r["data"]["p95_ms"] for r in paths], 0.4, label="p95")
    latency.set_xticks(list(positions), [r["measurement"] for r in paths], rotation=15, fontsize=8)
    latency.set(title="Glass-to-glass latency, one viewer", ylabel="ms")
    latency.legend(fontsize=8)
    latency.grid(axis="y", alpha=0.3)

    rows = (results.get("relay") or {}).get("rows", [])
    for fmt in dict.fromkeys(r.get("format", "jpeg") for r in rows):
        mine = [r for r in rows if r.get("format", "jpeg") == fmt]
        clients = [r["clients"] for r in mine]
        relay.plot(clients, [r["fps_min"] for r in mine], "o-", label=f"{fmt}: slowest client fps")
        relay.plot(clients, [r["server_cpu_pct"] for r in mine], "s--",
                   label=f"{fmt}: server CPU, % of one core")
    relay.set(title="WebSocket relay", xlabel="relay clients", ylim=(0, 60))
    relay.legend(fontsize=8)
    relay.grid(alpha=0.3)

    figure.suptitle(f"peercam, 640x480@30 VP8 on {about['cores']} cores ({about['cpu']}), {about['date']}",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where JSON and the chart go")
    parser.add_argument("--quick", action="store_true", help="fewer rows, shorter windows: a smoke run")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    about = machine()
    if os.getloadavg()[0] > 0.5 * about["cores"]:
        print(f"warning: load average {os.getloadavg()[0]:.1f} before starting: figures will suffer",
              file=sys.stderr)
    results = {name: run(name, opts.out, opts.quick) for name in RUNS}
    verdicts = [v for result in results.values() if result for v in result.get("verdicts", [])]
    missing = [name for name, result in results.items() if result is None]
    wall = time.monotonic() - began
    print(f"\nAll benchmarks in {wall / 60:.1f} min on {about['cores']} cores ({about['cpu']}).")
    print_verdicts(verdicts)
    for name in missing:
        print(f"  {name}: no results (see its output above)")
    (opts.out / "all.json").write_text(json.dumps(
        {"machine": about, "wall_seconds": wall, "verdicts": verdicts, "results": results}, indent=2) + "\n")
    draw(results, about, opts.out / "benchmarks.svg")
    print(f"wrote {opts.out / 'all.json'} and {opts.out / 'benchmarks.svg'} ({opts.out / 'layers.svg'}: "
          "bench.layers)")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
