"""web/js/chat-hub.js, the browser camera's chat hub, in real headless Chromium: the shared
cases (tests/chathub_cases.json) give what peers/camera/chathub.py gives, and its text cleaning
is clean_text's for every character.

The module comes from the real server's /static/, imported by a page on the server's
origin (Playwright's evaluate needs the CSP bypassed, as everywhere in these tests).
"""

from __future__ import annotations

import sys
import time
import unicodedata

import pytest

from peercam.shared.protocol import clean_text

from .test_chathub import CASES, check_case, run_case_in_python

#: The JavaScript runner: the same steps, the same results as run_case_in_python.
RUN_CASES = """async (cases) => {
  const { ChatHub } = await import('/static/js/chat-hub.js');
  const expand = (text, i = 1) => (typeof text === 'string'
    ? text.replaceAll('{i}', String(i)) : text.repeat.repeat(text.times));
  const { cleanText } = await import('/static/js/chat-hub.js');
  return cases.map((test) => {
    const options = test.hub || {};
    const hub = new ChatHub({ rate: options.rate, burst: options.burst, cameraName: options.camera_name });
    const results = [];
    for (const step of test.steps) {
      for (let i = 1; i <= (step.times || 1); i++) {
        if ('join' in step) results.push({ gets: hub.join(...step.join).map((m) => m.id) });
        else if ('rename' in step) { hub.rename(...step.rename); results.push({}); }
        else if ('forget' in step) { hub.forget(step.forget); results.push({}); }
        else if ('forget_everyone' in step) { hub.forgetEveryone(); results.push({}); }
        else if ('send' in step) {
          const { message, notice } = hub.receive(step.send[0], expand(step.send[1], i));
          if (notice) {
            if (notice.type !== 'chat-notice') throw new Error(`not a notice: ${JSON.stringify(notice)}`);
            results.push({ notice: notice.reason });
          } else {
            if (message.type !== 'chat') throw new Error(`not a message: ${JSON.stringify(message)}`);
            results.push({
              message: [message.id, message.name, message.text],
              camera: message.camera === true,
              time: message.time,
            });
          }
        } else if ('history' in step) {
          results.push({ history: hub.history().map((m) => [m.id, m.name, m.text]) });
        } else if ('clean' in step) {
          results.push({ clean: cleanText(step.clean) });
        } else if ('note' in step) {
          const message = hub.note(expand(step.note, i));
          results.push({
            message: [message.id, message.name, message.text],
            camera: message.camera === true,
            time: message.time,
          });
        } else if ('name_of' in step) {
          results.push({ name: hub.nameOf(step.name_of) });
        }
      }
    }
    return results;
  });
}"""


def test_the_shared_cases_on_the_browser_hub(page_on_server):
    before = time.time()
    results = page_on_server.evaluate(RUN_CASES, CASES)
    after = time.time()
    for case, result in zip(CASES, results, strict=True):
        check_case(case, result, before, after)
        # And beyond what the cases say: every result (times aside) is the Python hub's.
        python = run_case_in_python(case)
        strip_time = [{k: v for k, v in r.items() if k != "time"} for r in python]
        assert [{k: v for k, v in r.items() if k != "time"} for r in result] == strip_time, case["name"]


def test_a_hub_with_another_rule_fails_the_cases(page_on_server):
    """The comparison can fail: the same runner on a hub that keeps 49 messages, not 50."""
    other = RUN_CASES.replace("const { ChatHub } = await import('/static/js/chat-hub.js');", """
      const { ChatHub: Real } = await import('/static/js/chat-hub.js');
      class ChatHub extends Real {
        history() { return super.history().slice(1); }
      }""")
    assert other != RUN_CASES
    results = page_on_server.evaluate(other, CASES)
    failures = 0
    for case, result in zip(CASES, results, strict=True):
        try:
            check_case(case, result, 0, 2**34)
        except AssertionError:
            failures += 1
    assert failures >= 2


#: Every code point but the surrogates, in one string.
EVERY_CHARACTER = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)


def test_clean_text_and_trimming_match_python_for_every_character(page_on_server):
    cleaned, trimmed = page_on_server.evaluate("""async (text) => {
      const { cleanText } = await import('/static/js/chat-hub.js');
      const { ChatHub } = await import('/static/js/chat-hub.js');
      const trimmed = [];
      const hub = new ChatHub({ rate: 1e9, burst: 1e9 });
      // A line that is one character between two letters, cleaned and trimmed: what stays.
      for (const ch of text) {
        const { message } = hub.receive('v', ch + 'x');
        trimmed.push(message ? message.text : '');
      }
      return [cleanText(text), trimmed.join('\\u0000')];
    }""", EVERY_CHARACTER)
    assert cleaned == clean_text(EVERY_CHARACTER)
    python = "\0".join(clean_text(ch + "x").strip() for ch in EVERY_CHARACTER)
    if trimmed != python:
        js, py = trimmed.split("\0"), python.split("\0")
        differ = [(hex(ord(ch)), j, p) for ch, j, p in zip(EVERY_CHARACTER, js, py, strict=True) if j != p]
        pytest.fail(f"trimming differs for {differ[:20]}")


def test_names_fold_as_python_casefold_for_every_character(page_on_server):
    """Two names are the same to the JavaScript hub exactly when casefold() says so.

    Checked character by character: the characters the browser folds together are the
    ones Python does.
    """
    letters = "".join(ch for ch in EVERY_CHARACTER if ch.casefold() != ch or ch.upper() != ch)
    folded = page_on_server.evaluate("""async (text) => {
      const { fold } = await import('/static/js/chat-hub.js');
      return [...text].map(fold);
    }""", letters)
    js_groups, py_groups = {}, {}
    for ch, js in zip(letters, folded, strict=True):
        js_groups.setdefault(js, set()).add(ch)
        py_groups.setdefault(ch.casefold(), set()).add(ch)
    js_partition = {frozenset(group) for group in js_groups.values()}
    py_partition = {frozenset(group) for group in py_groups.values()}
    differ = sorted(({f"{ord(c):x}:{unicodedata.name(c, '?')}" for c in group}
                     for group in js_partition ^ py_partition), key=sorted)
    assert not differ, differ[:20]
