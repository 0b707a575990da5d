"""web/: chat beside the player, the stats each page reports, and the dashboard, in real headless Chromium.

The camera is the chat hub (peers/camera/chathub.py): P2P pages chat over the "chat" data
channel, relay pages over signaling, and every page shows one copy of each message.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading

import pytest

from .conftest import CONTEXT_OPTIONS, TESTSRC_LAYERS, get_json, wait_until
from .support.chromium import goto_player, wait_for_player
from .test_chat import assert_renames_cost_the_camera_nothing, metric, rename_attack
from .test_web_publish import go_live, media_browser, open_page  # noqa: F401 (media_browser: a fixture)

MARKUP = "<b>bold</b><img src=x onerror=alert(1)>"

#: Counts, in the page, each copy of each chat message as it arrives, by way: the P2P data
#: channel ("channel") or the server ("signaling"); a chat history counts for each message in
#: it. window.chatCopies[way][id] is the count. It only listens: the page gets every message
#: as it would without it.
COUNT_CHAT_COPIES = """(() => {
  const copies = window.chatCopies = { channel: {}, signaling: {} };
  const count = (way, data) => {
    if (typeof data !== 'string') return;  // relay frames
    let message;
    try { message = JSON.parse(data); } catch { return; }
    const stamped = message.type === 'chat' ? [message]
      : message.type === 'chat-history' ? message.messages : [];
    for (const { id } of stamped) copies[way][id] = (copies[way][id] || 0) + 1;
  };
  const createDataChannel = RTCPeerConnection.prototype.createDataChannel;
  RTCPeerConnection.prototype.createDataChannel = function (...args) {
    const channel = createDataChannel.apply(this, args);
    channel.addEventListener('message', (event) => count('channel', event.data));
    return channel;
  };
  window.WebSocket = class extends window.WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => count('signaling', event.data));
    }
  };
})();"""


@pytest.fixture
def open_player(browser, lab):
    """open_player(stream, query) -> a player page in a fresh browser context (own localStorage).

    Each page records the server's `error` replies in `page.server_errors`, and counts the chat
    messages it gets by each way (COUNT_CHAT_COPIES); JavaScript errors and dialogs (an alert()
    from injected markup) fail the test.
    """
    contexts, problems = [], []

    def open_(stream: str, query: str):
        context = browser.new_context(**CONTEXT_OPTIONS)
        context.add_init_script(COUNT_CHAT_COPIES)
        contexts.append(context)
        page = context.new_page()
        page.server_errors = []
        page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
        page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.on("websocket", lambda ws: ws.on("framereceived", lambda data: _note_error(page, data)))
        goto_player(page, f"{lab.url}/view/{stream}?{query}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems


def _note_error(page, data) -> None:
    if isinstance(data, str) and json.loads(data).get("type") == "error":
        page.server_errors.append(json.loads(data))


def wait_for_delivery(page, mode: str, timeout: float = 15) -> None:
    page.wait_for_function(f"peercam.mode() === '{mode}' && peercam.state() === 'playing'",
                           timeout=timeout * 1000)


def wait_for_chat(page, count: int, timeout: float = 10) -> list[dict]:
    page.wait_for_function(f"peercam.chat().length >= {count}", timeout=timeout * 1000)
    return page.evaluate("peercam.chat()")


def wait_for_copies(page, ids: list[int], ways: tuple[str, ...], timeout: float = 10) -> None:
    """Until each of these chat messages has come to the page by each of these ways (COUNT_CHAT_COPIES)."""
    page.wait_for_function("([ids, ways]) => ways.every((way) => ids.every((id) => chatCopies[way][id]))",
                           arg=[ids, list(ways)], timeout=timeout * 1000)


def shown_messages(page) -> list[dict]:
    """What #chat-messages shows, top to bottom."""
    return page.eval_on_selector_all("#chat-messages .chat-message", """items => items.map(item => ({
        id: Number(item.dataset.id),
        name: item.querySelector('.chat-name').textContent,
        time: item.querySelector('.chat-time').textContent,
        text: item.querySelector('.chat-text').textContent,
    }))""")


def viewer_named(lab, stream: str, name: str) -> dict | None:
    viewers = (get_json(f"{lab.url}/api/streams/{stream}") or {}).get("viewers", [])
    return next((viewer for viewer in viewers if viewer["name"] == name), None)


def test_p2p_and_relay_pages_chat_in_one_order_and_newcomers_get_the_history(lab, open_player):
    lab.start_server()
    lab.start_camera("lab")
    alice = open_player("lab", "mode=p2p&name=alice")
    bob = open_player("lab", "mode=relay&name=bob")
    wait_for_delivery(alice, "p2p")
    wait_for_delivery(bob, "relay")

    assert bob.evaluate("peercam.sendChat('hello from bob')") == "signaling"
    wait_for_chat(alice, 1)  # by now alice's data channel is open too
    # Sent back to back from both paths: the camera's ids decide the one order.
    assert alice.evaluate("peercam.sendChat('hi bob')") == "data-channel"
    bob.evaluate("peercam.sendChat('third')")
    alice.evaluate("peercam.sendChat('fourth')")

    expected_texts = {"hello from bob", "hi bob", "third", "fourth"}
    seen_by_alice = wait_for_chat(alice, 4)
    seen_by_bob = wait_for_chat(bob, 4)
    assert {m["text"] for m in seen_by_alice} == expected_texts
    assert seen_by_alice == seen_by_bob
    ids = [m["id"] for m in seen_by_alice]
    assert ids == sorted(ids) and len(set(ids)) == 4
    names = {m["text"]: m["name"] for m in seen_by_alice}
    assert names["hi bob"] == "alice" and names["third"] == "bob"

    # Alice gets every message twice (data channel and server): still one copy each, shown in order.
    # Each way keeps the camera's order, so a last message that came to her both ways (and to bob)
    # came after every copy of the others.
    alice.evaluate("peercam.sendChat('last')")
    seen = wait_for_chat(bob, 5)
    last = seen[-1]["id"]
    assert seen[:4] == seen_by_alice and seen[-1]["text"] == "last"
    wait_for_copies(alice, [last], ("channel", "signaling"))
    wait_for_copies(bob, [last], ("signaling",))
    copies = alice.evaluate("chatCopies")
    assert all(copies[way].get(str(m["id"])) for way in copies for m in seen), copies  # each came twice
    for page in (alice, bob):
        shown = shown_messages(page)
        assert [{k: m[k] for k in ("id", "name", "text")} for m in shown] == seen
        assert all(m["time"] for m in shown)

    carol = open_player("lab", "name=carol")
    wait_for_delivery(carol, "p2p")
    assert wait_for_chat(carol, 5) == seen
    wait_for_copies(carol, [m["id"] for m in seen], ("channel", "signaling"))  # the history came twice
    assert carol.evaluate("peercam.chat()") == seen  # merged
    assert alice.server_errors == bob.server_errors == carol.server_errors == []


def test_chat_shows_markup_as_text(lab, open_player):
    lab.start_server()
    lab.start_camera("lab")
    # Markup in the name too, through ?name=.
    mallory = open_player("lab", "mode=relay&name=%3Ci%3Emallory%3C%2Fi%3E")
    wait_for_delivery(mallory, "relay")
    mallory.evaluate("(text) => peercam.sendChat(text)", MARKUP)

    [message] = wait_for_chat(mallory, 1)
    assert message["text"] == MARKUP
    assert message["name"] == "<i>mallory</i>"
    [shown] = shown_messages(mallory)
    assert (shown["name"], shown["text"]) == ("<i>mallory</i>", MARKUP)
    assert mallory.eval_on_selector("#chat-messages", "list => list.querySelectorAll('*').length") == 4
    markup_elements = "list => list.querySelectorAll('b, img, i').length"
    assert mallory.eval_on_selector("#chat-messages", markup_elements) == 0


def test_chat_asks_for_a_name_once_and_keeps_it(lab, browser):
    lab.start_server()
    lab.start_camera("lab")
    context = browser.new_context(**CONTEXT_OPTIONS)
    try:
        page = context.new_page()
        goto_player(page, f"{lab.url}/view/lab?mode=relay")
        wait_for_delivery(page, "relay")
        assert page.is_visible("#name-form") and page.is_disabled("#chat-input")
        assert page.get_attribute("#name-input", "maxlength") == "32"
        assert page.get_attribute("#chat-input", "maxlength") == "500"
        page.fill("#name-input", "  dora  ")
        page.press("#name-input", "Enter")
        page.fill("#chat-input", "typed, not scripted")
        page.press("#chat-input", "Enter")
        assert wait_for_chat(page, 1) == [{"id": 1, "name": "dora", "text": "typed, not scripted"}]
        assert page.input_value("#chat-input") == ""

        page.reload()
        wait_for_player(page)
        wait_for_delivery(page, "relay")
        assert page.is_hidden("#name-form") and page.inner_text("#chat-identity-name") == "dora"
        wait_until(lambda: viewer_named(lab, "lab", "dora"), 5, "the server to know the page as dora")
    finally:
        context.close()


def test_the_camera_refusal_shows_as_a_notice(lab, open_player):
    lab.start_server()
    lab.start_camera("lab")
    page = open_player("lab", "mode=relay&name=eve")
    wait_for_delivery(page, "relay")
    page.evaluate("peercam.sendChat('x'.repeat(501))")  # past the input's maxlength, so by script
    page.wait_for_selector("#chat-notice", state="visible", timeout=5_000)
    assert "too long" in page.inner_text("#chat-notice")
    assert page.evaluate("peercam.chat()") == []


@pytest.mark.parametrize("mode", ["p2p", "relay"])
def test_page_reports_its_stats_to_the_server(lab, open_player, mode):
    lab.start_server()
    lab.start_camera("lab")
    page = open_player("lab", f"mode={mode}&name=frank")
    wait_for_delivery(page, mode)

    def steady_report():
        """A report made while video flowed: frames (and bytes) came in the second before it.

        How many a second is for bench/: a busy machine delivers fewer.
        """
        viewer = viewer_named(lab, "lab", "frank")
        stats = (viewer or {}).get("stats") or {}
        flowing = stats.get("fps", 0) > 0 and stats.get("bitrate_kbps", 0) > 0
        return viewer if stats.get("frames", 0) > 60 and flowing else None

    viewer = wait_until(steady_report, 60, "the page's stats in /api/streams/lab", interval=0.5)
    stats = viewer["stats"]
    assert viewer["mode"] == stats["mode"] == mode
    # Per second (not per ms, not per minute): at most a few times the camera's 30, however
    # a busy machine bunches frames up.
    assert stats["fps"] <= 90, stats
    assert stats["layer"] in TESTSRC_LAYERS and (stats["width"], stats["height"]) in TESTSRC_LAYERS.values()
    assert 0 <= stats["latency_ms"] < 10_000  # in ms, on one clock
    assert isinstance(stats["frames_dropped"], int)
    if mode == "p2p":
        assert stats["decoder"].startswith("VP8")
        assert isinstance(stats["packets_lost"], int) and isinstance(stats["freezes"], int)
        assert stats["jitter_ms"] >= 0 and stats["rtt_ms"] >= 0
    else:
        assert not {"packets_lost", "jitter_ms", "rtt_ms", "freezes", "decoder"} & stats.keys()
    assert page.server_errors == []

    panel = {id_: page.inner_text(f"#{id_}") for id_ in
             ("stats-mode", "resolution", "bitrate", "packets-lost", "jitter", "rtt", "decoder")}
    assert panel["stats-mode"] == mode
    assert panel["resolution"] in {f"{width}x{height}" for width, height in TESTSRC_LAYERS.values()}
    assert panel["bitrate"].endswith("kbps")
    if mode == "relay":
        assert panel["packets-lost"] == panel["jitter"] == panel["rtt"] == panel["decoder"] == "–"
    else:
        assert panel["rtt"].endswith("ms") and panel["decoder"].startswith("VP8")


def test_dashboard_shows_thumbnails_and_viewers_by_mode(lab, open_player, page):
    lab.start_server()
    lab.start_camera("lab")
    wait_for_delivery(open_player("lab", "mode=p2p&name=p"), "p2p")
    wait_for_delivery(open_player("lab", "mode=relay&name=r"), "relay")

    page.goto(f"{lab.url}/")
    item = page.wait_for_selector("li.stream[data-stream=lab]", timeout=10_000)
    page.wait_for_function(
        "document.querySelector('li.stream[data-stream=lab] .viewers-by-mode').textContent"
        " === '1 p2p · 1 relay'", timeout=10_000)
    assert "2 viewers" in item.inner_text() and "640x480@30" in item.inner_text()
    page.wait_for_function(
        "document.querySelector('li.stream[data-stream=lab] img.thumbnail').naturalWidth === 640",
        timeout=10_000)
    first = page.get_attribute("li.stream[data-stream=lab] img.thumbnail", "src")
    page.wait_for_function(
        f"document.querySelector('li.stream[data-stream=lab] img.thumbnail').src !== '{first}'",
        timeout=8_000)  # refreshed
    assert page.get_attribute("li.stream[data-stream=lab] a.stream-name", "href") == "/view/lab"


def test_many_viewers_renaming_fast_cost_the_browser_camera_nothing(lab, media_browser):  # noqa: F811
    """The browser camera under the attack of tests/test_chat.py: each renamer gets its history
    once, the server refuses none of the camera's messages, a relay page chats on beside them."""
    server = lab.start_server()
    camera, errors = go_live(media_browser, lab, "talk", "source=camera&autostart=1&name=cam")
    refusals: list[str] = []
    camera.on("console", lambda message: refusals.append(message.text) if "refused" in message.text else None)
    viewer, viewer_errors = open_page(media_browser, f"{lab.url}/view/talk?mode=relay&name=norm")
    wait_for_player(viewer)
    viewer.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    for n in range(5):  # a history worth sending
        viewer.evaluate(f"peercam.sendChat('before {n}')")
    viewer.wait_for_function("peercam.chat().length === 5", timeout=10_000)
    histories = metric(lab.url, "peercam_signaling_messages", "chat-history")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        renaming = threading.Event()
        attack = pool.submit(rename_attack, lab.url, "talk", renaming)
        assert renaming.wait(30), attack.exception(0) if attack.done() else "the attackers never joined"
        for n in range(3):  # each shared (through the camera) before the next
            assert viewer.evaluate(f"peercam.sendChat('during {n}')") == "signaling"
            viewer.wait_for_function(f"peercam.chat().length === {6 + n}", timeout=5_000)
        assert not attack.done()  # all the while renames were coming
        seen = attack.result(timeout=60)

    expected = [f"before {n}" for n in range(5)] + [f"during {n}" for n in range(3)]
    shown = viewer.evaluate("peercam.chat()")
    assert [(m["name"], m["text"]) for m in shown] == [("norm", text) for text in expected]
    assert_renames_cost_the_camera_nothing(lab.url, seen, histories, server.log())
    assert refusals == [] and errors == viewer_errors == []


def test_the_cameras_own_lines_are_marked_and_no_viewer_takes_its_name(lab, media_browser):  # noqa: F811
    lab.start_server()
    camera, errors = go_live(media_browser, lab, "talk", "source=camera&autostart=1&name=Lab")
    viewer, viewer_errors = open_page(media_browser, f"{lab.url}/view/talk?mode=relay&name=LAB")
    wait_for_player(viewer)
    viewer.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    # The camera's name is refused: the page says so and watches without a name; it picks one.
    viewer.wait_for_selector("#chat-notice", state="visible", timeout=5_000)
    assert "is the camera's" in viewer.inner_text("#chat-notice")
    viewer.evaluate("document.getElementById('name-change').click()")
    viewer.fill("#name-input", "camera")  # "camera" is the camera's too
    viewer.press("#name-input", "Enter")
    viewer.wait_for_function("document.getElementById('chat-notice').textContent.includes('camera')",
                             timeout=5_000)
    viewer.evaluate("document.getElementById('name-change').click()")
    viewer.fill("#name-input", "L\u0430b")  # looks like it (a Cyrillic a), is not it
    viewer.press("#name-input", "Enter")
    wait_until(lambda: viewer_named(lab, "talk", "L\u0430b"), 5, "the look-alike name taken")

    assert camera.evaluate("peercam.sendChat('from the camera')") == "hub"
    viewer.wait_for_function("peercam.chat().length === 1", timeout=10_000)
    viewer.evaluate("peercam.sendChat('from the look-alike')")
    viewer.wait_for_function("peercam.chat().length === 2", timeout=10_000)
    assert viewer.evaluate("peercam.chat()") == [
        {"id": 1, "name": "Lab", "text": "from the camera", "camera": True},
        {"id": 2, "name": "L\u0430b", "text": "from the look-alike"},
    ]
    for page in (viewer, camera):
        page.wait_for_function("document.querySelectorAll('#chat-messages .chat-message').length === 2",
                               timeout=5_000)
        marks = page.eval_on_selector_all("#chat-messages .chat-message", """items => items.map((item) => [
            item.classList.contains('chat-camera'),
            item.querySelector('.chat-badge')?.textContent ?? null,
        ])""")
        assert marks == [[True, "camera"], [False, None]]
    assert errors == viewer_errors == []
