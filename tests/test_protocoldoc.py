"""peercam/shared/protocoldoc.py: docs/protocol.md is exactly what the protocol generates."""

from pathlib import Path

import pytest

from peercam.shared import protocol, protocoldoc
from peercam.shared.protocoldoc import render

PROTOCOL_MD = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def test_the_protocol_page_is_generated_from_the_python_protocol():
    assert PROTOCOL_MD.read_text() == render(), (
        "docs/protocol.md is stale: run `python3 -m peercam.shared.protocoldoc > docs/protocol.md`")


def test_it_has_a_section_for_every_message_type_and_a_row_for_every_error_code():
    text = render()
    for tag in protocol.CLIENT_TYPES | protocol.SERVER_TYPES:
        assert f"### `{tag}` {{ #{tag} }}" in text
        assert f"| [`{tag}`](#{tag}) |" in text
    for name, code in vars(protocol.ErrorCode).items():
        if not name.startswith("_"):
            assert f"| `{code}` |" in text


def test_every_field_of_a_message_is_in_its_table():
    text = render()
    section = text[text.index("### `publish`"):text.index("### `watch`")]
    for field in ("stream", "info", "name", "token"):
        assert f"| `{field}` |" in section
    assert "[StreamInfo](#streaminfo)" in section
    assert "### StreamInfo { #streaminfo }" in text


def test_a_message_without_a_direction_is_refused(monkeypatch):
    directions = dict(protocoldoc._DIRECTIONS)
    del directions["watch"]
    monkeypatch.setattr(protocoldoc, "_DIRECTIONS", directions)
    with pytest.raises(ValueError, match="'watch' has no direction"):
        render()


def test_a_direction_for_no_message_is_refused(monkeypatch):
    monkeypatch.setattr(protocoldoc, "_DIRECTIONS", {**protocoldoc._DIRECTIONS, "gone": "server → camera"})
    with pytest.raises(ValueError, match="names no message"):
        render()


def test_an_undocumented_error_code_is_refused(monkeypatch):
    monkeypatch.setattr(protocol.ErrorCode, "BRAND_NEW", "brand-new", raising=False)
    with pytest.raises(ValueError, match="ErrorCode.BRAND_NEW has no #: comment"):
        render()


def test_a_message_without_a_docstring_is_refused(monkeypatch):
    monkeypatch.setattr(protocol.Answer, "__doc__", None)
    with pytest.raises(ValueError, match="Answer has no docstring"):
        render()
