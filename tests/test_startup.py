"""What each command loads (issue 28): `peercam --help`, `peercam token` and `peercam serve`
load no aiortc, PyAV or OpenCV; `peercam view` no OpenCV unless it opens a window, and no
aiohttp (its client makes TLS contexts at import: the peers use websockets'); and
`import peercam` loads each part of its API when it is first used.

What a process imported is read from Python's own ``-X importtime`` lines on its stderr
(PYTHONPROFILEIMPORTTIME=1 for the commands the lab starts): the real command, as run.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from peercam.signaling.edge.auth import read_token

from .conftest import LOOPBACK, ROOT, assert_plays, get_json, wait_until

#: What the issue keeps out of the commands that need no media.
MEDIA = {"aiortc", "av", "cv2"}
IMPORTTIME = ["env", "PYTHONPROFILEIMPORTTIME=1"]


def imported(stderr: str) -> set[str]:
    """The modules named in ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2} - {"imported package"}


def packages(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}


def run_peercam(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "peercam", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["view", "--help"], ["camera", "--help"]])
def test_help_loads_no_media_library(args):
    result = run_peercam(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: peercam")
    modules = imported(result.stderr)
    assert "peercam.cli" in modules  # the lines were read
    assert not packages(modules) & MEDIA, sorted(m for m in modules if m.split(".")[0] in MEDIA)


def test_token_loads_no_media_library():
    result = run_peercam("token", "--secret", "s3cret", "--stream", "lab", "--role", "view")
    assert result.returncode == 0, result.stderr[-2000:]
    grant = read_token("s3cret", result.stdout.strip())
    assert (grant.stream, grant.role) == ("lab", "view")
    modules = imported(result.stderr)
    assert "peercam.signaling.edge.auth" in modules
    assert not packages(modules) & MEDIA, sorted(m for m in modules if m.split(".")[0] in MEDIA)


def test_a_serving_server_loads_no_media_library_and_a_viewer_no_opencv(lab):
    """The server relays a stream to one viewer while another watches it P2P; neither viewer
    shows a window, so neither loads OpenCV, and neither loads aiohttp."""
    server = lab.start("server", "serve", "--port", str(lab.port), prefix=IMPORTTIME)
    wait_until(lambda: get_json(f"{lab.url}/healthz"), 15, "the server to answer /healthz")
    lab.start_camera("lab")
    viewers = {mode: lab.start(f"viewer-{mode}", "view", "--server", lab.url, "--stream", "lab", "--json",
                               *LOOPBACK, "--mode", mode, "--duration", "1", prefix=IMPORTTIME)
               for mode in ("relay", "p2p")}
    for mode, viewer in viewers.items():
        assert_plays(viewer.summary(timeout=30), mode)  # with its sound: PyAV decodes it
        modules = packages(imported(viewer.log()))
        assert {"aiortc", "av"} <= modules and not modules & {"cv2", "aiohttp"}, mode

    server.kill(signal.SIGTERM)
    assert server.proc.returncode == 0, server.log()[-2000:]
    modules = imported(server.log())
    assert "peercam.signaling.edge.app" in modules
    assert not packages(modules) & MEDIA, sorted(m for m in modules if m.split(".")[0] in MEDIA)


def test_import_peercam_loads_each_part_of_the_api_on_first_use():
    code = (
        "import sys\n"
        "def media():\n"
        f"    return sorted({{m.split('.')[0] for m in sys.modules}} & {MEDIA!r})\n"
        "import peercam\n"
        "print(media())\n"
        "assert set(peercam.__all__) <= set(dir(peercam))\n"
        "from peercam import ServerConfig, UsageError\n"
        "print(media())\n"
        "from peercam import Camera, watch\n"
        "print(media(), Camera.__name__, watch.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]", "['aiortc', 'av', 'cv2'] Camera watch"]
