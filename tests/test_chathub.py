"""peers/camera/chathub.py: stamping, limits and history of the stream's chat."""

import json
import time
from pathlib import Path

import pytest
from peercam.peers.camera.chathub import HISTORY_SIZE, ChatHub, ChatRefused

from peercam.shared.protocol import CHAT_BURST, CHAT_RATE, MAX_CHAT_TEXT, ChatSend, clean_text


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
    hub.rename("v1", "alice2")  # viewer-renamed
    assert hub.stamp("v1", ChatSend(text="hi")).name == "alice2"
    hub.forget("v1")
    assert hub.stamp("v1", ChatSend(text="hi")).name == "viewer-v1"


def test_control_characters_never_reach_the_log_or_the_others():
    message = ChatHub().stamp("v1", ChatSend(text="red \x1b[31mtext\r\nforged line\u202e"))
    assert message.text == "red [31mtext  forged line"


# The shared cases: the same file runs against web/js/chat-hub.js (tests/test_web_chathub.py).

CASES_PATH = Path(__file__).resolve().parent / "chathub_cases.json"
CASES = json.loads(CASES_PATH.read_text())["cases"]


def expand(text, i: int = 1):
    """A case's text: a string ({i}: the repetition), or {"repeat": s, "times": n}."""
    if isinstance(text, dict):
        return text["repeat"] * text["times"]
    return text.replace("{i}", str(i))


def run_case_in_python(case: dict) -> list[dict]:
    """The case's steps on peers/camera/chathub.py: one result per step run (the same shape as
    the JavaScript runner's in tests/test_web_chathub.py)."""
    options = case.get("hub", {})
    hub = ChatHub(rate=options.get("rate", CHAT_RATE), burst=options.get("burst", CHAT_BURST),
                  camera_name=options.get("camera_name", ""))
    results = []
    for step in case["steps"]:
        for i in range(1, step.get("times", 1) + 1):
            if "join" in step:
                results.append({"gets": [m.id for m in hub.join(*step["join"])]})
            elif "rename" in step:
                hub.rename(*step["rename"])
                results.append({})
            elif "forget" in step:
                hub.forget(step["forget"])
                results.append({})
            elif "forget_everyone" in step:
                hub.forget_everyone()
                results.append({})
            elif "send" in step:
                sender, text = step["send"]
                try:
                    message = hub.stamp(sender, ChatSend(text=expand(text, i)))
                except ChatRefused as exc:
                    results.append({"notice": str(exc)})
                else:
                    results.append({"message": [message.id, message.name, message.text],
                                    "camera": message.camera, "time": message.time})
            elif "history" in step:
                results.append({"history": [[m.id, m.name, m.text] for m in hub.history()]})
            elif "clean" in step:
                results.append({"clean": clean_text(step["clean"])})
            elif "note" in step:
                message = hub.note(expand(step["note"], i))
                results.append({"message": [message.id, message.name, message.text],
                                "camera": message.camera, "time": message.time})
            elif "name_of" in step:
                results.append({"name": hub.name_of(step["name_of"])})
    return results


def check_case(case: dict, results: list[dict], before: float, after: float) -> None:
    """What a hub did (``results``, run between the wall clock times ``before`` and ``after``)
    is what the case expects."""
    results = iter(results)
    for number, step in enumerate(case["steps"]):
        where = f"{case['name']!r}, step {number}: {json.dumps(step)[:200]}"
        for _ in range(step.get("times", 1)):
            result = next(results)
            if "send" in step or "note" in step:
                if "notice" in step:
                    assert result == {"notice": step["notice"]}, where
                else:
                    assert "message" in result, f"{where}: {result}"
                    assert result["camera"] is step.get("camera", "note" in step), where
                    assert before - 1 <= result["time"] <= after + 1, where
                    assert round(result["time"], 3) == result["time"], where
                    if "message" in step:
                        id_, name, text = step["message"]
                        assert result["message"] == [id_, name, expand(text)], where
            elif "history" in step:
                history, expected = result["history"], step["history"]
                if isinstance(expected, dict):
                    assert len(history) == expected["size"], where
                    assert history, where
                    assert [history[0], history[-1]] == [expected["first"], expected["last"]], where
                else:
                    assert history == expected, where
            elif "clean" in step:
                assert result == {"clean": step["expect"]}, where
            elif "name_of" in step:
                assert result == {"name": step["expect"]}, where
            elif "join" in step:
                assert result == {"gets": step.get("gets", [])}, where
            else:
                assert result == {}, where
    assert next(results, None) is None, f"{case['name']!r}: more results than steps"


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_shared_cases_on_the_python_hub(case):
    before = time.time()
    results = run_case_in_python(case)
    check_case(case, results, before, time.time())


def test_the_shared_cases_can_fail():
    """A hub with another rule (no trimming) breaks them: the cases check what they say."""
    case = CASES[0]
    results = run_case_in_python(case)
    results[1]["message"][2] = "  hello  "
    with pytest.raises(AssertionError):
        check_case(case, results, time.time() - 5, time.time())
