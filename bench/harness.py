"""What the benchmark scripts share: peercam subprocesses on 127.0.0.1, /proc readings, statistics."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from queue import Empty

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: A machine this busy (fraction of all cores) leaves the programs under test no spare CPU.
SATURATED = 0.9


# Subprocesses ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: When set (e.g. by bench.layers --autogroup-nice), the autogroup nice of every session a
#: benchmark starts for a program under test (see prioritize).
AUTOGROUP_NICE_ENV = "PEERCAM_BENCH_AUTOGROUP_NICE"


def prioritize(pid: int, offset: int = 0) -> None:
    """Give the session ``pid`` leads the autogroup nice in $PEERCAM_BENCH_AUTOGROUP_NICE (plus
    ``offset``); without it, nothing.

    With autogroup scheduling (kernel.sched_autogroup_enabled = 1, Linux's default on many
    distributions and VMs) CPU is shared between sessions first, and a process's own nice
    counts only inside its session: another session's busy programs take an equal share
    from the camera whatever the nice values say. Needs root for values below 0.
    """
    value = os.environ.get(AUTOGROUP_NICE_ENV)
    if not value:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(max(-20, min(19, int(value) + offset))))
    except OSError as exc:
        print(f"autogroup nice for pid {pid}: {exc}", file=sys.stderr)


def start_process(argv: list[str], log_path: Path, own_session: bool = False) -> subprocess.Popen:
    """Run ``argv`` from this checkout, its output in ``log_path``.

    ``own_session``: Ctrl-C reaches only the script, which then stops its subprocesses in order
    (and the session gets $PEERCAM_BENCH_AUTOGROUP_NICE, see prioritize).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=own_session)
    if own_session:
        prioritize(proc.pid)
    return proc


def start_peercam(args: list[str], log_path: Path, own_session: bool = False,
                  prefix: list[str] | None = None) -> subprocess.Popen:
    """``python -m peercam ARGS`` from this checkout; ``prefix`` execs it, e.g. ``ip netns exec NS``."""
    return start_process([*(prefix or []), sys.executable, "-m", "peercam", *args], log_path, own_session)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: peercam shuts down cleanly
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stream_summary(port: int, stream: str) -> dict | None:
    """The server's /api/streams/NAME (the camera's latest stats report included); None if there is none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/streams/{stream}", timeout=1) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return None  # server not up yet, or no such stream (404)


def wait_until_live(port: int, stream: str, processes: dict[str, subprocess.Popen],
                    timeout: float, log_dir: Path) -> None:
    """Until a camera's stream is live on the server; fails early if one of ``processes`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode}; see {log_dir}")
        if (stream_summary(port, stream) or {}).get("live"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"stream {stream!r} not live within {timeout:g} s; see {log_dir}")


def collect(queue, kind: str, count: int, workers: list, timeout: float) -> list:
    """``count`` (kind, payload) messages from worker processes; fails if a worker dies first."""
    payloads = []
    deadline = time.monotonic() + timeout
    while len(payloads) < count:
        try:
            got, payload = queue.get(timeout=1)
        except Empty:
            if time.monotonic() > deadline or any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError(f"worker processes did not report {kind!r}") from None
            continue
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from a worker process, got {got!r}")
        payloads.append(payload)
    return payloads


# /proc -------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]  # user .. steal
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / CLOCK_TICKS


def sample_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each group of processes, and of the whole machine ("machine")."""
    sample = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
    sample["machine"] = machine_busy_seconds()
    return sample


def cpu_percent(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Two samples of sample_cpu to % of one core over ``seconds``."""
    return {name: (after[name] - before[name]) / seconds * 100 for name in before}


def cores() -> int:
    return len(os.sched_getaffinity(0))


# Statistics and results ----------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None with under 2 distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def write_json(path: Path, opts: argparse.Namespace, results: dict) -> None:
    """The results with the options that produced them and the machine's core count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}
    path.write_text(json.dumps({"config": config, "cores": cores(), **results}, indent=2) + "\n")
    print(f"\nwrote {path}")


def print_if_saturated(row: dict, label: str, load_cpu_pct: float, load_name: str) -> None:
    """Say so when a row ran on a machine with no CPU to spare: it then measures the shared cores."""
    capacity = row["machine_capacity_pct"]
    if row["machine_cpu_pct"] >= SATURATED * capacity:
        print(f"\n{label}: the machine was saturated ({row['machine_cpu_pct']:.0f}% of {capacity}%, "
              f"{load_cpu_pct:.0f}% of it in {load_name}, {row['other_cpu_pct']:.0f}% in other programs): "
              "fps, drops and latency in this row measure the shared CPU.")


def print_verdicts(results: list[dict]) -> None:
    """Each target's verdict (``{"target", "pass", "measured"}``), one line each."""
    print("\nTargets:")
    for result in results:
        status = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[result["pass"]]
        print(f"  {status}: {result['target']}: {result['measured']}")
