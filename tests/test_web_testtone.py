"""web/js/testtone.js in real headless Chromium: its ToneReader hears the shared cases
(tests/testtone_cases.json) as peers/testtone.py's does, from the same samples, and its tone()
makes the Python tone's samples.

The module comes from the real server's /static/, imported by a page on the server's
origin (Playwright's evaluate needs the CSP bypassed, as everywhere in these tests).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from peercam.peers.testtone import SAMPLE_RATE, tone

from .test_testtone import CASES, case_chunks, check_case, run_case_in_python, same_beeps

#: The JavaScript runner: each case's chunks fed as they arrive, times in ms.
HEAR_CASES = """async (cases) => {
  const { ToneReader } = await import('/static/js/testtone.js');
  return cases.map(({ float, channels, chunks }) => {
    const reader = new ToneReader();
    const beeps = [];
    for (const [data, arrived] of chunks) {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const all = float ? new Float32Array(bytes.buffer) : new Int16Array(bytes.buffer);
      // Interleaved channels to one array per channel, as WebAudio hands them over.
      let samples = all;
      if (channels > 1) {
        samples = Array.from({ length: channels }, (_, c) => all.filter((_, i) => i % channels === c));
      }
      for (const beep of reader.feed(samples, arrived * 1000)) {
        if (beep.latencyMs !== beep.heardTimeMs - beep.captureTimeMs) throw new Error('latency');
        beeps.push([beep.captureTimeMs / 1000, beep.heardTimeMs / 1000]);
      }
    }
    return { beeps, unread: reader.beepsUnread };
  });
}"""


def js_cases() -> list[dict]:
    return [{
        "float": bool(case.get("float")),
        "channels": case.get("channels", 1),
        "chunks": [[base64.b64encode(np.ascontiguousarray(samples).tobytes()).decode(), arrived]
                   for samples, arrived in case_chunks(case)],
    } for case in CASES]


def test_the_shared_cases_on_the_page(page_on_server):
    heard = page_on_server.evaluate(HEAR_CASES, js_cases())
    for case, result in zip(CASES, heard, strict=True):
        check_case(case, result)
        # Beyond what the cases say: the very beeps the Python reader hears.
        python = run_case_in_python(case)
        assert result["unread"] == python["unread"], case["name"]
        assert same_beeps(result["beeps"], python["beeps"]), (case["name"], result, python)


def test_a_reader_5_ms_off_fails_the_cases(page_on_server):
    """The comparison can fail: the same runner, each chunk's time 5 ms later."""
    other = HEAR_CASES.replace("feed(samples, arrived * 1000)", "feed(samples, arrived * 1000 + 5)")
    assert other != HEAR_CASES
    heard = page_on_server.evaluate(other, js_cases())
    wrong = [case["name"] for case, result in zip(CASES, heard, strict=True)
             if not same_beeps(result["beeps"], case["expect"]["beeps"])]
    assert wrong == [case["name"] for case in CASES if case["expect"]["beeps"]]


@pytest.mark.parametrize("start", [1763699999.99, 1763700000.5, 2147483647.9])
def test_the_pages_tone_is_the_cameras(page_on_server, start):
    """tone() in the page makes the camera's samples (to within a step of rounding), the code included."""
    first = round(start * SAMPLE_RATE)
    count = SAMPLE_RATE  # a second: a beep and its whole code
    made = page_on_server.evaluate("""async ([first, count]) => {
        const { tone } = await import('/static/js/testtone.js');
        return Array.from(tone(first, count));
    }""", [first, count])
    expected = tone(first, count).astype(int)
    assert np.abs(np.array(made) - expected).max() <= 1
    assert np.abs(expected).max() > 16000  # the beep is in it
