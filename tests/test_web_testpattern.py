"""web/js/testpattern.js in real headless Chromium: readStamp reads the shared cases' pictures
(tests/testpattern_cases.json) as peers/testpattern.py read_stamp does.

The module comes from the real server's /static/, imported by a page on the server's
origin (Playwright's evaluate needs the CSP bypassed, as everywhere in these tests).
"""

from __future__ import annotations

import base64

from .test_testpattern import CASES, case_picture, expected_stamp

#: The JavaScript runner: each grey picture drawn on a canvas of its size, then read.
READ_STAMPS = """async (pictures) => {
  const { readStamp } = await import('/static/js/testpattern.js');
  const scratch = document.createElement('canvas');
  return pictures.map(({ width, height, grey }) => {
    const text = atob(grey);
    const image = new ImageData(width, height);
    for (let i = 0; i < text.length; i++) {
      const value = text.charCodeAt(i);
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = value;
      image.data[4 * i + 3] = 255;
    }
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    canvas.getContext('2d').putImageData(image, 0, 0);
    const stamp = readStamp(canvas, scratch);
    return stamp === null ? null : [stamp.timeMs, stamp.frame];
  });
}"""


def pictures() -> list[dict]:
    result = []
    for case in CASES:
        grey = case_picture(case)
        height, width = grey.shape
        result.append({"width": width, "height": height, "grey": base64.b64encode(grey.tobytes()).decode()})
    return result


def test_the_shared_cases_on_the_page(page_on_server):
    read = page_on_server.evaluate(READ_STAMPS, pictures())
    for case, stamp in zip(CASES, read, strict=True):
        expected = expected_stamp(case)
        assert stamp == (None if expected is None else [expected.time_ms, expected.frame]), case["name"]


def test_a_reader_with_another_block_size_fails_the_cases(page_on_server):
    """The comparison can fail: the same pictures read as if 40 pixels wider (blocks 1 pixel larger)."""
    other = READ_STAMPS.replace("canvas.width = width;", "canvas.width = width + 40;")
    assert other != READ_STAMPS
    read = page_on_server.evaluate(other, pictures())
    wrong = [case["name"] for case, stamp in zip(CASES, read, strict=True)
             if stamp != (case["expect"] and list(case["expect"]))]
    assert len(wrong) >= 5, wrong
