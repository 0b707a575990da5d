"""docs/protocol.md, the signaling protocol's reference, generated from peercam/shared/protocol.py
(its structures, their docstrings and field comments, the error codes and the limits), so the
page cannot drift from the protocol.

    python3 -m peercam.shared.protocoldoc > docs/protocol.md

tests/test_protocoldoc.py fails when the committed page differs from what this prints. A
message, structure or error code without a description is an error here, not a gap there.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import textwrap
import tokenize
import typing

import msgspec
import msgspec.inspect as mi

from . import protocol

#: Who sends each message that the server does not route between a camera and a viewer, and to
#: whom. (protocol.py says which union a message belongs to, not which role sends it.) Routed
#: messages say their senders themselves (RoutedMessage.senders).
_DIRECTIONS = {
    "publish": "camera → server",
    "watch": "viewer → server",
    "quality": "viewer → server",
    "rename": "viewer → server",
    "relay": "viewer → server",
    "stats": "viewer → server",
    "camera-stats": "camera → server",
    "chat": "camera → server → viewers",
    "talking": "camera → server → viewers",
    "welcome": "server → client",
    "ice-servers": "server → client",
    "published": "server → camera",
    "watching": "server → viewer",
    "stream-live": "server → viewer",
    "stream-ended": "server → viewer",
    "relay-frames": "server → camera",
    "relay-keyframe": "server → camera",
    "viewer-joined": "server → camera",
    "viewer-quality": "server → camera",
    "viewer-renamed": "server → camera",
    "viewer-left": "server → camera",
    "error": "server → client",
}
#: Routed messages the server also sends itself.
_ALSO_FROM_SERVER = {"layer": "server → viewer (on the relay)",
                     "talk-refused": "server → viewer (no talk right)"}

#: Constrained strings, by the alias that names them in protocol.py.
_PATTERNS = {
    typing.get_args(protocol.LayerName)[1].pattern: "layer name",
    typing.get_args(protocol.Quality)[1].pattern: '`"auto"` or a layer name',
}

_HEADER = """\
<!-- Generated from peercam/shared/protocol.py by `python3 -m peercam.shared.protocoldoc > docs/protocol.md`:
do not edit. tests/test_protocoldoc.py fails when this page and the protocol differ. -->
"""

_INTRO = """\
# Signaling protocol

One WebSocket per client at `/ws`; JSON text messages, each an object whose `type` field
names it. The messages are defined once, as typed msgspec structures in
`peercam/shared/protocol.py`, used by the server and the Python peers; this page and the
page's `web/js/protocol.js` (`python3 -m peercam.shared.protocoljs`) are generated from it,
and tests fail when either differs. Binary messages are [relay frames](relay-frames.md):
from the camera to the server, and from the server to relay viewers.

Protocol version {version} (the `welcome` message's `protocol`). A text message is at most
{max_bytes} bytes. Fields left at their default may be left out, and are left out when sent.

**Versions.** A camera or viewer says which protocol it speaks in `publish` or `watch`
(`protocol`). One that does not say is from before protocol 4 and speaks {oldest}: the server
serves it still, and names what it sends it as protocol {oldest} did, `stream-live`'s `camera_id`
as `publisher` and a [JpegRendition](#jpegrendition)'s `jpeg_quality` (in `relay-frames`) as
`quality`. A Python peer refuses a server whose `welcome` says an older protocol than its own.

## Messages

| type | from → to | meaning |
|---|---|---|
{summary}

**Routing.** A viewer's `offer`, `candidate`, `hangup` and `chat-send` go to its stream's
camera (`to` may be left out); a camera addresses one of its own viewers with `to`. The
server fills in `from`. A message to anyone else is refused with `unknown-peer`, and a routed
type sent the wrong way (a viewer's `answer`, a camera's `offer`) with `wrong-state`.

**Before the camera.** A viewer may watch a name before its camera arrives: `watching` says
`live: false`, and `stream-live` follows when a camera publishes. When the camera leaves,
viewers get `stream-ended` and then `stream-live` again for the next camera on that name.

**Chat** rides each P2P viewer's `chat` data channel too: `chat-send`, `chat`,
`chat-history` and `chat-notice`, the same JSON as on the WebSocket.

**Reported figures** are bounded: numbers in `stats` and `camera-stats` must be finite,
never negative and within what a real stream reaches (the ranges below); anything else is a
`bad-message`. A viewer whose clock disagrees with the camera's leaves a negative latency out
of its report. Text a peer wrote (names, chat, reasons) is cleaned of control characters
before anyone logs, prints or shows it: line breaks and tabs become spaces; other control
characters and bidirectional overrides go.
"""

_NAMES = """\
## Names and limits

- A stream name is 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit, matched
  in full (`{stream_pattern}`): no name is `.` or `..`. Anything else is `bad-stream-name`.
- A layer name is a height and, when below the capture's rate, a frame rate: `480p`,
  `360p@15`, `360p@12.5` (`{layer_pattern}`, matched in full: `"480p\\n"` is not a layer).
- Display names: at most {max_name} printable characters, unique per stream (compared
  case-blind); `{camera_name}` is the camera's name in chat when it has none, and no viewer
  may take it. Chat lines: at most {max_chat} characters, about {chat_rate:g} a second per
  sender with bursts of {chat_burst:g}; newcomers get the last {history} messages.
"""


def _markdown(text: str) -> str:
    """A docstring or comment as Markdown: reStructuredText's literals become code spans."""
    return text.replace("``", "`")


def _docstring(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    if not doc:
        raise ValueError(f"{cls.__name__} has no docstring: say what it is for (docs/protocol.md)")
    return _markdown(" ".join(inspect.cleandoc(doc).split()))


def _first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _comments(cls: type) -> dict[str, str]:
    """Each attribute's comment in the source: ``#:`` lines just above it, or a trailing ``#``."""
    source = textwrap.dedent(inspect.getsource(cls))
    source_lines = source.splitlines()
    trailing = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and not source_lines[token.start[0] - 1].lstrip().startswith("#"):
            trailing[token.start[0]] = token.string.lstrip("#").strip()
    found = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        above = []
        line = node.lineno - 1
        while line >= 1 and source_lines[line - 1].strip().startswith("#:"):
            above.insert(0, source_lines[line - 1].strip()[2:].strip())
            line -= 1
        parts = [" ".join(above)] if above else []
        if node.lineno in trailing:
            parts.append(trailing[node.lineno])
        if parts:
            found[name] = _markdown("; ".join(parts))
    return found


def _field_comment(cls: type, name: str) -> str:
    for owner in cls.__mro__:
        if name in owner.__dict__.get("__annotations__", {}):
            return _comments(owner).get(name, "")
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bounds(info: mi.IntType | mi.FloatType) -> str:
    low = info.ge if info.ge is not None else info.gt
    high = info.le if info.le is not None else info.lt
    if high is not None and high >= 2**53:
        high = None
    if low is not None and high is not None:
        if info.gt is None and info.lt is None:
            return f" {_number(low)} to {_number(high)}"
        return f" over {_number(low)}, up to {_number(high)}"
    if low is not None:
        return f" ≥ {_number(low)}" if info.gt is None else f" > {_number(low)}"
    return ""


def _type(info: mi.Type) -> str:
    if isinstance(info, mi.StrType):
        if info.pattern is not None:
            return _PATTERNS[info.pattern]
        return f"string (≤ {info.max_length} chars)" if info.max_length else "string"
    if isinstance(info, mi.BoolType):
        return "boolean"
    if isinstance(info, mi.IntType):
        return "integer" + _bounds(info)
    if isinstance(info, mi.FloatType):
        return "number" + _bounds(info)
    if isinstance(info, mi.NoneType):
        return "null"
    if isinstance(info, mi.LiteralType):
        return " or ".join(f"`{json.dumps(value)}`" for value in info.values)
    if isinstance(info, mi.ListType):
        most = f", at most {info.max_length}" if info.max_length else ""
        return f"list of {_type(info.item_type)}{most}"
    if isinstance(info, mi.StructType):
        if issubclass(info.cls, protocol._Message):
            return f"[`{_tag(info.cls)}`](#{_tag(info.cls)}) message"
        return f"[{info.cls.__name__}](#{info.cls.__name__.lower()})"
    if isinstance(info, mi.UnionType):
        return " or ".join(_type(member) for member in info.types)
    raise TypeError(f"docs/protocol.md cannot describe {info!r}: teach peercam/shared/protocoldoc.py")


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default_factory is not msgspec.NODEFAULT:
        return f"`{msgspec.json.encode(field.default_factory()).decode()}`"
    return f"`{msgspec.json.encode(field.default).decode()}`"


def _fields(cls: type) -> str:
    info = mi.type_info(cls)
    rows = [
        f"| `{field.encode_name}` | {_type(field.type)} | {_default(field)} "
        f"| {_field_comment(cls, field.name)} |"
        for field in info.fields
    ]
    if not rows:
        return "No fields but `type`."
    return "| field | type | default | note |\n|---|---|---|---|\n" + "\n".join(rows)


def _tag(cls: type) -> str:
    return cls.__struct_config__.tag


def _messages() -> list[type]:
    """Every message class, each once, in the order protocol.py defines them."""
    classes = dict.fromkeys((*protocol.ClientMessage.__args__, *protocol.ServerMessage.__args__))
    return sorted(classes, key=lambda cls: inspect.getsourcelines(cls)[1])


def _direction(cls: type) -> str:
    tag = _tag(cls)
    if issubclass(cls, protocol.RoutedMessage):
        roles = sorted(cls.senders)
        if len(roles) == 2:
            text = "camera ↔ viewer (routed)"
        else:
            text = f"{roles[0]} → {'viewer' if roles[0] == 'camera' else 'camera'} (routed)"
        also = _ALSO_FROM_SERVER.get(tag)
        return f"{text}; {also}" if also else text
    if tag not in _DIRECTIONS:
        raise ValueError(f"message {tag!r} has no direction: add it to protocoldoc._DIRECTIONS")
    return _DIRECTIONS[tag]


def _structures() -> list[type]:
    """The structures messages carry (not messages themselves), in the order protocol.py defines them."""
    found: dict[type, None] = {}

    def visit(info: mi.Type) -> None:
        if isinstance(info, mi.StructType):
            if not issubclass(info.cls, protocol._Message) and info.cls not in found:
                found[info.cls] = None
                for field in info.fields:
                    visit(field.type)
            elif issubclass(info.cls, protocol._Message):
                for field in info.fields:
                    visit(field.type)
        elif isinstance(info, mi.ListType):
            visit(info.item_type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                visit(member)

    for cls in _messages():
        visit(mi.type_info(cls))
    return sorted(found, key=lambda cls: inspect.getsourcelines(cls)[1])


def _error_codes() -> str:
    comments = _comments(protocol.ErrorCode)
    rows = []
    for name, code in vars(protocol.ErrorCode).items():
        if name.startswith("_"):
            continue
        if name not in comments:
            raise ValueError(f"ErrorCode.{name} has no #: comment: say when it is sent (docs/protocol.md)")
        rows.append(f"| `{code}` | {comments[name]} |")
    return "| code | when |\n|---|---|\n" + "\n".join(rows)


def render() -> str:
    messages = _messages()
    unused = set(_DIRECTIONS) - {_tag(cls) for cls in messages}
    if unused:
        raise ValueError(f"protocoldoc._DIRECTIONS names no message: {sorted(unused)}")
    summary = "\n".join(
        f"| [`{_tag(cls)}`](#{_tag(cls)}) | {_direction(cls)} | {_first_sentence(_docstring(cls))} |"
        for cls in messages
    )
    sections = "\n\n".join(
        f"### `{_tag(cls)}` {{ #{_tag(cls)} }}\n\n{_direction(cls)}. {_docstring(cls)}\n\n{_fields(cls)}"
        for cls in messages
    )
    structures = "\n\n".join(
        f"### {cls.__name__} {{ #{cls.__name__.lower()} }}\n\n{_docstring(cls)}\n\n{_fields(cls)}"
        for cls in _structures()
    )
    layer_pattern = typing.get_args(protocol.LayerName)[1].pattern.removeprefix("\\A").removesuffix("\\Z")
    parts = [
        _HEADER,
        _INTRO.format(version=protocol.PROTOCOL_VERSION, oldest=protocol.OLDEST_PROTOCOL,
                      max_bytes=protocol.MAX_TEXT_MESSAGE_BYTES, summary=summary),
        "## Each message\n",
        sections + "\n",
        "## Structures\n\nWhat the messages above carry.\n",
        structures + "\n",
        "## Error codes\n\nAn `error` message's `code`. Each is counted in `/metrics` as "
        "`peercam_errors_total{code}`.\n",
        _error_codes() + "\n",
        _NAMES.format(stream_pattern=protocol.STREAM_NAME_PATTERN.pattern, layer_pattern=layer_pattern,
                      max_name=protocol.MAX_NAME, camera_name=protocol.CAMERA_CHAT_NAME,
                      max_chat=protocol.MAX_CHAT_TEXT, chat_rate=protocol.CHAT_RATE,
                      chat_burst=protocol.CHAT_BURST, history=protocol.CHAT_HISTORY_SIZE),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
