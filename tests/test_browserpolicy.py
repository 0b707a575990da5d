"""signaling/edge/browserpolicy.py: which Host and Origin headers a server accepts."""

import pytest
from peercam.signaling.edge.browserpolicy import host_allowed, origin_allowed
from peercam.signaling.settings.config import ServerConfig


@pytest.mark.parametrize("listen, host, allowed", [
    ("127.0.0.1", "127.0.0.1:8080", True),
    ("127.0.0.1", "localhost:8080", True),
    ("127.0.0.1", "cam.localhost", True),
    ("127.0.0.1", "[::1]:8080", True),
    ("127.0.0.1", "127.1.2.3", True),
    ("127.0.0.1", "attacker.example:8080", False),
    ("127.0.0.1", "localhost.attacker.example", False),
    ("127.0.0.1", "", False),
    ("::1", "attacker.example", False),
    ("localhost", "attacker.example", False),
    ("0.0.0.0", "attacker.example", True),  # not on loopback: reached by any name
    ("192.168.1.5", "cams.lan", True),
])
def test_a_loopback_server_answers_to_loopback_names(listen, host, allowed):
    assert host_allowed(ServerConfig(host=listen), host) is allowed


def test_allowed_hosts_extend_the_loopback_names():
    assert host_allowed(ServerConfig(allowed_hosts=("cams.example.org",)), "cams.example.org:443")


@pytest.mark.parametrize("origins, origin, host, allowed", [
    ((), None, "127.0.0.1:8080", True),  # no Origin: not a browser
    ((), "http://127.0.0.1:8080", "127.0.0.1:8080", True),  # the server's own page
    ((), "http://127.0.0.1:9999", "127.0.0.1:8080", False),
    ((), "http://evil.example", "127.0.0.1:8080", False),
    ((), "null", "127.0.0.1:8080", False),
    (("*",), "http://evil.example", "127.0.0.1:8080", True),
    (("https://cams.example.org",), "https://cams.example.org", "10.0.0.2:8080", True),
    (("https://cams.example.org",), "http://cams.example.org", "10.0.0.2:8080", False),
])
def test_websocket_origins(origins, origin, host, allowed):
    assert origin_allowed(ServerConfig(allowed_origins=origins), origin, host) is allowed
