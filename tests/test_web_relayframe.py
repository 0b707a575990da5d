"""web/js/relay-frame.js in real headless Chromium: the shared cases (tests/relayframe_cases.json)
parse and pack as peercam/shared/relayframe.py does.

The module comes from the real server's /static/, imported by a page on the server's
origin (Playwright's evaluate needs the CSP bypassed, as everywhere in these tests).
"""

from __future__ import annotations

import pytest

from .test_relayframe import INVALID, VALID, expected_fields, message, parse_in_python

#: The JavaScript runner: each message parsed ({error} when it throws a RelayFrameError), and
#: each valid case's fields packed, as hex.
RUN_CASES = """async ({ messages, valid }) => {
  const relayFrame = await import('/static/js/relay-frame.js');
  const { RelayFrameError, packRelayFrame, parseRelayFrame } = relayFrame;
  const bytes = (hex) => Uint8Array.from(hex.replace(/\\s/g, '').match(/../g) ?? [], (b) => parseInt(b, 16));
  const hex = (array) => Array.from(array, (b) => b.toString(16).padStart(2, '0')).join('');
  const parsed = messages.map((text) => {
    let frame;
    try {
      frame = parseRelayFrame(bytes(text).buffer);
    } catch (error) {
      if (!(error instanceof RelayFrameError)) throw error;
      return { error: error.message };
    }
    const { payload, ...fields } = frame;
    return { ...fields, payload: hex(payload) };
  });
  const packed = valid.map(({ fields, payload }) => hex(packRelayFrame({
    format: fields.format, jpegQuality: fields.jpeg_quality, codec: fields.codec, keyframe: fields.keyframe,
    sequence: fields.sequence, captureTimeMs: fields.capture_time_us / 1000, width: fields.width,
    height: fields.height, layer: fields.layer,
  }, bytes(payload))));
  return { parsed, packed };
}"""


def as_python(parsed: dict) -> dict:
    """The page's frame in the Python runner's shape (jpegQuality is jpeg_quality; captureTimeMs:
    exactly µs / 1000)."""
    if "error" in parsed:
        return parsed
    fields = dict(parsed)
    fields["jpeg_quality"] = fields.pop("jpegQuality")
    ms = fields.pop("captureTimeMs")
    capture_time_us = round(ms * 1000)
    assert ms == capture_time_us / 1000, f"{ms} ms is no whole number of microseconds"
    return {**fields, "capture_time_us": capture_time_us}


def run_cases(page, runner: str = RUN_CASES) -> tuple[list[dict], list[str]]:
    result = page.evaluate(runner, {"messages": [c["hex"] for c in VALID + INVALID], "valid": VALID})
    return [as_python(parsed) for parsed in result["parsed"]], result["packed"]


def check(valid_parsed: list[dict], invalid_parsed: list[dict], packed: list[str]) -> None:
    for case, parsed in zip(VALID, valid_parsed, strict=True):
        assert parsed == expected_fields(case), case["name"]
    for case, parsed in zip(INVALID, invalid_parsed, strict=True):
        assert parsed == {"error": case["error"]}, case["name"]
    for case, frame in zip(VALID, packed, strict=True):
        if case.get("packs", True):
            assert frame == message(case).hex(), case["name"]


def test_the_shared_cases_on_the_page(page_on_server):
    parsed, packed = run_cases(page_on_server)
    check(parsed[:len(VALID)], parsed[len(VALID):], packed)
    # And each result is exactly Python's, field for field.
    assert parsed == [parse_in_python(message(case)) for case in VALID + INVALID]


def test_a_reader_with_another_rule_fails_the_cases(page_on_server):
    """The comparison can fail: the same runner on a parser that always skips 22 bytes of header."""
    other = RUN_CASES.replace(
        "const { RelayFrameError, packRelayFrame, parseRelayFrame } = relayFrame;",
        """const { RelayFrameError, packRelayFrame, parseRelayFrame: real } = relayFrame;
        const parseRelayFrame = (buffer) => ({ ...real(buffer), payload: new Uint8Array(buffer, 22) });""")
    assert other != RUN_CASES
    parsed, packed = run_cases(page_on_server, other)
    with pytest.raises(AssertionError):
        check(parsed[:len(VALID)], parsed[len(VALID):], packed)
