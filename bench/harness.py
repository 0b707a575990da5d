"""What the benchmark scripts share: peercam subprocesses on 127.0.0.1, and /proc readings."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_peercam(args: list[str], log_path: Path, own_session: bool = False) -> subprocess.Popen:
    """``python -m peers.cli ARGS`` from this checkout, its output in ``log_path``.

    ``own_session``: Ctrl-C reaches only the script, which then stops its subprocesses in order.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "peers.cli", *args], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=own_session)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: peercam shuts down cleanly
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
