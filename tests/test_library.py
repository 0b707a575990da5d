"""What a Python developer expects of ``import peercam``: a version, logging left to the
program, one base for every error, typed signatures that agree with each other, and
frames that PyAV and aiortc code can take as they are. The failure cases and frames run
against the real server and real peers."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib.metadata
import importlib.util
import inspect
import re
import subprocess
import sys
import typing
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import pytest
from peercam.peers.viewer import viewer as viewer_module

import peercam

from .conftest import ROOT, free_port, require

LOOPBACK = peercam.IceOptions(servers=[], hosts=["127.0.0.1"])

#: Every error that can escape watch, watch_sync, Camera and serve.
ERRORS = {"PeercamError", "UsageError", "StartupError", "RedisMissing", "RedisUnreachable", "LayerError",
          "SourceError", "CameraError", "ViewerError"}
#: The Literal aliases of the signatures.
ALIASES = {"Codec", "EventKind", "IceTransport", "Mode", "RelayFormat"}


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_public_surface_is_small_sorted_typed_and_documented():
    assert peercam.__all__ == sorted(peercam.__all__)
    assert set(peercam.__all__) == ERRORS | ALIASES | {
        "AudioFrame", "Camera", "ChatLine", "Frame", "IceOptions", "IceServer", "Limits", "RecordingConfig",
        "Retention", "Server", "ServerConfig", "TalkFrame", "TurnConfig", "Viewer", "ViewerEvent", "serve",
        "watch", "watch_sync"}
    for name in set(peercam.__all__) - ALIASES:
        assert getattr(peercam, name).__doc__, name
    for name in ALIASES:
        assert typing.get_origin(getattr(peercam, name)) is Literal, name
    assert (Path(peercam.__file__).parent / "py.typed").exists()


def test_the_version_is_the_distribution_s_and_pyproject_s():
    pyproject = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)[1]
    assert peercam.__version__ == importlib.metadata.version("peercam") == pyproject


def test_without_installed_metadata_the_version_says_it_is_unknown():
    # A bare checkout has no metadata: the lookup fails as it would there.
    result = run_python(
        "import importlib.metadata as metadata\n"
        "def version(name):\n"
        "    raise metadata.PackageNotFoundError(name)\n"
        "metadata.version = version\n"
        "import peercam\n"
        "print(peercam.__version__)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0+unknown\n"


def test_a_program_that_configures_no_logging_sees_none_of_the_library_s():
    result = run_python(
        "import logging, peercam\n"
        "assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger('peercam').handlers)\n"
        "logging.getLogger('peercam.peers.camera.camera').warning('a warning of the library')\n"
        "logging.getLogger('someone.else').warning('the program own warning')\n")
    assert result.returncode == 0, result.stderr
    # Python's last-resort handler still prints the program's own: only the library's is kept back.
    assert result.stderr == "the program own warning\n"


def test_the_command_line_logs_the_library_s_info(lab):
    server = lab.start_server()
    server.wait_for_log(f"peercam.signaling.edge.app INFO serving on {lab.url}/", timeout=15)
    camera = lab.start_camera("lab")
    camera.wait_for_log("peercam.peers.camera.camera INFO publishing 'lab'", timeout=15)


# -- errors -----------------------------------------------------------------------


def test_every_exported_error_is_a_peercam_error():
    exported = {name for name in peercam.__all__
                if isinstance(value := getattr(peercam, name), type) and issubclass(value, BaseException)}
    assert exported == ERRORS
    assert all(issubclass(getattr(peercam, name), peercam.PeercamError) for name in exported)
    # A bad value is a ValueError too, as Python's own are.
    assert issubclass(peercam.UsageError, ValueError) and issubclass(peercam.LayerError, peercam.UsageError)


@pytest.fixture
async def server() -> typing.AsyncIterator[peercam.Server]:
    async with await peercam.serve(port=0) as running:
        yield running


def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def _camera_twice(url: str) -> None:
    async with peercam.Camera(url, "lab", source="testsrc", width=320, height=240, ice=LOOPBACK):
        async with peercam.Camera(url, "lab", source="testsrc", width=320, height=240, ice=LOOPBACK):
            pass


async def _watch_until_it_ends(url: str, stream: str) -> None:
    async with peercam.watch(url, stream, ice=LOOPBACK) as viewer:
        await viewer.wait()


async def _send_to_a_camera_with_a_source(url: str) -> None:
    async with peercam.Camera(url, "lab", source="testsrc", width=320, height=240, ice=LOOPBACK) as camera:
        camera.send(np.zeros((240, 320, 3), np.uint8))


def _redis_nowhere() -> str:
    require(importlib.util.find_spec("redis") is not None,
            "redis-py is not installed (pip install '.[test]')")
    return f"redis://127.0.0.1:{free_port()}/0"


#: (what, expected error, the call: given the running server's URL, the port in use and a
#: temporary folder; a coroutine function or a plain one).
FAILURES: list[tuple[str, type[BaseException], Callable]] = [
    ("a bad --layers spec in Camera", peercam.LayerError,
     lambda url, port, tmp: peercam.Camera(url, "lab", source="testsrc", layers="720p,720q")),
    ("a layer above the source's size", peercam.LayerError,
     lambda url, port, tmp: peercam.Camera(url, "lab", source="testsrc", width=320, height=240,
                                           layers="720p")),
    ("an unknown source", peercam.SourceError,
     lambda url, port, tmp: peercam.Camera(url, "lab", source=str(tmp / "missing.mp4"))),
    ("an odd width", peercam.SourceError,
     lambda url, port, tmp: peercam.Camera(url, "lab", source="testsrc", width=321)),
    ("an unknown codec", peercam.UsageError, lambda url, port, tmp: peercam.Camera(url, "lab", codec="av1")),
    ("a bad camera server URL", peercam.UsageError,
     lambda url, port, tmp: peercam.Camera("ftp://x:1", "lab")),
    ("no server at all", peercam.UsageError, lambda url, port, tmp: peercam.Camera([], "lab")),
    ("a picture that is not one", peercam.UsageError,
     lambda url, port, tmp: peercam.Camera(url, "lab").send(np.zeros(3, np.float32))),
    ("send() to a camera with its own source", peercam.CameraError,
     lambda url, port, tmp: _send_to_a_camera_with_a_source(url)),
    ("a stream name that is taken", peercam.CameraError, lambda url, port, tmp: _camera_twice(url)),
    ("a bad viewer server URL", peercam.UsageError, lambda url, port, tmp: peercam.watch("ftp://x:1", "lab")),
    ("an unknown mode", peercam.UsageError, lambda url, port, tmp: peercam.watch(url, "lab", mode="webrtc")),
    ("an unknown relay format", peercam.UsageError,
     lambda url, port, tmp: peercam.watch(url, "lab", relay_format="png")),
    ("watch_sync with an unknown mode, before any iteration", peercam.UsageError,
     lambda url, port, tmp: peercam.watch_sync(url, "lab", mode="webrtc")),
    ("a stream that is not live", peercam.ViewerError,
     lambda url, port, tmp: _watch_until_it_ends(url, "lab")),
    ("a server that is not there", peercam.ViewerError,
     lambda url, port, tmp: _watch_until_it_ends(nowhere(), "lab")),
    ("an ICE host that is neither an address nor an interface", peercam.UsageError,
     lambda url, port, tmp: peercam.IceOptions(hosts=["no-such-interface"])),
    ("an unknown ICE transport", peercam.UsageError,
     lambda url, port, tmp: peercam.IceOptions(transport="tcp")),
    ("serve on a port in use", peercam.StartupError, lambda url, port, tmp: peercam.serve(port=port)),
    ("serve with a certificate that is not there", peercam.StartupError,
     lambda url, port, tmp: peercam.serve(port=0, cert_file=str(tmp / "missing.pem"))),
    ("serve with a Redis that does not answer", peercam.RedisUnreachable,
     lambda url, port, tmp: peercam.serve(port=0, redis=_redis_nowhere())),
]


@pytest.mark.parametrize("expected,call", [(expected, call) for _, expected, call in FAILURES],
                         ids=[what for what, _, _ in FAILURES])
async def test_each_failure_raises_an_exported_peercam_error(expected, call, server, port_in_use, tmp_path):
    with pytest.raises(peercam.PeercamError) as raised:
        result = call(server.url, port_in_use, tmp_path)
        if inspect.isawaitable(result):
            await asyncio.wait_for(result, 30)
    assert isinstance(raised.value, expected), raised.value
    kind = type(raised.value)
    assert getattr(peercam, kind.__name__, None) is kind and kind.__name__ in peercam.__all__
    assert str(raised.value)  # a reason, in words


# -- signatures ---------------------------------------------------------------------


def test_serve_takes_server_config_s_fields_with_its_defaults_and_types():
    parameters = list(inspect.signature(peercam.serve).parameters.values())
    fields = dataclasses.fields(peercam.ServerConfig)
    assert [p.name for p in parameters] == [f.name for f in fields]
    assert [p.kind for p in parameters[:2]] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2  # host, port
    assert {p.kind for p in parameters[2:]} == {inspect.Parameter.KEYWORD_ONLY}
    config = peercam.ServerConfig()
    for parameter in parameters:
        assert parameter.default == getattr(config, parameter.name), parameter.name
    hints, config_hints = typing.get_type_hints(peercam.serve), typing.get_type_hints(peercam.ServerConfig)
    assert {name: hints[name] for name in config_hints} == config_hints


#: What watch and Camera share besides server and stream: the same names, types and meaning.
SHARED = ("name", "token", "ice", "ca_file", "connect_timeout")


def test_camera_and_watch_take_the_same_leading_parameters_and_names():
    camera = list(inspect.signature(peercam.Camera).parameters.values())
    watch = list(inspect.signature(peercam.watch).parameters.values())
    for parameters in (camera, watch):
        leading = inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert [(p.name, p.kind) for p in parameters[:2]] == [("server", leading), ("stream", leading)]
        assert {p.kind for p in parameters[2:]} == {inspect.Parameter.KEYWORD_ONLY}
        assert [p.name for p in parameters[2:2 + len(SHARED)]] == list(SHARED)
    camera_hints = typing.get_type_hints(peercam.Camera.__init__)
    watch_hints = typing.get_type_hints(peercam.watch)
    for name in ("server", "stream", *SHARED):
        assert camera_hints[name] == watch_hints[name], name


def test_watch_sync_takes_exactly_watch_s_parameters():
    watch, watch_sync = inspect.signature(peercam.watch), inspect.signature(peercam.watch_sync)
    assert list(watch.parameters.values()) == list(watch_sync.parameters.values())
    assert ({k: v for k, v in typing.get_type_hints(peercam.watch).items() if k != "return"}
            == {k: v for k, v in typing.get_type_hints(peercam.watch_sync).items() if k != "return"})


def test_the_literal_aliases_type_the_signatures():
    watch = typing.get_type_hints(peercam.watch)
    assert watch["mode"] == peercam.Mode and typing.get_args(peercam.Mode) == ("auto", "p2p", "relay")
    assert watch["relay_format"] == peercam.RelayFormat | Literal["auto"]
    assert typing.get_type_hints(peercam.Viewer.relay_format.fget)["return"] == peercam.RelayFormat
    assert typing.get_type_hints(peercam.Camera.__init__)["codec"] == peercam.Codec
    assert typing.get_type_hints(peercam.IceOptions)["transport"] == peercam.IceTransport
    assert typing.get_type_hints(peercam.ViewerEvent)["kind"] == peercam.EventKind


def test_event_kind_names_every_event_the_viewer_sends_and_no_other():
    sent = {
        node.args[0].value
        for node in ast.walk(ast.parse(Path(viewer_module.__file__).read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_event"
        and node.args and isinstance(node.args[0], ast.Constant)
    }
    assert sent == set(typing.get_args(peercam.EventKind))


# -- Frame.video ------------------------------------------------------------------------


async def test_frame_video_is_the_pyav_frame_on_p2p_and_both_relay_formats(server):
    async with peercam.Camera(server.url, "lab", source="testsrc", width=320, height=240, ice=LOOPBACK):
        for mode, relay_format, pixels in (("p2p", "auto", "yuv420p"), ("relay", "encoded", "yuv420p"),
                                           ("relay", "jpeg", "bgr24")):
            async with peercam.watch(server.url, "lab", mode=mode, relay_format=relay_format,
                                     ice=LOOPBACK) as viewer:
                frame = await asyncio.wait_for(anext(viewer.frames()), 15)
            video = frame.video
            assert frame.mode == mode and isinstance(video, av.VideoFrame) and video is frame.video
            assert (video.width, video.height, video.format.name) == (320, 240, pixels)
            if mode == "p2p":  # aiortc's own frame, with its RTP clock
                assert video.pts is not None and video.time_base == Fraction(1, 90000)
            # The same picture as frame.image: the decoder's frame itself, not another decode.
            assert np.array_equal(video.to_ndarray(format="bgr24"), frame.image)
