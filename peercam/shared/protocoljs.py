"""web/js/protocol.js, generated from peercam/shared/protocol.py (and the relay frame's constants
from peercam/shared/relayframe.py) so the page cannot drift from them.

    python3 -m peercam.shared.protocoljs > web/js/protocol.js

tests/test_protocoljs.py fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import inspect

from . import protocol, relayframe


def _constant(tag: str) -> str:
    return tag.upper().replace("-", "_")


def _summary(cls: type) -> str:
    """The first line of a class's docstring, as a trailing comment."""
    doc = inspect.getdoc(cls) if cls.__doc__ else ""
    line = doc.splitlines()[0] if doc else ""
    return f" // {line}" if line else ""


def _messages() -> list[type]:
    """Every message class, each once, in the order protocol.py defines them."""
    classes = dict.fromkeys((*protocol.ClientMessage.__args__, *protocol.ServerMessage.__args__))
    return sorted(classes, key=lambda cls: inspect.getsourcelines(cls)[1])


def _js_chars(chars) -> str:
    """Characters as a JS string literal of \\u escapes, in code point order."""
    return "'" + "".join(f"\\u{ord(ch):04x}" for ch in sorted(chars)) + "'"


def render() -> str:
    message_types = "\n".join(
        f"  {_constant(cls.__struct_config__.tag)}: '{cls.__struct_config__.tag}',{_summary(cls)}"
        for cls in _messages()
    )
    codes = "\n".join(
        f"  {name}: '{value}',"
        for name, value in vars(protocol.ErrorCode).items()
        if not name.startswith("_")
    )
    codecs = ", ".join(f"{name}: {number}" for name, number in relayframe.CODECS.items())
    audio_codecs = ", ".join(f"{name}: {number}" for name, number in relayframe.AUDIO_CODECS.items())
    sample_rates = ", ".join(str(rate) for rate in sorted(relayframe.SAMPLE_RATES))
    return f"""\
// Generated from peercam/shared/protocol.py and relayframe.py by
// `python3 -m peercam.shared.protocoljs`: do not edit.
// tests/test_protocoljs.py fails when this file and the protocol differ.

export const PROTOCOL_VERSION = {protocol.PROTOCOL_VERSION};

/** Chat limits, in characters; the camera (the chat hub) refuses longer ones. */
export const MAX_CHAT_TEXT = {protocol.MAX_CHAT_TEXT};
export const MAX_NAME = {protocol.MAX_NAME};

/** The chat hub: messages kept for newcomers; lines a viewer may send (a second, and a burst). */
export const CHAT_HISTORY_SIZE = {protocol.CHAT_HISTORY_SIZE};
export const CHAT_RATE = {protocol.CHAT_RATE:g};
export const CHAT_BURST = {protocol.CHAT_BURST:g};
/** The camera's name in chat when it has none: no viewer may take it. */
export const CAMERA_CHAT_NAME = '{protocol.CAMERA_CHAT_NAME}';

/** clean_text turns TEXT_BREAKS into spaces and drops BIDI_CONTROLS and every control character (Cc). */
export const TEXT_BREAKS = {_js_chars(protocol._TEXT_BREAKS)};
export const BIDI_CONTROLS = {_js_chars(protocol._BIDI_CONTROLS)};

/** The relay frame's layout: a header, then the picture (web/js/relay-frame.js reads and writes it). */
export const RelayFrameLayout = Object.freeze({{
  JPEG_VERSION: {relayframe.JPEG_VERSION},
  ENCODED_VERSION: {relayframe.ENCODED_VERSION},
  AUDIO_VERSION: {relayframe.AUDIO_VERSION}, // an Opus packet: width is its sample rate, height its channels
  BASE_HEADER_SIZE: {relayframe.BASE_HEADER_SIZE}, // the fields every frame has: no layer (layer 0)
  HEADER_SIZE: {relayframe.HEADER_SIZE},
  LAYER_OFFSET: {relayframe.LAYER_OFFSET},
  KEYFRAME_FLAG: {relayframe.KEYFRAME_FLAG},
  MIN_JPEG_QUALITY: {relayframe.MIN_JPEG_QUALITY},
  MAX_JPEG_QUALITY: {relayframe.MAX_JPEG_QUALITY},
  CODECS: Object.freeze({{ {codecs} }}), // an encoded frame's codec byte
  AUDIO_CODECS: Object.freeze({{ {audio_codecs} }}), // an audio packet's codec byte
  SAMPLE_RATES: Object.freeze([{sample_rates}]), // an audio packet's sample rates
}});

/** The `type` field of every signaling message. */
export const MessageType = Object.freeze({{
{message_types}
}});

/** The `code` values of an `error` message. */
export const ErrorCode = Object.freeze({{
{codes}
}});
"""


if __name__ == "__main__":
    print(render(), end="")
