"""A throwaway redis-server on loopback, for the tests and benchmarks of several server
instances (``peercam serve --redis``): no persistence, no service, gone when stopped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = "redis-server"


def unavailable_reason() -> str | None:
    """Why a Redis cannot be started here, or None when it can."""
    if shutil.which(REDIS_SERVER) is None:
        return "redis-server is not installed (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py is not installed (pip install 'peercam[redis]')"
    return None


class RedisServer:
    """redis-server on 127.0.0.1:``port``; ``stop()`` and ``start()`` again make an outage
    (it comes back empty, as a restarted Redis without persistence does)."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._log_path = log_dir / f"redis-{port}.log"
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self._log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start: see {self._log_path}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
