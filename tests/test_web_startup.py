"""The page's start-up: every module it needs is asked for at once (modulepreload), the
player's signaling socket opens beside the module loads and is taken over, not opened
twice, and the load's timeline (window.peercam.timeline()) names each step in order."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from peercam.shared.protocol import PROTOCOL_VERSION

from .conftest import wait_for_frames
from .support.chromium import goto_player, wait_for_player

WEB = Path(__file__).resolve().parents[1] / "web"
#: A module's static imports of its siblings (import ... from './x.js', import './x.js').
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^'";]*?\bfrom\s+['"]\./([\w.-]+\.js)['"]"""
                    r"""|^\s*import\s+['"]\./([\w.-]+\.js)['"]""", re.MULTILINE)
SCRIPT = re.compile(r'<script type="module"(?: async)? src="/static/js/([\w.-]+\.js)"></script>')
PRELOAD = re.compile(r'<link rel="modulepreload" href="/static/js/([\w.-]+\.js)">')
#: A module loaded later by import('./x.js') (the player, by early-watch.js).
DYNAMIC_IMPORT = re.compile(r"""\bimport\(['"]\./([\w.-]+\.js)['"]\)""")
#: The modulepreload list of the modules loaded later, for early-watch.js to ask for at once.
LATER = re.compile(r'<template id="player-modules">(.*?)</template>', re.DOTALL)
#: The steps of a P2P load, in the order they must come (load-timeline.js).
#: In this order; "connected" (DTLS) falls between answer and first-frame, before or after
#: first-packet: Chromium may queue the track's unmute ahead of the connection's state change.
P2P_STEPS = ["welcome", "watching", "stream-live", "offer-sent", "answer", "first-packet", "first-frame"]

#: Every RTCPeerConnection the page makes, in window.connections: when, with which ICE
#: servers, and when the page closed it (null while open).
RECORD_CONNECTIONS = """{
  const Made = RTCPeerConnection;
  window.connections = [];
  window.RTCPeerConnection = function (config) {
    const pc = new Made(config);
    const made = { at: performance.now(), iceServers: config.iceServers, closedAt: null };
    window.connections.push(made);
    const close = pc.close.bind(pc);
    pc.close = () => { made.closedAt ??= performance.now(); close(); };
    return pc;
  };
}"""


def module_graph(entries: list[str]) -> set[str]:
    seen, todo = set(), list(entries)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [a or b for a, b in IMPORT.findall((WEB / "js" / module).read_text())]
    return seen


def preload_line(module: str) -> str:
    return f'  <link rel="modulepreload" href="/static/js/{module}">'


def check_preloads(page: str, listed: list[str], wanted: set[str], where: str) -> None:
    assert len(listed) == len(set(listed)), f"{page} lists a module twice {where}"
    missing, extra = sorted(wanted - set(listed)), sorted(set(listed) - wanted)
    assert not missing, f"{page} should also preload {where}:\n" + "\n".join(map(preload_line, missing))
    assert not extra, (f"{page} preloads modules it does not import {where}:\n"
                       + "\n".join(map(preload_line, extra)))


@pytest.mark.parametrize("page", sorted(p.name for p in WEB.glob("*.html")))
def test_each_page_preloads_its_whole_module_graph(page):
    """Without the list, the browser finds each level of imports only once the level above
    has come: a waterfall. The list must name exactly what the page's scripts import; and
    the player's template, exactly what its later import() adds (with that module itself)."""
    html = (WEB / page).read_text()
    later_list = LATER.search(html)
    head = html.replace(later_list.group(0), "") if later_list else html
    entries = SCRIPT.findall(head)
    assert entries, f"{page} has no module script"
    first = module_graph(entries)
    check_preloads(page, PRELOAD.findall(head), first - set(entries), "in its head")
    later = {m for module in first for m in DYNAMIC_IMPORT.findall((WEB / "js" / module).read_text())}
    assert bool(later) == bool(later_list), f"{page}: a later import() needs the template, and only it"
    if later:
        check_preloads(page, PRELOAD.findall(later_list.group(1)), module_graph(sorted(later)) - first,
                       "in its template")


def test_the_player_takes_over_its_early_socket_and_times_each_step(lab, page):
    """The early socket carries the page's one watch (early-watch.js), and the session's offer
    is the one made ahead on the welcome (the one peer connection the page makes)."""
    lab.start_server()
    lab.start_camera("early")
    sockets, failed, sent = [], [], []

    def opened(ws):
        sockets.append(ws.url)
        ws.on("framesent", lambda data: sent.append(json.loads(data)) if isinstance(data, str) else None)

    page.on("websocket", opened)
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.add_init_script(RECORD_CONNECTIONS)
    goto_player(page, f"{lab.url}/view/early?mode=p2p&name=Early&quality=auto")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    wait_for_frames(page, 30)  # pictures keep coming on the socket it took over
    assert sockets == [f"{lab.url.replace('http', 'ws')}/ws"], sockets
    assert not failed, failed
    watches = [message for message in sent if message["type"] == "watch"]
    assert watches == [{"type": "watch", "stream": "early", "name": "Early", "token": "",
                        "protocol": PROTOCOL_VERSION, "quality": "auto"}], watches
    # One offer, on one peer connection: the session early-watch.js started is the one the
    # player carries on once it loads.
    assert [message["type"] for message in sent].count("offer") == 1, sent
    [made] = page.evaluate("window.connections")
    assert made["iceServers"] == []  # the welcome's: none here
    timeline = page.evaluate("peercam.timeline()")
    assert made["at"] < timeline["stream-live"], (made, timeline)  # made ahead, not when the camera was live
    times = [timeline.get(step) for step in P2P_STEPS]
    assert None not in times, timeline
    assert times == sorted(times), timeline
    assert timeline["answer"] <= timeline["connected"] <= timeline["first-frame"], timeline
    # The socket opened while the modules loaded: before player.js ran, or just after.
    assert {"document", "scripts", "script-run", "ws-open"} <= timeline.keys(), timeline
    assert timeline["document"] <= timeline["ws-open"] <= timeline["welcome"], timeline


def test_an_early_socket_that_closes_before_the_player_loads_ends_its_session(lab, page):
    """The first session runs on the early socket. When that socket closes before the player
    has loaded (a dropped connection), the session ends with it, and the player, on a socket
    of its own, starts another that plays."""
    lab.start_server()
    lab.start_camera("early")
    held: list = []  # the player's script, held back until the early socket has closed

    def hold(route):
        if held is None:
            route.continue_()
        else:
            held.append(route)

    page.add_init_script(RECORD_CONNECTIONS)
    page.route("**/static/js/player.js", hold)
    page.goto(f"{lab.url}/view/early?mode=p2p")
    wait_for_frames(page, 0, timeout=15)  # the early session's picture, with no player yet
    assert page.evaluate("typeof peercam") == "undefined"
    page.evaluate("window.peercamEarlySocket.socket.close()")
    page.wait_for_function("window.connections[0].closedAt !== null", timeout=5_000)
    routes, held = held, None
    for route in routes:
        route.continue_()
    wait_for_player(page)
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    wait_for_frames(page, 30)  # on the player's own session
    assert len(page.evaluate("window.connections")) == 2
