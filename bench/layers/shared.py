"""What the layers benchmark's parts share: the camera under test (a 1280x720@30 VP8 test
pattern with layers), how its programs start, and how a frame's latency and a table cell read."""

from __future__ import annotations

import math
import os
import subprocess
import sys

from peercam.peers.camera.layers import parse_layers

from bench.harness import ROOT, start_peercam, start_process

STREAM = "layers"
LOG_DIR = ROOT / "bench" / "results"
WIDTH, HEIGHT, FPS = 1280, 720, 30.0
CPU_LAYERS = "720p,480p,360p,240p"
TIMELINE_LAYERS = "720p,480p,360p,180p"
STARTUP_TIMEOUT = 30.0
WORKER_TIMEOUT = 60.0
#: The benchmark's helpers run as subprocesses, from the repository root: this, then
#: ``_camera THREADS ARGV``, ``_viewer FRAME_LOG ARGV`` or ``_poll URL`` (see __main__).
HELPER = [sys.executable, "-m", "bench.layers"]


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def start_tested(args: list[str], log_name: str, prefix: list[str] | None = None,
                 encoder_threads: int | None = None) -> subprocess.Popen:
    """A peercam command in a session of its own (Ctrl-C reaches only this script; see
    harness.prioritize);
    ``encoder_threads``: a camera whose video encoders run that many threads (see threaded_camera)."""
    if encoder_threads is None:
        return start_peercam(args, LOG_DIR / log_name, own_session=True, prefix=prefix)
    return start_process([*(prefix or []), *HELPER, "_camera", str(encoder_threads), *args],
                         LOG_DIR / log_name, own_session=True)


def layer_list(spec: str) -> list:
    return parse_layers(spec, WIDTH, HEIGHT, FPS)


def camera_args(url: str, layers: str, ice_host: str) -> list[str]:
    return ["camera", "--server", url, "--stream", STREAM, "--width", str(WIDTH), "--height", str(HEIGHT),
            "--layers", layers, "--ice-host", ice_host]


def threaded_camera(threads: int, argv: list[str]) -> None:
    """`peercam ARGV` (a camera) with every codec context it makes set to ``threads`` threads.

    An experiment beside what peercam does (one thread per layer's encoder): the cpu part's
    series for each number given with --encoder-threads.
    """
    import av

    from peercam import cli

    create = av.codec.CodecContext.create

    def create_threaded(*args, **kwargs):
        context = create(*args, **kwargs)
        context.thread_count = threads
        return context

    av.codec.CodecContext.create = staticmethod(create_threaded)
    cli.main(argv)


#: A stamp read as further from the arrival than this is a misread (a corrupt picture whose
#: 16-bit check word happened to match): left out like an unreadable one.
PLAUSIBLE_LATENCY_MS = (-1000.0, 120_000.0)


def latency_ms(frame: tuple) -> float | None:
    """How old a frame (arrival, width, height, capture ms, ...) was on arrival; None if unreadable."""
    if frame[3] < 0:
        return None
    latency = frame[0] * 1000 - frame[3]
    return latency if PLAUSIBLE_LATENCY_MS[0] <= latency <= PLAUSIBLE_LATENCY_MS[1] else None


def cell(value, fmt: str = ".0f", none: str = "-") -> str:
    """A table cell: ``value`` in ``fmt``, ``none`` when there is none (or it is NaN)."""
    return none if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)
