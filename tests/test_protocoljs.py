"""peercam/shared/protocoljs.py: web/js/protocol.js is exactly what the protocol generates."""

from pathlib import Path

from peercam.shared import protocol, relayframe
from peercam.shared.protocoljs import render

PROTOCOL_JS = Path(__file__).resolve().parent.parent / "web" / "js" / "protocol.js"


def test_the_pages_protocol_module_is_generated_from_the_python_protocol():
    assert PROTOCOL_JS.read_text() == render(), (
        "web/js/protocol.js is stale: run `python3 -m peercam.shared.protocoljs > web/js/protocol.js`")


def test_it_names_every_message_type_and_error_code():
    text = render()
    for tag in protocol.CLIENT_TYPES | protocol.SERVER_TYPES:
        assert f"'{tag}'" in text
    for name, code in vars(protocol.ErrorCode).items():
        if not name.startswith("_"):
            assert f"  {name}: '{code}'," in text


def test_it_carries_every_relay_frame_constant():
    text = render()
    for name in relayframe.__all__:
        value = getattr(relayframe, name)
        if isinstance(value, int):
            assert f"  {name}: {value}," in text, name
    codecs = ", ".join(f"{codec}: {number}" for codec, number in relayframe.CODECS.items())
    assert f"  CODECS: Object.freeze({{ {codecs} }})," in text
