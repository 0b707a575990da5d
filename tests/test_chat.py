"""Chat through the camera's hub: P2P viewers on data channels, relay viewers over signaling."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import signal
import threading
import time
import urllib.request

import aiohttp

from .conftest import CONTEXT_OPTIONS, get_json, wait_until
from .support.chromium import goto_player
from .test_security import running, wait_for_message
from .test_websocket import Client

CHAT_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] #(\d+) ([^:]+): (.*)$")


def chat_lines(stdout: str) -> list[tuple[int, str, str]]:
    return [(int(m[1]), m[2], m[3]) for m in map(CHAT_LINE.match, stdout.splitlines()) if m]


def test_p2p_and_relay_viewers_share_one_ordered_chat_with_history(lab, tmp_path):
    lab.start_server()
    chat_log = tmp_path / "chat.jsonl"
    camera = lab.start_camera("talk", "--name", "cam", "--chat-log", str(chat_log))
    alice = lab.start_viewer("talk", "--chat", "--name", "alice", "--duration", "60", stdin=True)
    bob = lab.start_viewer("talk", "--chat", "--name", "bob", "--mode", "relay", "--duration", "60",
                               stdin=True)
    alice.wait_for_log("first frame", timeout=15)
    bob.wait_for_log("first frame", timeout=15)
    alice.wait_for_log("connected (p2p)", timeout=5)  # her line goes on the data channel
    alice.type_line("hello from p2p")
    bob.type_line("<b>hi</b> from the relay")
    alice.type_line("second from p2p")
    camera.wait_for_log("chat #3", timeout=10)

    carol = lab.start_viewer("talk", "--chat", "--name", "carol", "--duration", "1")
    newcomer = chat_lines(carol.result(timeout=30)[1])
    alice.kill(signal.SIGINT)
    bob.kill(signal.SIGINT)
    seen_by_alice = chat_lines(alice.result(timeout=15)[1])
    seen_by_bob = chat_lines(bob.result(timeout=15)[1])

    assert [m[0] for m in seen_by_alice] == [1, 2, 3]
    assert seen_by_alice == seen_by_bob == newcomer  # one order for all, history for the newcomer
    assert {m[2] for m in seen_by_alice} == {"hello from p2p", "<b>hi</b> from the relay", "second from p2p"}
    assert [m[1] for m in seen_by_alice if "relay" in m[2]] == ["bob"]
    assert len(chat_log.read_text().splitlines()) == 3


def test_rate_limit_tells_the_sender(lab):
    lab.start_server()
    lab.start_camera("talk")
    eve = lab.start_viewer("talk", "--chat", "--name", "eve", "--duration", "60", stdin=True)
    eve.wait_for_log("first frame", timeout=15)
    wait_until(lambda: eve.log().count("connected (p2p)"), 5, "eve's peer connection")
    for n in range(20):
        eve.type_line(f"spam {n}")
    eve.wait_for_log("chat: slow down", timeout=10)
    eve.kill(signal.SIGINT)
    shared = chat_lines(eve.result(timeout=15)[1])
    assert 10 <= len(shared) < 20


def test_viewers_and_camera_report_stats_to_the_api(lab):
    lab.start_server()
    lab.start_camera("lab", "--name", "bench camera")
    lab.start_viewer("lab", "--name", "pat", "--duration", "60")
    lab.start_viewer("lab", "--name", "rel", "--mode", "relay", "--duration", "60")

    def stream_json() -> dict:
        return get_json(f"{lab.url}/api/streams/lab") or {}

    def reported():
        stream = stream_json()
        viewers = stream.get("viewers", [])
        ready = len(viewers) == 2 and all((v["stats"] or {}).get("frames", 0) > 60 for v in viewers)
        return stream if ready and stream["camera"]["stats"] else None

    stream = wait_until(reported, 60, "stats from both viewers and the camera")
    by_name = {v["name"]: v for v in stream["viewers"]}
    assert by_name["pat"]["mode"] == "p2p" and by_name["rel"]["mode"] == "relay"
    for viewer in by_name.values():
        assert viewer["stats"]["latency_ms"] is not None
    assert stream["viewers_by_mode"] == {"p2p": 1, "relay": 1, "whep": 0}
    camera = stream["camera"]
    # Measured, and no more than the test pattern makes (30 a second, whatever the load).
    assert camera["name"] == "bench camera" and 0 < camera["stats"]["fps"] <= 31, camera
    assert camera["stats"]["encode_ms"] > 0
    (p2p_viewer,) = camera["stats"]["viewers"]
    assert p2p_viewer["frames_sent"] > 0 and p2p_viewer["rtt_ms"] is not None

    # Each fps is what was counted between two reports, 2 s or more apart: for a viewer, the
    # frames it got since its previous report, per second; for the camera, at most the
    # frames its busiest layer encoded (or it relayed) since its previous one, per 2 s (give
    # or take the frame or two encoded while it wrote the report).
    reports: dict[str, list[dict]] = {"pat": [], "rel": [], "camera": []}

    def new_report(name: str, stats: dict | None) -> None:
        seen = reports[name]
        if stats and (not seen or stats != seen[-1]):
            seen.append(stats)

    def viewer_fps_agrees(seen: list[dict]) -> bool:
        # A count of 0 is left out of a report.
        return len(seen) >= 2 and seen[-1]["fps"] == round((seen[-1].get("frames", 0)
                                                            - seen[-2].get("frames", 0)) / 2, 2)

    def camera_counts(report: dict) -> dict[str, int]:
        counts = {layer["name"]: layer.get("frames_encoded", 0) for layer in report.get("layers", [])}
        return {**counts, "relayed": report.get("relay_frames", 0)}

    def camera_fps_agrees(seen: list[dict]) -> bool:
        if len(seen) < 2:
            return False
        before, after = camera_counts(seen[-2]), camera_counts(seen[-1])
        counted = max(after[key] - before.get(key, 0) for key in after)
        return 0 < seen[-1]["fps"] <= (counted + 2) / 2

    def fps_agrees_with_counts() -> bool:
        stream = stream_json()
        for viewer in stream.get("viewers", []):
            if viewer["name"] in reports:
                new_report(viewer["name"], viewer["stats"])
        new_report("camera", (stream.get("camera") or {}).get("stats"))
        return (viewer_fps_agrees(reports["pat"]) and viewer_fps_agrees(reports["rel"])
                and camera_fps_agrees(reports["camera"]))

    try:
        wait_until(fps_agrees_with_counts, 15, "successive reports from the viewers and the camera",
                   interval=0.1)
    except AssertionError as exc:
        last = {name: [{"fps": r["fps"], "frames": r.get("frames", 0)} for r in seen[-3:]]
                for name, seen in reports.items() if name != "camera"}
        last["camera"] = [{"fps": r["fps"], **camera_counts(r)} for r in reports["camera"][-3:]]
        raise AssertionError(f"{exc}; fps does not agree with the counts: {last}") from None


def test_browsers_and_cli_viewers_see_one_chat(lab, browser):
    """Two Chromium viewers (P2P and relay) and two CLI viewers (P2P and relay), one order."""
    lab.start_server()
    lab.start_camera("talk")
    cli_p2p = lab.start_viewer("talk", "--chat", "--name", "cli-p2p", "--duration", "60", stdin=True)
    cli_relay = lab.start_viewer("talk", "--chat", "--name", "cli-relay", "--mode", "relay",
                                     "--duration", "60", stdin=True)
    pages = []
    for query in ("mode=p2p&name=web-p2p", "mode=relay&name=web-relay"):
        page = browser.new_context(**CONTEXT_OPTIONS).new_page()
        goto_player(page, f"{lab.url}/view/talk?{query}")
        page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
        pages.append(page)
    cli_p2p.wait_for_log("connected (p2p)", timeout=15)
    cli_relay.wait_for_log("first frame", timeout=15)

    pages[0].evaluate("peercam.sendChat('from the p2p page')")
    cli_p2p.type_line("from the p2p cli")
    pages[1].evaluate("peercam.sendChat('<i>from the relay page</i>')")
    cli_relay.type_line("from the relay cli")
    for page in pages:
        page.wait_for_function("peercam.chat().length === 4", timeout=10_000)
    web_views = [[(m["id"], m["name"], m["text"]) for m in page.evaluate("peercam.chat()")] for page in pages]
    cli_p2p.kill(signal.SIGINT)
    cli_relay.kill(signal.SIGINT)
    cli_views = [chat_lines(viewer.result(timeout=15)[1]) for viewer in (cli_p2p, cli_relay)]

    assert web_views[0] == web_views[1] == cli_views[0] == cli_views[1]
    assert [m[0] for m in web_views[0]] == [1, 2, 3, 4]
    assert {m[1] for m in web_views[0]} == {"web-p2p", "cli-p2p", "web-relay", "cli-relay"}
    assert pages[0].locator("#chat-messages i").count() == 0  # markup stays text


# -- names and renames: the server's rules, and what renames cost the camera ---------------

RENAME_LIMITED = "slow down: at most 3 renames at once, then one every 5 s"


async def test_chat_names_are_unique_per_stream_and_the_cameras_is_reserved_even_when_empty():
    async with running() as server:
        camera = await server.camera(name="")  # in chat: "camera"
        for cameras in ("camera", " CAMERA "):
            intruder = await server.connect()
            await intruder.send({"type": "watch", "stream": "lab", "name": cameras})
            error = await intruder.expect("error")
            assert error["code"] == "bad-name" and "is the camera's" in error["reason"], error
        alice = await server.viewer(name="alice")
        second = await server.connect()
        await second.send({"type": "watch", "stream": "lab", "name": "ALICE"})
        error = await second.expect("error")
        assert error == {"type": "error", "code": "bad-name",
                         "reason": "the name 'ALICE' is taken on this stream: pick another"}
        await second.send({"type": "watch", "stream": "lab", "name": ""})  # as the page does then
        await second.expect("watching")
        await second.send({"type": "rename", "name": "Camera"})
        assert (await wait_for_message(second, "error", 3))["code"] == "bad-name"
        bob = await server.viewer(name="bob")
        await bob.send({"type": "rename", "name": "Alice"})
        assert (await wait_for_message(bob, "error", 3))["code"] == "bad-name"
        await bob.send({"type": "rename", "name": "BOB"})  # its own name is not taken from it
        assert (await wait_for_message(camera, "viewer-renamed", 3))["name"] == "BOB"  # the first
        await server.viewer(stream="elsewhere", name="alice")  # another stream's names are its own

        await alice.ws.close()  # her name is free again
        await wait_for_message(camera, "viewer-left", 3)
        await bob.send({"type": "rename", "name": "alice"})
        assert (await wait_for_message(camera, "viewer-renamed", 3))["name"] == "alice"

        named = await server.camera(stream="named", name="Lab")  # a named camera: both are reserved
        for cameras in ("lab", "Camera"):
            intruder = await server.connect()
            await intruder.send({"type": "watch", "stream": "named", "name": cameras})
            assert (await intruder.expect("error"))["code"] == "bad-name"
        await server.viewer(stream="named", name="guest")
        assert (await named.expect("viewer-joined"))["name"] == "guest"  # the first the camera hears of any


async def test_renames_are_rate_limited_per_connection_with_a_clear_error():
    async with running() as server:
        camera = await server.camera()
        fast = await server.viewer(name="fast")
        calm = await server.viewer(name="calm")
        for n in range(4):
            await fast.send({"type": "rename", "name": f"fast{n}"})
        error = await wait_for_message(fast, "error", 3)
        refused = time.monotonic()
        assert error == {"type": "error", "code": "rate-limited", "reason": RENAME_LIMITED}
        await calm.send({"type": "rename", "name": "calm2"})  # another viewer's renames are its own
        names = [(await wait_for_message(camera, "viewer-renamed", 3))["name"] for _ in range(4)]
        assert names == ["fast0", "fast1", "fast2", "calm2"]

        # In time, the next one: tried every quarter second, taken after about 5 s.
        while True:
            await fast.send({"type": "rename", "name": "later"})
            try:
                renamed = await wait_for_message(camera, "viewer-renamed", 0.25)
                break
            except asyncio.TimeoutError:
                assert time.monotonic() - refused < 8, "no rename was taken again"
        assert renamed["name"] == "later" and time.monotonic() - refused > 4


def metric(url: str, name: str, label: str) -> float:
    """One labelled counter of the server's /metrics (0 before it is first counted)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf'^{name}_total\{{[a-z]+="{re.escape(label)}"\}} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0


def rename_attack(url: str, stream: str, renaming: threading.Event, attackers: int = 20,
                  seconds: float = 4.0, interval: float = 0.02) -> list[dict]:
    """``attackers`` viewers each watch ``stream`` and get their chat history, then all rename
    every ``interval`` for ``seconds`` (``renaming`` is set as they start). Returns what each
    one sent and got: renames, errors, chat-history messages and bytes. Blocks: run it in a
    thread beside the normal viewer."""

    async def join(session: aiohttp.ClientSession, n: int) -> tuple[Client, dict]:
        ws = Client(await session.ws_connect(f"{url}/ws"))
        await ws.expect("welcome")
        await ws.send({"type": "watch", "stream": stream, "name": f"r{n}"})
        await wait_for_message(ws, "chat-history", 10)
        return ws, {"renames": 0, "errors": [], "histories": 1, "bytes": 0}

    async def read(ws: Client, seen: dict) -> None:
        """Until the reply to the marker that ends the attack: every reply before it is in."""
        while True:
            msg = await ws.ws.receive()
            seen["bytes"] += len(msg.data)
            message = json.loads(msg.data)
            if message["type"] == "chat-history":
                seen["histories"] += 1
            elif message["type"] == "error":
                if message["code"] == "wrong-state":
                    return
                seen["errors"].append(message)

    async def rename(ws: Client, seen: dict) -> dict:
        reader = asyncio.create_task(read(ws, seen))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen["renames"] += 1
            await ws.send({"type": "rename", "name": f"r-{seen['renames']}-{id(ws)}"})
            await asyncio.sleep(interval)  # the attack's pace
        # The marker: a viewer may not share chat messages, whatever its renames left.
        await ws.send({"type": "chat", "id": 1, "name": "x", "text": "x", "time": 1})
        await asyncio.wait_for(reader, 15)
        return seen

    async def attack() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            joined = await asyncio.gather(*(join(session, n) for n in range(attackers)))
            renaming.set()
            seen = await asyncio.gather(*(rename(ws, seen) for ws, seen in joined))
            for ws, _ in joined:
                await ws.ws.close()
            return seen

    return asyncio.run(attack())


def camera_refusals(server_log: str) -> list[str]:
    """The server's refusals of a camera's messages, from its log."""
    return re.findall(r"<Connection \S+ camera [^>]*>: refused: .*", server_log)


def assert_renames_cost_the_camera_nothing(url: str, seen: list[dict], histories: float,
                                           server_log: str) -> None:
    """After rename_attack: each attacker got one history (on joining) and was told to slow
    down; the camera sent one history per attacker and none of its messages was refused."""
    sent = max(s["renames"] for s in seen)
    for attacker in seen:
        assert attacker["histories"] == 1, attacker["histories"]
        assert attacker["errors"] and {e["reason"] for e in attacker["errors"]} == {RENAME_LIMITED}
        # Taken: 3 at once, then one in 5 s (one more for a slow start).
        assert attacker["renames"] - len(attacker["errors"]) <= 3 + 2, (attacker["renames"], sent)
        assert attacker["bytes"] < 200_000, attacker["bytes"]  # was a full history per rename
    assert sent > 50
    assert metric(url, "peercam_signaling_messages", "chat-history") - histories == len(seen)
    assert camera_refusals(server_log) == []


def test_many_viewers_renaming_fast_cost_the_python_camera_nothing(lab):
    """20 viewers renaming every 20 ms: the camera sends each its history once (not once a
    rename), none of its messages is refused, and a normal viewer's chat goes on beside them."""
    server = lab.start_server()
    camera = lab.start_camera("talk", "--name", "cam")
    normal = lab.start_viewer("talk", "--chat", "--name", "norm", "--mode", "relay", "--duration", "60",
                              stdin=True)
    normal.wait_for_log("first frame", timeout=15)
    for n in range(5):  # a history worth sending
        normal.type_line(f"before {n}")
    camera.wait_for_log("chat #5", timeout=10)
    histories = metric(lab.url, "peercam_signaling_messages", "chat-history")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        renaming = threading.Event()
        attack = pool.submit(rename_attack, lab.url, "talk", renaming)
        assert renaming.wait(30), attack.exception(0) if attack.done() else "the attackers never joined"
        for n in range(3):  # each shared (through the camera) before the next
            normal.type_line(f"during {n}")
            camera.wait_for_log(f"chat #{6 + n}", timeout=5)
        assert not attack.done()  # all the while renames were coming
        seen = attack.result(timeout=60)
    normal.kill(signal.SIGINT)
    lines = chat_lines(normal.result(timeout=15)[1])

    expected = [f"before {n}" for n in range(5)] + [f"during {n}" for n in range(3)]
    assert [text for _, _, text in lines] == expected
    assert {name for _, name, _ in lines} == {"norm"}
    assert_renames_cost_the_camera_nothing(lab.url, seen, histories, server.log())
