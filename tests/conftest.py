"""Shared fixtures: the real server, camera and viewers, as separate processes on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from peercam.peers.ice import restrict_host_addresses

from .support.chromium import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS
from .support.netns import SplitNetwork, unavailable_reason
from .support.redisserver import RedisServer
from .support.redisserver import unavailable_reason as redis_unavailable_reason

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: The checkout the tests run from (examples/ and bench/ live there).
ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = ["--ice-host", "127.0.0.1"]


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop that lacks a tool; on CI a missing tool is a failure."""
    if not condition:
        if ON_CI:
            pytest.fail(f"required on CI: {reason}")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def get_json(url: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


class Process:
    """A peercam command in its own process, output kept in a log file."""

    def __init__(self, args: list[str], log_dir: Path, name: str, prefix: list[str] | None = None,
                 stdin: bool = False) -> None:
        self.command = args[0] if args else ""
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "peercam", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def type_line(self, text: str) -> None:
        """Type a line on the process's stdin (started with ``stdin=True``)."""
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_for_log(self, text: str, timeout: float, count: int = 1) -> None:
        wait_until(lambda: self.log().count(text) >= count, timeout,
                   f"{text!r} x{count} in {self.log_path.name}:\n{self.log()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(10)

    def result(self, timeout: float) -> tuple[int, str]:
        stdout, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, stdout

    def summary(self, timeout: float) -> dict:
        """The JSON summary on the last line of a ``view --json`` run."""
        code, stdout = self.result(timeout)
        lines = stdout.strip().splitlines()
        assert code == 0 and lines, f"viewer exited {code}:\n{self.log()[-3000:]}"
        return json.loads(lines[-1])

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def close(self, deadline: float | None = None) -> None:
        """Terminate it and wait for it to end until ``deadline`` (monotonic; 5 s from now
        by default), then kill it."""
        self.terminate()
        deadline = time.monotonic() + 5 if deadline is None else deadline
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


class Lab:
    """Starts peercam processes for a test and stops them all afterwards."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._port = free_port()
        self._url = f"http://127.0.0.1:{self._port}"
        self._server_starting = False
        self.processes: list[Process] = []
        self.server: Process | None = None
        #: Shown on the API calls the lab makes itself (a server with --auth all asks).
        self.token: str | None = None

    @property
    def port(self) -> int:
        """The server's port; a server still starting is waited for (see start_server)."""
        self.wait_for_server()
        return self._port

    @property
    def url(self) -> str:
        """The server's URL; a server still starting is waited for (see start_server)."""
        self.wait_for_server()
        return self._url

    @url.setter
    def url(self, url: str) -> None:
        self._url = url

    def wait_for_server(self) -> None:
        """Until a server still starting answers /healthz (once: later calls return at once)."""
        if self._server_starting:
            self._server_starting = False
            wait_until(lambda: get_json(f"{self._url}/healthz"), 15, "the server to answer /healthz")

    def api(self, path: str):
        """GET a JSON path of the server (None when it does not answer with JSON)."""
        return get_json(f"{self.url}{path}", self.token)

    def start(self, name: str, *args: str, prefix: list[str] | None = None, stdin: bool = False) -> Process:
        """A peercam command; ``prefix`` runs it through another, e.g. ``ip netns exec NS``."""
        process = Process(list(args), self.log_dir, f"{len(self.processes):02d}-{name}", prefix, stdin)
        self.processes.append(process)
        return process

    def show_logs(self, processes: list[Process]) -> None:
        """The end of each one's log, for a test that failed."""
        for process in processes:
            print(f"----- {process.log_path.name}\n{process.log()[-3000:]}")

    def start_server(self, *extra: str) -> Process:
        """The server; it is waited for (until it answers /healthz) at the first use of
        ``url``, ``port`` or ``api``, so that a camera started next (start_camera, which
        retries until the server answers) starts alongside it."""
        self.server = self.start("server", "serve", "--port", str(self._port), *extra)
        self._server_starting = True
        return self.server

    def start_camera(self, stream: str = "test", *extra: str, wait: bool = True) -> Process:
        if "--server" in extra:  # more servers than ours: it may go to the next while ours starts
            self.wait_for_server()
        camera = self.start(f"camera-{stream}", "camera", "--server", self._url, "--stream", stream,
                            *LOOPBACK, *extra)
        self.wait_for_server()
        if wait:
            wait_until(lambda: (self.api(f"/api/streams/{stream}") or {}).get("live"),
                       15, f"stream {stream!r} to go live")
        return camera

    def start_viewer(self, stream: str = "test", *extra: str, stdin: bool = False) -> Process:
        return self.start(f"viewer-{stream}", "view", "--server", self.url, "--stream", stream,
                          "--json", *LOOPBACK, *extra, stdin=stdin)

    def stop(self) -> None:
        """Stop the cameras, viewers and the rest side by side, then the servers they say
        goodbye to; each given 5 s to end before it is killed."""
        servers = [process for process in self.processes if process.command == "serve"]
        for wave in ([process for process in self.processes if process not in servers], servers):
            for process in reversed(wave):
                process.terminate()
            deadline = time.monotonic() + 5
            for process in reversed(wave):
                process.close(deadline)


@pytest.fixture
def lab(tmp_path: Path, request) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        lab.show_logs(lab.processes)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory) -> Callable[..., str]:
    """``make_clip(width, height)``: an H.264 clip of ffmpeg's ``testsrc2`` at 25 fps, made once.

    ``source`` names another lavfi source (``color`` is plain black); ``ext`` picks the container.
    """
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    folder = tmp_path_factory.mktemp("clips")

    def make(width: int, height: int, seconds: float = 1.0, source: str = "testsrc2",
             ext: str = "mp4") -> str:
        path = folder / f"{source}-{width}x{height}-{seconds:g}s.{ext}"
        if not path.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                            "-i", f"{source}=size={width}x{height}:rate=25", "-t", f"{seconds:g}",
                            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                           check=True, timeout=60)
        return str(path)

    return make


@pytest.fixture
def loopback_ice():
    """aiortc peers in this process offer only 127.0.0.1 (a process-wide setting of aioice)."""
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


@pytest.fixture
def split_network():
    """Two network namespaces joined by a veth pair (tests/support/netns.py), removed afterwards."""
    reason = unavailable_reason()
    require(reason is None, reason or "")
    network = SplitNetwork()
    yield network
    network.remove()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on loopback (tests/support/redisserver.py)."""
    reason = redis_unavailable_reason()
    require(reason is None, reason or "")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@contextmanager
def chromium(*extra_args: str) -> Iterator:
    """Debian's headless Chromium, driven by Playwright (never a downloaded browser), with
    CHROMIUM_ARGS and ``extra_args``.

    Hold it no longer than a test or a module of sync tests: Playwright's sync API keeps an
    event loop running while it is open, which would block the asyncio tests that follow.
    """
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A loopback port that something already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


class ChromiumKeeper:
    """One Chromium kept open across consecutive tests that ask for it with the same flags,
    each test in contexts of its own (closed after it): a launch costs seconds, a context
    a fraction of one.

    pytest_runtest_teardown closes it before a test that does not ask for it runs: its
    Playwright keeps an event loop set as running (see ``chromium``), which would break
    asyncio tests and a test's own ``chromium()``.
    """

    def __init__(self) -> None:
        self._session = None
        self._browser = None
        self._args: tuple[str, ...] | None = None

    def get(self, *extra_args: str):
        """The kept Chromium with these extra flags (relaunched with other flags, or after
        it went away)."""
        if self._browser is not None and (self._args != extra_args or not self._browser.is_connected()):
            self.close()
        if self._browser is None:
            session = chromium(*extra_args)
            self._browser = session.__enter__()
            self._session, self._args = session, extra_args
        return self._browser

    @contextmanager
    def use(self, *extra_args: str) -> Iterator:
        """``get`` for a ``with`` block: what the block opens in it is closed after it."""
        browser = self.get(*extra_args)
        try:
            yield browser
        finally:
            self.close_contexts()

    def close_contexts(self) -> None:
        """What a test opened in the kept Chromium goes with it."""
        if self._browser is not None and self._browser.is_connected():
            for context in self._browser.contexts:
                context.close()

    def close(self) -> None:
        if self._session is not None:
            session, self._session, self._browser, self._args = self._session, None, None, None
            session.__exit__(None, None, None)


_CHROMIUM_KEEPER = ChromiumKeeper()


@pytest.fixture
def chromium_keeper() -> Iterator[ChromiumKeeper]:
    """The kept Chromium (``ChromiumKeeper.get``); what the test opens in it is closed after it."""
    yield _CHROMIUM_KEEPER
    _CHROMIUM_KEEPER.close_contexts()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        if nextitem is None or "chromium_keeper" not in nextitem.fixturenames:
            _CHROMIUM_KEEPER.close()


@pytest.fixture
def browser(chromium_keeper):
    """Headless Chromium (kept open for the next test that asks for it: open contexts in it)."""
    return chromium_keeper.get()


@pytest.fixture
def page(browser):
    context = browser.new_context(**CONTEXT_OPTIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def static_server(tmp_path_factory) -> Iterator[Lab]:
    """A server without streams, one for the run: the origin of pages that only import its
    /static/js/ modules."""
    lab = Lab(tmp_path_factory.mktemp("static-server"))
    try:
        lab.start_server()
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def page_on_server(page, static_server):
    """The ``page`` on a real server's origin (its dashboard), where /static/js/ modules import:
    for tests that run the page's own modules on shared case files."""
    page.goto(f"{static_server.url}/")
    return page


def decoded_frames(page) -> int:
    return page.evaluate("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames")


def wait_for_frames(page, more_than: int, timeout: float = 30) -> int:
    """Wait until the page has decoded more than ``more_than`` frames.

    The bound is generous: on a busy machine the camera may make only a few frames a second.
    """
    page.wait_for_function(
        f"document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {more_than}",
        timeout=timeout * 1000,
    )
    return decoded_frames(page)


#: The test pattern's layers (640x480, ``--layers auto``) and their sizes. A viewer in auto
#: may be moved between them: a busy machine delays packets and can look like a bad network.
TESTSRC_LAYERS = {"480p": (640, 480), "360p": (480, 360)}


def assert_plays(summary: dict, mode: str = "p2p", layers: dict = TESTSRC_LAYERS) -> None:
    """A viewer's ``--json`` summary shows video that flowed, in this mode, on one of these
    layers and in a layer's size, with latency measured.

    "Flowed" is more than one frame after the warm-up, at any rate: a busy machine lowers
    the rate, and rates are for the benchmarks (bench/).
    """
    assert summary["mode"] == mode, summary
    assert summary["frames"] > 1 and summary["fps"] > 0, summary
    assert summary["layer"] in layers, summary
    assert (summary["width"], summary["height"]) in layers.values(), summary
    assert summary["latency_ms"] is not None, summary  # the test pattern's stamps were read


def frames_sent_to(stream: dict | None, names) -> dict[str, int] | None:
    """What the camera's latest report (in ``/api/streams/NAME``) says it sent each P2P viewer,
    by display name; None until every one of them is in it."""
    stream = stream or {}
    ids = {viewer["name"]: viewer["id"] for viewer in stream.get("viewers", [])}
    camera_stats = (stream.get("camera") or {}).get("stats") or {}
    sent = {viewer["id"]: viewer.get("frames_sent", 0) for viewer in camera_stats.get("viewers", [])}
    if not all(ids.get(name) in sent for name in names):
        return None
    return {name: sent[ids[name]] for name in names}


def stop_viewers_at_a_camera_report(stream_json: Callable[[], dict | None], viewers: dict[str, Process],
                                    at_least: int = 60, timeout: float = 60) -> dict:
    """Stop P2P viewers right after a camera report that says how many frames it sent each one.

    ``viewers`` are ``view --json`` processes without ``--duration`` or ``--warmup``, keyed
    by their ``--name``; ``stream_json`` reads ``/api/streams/NAME``. Once the camera has
    sent each viewer ``at_least`` frames, each viewer is stopped (SIGINT) as soon as the
    camera's next report shows up. Returns ``/api/streams/NAME`` with that report: what it
    says the camera sent each viewer (``frames_sent_to``) and what each viewer's summary
    counts as decoded then cover the same frames.
    """
    names = list(viewers)

    def enough_sent() -> dict[str, int] | None:
        sent = frames_sent_to(stream_json(), names)
        return sent if sent and min(sent.values()) >= at_least else None

    first = wait_until(enough_sent, timeout, f"the camera to send each viewer {at_least} frames")

    def next_report() -> dict | None:
        stream = stream_json()
        sent = frames_sent_to(stream, names)
        return stream if sent and sent != first else None

    stream = wait_until(next_report, 10, "the camera's next stats report")
    for viewer in viewers.values():  # all at once: each then prints its summary
        viewer.proc.send_signal(signal.SIGINT)
    return stream


def assert_nothing_lost(summary: dict, sent: int) -> None:
    """The viewer decoded (almost) every frame the camera sent it.

    ``sent`` is from the report stop_viewers_at_a_camera_report stopped the viewer at.
    The frames the camera sent last may still be on their way (in the viewer's jitter
    buffer or decoder, later on a busy machine) when the viewer stops: a few are allowed
    for those, not more.
    """
    lost = sent - summary["frames"]
    assert lost <= max(10, sent // 20), f"the camera sent {sent} frames; the viewer decoded: {summary}"
