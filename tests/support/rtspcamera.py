"""A real RTSP camera for tests and benchmarks: gst-rtsp-server through Debian's python3-gi.

It runs as a child process under Debian's own Python (/usr/bin/python3), whose gi it
needs, and serves ``rtsp://127.0.0.1:PORT/test`` on loopback: live x264 or openh264 test
video, or a file's H.264 as it is (for checksums of the very pictures), optionally with
sound and Basic credentials. Each client gets its own pipeline (not shared), so a test's
reconnect starts afresh, as a real camera's does.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["GST_PYTHON", "RtspCamera", "rtsp_camera_available"]

GST_PYTHON = "/usr/bin/python3"
_SERVER = Path(__file__).with_name("rtspcamera_gst.py")


def rtsp_camera_available() -> bool:
    """Whether gst-rtsp-server can run here (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0)."""
    if not os.path.exists(GST_PYTHON):
        return False
    probe = subprocess.run([GST_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True, timeout=30)
    return probe.returncode == 0


class RtspCamera:
    """``with RtspCamera(...) as camera: camera.url`` serves until the block ends.

    ``stop()`` kills it (a camera that drops) and ``start()`` brings it back on the same port.
    Options: ``encoder`` x264 or openh264; ``size``; ``fps``; ``gop`` (frames between
    keyframes); ``profile`` baseline, main or high; ``audio`` none, opus, aac or pcma; ``file``, an
    H.264 Matroska file served as it is (paced in real time; ends at its end); ``user`` and
    ``password``; ``slices`` (x264 threads: pictures in several slices); ``headers_in_band``
    False: SPS/PPS only in the SDP.
    """

    def __init__(self, encoder: str = "x264", size: str = "640x360", fps: int = 30, gop: int = 30,
                 profile: str = "baseline", audio: str = "none", file: str | None = None,
                 user: str | None = None, password: str | None = None, slices: int = 1,
                 headers_in_band: bool = True, port: int = 0) -> None:
        self._args = ["--enc", encoder, "--size", size, "--fps", str(fps), "--gop", str(gop),
                      "--profile", profile, "--audio", audio, "--threads", str(slices)]
        if profile != "baseline":
            self._args += ["--preset", "veryfast"]  # x264's ultrafast makes Baseline whatever it is told
        if file:
            self._args += ["--file", file]
        if user:
            self._args += ["--user", user, "--password", password or ""]
        if not headers_in_band:
            self._args += ["--config-interval", "0", "--x264opts", "option-string=repeat-headers=0"]
        self._port = port
        self._process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 20.0) -> str:
        self._process = subprocess.Popen(
            [GST_PYTHON, str(_SERVER), "--port", str(self._port), *self._args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self._process.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                self.url = line.split()[1]
                self._port = int(self.url.split(":")[2].split("/")[0])  # the same port on a restart
                return self.url
        why = self._process.stderr.read() if self._process.poll() is not None else "no READY line"
        self.stop()
        raise RuntimeError(f"the RTSP camera did not start: {why}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None

    def url_with(self, user: str, password: str) -> str:
        return self.url.replace("rtsp://", f"rtsp://{user}:{password}@")

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


if __name__ == "__main__":  # by hand: python -m tests.support.rtspcamera [--audio aac ...]
    with RtspCamera(*sys.argv[1:2]) as camera:
        print(camera.url, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
