"""peers/chathub.py: stamping, limits and history of the stream's chat."""

import json

import pytest

from peers.chathub import HISTORY_SIZE, ChatHub, ChatRefused
from signaling.protocol import MAX_CHAT_TEXT, ChatSend


def test_messages_are_stamped_in_order_and_logged(tmp_path):
    log = tmp_path / "chat.jsonl"
    hub = ChatHub(str(log))
    first = hub.stamp("v1", ChatSend(text="  hello  ", name="alice"))
    second = hub.stamp("v2", ChatSend(text="<b>hi</b>", name=""))
    hub.close()
    assert (first.id, first.name, first.text) == (1, "alice", "hello")
    assert (second.id, second.text) == (2, "<b>hi</b>") and second.name.startswith("viewer-")
    assert [json.loads(line)["id"] for line in log.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("line, words", [
    (ChatSend(text="x" * (MAX_CHAT_TEXT + 1)), "too long"),
    (ChatSend(text="   "), "empty"),
    (ChatSend(text="hi", name="n" * 33), "names"),
    (ChatSend(text="hi", name="bad\nname"), "names"),
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
