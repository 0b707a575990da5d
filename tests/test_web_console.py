"""The pages in normal use log no console error and make no failed request, in real headless
Chromium: the dashboard, the player (P2P, relay encoded, relay JPEG), the publish page with
a player on its stream, and the recordings view, on a plain server, one that records, and
one under --auth all (recording too, so the recordings go through the token as well).

Each page plays first (frames decoded, bounded waits), then runs one more round of its
polling, so what it asks the API on every refresh is checked too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest
from peercam.signaling.edge.auth import make_token

from .conftest import Lab, chromium, wait_for_frames
from .support.chromium import CONTEXT_OPTIONS, wait_for_player
from .test_web_publish import FAKE_MEDIA_ARGS
from .test_web_recording import SECRET, play_and_seek_a_closed_segment, record_args
from .test_web_relay import wait_for_delivery

#: The Python camera's stream; the browser camera publishes BROWSER_STREAM.
STREAM = "cam"
BROWSER_STREAM = "bcam"
#: Each page's slowest poll of the API (the player's recordings.js): one round fits in this.
POLL_S = 3


class Server:
    """A module's server in one configuration, with a Python camera on STREAM."""

    def __init__(self, lab: Lab, auth: bool, records: bool) -> None:
        self.lab = lab
        self.auth = auth
        self.records = records

    def token(self, stream: str, role: str = "view") -> str | None:
        """What a page is given under --auth all; None where the server asks none."""
        return make_token(SECRET, stream, role, 600) if self.auth else None

    def url(self, path: str, token: str | None = None, **query: str) -> str:
        if token:
            query["token"] = token
        return f"{self.lab.url}{path}" + (f"?{urlencode(query)}" if query else "")


#: The servers' configurations; those that record come first (see test_recordings_view).
CONFIGS = ["recording", "auth", "plain"]
RECORDING_CONFIGS = CONFIGS[:2]


@pytest.fixture(scope="module", params=CONFIGS)
def server(request, tmp_path_factory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp(f"console-{request.param}")
    auth, records = request.param == "auth", request.param != "plain"
    lab = Lab(folder)
    args = record_args(folder / "rec") if records else []
    if auth:
        args += ["--auth", "all", "--secret", SECRET]
        lab.token = make_token(SECRET, "*", "view", 600)
    lab.start_server(*args)
    try:
        publish = ["--token", make_token(SECRET, STREAM, "publish", 600)] if auth else []
        lab.start_camera(STREAM, *publish)
        yield Server(lab, auth, records)
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (the pages share it, each in a context of its own), with a
    fake camera for the publish page."""
    with chromium(*FAKE_MEDIA_ARGS) as browser:
        yield browser


class Pages:
    """Pages in fresh contexts, each watched from before it loads for what goes wrong on it:
    console errors, uncaught exceptions, requests that fail or answer 400 and up (the
    favicon's included)."""

    def __init__(self, browser) -> None:
        self._browser = browser
        self._watched: list[tuple[object, list[str]]] = []  # (page, what went wrong on it)

    def open(self, url: str | None = None):
        page = self._browser.new_context(**CONTEXT_OPTIONS).new_page()
        seen: list[str] = []
        self._watched.append((page, seen))
        page.on("console", lambda message: seen.append(f"console error: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: seen.append(f"exception: {error}"))
        page.on("requestfailed", lambda request: seen.append(
            f"failed: {request.method} {request.url} ({request.failure})"))
        page.on("response", lambda response: seen.append(
            f"HTTP {response.status}: {response.request.method} {response.url}")
                if response.status >= 400 else None)
        if url is not None:
            page.goto(url)
        return page

    def assert_clean(self) -> None:
        found = {page.url: seen for page, seen in self._watched if seen}
        assert not found, f"problems on the pages: {found}"

    def close(self) -> None:
        for page, _ in self._watched:
            page.context.close()


@pytest.fixture
def pages(browser):
    pages = Pages(browser)
    yield pages
    pages.close()


def one_more_poll(page) -> None:
    """Wait for the page's next answer from the API, which it polls: a whole round of its
    polling (and what it asks after it) runs after the page first played."""
    with page.expect_response(lambda response: urlparse(response.url).path.startswith("/api/"),
                              timeout=(POLL_S + 5) * 1000):
        pass


def test_dashboard(server, pages):
    page = pages.open(server.url("/", server.token("*")))
    card = f"li.stream[data-stream={STREAM}]"
    page.wait_for_function(f"document.querySelector('{card} img.thumbnail')?.src.startsWith('blob:')",
                           timeout=15_000)
    assert page.is_visible(f"{card} .rec-badge") == server.records
    one_more_poll(page)
    pages.assert_clean()


@pytest.mark.parametrize("mode, query", [
    ("p2p", {"mode": "p2p"}),
    ("relay", {"mode": "relay", "relay_format": "encoded"}),
    ("relay", {"mode": "relay", "relay_format": "jpeg"}),
], ids=["p2p", "relay-encoded", "relay-jpeg"])
def test_player(server, pages, mode, query):
    page = pages.open(server.url(f"/view/{STREAM}", server.token(STREAM), **query))
    wait_for_player(page)
    wait_for_delivery(page, mode, timeout=15)
    if mode == "p2p":
        wait_for_frames(page, 10)
    else:
        page.wait_for_function(f"peercam.stats().relayFormat === '{query['relay_format']}'"
                               " && peercam.stats().frames > 10", timeout=30_000)
    one_more_poll(page)
    # Only a server that records has recordings to show.
    assert page.is_visible("#recordings") == page.is_visible("#rec") == server.records
    pages.assert_clean()


# A prefix of CONFIGS: pytest shares a module's fixture instance by the parameter's index,
# so these cases reuse the servers the other cases start.
@pytest.mark.parametrize("server", RECORDING_CONFIGS, indirect=True)
def test_recordings_view(server, pages):
    """A closed segment is listed, plays and seeks (a server without --record-dir has no
    recordings view: test_player checks that the player shows none)."""
    token = server.token(STREAM)
    play_and_seek_a_closed_segment(pages.open(), server.lab, f"?token={token}" if token else "")
    pages.assert_clean()


def test_publish_page_and_a_player_of_its_stream(server, pages):
    camera = pages.open(server.url(f"/publish/{BROWSER_STREAM}", server.token(BROWSER_STREAM, "publish"),
                                   source="camera", autostart="1"))
    camera.wait_for_function("peercam.state() === 'live'", timeout=15_000)
    viewer = pages.open(server.url(f"/view/{BROWSER_STREAM}", server.token(BROWSER_STREAM)))
    wait_for_player(viewer)
    wait_for_delivery(viewer, "p2p", timeout=15)
    wait_for_frames(viewer, 10)
    one_more_poll(camera)  # it polls while live
    one_more_poll(viewer)
    pages.assert_clean()
