"""TURN with a real coturn (signaling/settings/turn.py, peers/ice.py): REST credentials, TURN-only ICE,
TCP when UDP is blocked, clear failures for bad credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from peercam.signaling.settings.turn import turn_credentials

from .conftest import assert_plays, decoded_frames, free_port, require, wait_for_frames, wait_until
from .support.chromium import goto_player
from .test_fallback import CAMERA_ADDRESS, VIEWER_ADDRESS

SECRET = "test-secret"


class Coturn:
    def __init__(self, tmp_path: Path, address: str = "127.0.0.1", prefix: list[str] | None = None) -> None:
        self.address, self.port = address, free_port()
        relay_ports = free_port()
        config = tmp_path / f"turn-{self.port}.conf"
        # The shipped turn.conf.example denies private and loopback peers; tests run
        # entirely on addresses of their own, so this test-only config allows them.
        config.write_text("\n".join([
            f"listening-ip={address}", f"relay-ip={address}", f"listening-port={self.port}",
            f"min-port={relay_ports}", f"max-port={relay_ports + 50}",
            "use-auth-secret", f"static-auth-secret={SECRET}", "realm=peercam.test",
            "lt-cred-mech", "fingerprint", "no-tls", "no-dtls", "no-cli", "allow-loopback-peers",
            "log-file=stdout", "simple-log", "verbose",
        ]) + "\n")
        self.log_path = tmp_path / f"turn-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*(prefix or []), "turnserver", "-c", str(config)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        if prefix is None:
            wait_until(self._listening, 10, "coturn to listen")

    def _listening(self) -> bool:
        try:
            socket.create_connection((self.address, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def url(self, transport: str = "udp") -> str:
        return f"turn:{self.address}:{self.port}" + ("?transport=tcp" if transport == "tcp" else "")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


@pytest.fixture
def coturn(tmp_path):
    require(shutil.which("turnserver") is not None, "coturn is not installed (apt-get install coturn)")
    server = Coturn(tmp_path)
    yield server
    server.stop()


def test_rest_credentials_are_what_coturn_expects():
    username, password = turn_credentials("s3cret", "peer1", ttl=60, now=1_000_000)
    assert username == "1000060:peer1"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert password == expected


def test_relay_only_camera_and_viewer_connect_through_coturn(lab, coturn):
    lab.start_server("--turn-secret", SECRET, "--turn-url", coturn.url())
    lab.start_camera("t", "--ice-transport", "turn")
    summary = lab.start_viewer("t", "--ice-transport", "turn", "--mode", "p2p",
                                   "--warmup", "2", "--duration", "4").summary(timeout=40)
    assert_plays(summary)
    assert "ALLOCATE processed, success" in coturn.log()


def test_camera_connected_longer_than_the_credentials_last_still_relays(lab, coturn):
    """The server renews TURN credentials at half their lifetime; the camera's first ones expire here."""
    ttl = 4
    lab.start_server("--turn-secret", SECRET, "--turn-url", coturn.url(), "--turn-ttl", str(ttl))
    welcome_expired = time.time() + ttl + 1
    lab.start_camera("t", "--ice-transport", "turn")
    wait_until(lambda: time.time() > welcome_expired, ttl + 5, "the camera's first credentials to expire")
    summary = lab.start_viewer("t", "--ice-transport", "turn", "--mode", "p2p",
                                   "--warmup", "1", "--duration", "2").summary(timeout=40)
    assert_plays(summary)


@pytest.mark.parametrize("credentials", [
    ("someone", "wrong-password"),
    turn_credentials(SECRET, "late", ttl=-60),  # signed right, but expired
], ids=["wrong", "expired"])
def test_bad_credentials_fail_with_a_clear_reason(lab, coturn, credentials):
    username, password = credentials
    lab.start_server()
    viewer = lab.start("viewer", "view", "--server", lab.url, "--stream", "t", "--wait", "20",
                           "--ice-transport", "turn", "--mode", "p2p", "--ice-host", "127.0.0.1",
                           "--ice-server", f"turn:{username}:{password}@127.0.0.1:{coturn.port}")
    lab.start_camera("t")
    code, _ = viewer.result(timeout=40)
    assert code != 0
    assert "401" in viewer.log() and "credentials" in viewer.log(), viewer.log()


def test_turn_over_tcp_carries_video_when_udp_is_blocked(lab, split_network, tmp_path):  # noqa: F811
    require(shutil.which("turnserver") is not None, "coturn is not installed (apt-get install coturn)")
    net = split_network
    coturn = Coturn(tmp_path, CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
    try:
        server_url = f"http://{CAMERA_ADDRESS}:{lab.port}"
        lab.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(lab.port),
                      "--turn-secret", SECRET, "--turn-url", coturn.url("tcp"),
                      prefix=net.prefix(net.camera_ns))
        camera = lab.start("camera", "camera", "--server", server_url, "--stream", "far",
                               "--ice-host", CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
        camera.wait_for_log("publishing 'far'", timeout=15)
        net.block_udp()
        viewer = lab.start("viewer", "view", "--server", server_url, "--stream", "far", "--json",
                               "--mode", "p2p", "--warmup", "2", "--duration", "4",
                               "--ice-host", VIEWER_ADDRESS,
                               prefix=net.prefix(net.viewer_ns))
        summary = viewer.summary(timeout=40)
        assert_plays(summary)
        assert "TCP" in coturn.log() or "tcp" in coturn.log()
    finally:
        coturn.stop()


def test_page_with_ice_relay_plays_through_coturn(lab, coturn, page):
    lab.start_server("--turn-secret", SECRET, "--turn-url", coturn.url())
    lab.start_camera("t", "--ice-transport", "turn")
    goto_player(page, f"{lab.url}/view/t?mode=p2p&ice=turn")
    page.wait_for_function("peercam.state() === 'playing' && peercam.mode() === 'p2p'", timeout=20_000)
    wait_for_frames(page, decoded_frames(page) + 30)
    allocations = coturn.log().count("ALLOCATE processed, success")
    assert allocations >= 2  # the camera's and the browser's
