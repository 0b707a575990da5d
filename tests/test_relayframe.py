"""peercam/shared/relayframe.py: the shared cases (tests/relayframe_cases.json), which
web/js/relay-frame.js passes too (tests/test_web_relayframe.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peercam.shared.relayframe import RelayFrameError, RelayFrameHeader, parse_relay_frame

CASES_PATH = Path(__file__).resolve().parent / "relayframe_cases.json"
CASES = json.loads(CASES_PATH.read_text())
VALID, INVALID = CASES["valid"], CASES["invalid"]


def message(case: dict) -> bytes:
    """A case's binary message (its hex, spaces grouping the fields)."""
    return bytes.fromhex(case["hex"])


def expected_fields(case: dict) -> dict:
    """Every field a parser gives for a valid case: what the case says, and the rest unset."""
    return {"jpeg_quality": 0, "codec": None, "keyframe": False, **case["fields"], "payload": case["payload"]}


def parse_in_python(data: bytes) -> dict:
    """The parsed frame, in the shape the JavaScript runner gives (tests/test_web_relayframe.py);
    a frame that does not parse gives {"error": its message}."""
    try:
        header, payload = parse_relay_frame(data)
    except RelayFrameError as exc:
        return {"error": str(exc)}
    return {"format": header.format, "jpeg_quality": header.jpeg_quality, "codec": header.codec,
            "keyframe": header.keyframe, "sequence": header.sequence,
            "capture_time_us": header.capture_time_us, "width": header.width, "height": header.height,
            "layer": header.layer, "payload": bytes(payload).hex()}


def pack_in_python(case: dict) -> str:
    fields = case["fields"]
    header = RelayFrameHeader(sequence=fields["sequence"], capture_time_us=fields["capture_time_us"],
                              width=fields["width"], height=fields["height"],
                              jpeg_quality=fields.get("jpeg_quality", 0), layer=fields["layer"],
                              codec=fields.get("codec"), keyframe=fields.get("keyframe", False))
    return header.pack(bytes.fromhex(case["payload"])).hex()


@pytest.mark.parametrize("case", VALID, ids=[case["name"] for case in VALID])
def test_valid_frames_parse_to_their_fields(case):
    assert parse_in_python(message(case)) == expected_fields(case)


@pytest.mark.parametrize("case", [c for c in VALID if c.get("packs", True)],
                         ids=[c["name"] for c in VALID if c.get("packs", True)])
def test_the_fields_pack_to_the_frame(case):
    assert pack_in_python(case) == message(case).hex()


@pytest.mark.parametrize("case", INVALID, ids=[case["name"] for case in INVALID])
def test_invalid_frames_are_refused_with_their_error(case):
    assert parse_in_python(message(case)) == {"error": case["error"]}


def test_the_cases_cover_every_format_and_codec():
    kinds = {(c["fields"]["format"], c["fields"].get("codec")) for c in VALID if c.get("packs", True)}
    assert kinds == {("jpeg", None), ("encoded", "vp8"), ("encoded", "h264"), ("audio", "opus")}
