"""peers/chathub.py: stamping, limits and history of the stream's chat."""

import json

import pytest

from peers.chathub import HISTORY_SIZE, ChatHub, ChatRefused
from signaling.protocol import MAX_CHAT_TEXT, ChatSend


def test_messages_are_stamped_in_order_and_logged(tmp_path):
    log = tmp_path / "chat.jsonl"
    hub = ChatHub(str(log))
    hub.join("v1", "alice")
    first = hub.stamp("v1", ChatSend(text="  hello  "))
    second = hub.stamp("v2", ChatSend(text="<b>hi</b>"))
    hub.close()
    assert (first.id, first.name, first.text) == (1, "alice", "hello")
    assert (second.id, second.text) == (2, "<b>hi</b>") and second.name.startswith("viewer-")
    assert [json.loads(line)["id"] for line in log.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("line, words", [
    (ChatSend(text="x" * (MAX_CHAT_TEXT + 1)), "too long"),
    (ChatSend(text="   "), "empty"),
    (ChatSend(text="\x07\x00\r\n"), "empty"),
])
def test_bad_lines_are_refused_with_a_reason(line, words):
    with pytest.raises(ChatRefused, match=words):
        ChatHub().stamp("v1", line)


def test_rate_limit_allows_a_burst_then_refuses_per_sender():
    hub = ChatHub(rate=5, burst=10)
    for n in range(10):
        hub.stamp("fast", ChatSend(text=f"line {n}"))
    with pytest.raises(ChatRefused, match="slow down"):
        hub.stamp("fast", ChatSend(text="one too many"))
    hub.stamp("other", ChatSend(text="others are not affected"))


def test_history_keeps_the_last_fifty():
    hub = ChatHub(rate=1000, burst=1000)
    for n in range(HISTORY_SIZE + 5):
        hub.stamp("v1", ChatSend(text=str(n)))
    history = hub.history()
    assert len(history) == HISTORY_SIZE and history[0].id == 6 and history[-1].id == HISTORY_SIZE + 5


def test_a_viewer_speaks_under_the_name_it_watched_with_never_the_cameras():
    hub = ChatHub(camera_name="Lab Camera")
    hub.join("v1", "alice")
    hub.join("v2", "lab camera")  # the server refuses this; the hub does not rely on it
    assert hub.stamp("v1", ChatSend(text="hi")).name == "alice"
    assert hub.stamp("v2", ChatSend(text="hi")).name == "viewer-v2"
    hub.join("v1", "alice2")  # viewer-renamed
    assert hub.stamp("v1", ChatSend(text="hi")).name == "alice2"
    hub.forget("v1")
    assert hub.stamp("v1", ChatSend(text="hi")).name == "viewer-v1"


def test_control_characters_never_reach_the_log_or_the_others():
    message = ChatHub().stamp("v1", ChatSend(text="red \x1b[31mtext\r\nforged line\u202e"))
    assert message.text == "red [31mtext  forged line"
