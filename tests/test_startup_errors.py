"""Start-up failures of `serve`, `camera`, `view` and `demo`: the whole of stderr is one
line naming the cause and the fix, the exit is non-zero, and there is no traceback
(`--debug` shows one). `serve` prints its URL only once it listens.

Each case runs the real command in a process of its own; each fails within a couple of
seconds. Only loopback is ever used."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import peercam

from .conftest import free_port, get_json, require

FIX_RECORD_DIR = "give --record-dir a directory this user can write"


def run_peercam(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """Runs a peercam command to its end; PEERCAM_REDIS from the caller's shell is left out."""
    env = {k: v for k, v in os.environ.items() if k != "PEERCAM_REDIS"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "peercam", *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)


def assert_fails(result: subprocess.CompletedProcess, command: str, *parts: str) -> None:
    """A non-zero exit, and stderr exactly one line: ``peercam COMMAND: error: `` then
    ``parts`` in order, with anything but a newline between them (the OS's or a library's
    words, e.g. "No such file or directory")."""
    assert result.returncode != 0, result
    literal = [f"peercam {command}: error: {parts[0]}", *parts[1:]]
    assert re.fullmatch(".*".join(map(re.escape, literal)) + "\n", result.stderr), result.stderr


def nowhere() -> str:
    """A signaling server URL on loopback where nothing listens (the commands fail before using it)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file: no directory can be made under it, whoever runs the tests (root too)."""
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


def test_serve_without_redis_py_names_the_extra(tmp_path):
    # redis-py as if it were not installed: its package fails to import, as a missing one would.
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "__init__.py").write_text("raise ImportError('redis-py is not installed')\n")
    result = run_peercam("serve", "--port", str(free_port()), "--redis", f"redis://127.0.0.1:{free_port()}/0",
                     pythonpath=tmp_path)
    assert_fails(result, "serve", "--redis needs redis-py: pip install 'peercam[redis]'")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_in_use(command, port_in_use):
    result = run_peercam(command, "--port", str(port_in_use))
    assert_fails(result, command,
                 f"port {port_in_use} on 127.0.0.1 is in use (another peercam? choose one with --port)")


@pytest.mark.parametrize("where", ["after the command", "before it"])
def test_debug_shows_the_traceback_then_the_same_line(where, port_in_use):
    args = ["serve", "--port", str(port_in_use)]
    result = run_peercam(*([*args, "--debug"] if where == "after the command" else ["--debug", *args]))
    assert result.returncode != 0
    assert result.stderr.startswith("Traceback (most recent call last):\n"), result.stderr
    assert "\nOSError: " in result.stderr  # the cause underneath is shown too
    assert result.stderr.endswith(f"\npeercam serve: error: port {port_in_use} on 127.0.0.1 is in use "
                                  "(another peercam? choose one with --port)\n"), result.stderr


async def test_in_a_program_the_same_failure_is_a_startup_error(port_in_use):
    with pytest.raises(peercam.StartupError, match=f"^port {port_in_use} on 127.0.0.1 is in use"):
        await peercam.serve(port=port_in_use)


def test_an_unreadable_certificate_or_key(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM at all\n")
    missing = tmp_path / "missing.pem"
    fix = "): give a readable PEM file"

    result = run_peercam("serve", "--port", str(free_port()), "--cert", str(missing), "--key", str(garbage))
    assert_fails(result, "serve", f"cannot read --cert {missing} (", fix)
    result = run_peercam("serve", "--port", str(free_port()), "--cert", str(garbage), "--key", str(missing))
    assert_fails(result, "serve", f"cannot read --key {missing} (", fix)
    result = run_peercam("serve", "--port", str(free_port()), "--cert", str(garbage), "--key", str(garbage))
    assert_fails(result, "serve", f"--cert {garbage} and --key {garbage} are not a PEM certificate chain "
                                  "and its private key (", ")")


def test_a_record_directory_that_cannot_be_written(a_file):
    result = run_peercam("serve", "--port", str(free_port()), "--record-dir", str(a_file / "recordings"))
    assert_fails(result, "serve", f"cannot record into {a_file / 'recordings'} (", f"): {FIX_RECORD_DIR}")
    result = run_peercam("serve", "--port", str(free_port()), "--record-dir", str(a_file))
    assert_fails(result, "serve", f"cannot record into {a_file} (Not a directory): {FIX_RECORD_DIR}")
    result = run_peercam("camera", "--server", nowhere(), "--record", str(a_file))
    assert_fails(result, "camera", f"cannot record into {a_file} (Not a directory): "
                                   "give --record a directory this user can write")
    result = run_peercam("view", "--server", nowhere(), "--record", str(a_file / "out.mp4"))
    assert_fails(result, "view", f"--record '{a_file / 'out.mp4'}': cannot write a file there (",
                 "): choose a directory this user can write")


def test_an_unreachable_redis_at_start():
    require(importlib.util.find_spec("redis") is not None,
            "redis-py is not installed (pip install '.[test]')")
    redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    result = run_peercam("serve", "--port", str(free_port()), "--redis", redis_url)
    assert_fails(result, "serve", f"cannot reach Redis at {redis_url} (",
                 "): start it, or point --redis at one that runs")


@pytest.mark.parametrize("command", ["camera", "demo"])
def test_bad_layers(command):
    where = ["--server", nowhere()] if command == "camera" else ["--port", str(free_port())]
    result = run_peercam(command, *where, "--layers", "720p,720q")
    assert_fails(result, command,
                 "--layers: bad layer '720q': use HEIGHTp or HEIGHTp@FPS, e.g. 720p or 360p@15")


@pytest.mark.parametrize("command", ["camera", "demo"])
def test_an_unknown_source(command, tmp_path):
    where = ["--server", nowhere()] if command == "camera" else ["--port", str(free_port())]
    missing = tmp_path / "missing.mp4"
    result = run_peercam(command, *where, "--source", str(missing))
    assert_fails(result, command, f"no such video file or camera: '{missing}' (give testsrc, a camera index "
                                  "such as 0, a device such as /dev/video0, or a video file)")


@pytest.mark.parametrize(("audio", "message"), [
    ("hw:9,0", "--audio: cannot open audio device 'hw:9,0': "),
    ("missing.wav", "--audio: no such audio file or device: 'missing.wav' (give none, tone, an ALSA device "
                    "such as default or hw:1,0, or a file)"),
    ("push", "--audio push: pushed sound is for the library's Camera.send_audio"),
])
def test_sound_that_cannot_be_had(audio, message):
    """Asked for by name, a sound that is not there is an error (a device's own words follow)."""
    result = run_peercam("camera", "--server", nowhere(), "--audio", audio)
    hint = ["(see the devices with: arecord -L)"] if "hw:" in audio else []
    assert_fails(result, "camera", message, *hint)


def test_a_clip_without_sound_is_an_error_when_named_and_a_warning_by_default(make_clip, lab):
    clip = make_clip(320, 240)  # H.264 only
    named = run_peercam("camera", "--server", nowhere(), "--audio", clip)
    assert_fails(named, "camera", f"--audio: '{clip}' has no audio track")
    result = run_peercam("camera", "--server", nowhere(), "--source", clip, "--audio-bitrate", "999")
    assert_fails(result, "camera", "--audio-bitrate 999: Opus takes 6 to 510 kbit/s")
    mono = run_peercam("camera", "--server", nowhere(), "--audio", "tone", "--audio-bitrate", "300")
    assert_fails(mono, "camera", "--audio-bitrate 300: Opus takes at most 256 kbit/s a channel, "
                                 "and this sound has 1")
    # Only the default (the clip's own track): a warning, and the camera goes on without sound.
    camera = lab.start("camera", "camera", "--server", lab.url, "--source", clip)
    camera.wait_for_log(f"no sound: '{clip}' has no audio track", timeout=15)
    assert camera.proc.poll() is None, camera.log()


def test_serve_prints_its_url_once_it_listens(lab):
    """Port 0: the port in the line can only be known once the server is bound."""
    server = lab.start("server", "serve", "--port", "0")
    server.wait_for_log("peercam serve: http://127.0.0.1:", timeout=15)
    url = re.search(r"^peercam serve: (http://127\.0\.0\.1:[0-9]+/)$", server.log(), re.MULTILINE)[1]
    assert not url.endswith(":0/"), server.log()
    assert get_json(f"{url}healthz") is not None, server.log()
