"""Auto quality under a real bandwidth cap: two network namespaces joined by a veth pair,
with tc's token bucket (tbf) on the camera's end. The server and the camera live in one
namespace; capped viewers in the other; an uncapped viewer beside the camera."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from .conftest import CHROMIUM, CHROMIUM_ARGS, CONTEXT_OPTIONS, Lab, require, wait_until
from .support.chromium import wait_for_player
from .support.netns import CAMERA_ADDRESS, VIEWER_ADDRESS, SplitNetwork, unavailable_reason

#: The cap: below 480p (1.2 Mbit/s), above 360p with its sound. The test pattern's 360p
#: layer takes about 505 kbit/s whatever its 400 kbit/s target (libvpx at its quantizer
#: limit), and its sound, the low-rate rendition with its headers, about 40 more: under a
#: 600 kbit/s cap that left no room for repairs, and the picture broke.
CAP_KBIT = 700
#: An auto viewer reaches a layer that fits within SETTLE_S after a cap arrives, and from
#: then on never waits longer than MAX_GAP_S for a picture. Pictures are checked over
#: WINDOW_S from there, and after a move until FIRST_PROBE_S: the first probe up comes once
#: the link has been clean for 8 s since the last move, and one that fails can still cost a
#: gap of over a second (bench/layers/timeline.py measures probes).
SETTLE_S, MAX_GAP_S, WINDOW_S, FIRST_PROBE_S = 5.0, 1.0, 4.0, 7.0
#: Once a 15 s cap is lifted, 720p comes back within CLIMB_S: a probe that failed late in
#: the cap makes the next wait 16 s, then two steps up, each a probe (up to 2.5 s, and a
#: receiver report) and the first held for 4 s.
CLIMB_S = 40
FRAMELOG = Path(__file__).with_name("framelog.py")


class FrameLog:
    """tests/framelog.py in the viewer's namespace: every frame the library decodes, as it comes."""

    def __init__(self, net: SplitNetwork, server_url: str, seconds: float, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [*net.prefix(net.viewer_ns), sys.executable, str(FRAMELOG), server_url, "hd",
             "--ice-host", VIEWER_ADDRESS, "--seconds", str(seconds), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.records: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.records.append(json.loads(line))

    @property
    def frames(self) -> list[dict]:
        return [r for r in list(self.records) if "w" in r]

    def wait_for_frames(self, since: float, timeout: float) -> None:
        wait_until(lambda: any(f["t"] >= since for f in self.frames), timeout,
                   f"a frame after {since:.1f}: {self.records[-5:]}")

    def wait_for_event(self, text: str, timeout: float) -> float:
        """When an event saying ``text`` came (Unix s), waiting for it if need be."""
        def found() -> float | None:
            return next((r["t"] for r in list(self.records) if text in r.get("text", "")), None)
        wait_until(found, timeout, f"{text!r} among {[r for r in self.records if 'event' in r]}")
        return found()

    def next_move_after(self, moment: float, otherwise: float) -> float:
        """When the move after ``moment`` was announced (``otherwise`` if none came)."""
        return min((r["t"] for r in self.records if r["t"] > moment and " -> " in r.get("text", "")),
                   default=otherwise)

    def finish_after(self, moment: float, timeout: float) -> list[dict]:
        """Every frame up to ``moment`` (Unix s): once a later frame came (or the clock is
        2 s past it), the log is told to stop early (SIGTERM) and ends as at its time."""
        wait_until(lambda: time.time() > moment + 2 or any(f["t"] > moment for f in self.frames),
                   timeout, f"the clock to pass {moment:.1f}")
        self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout=15)

    def finish(self, timeout: float) -> list[dict]:
        self.proc.wait(timeout)
        self._reader.join(5)
        assert self.records and self.records[-1].get("event") == "done", (self.proc.stderr.read()[-2000:],
                                                                           self.records[-5:])
        return self.frames

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Picture:
    """What a viewer saw in a window: decoded frames, their sizes, the longest wait between two,
    and the share of the camera's frames (by the test pattern's numbers) that it decoded."""

    frames: int
    sizes: set
    longest_gap: float
    decoded_share: float

    @classmethod
    def of(cls, frames: list[dict], start: float, end: float | None = None) -> Picture:
        window = [f for f in frames if f["t"] >= start and (end is None or f["t"] <= end)]
        assert len(window) > 1, f"no pictures after {start:.1f}"
        times = [start] + [f["t"] for f in window] + ([end] if end is not None else [])
        numbers = [f["n"] for f in window if f["n"] is not None]
        span = max(numbers) - min(numbers) + 1 if numbers else 0
        return cls(len(window), {(f["w"], f["h"]) for f in window},
                   max(b - a for a, b in zip(times, times[1:], strict=False)),
                   len(numbers) / span if span else 0.0)

    def assert_keeps_coming(self, size: tuple[int, int], numbered: bool = True,
                            max_gap: float = MAX_GAP_S) -> None:
        assert self.sizes == {size}, self
        assert self.longest_gap <= max_gap, self
        # By frame number, not by rate: a busy machine may slow the camera, never skip its frames
        # here. (Not on the relay across renditions: each numbers its frames its own way.)
        assert not numbered or self.decoded_share >= 0.9, self


def picture_after_move(frames: list[dict], moved_at: float, size: tuple[int, int], until: float,
                       numbered: bool = True, max_gap: float = MAX_GAP_S) -> Picture:
    """A move announced at ``moved_at``: a frame of the new ``size`` within a second, and only
    such frames from then ``until``, none more than a second apart."""
    first = next((f for f in frames if f["t"] >= moved_at and (f["w"], f["h"]) == size), None)
    assert first is not None and first["t"] - moved_at <= MAX_GAP_S, (first, moved_at)
    # A later move's first frames come before its `layer` message (the frames by RTP, the
    # message on the signaling socket behind the same capped link): stop at either.
    until = min([until] + [f["t"] for f in frames if f["t"] > first["t"] and (f["w"], f["h"]) != size])
    picture = Picture.of(frames, first["t"], until)
    picture.assert_keeps_coming(size, numbered, max_gap)
    return picture


def start_camera_side(lab, net: SplitNetwork) -> str:
    server_url = f"http://{CAMERA_ADDRESS}:{lab.port}"
    lab.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(lab.port),
                  prefix=net.prefix(net.camera_ns))
    camera = lab.start("camera", "camera", "--server", server_url, "--stream", "hd", "--width", "1280",
                           "--height", "720", "--ice-host", CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
    camera.wait_for_log("publishing 'hd'", timeout=20)
    return server_url


@dataclass
class CameraSide:
    lab: Lab
    net: SplitNetwork
    server_url: str


@pytest.fixture(scope="module")
def shared_camera_side(tmp_path_factory):
    """One split network, server and 1280x720 camera for the module: each viewer adapts on
    its own, so the tests share them (the run's time) and bring their own viewers."""
    reason = unavailable_reason()
    require(reason is None, reason or "")
    net = SplitNetwork()
    lab = Lab(tmp_path_factory.mktemp("adaptation"))
    try:
        yield CameraSide(lab, net, start_camera_side(lab, net))
    finally:
        lab.stop()
        net.remove()


@pytest.fixture
def camera_side(shared_camera_side, request):
    """The shared camera side for one test: afterwards the cap is lifted and the test's own
    processes stop (their logs shown when it failed)."""
    lab = shared_camera_side.lab
    ours = len(lab.processes)
    yield shared_camera_side
    shared_camera_side.net.cap(None)
    for process in lab.processes[ours:]:
        process.close()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        lab.show_logs(lab.processes)  # the shared server and camera's, and this test's own
    del lab.processes[ours:]


def viewer(lab, net: SplitNetwork, server_url: str, name: str, *extra: str, capped: bool = True):
    ns, address = (net.viewer_ns, VIEWER_ADDRESS) if capped else (net.camera_ns, CAMERA_ADDRESS)
    return lab.start(name, "view", "--server", server_url, "--stream", "hd", "--json",
                         "--ice-host", address, "--name", name, *extra, prefix=net.prefix(ns))


def cap_then_lift(net: SplitNetwork, step_down, climb_back, seconds: float = 15) -> tuple[float, float]:
    """Cap the link; ``step_down()`` waits for the viewer to move down; after ``seconds`` the
    cap is lifted and ``climb_back()`` waits for it to come back. Returns both durations."""
    net.cap(CAP_KBIT)
    capped_at = time.monotonic()
    step_down()
    settled = time.monotonic() - capped_at
    time.sleep(max(0.0, capped_at + seconds - time.monotonic()))  # the scenario: the cap lasts a while
    net.cap(None)
    lifted_at = time.monotonic()
    climb_back()
    return settled, time.monotonic() - lifted_at


def test_an_auto_viewer_steps_down_under_a_cap_and_climbs_back(camera_side):
    """The camera moves the capped viewer down within seconds and back after, and after each
    move pictures of the new size keep coming; an uncapped CLI viewer of the same camera is
    never moved."""
    lab, net, server_url = camera_side.lab, camera_side.net, camera_side.server_url
    free = viewer(lab, net, server_url, "free", capped=False)
    log = FrameLog(net, server_url, 90)
    try:
        free.wait_for_log("first frame", timeout=20)
        log.wait_for_frames(0, timeout=20)
        log.wait_for_frames(log.frames[0]["t"] + 2, timeout=10)
        low, high = {}, {}

        def step_down() -> None:
            low["at"] = log.wait_for_event("-> 360p", timeout=10)

        def climb_back() -> None:
            high["at"] = log.wait_for_event("-> 720p", timeout=CLIMB_S)
            log.wait_for_frames(high["at"] + 4, timeout=10)

        settled, climbed = cap_then_lift(net, step_down, climb_back)
        lifted_at = high["at"] - climbed
    finally:
        log.close()
    # Right after the move the old layer's queue still drains: gaps are checked, not the share.
    down = picture_after_move(log.frames, low["at"], (640, 360),
                              min(log.next_move_after(low["at"], lifted_at), low["at"] + FIRST_PROBE_S),
                              numbered=False)
    up = picture_after_move(log.frames, high["at"], (1280, 720), high["at"] + 4)
    free.kill(signal.SIGINT)  # it watched all along: its summary now
    summary = free.summary(timeout=15)
    print(f"settled in {settled:.1f} s, climbed back in {climbed:.1f} s; at 360p {down}; at 720p {up}")
    assert summary["layer"] == "720p" and summary["layer_switches"] == 0, summary
    assert any("360p (640x360): " in r.get("text", "") for r in log.records)  # each move says why


def test_an_auto_viewer_capped_from_the_start_settles_and_its_picture_keeps_coming(camera_side):
    """The cap is there before the viewer: within 5 s it plays a layer that fits, and from
    then on never waits more than a second for a picture, nor loses the camera's frames
    (until its first probe up: see WINDOW_S)."""
    net, server_url = camera_side.net, camera_side.server_url
    net.cap(CAP_KBIT)
    log = FrameLog(net, server_url, 20)
    try:
        log.wait_for_frames(0, timeout=15)
        first = log.frames[0]["t"]
        frames = log.finish_after(first + SETTLE_S + WINDOW_S, timeout=40)
    finally:
        log.close()
    picture = Picture.of(frames, first + SETTLE_S, first + SETTLE_S + WINDOW_S)
    print(f"after {SETTLE_S:g} s: {picture}")
    picture.assert_keeps_coming((640, 360))


def test_an_auto_viewer_capped_mid_stream_moves_down_and_its_picture_keeps_coming(camera_side):
    """A cap 4 s into playback at 720p: the camera moves the viewer to 360p, and 360p frames
    are decoded from then on without a gap of more than a second, nor the camera's frames lost."""
    net, server_url = camera_side.net, camera_side.server_url
    log = FrameLog(net, server_url, 22)
    try:
        log.wait_for_frames(0, timeout=15)
        log.wait_for_frames(log.frames[0]["t"] + 4, timeout=15)
        before = Picture.of(log.frames, log.frames[0]["t"] + 1)
        net.cap(CAP_KBIT)
        capped_at = time.time()
        frames = log.finish_after(capped_at + SETTLE_S + WINDOW_S, timeout=40)
    finally:
        log.close()
    assert before.sizes == {(1280, 720)}, before
    moves = [r["text"] for r in log.records if r.get("event") == "layer"]
    picture = Picture.of(frames, capped_at + SETTLE_S, capped_at + SETTLE_S + WINDOW_S)
    print(f"moves {moves}; after {SETTLE_S:g} s: {picture}")
    assert any("-> 360p" in move for move in moves), moves
    picture.assert_keeps_coming((640, 360))


def test_a_viewer_pinned_to_a_layer_stays_there_under_a_cap(camera_side):
    lab, net, server_url = camera_side.lab, camera_side.net, camera_side.server_url
    pinned = viewer(lab, net, server_url, "pinned", "--quality", "720p", "--duration", "12")
    pinned.wait_for_log("first frame", timeout=20)
    net.cap(CAP_KBIT)
    summary = pinned.summary(timeout=60)
    assert (summary["layer"], summary["layer_switches"]) == ("720p", 0), summary


@pytest.mark.parametrize("relay_format,low,high,max_gap", [
    # JPEG steps its quality down first (to 50), then the layer; encoded steps the layer.
    # JPEG's lowest rendition (360p q50, about 4 Mbit/s at 30 fps) is far above the cap: the
    # newest frame wins, a few a second, and the WebSocket's TCP behind a full queue has
    # stalled up to 1.9 s between two.
    ("jpeg", "-> 360p (640x360, JPEG q50)", "-> 720p (1280x720, JPEG q80)", 2.5),
    ("encoded", "-> 360p (640x360)", "-> 720p (1280x720)", MAX_GAP_S),
])
def test_an_auto_relay_viewer_steps_down_and_climbs_back(camera_side, relay_format, low, high,
                                                         max_gap):
    net, server_url = camera_side.net, camera_side.server_url
    log = FrameLog(net, server_url, 90, "--mode", "relay", "--relay-format", relay_format)
    try:
        log.wait_for_frames(0, timeout=20)
        moved = {}

        def step_down() -> None:
            moved["down"] = log.wait_for_event(low, timeout=15)

        def climb_back() -> None:
            moved["up"] = log.wait_for_event(high, timeout=30)
            log.wait_for_frames(moved["up"] + 4, timeout=10)

        settled, climbed = cap_then_lift(net, step_down, climb_back)
        lifted_at = moved["up"] - climbed
    finally:
        log.close()
    assert any(f"(relay, {relay_format})" in r.get("text", "") for r in log.records), log.records[:5]
    # On the relay a step up is tried by taking it (the page and the CLI decode what comes), so
    # the 360p picture is checked until the next move.
    until = min(log.next_move_after(moved["down"], lifted_at), moved["down"] + FIRST_PROBE_S)
    down = picture_after_move(log.frames, moved["down"], (640, 360), until, numbered=False, max_gap=max_gap)
    up = picture_after_move(log.frames, moved["up"], (1280, 720), moved["up"] + 4, numbered=False)
    moves = [r["text"] for r in log.records if " -> " in r.get("text", "")]
    print(f"settled in {settled:.1f} s, climbed back in {climbed:.1f} s; {moves}; {down}; {up}")
    assert "frames skipped" in moves[0] and "clean for" in moves[-1]


@pytest.fixture(scope="module")
def viewer_ns_chromium(shared_camera_side, tmp_path_factory):
    """Chromium inside the viewer's namespace, one for the module's (sync) page tests: each
    opens its page in a context of its own."""
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    net = shared_camera_side.net
    chromium_in_viewer_ns = net.executable_in(net.viewer_ns, CHROMIUM, tmp_path_factory.mktemp("chromium"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_in_viewer_ns), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_in_viewer_ns(browser, server_url: str):
    """The player in the viewer's namespace (``viewer_ns_chromium``, a context of its own), P2P,
    auto quality, with every picture it presents recorded (WATCH_PICTURES) from the moment it
    loads."""
    page = browser.new_page(**CONTEXT_OPTIONS)
    try:
        failed = []  # what went wrong while it loaded: failed requests, errors, warnings
        page.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
        page.on("response", lambda response: failed.append(f"{response.url}: {response.status}")
                if response.status >= 400 else None)
        page.on("pageerror", lambda error: failed.append(f"page error: {error}"))
        page.on("console", lambda message: failed.append(f"{message.type}: {message.text}")
                if message.type in ("error", "warning") else None)
        page.goto(f"{server_url}/view/hd?mode=p2p")
        page.evaluate(WATCH_PICTURES)
        try:
            wait_for_player(page)
        except PlaywrightError:
            # The player has been seen not to start, in about 1 full-suite run in 10 (a
            # module that did not arrive?), and never when loaded alone (0 of 30 over
            # the capped link, the machine idle or busy). Said with what went wrong, and
            # loaded again: what is tested here is the picture once it plays.
            print(f"the page did not start ({failed}): loading it again")
            page.reload()
            page.evaluate(WATCH_PICTURES)
            wait_for_player(page)
        yield page
    finally:
        page.context.close()


def test_the_page_in_auto_follows_a_cap_too(camera_side, viewer_ns_chromium):
    """Down under a cap that comes mid-stream and back up once it is lifted, with pictures of
    the new size within a second of each move and from then on (at 360p until the first
    probe up), never a second apart."""
    net = camera_side.net
    with page_in_viewer_ns(viewer_ns_chromium, camera_side.server_url) as page:
        page.wait_for_function("window.pictures.length > 30 && peercam.layer()?.layer === '720p'",
                               timeout=20_000)
        moved = {}

        def layer_is(name: str, timeout: float):
            def wait() -> None:
                page.wait_for_function(f"peercam.layer().layer === '{name}'", timeout=timeout * 1000)
                moved[name] = time.time()
            return wait

        settled, climbed = cap_then_lift(net, layer_is("360p", 10), layer_is("720p", CLIMB_S))
        page.wait_for_function(f"Date.now() / 1000 > {moved['720p'] + 4}", timeout=10_000)
        pictures = page.evaluate("window.pictures")
        layer = page.evaluate("peercam.layer()")
    down = picture_after_move(pictures, moved["360p"], (640, 360),
                              min(moved["720p"] - climbed, moved["360p"] + FIRST_PROBE_S), numbered=False)
    up = picture_after_move(pictures, moved["720p"], (1280, 720), moved["720p"] + 4, numbered=False)
    print(f"page settled in {settled:.1f} s, climbed back in {climbed:.1f} s; {down}; {up}")
    assert layer["reason"].startswith("clean for") and layer["switches"] >= 2, layer


def test_the_page_capped_before_it_loads_settles_and_its_picture_keeps_coming(camera_side,
                                                                               viewer_ns_chromium):
    """The cap is there before the page: it shows a first picture, plays a layer that fits
    within 5 s, and from then on never waits more than a second for a picture."""
    net, server_url = camera_side.net, camera_side.server_url
    net.cap(CAP_KBIT)
    with page_in_viewer_ns(viewer_ns_chromium, server_url) as page:
        try:
            page.wait_for_function("window.pictures.length > 0", timeout=15_000)
        except PlaywrightError as exc:
            state = page.evaluate("({state: String(window.peercam?.state()), stats: window.peercam?.stats(),"
                                  " status: document.getElementById('status').innerText})")
            raise AssertionError(f"no picture within 15 s: {state}") from exc
        first = page.evaluate("window.pictures[0].t")
        page.wait_for_function(f"Date.now() / 1000 > {first + SETTLE_S + WINDOW_S}", timeout=15_000)
        pictures = page.evaluate("window.pictures")
    picture = Picture.of(pictures, first + SETTLE_S, first + SETTLE_S + WINDOW_S)
    print(f"page after {SETTLE_S:g} s: {picture}")
    picture.assert_keeps_coming((640, 360), numbered=False)


#: Every picture the page's video element presents: (Unix s, width, height).
WATCH_PICTURES = """() => {
  const video = document.getElementById('video');
  window.pictures = [];
  const presented = (now, meta) => {
    window.pictures.push({t: Date.now() / 1000, w: meta.width, h: meta.height, n: null});
    video.requestVideoFrameCallback(presented);
  };
  video.requestVideoFrameCallback(presented);
}"""
