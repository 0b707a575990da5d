"""Auto mode against a real P2P failure: UDP dropped between two network namespaces.

The camera and server live in one namespace, the viewer in another, joined by a
veth pair the test makes; iptables drops UDP between them, so WebRTC cannot connect
while HTTP/WebSocket (TCP) still can. All addresses are the test's own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import uuid

import pytest

from .conftest import require

CAMERA_ADDRESS, VIEWER_ADDRESS = "10.213.7.1", "10.213.7.2"


class SplitNetwork:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.camera_ns, self.viewer_ns = f"pc-cam-{tag}", f"pc-view-{tag}"
        self._run("ip", "netns", "add", self.camera_ns)
        self._run("ip", "netns", "add", self.viewer_ns)
        self._run("ip", "link", "add", f"vc{tag}", "netns", self.camera_ns,
                  "type", "veth", "peer", "name", f"vv{tag}", "netns", self.viewer_ns)
        for ns, link, address in ((self.camera_ns, f"vc{tag}", CAMERA_ADDRESS),
                                  (self.viewer_ns, f"vv{tag}", VIEWER_ADDRESS)):
            self._run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", link)
            self._run("ip", "-n", ns, "link", "set", link, "up")
            self._run("ip", "-n", ns, "link", "set", "lo", "up")

    @staticmethod
    def _run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=10)

    def prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def block_udp(self, block: bool = True) -> None:
        action = "-A" if block else "-D"
        for chain in ("INPUT", "OUTPUT"):
            self._run(*self.prefix(self.viewer_ns), "iptables", action, chain, "-p", "udp", "-j", "DROP")

    def remove(self) -> None:
        for ns in (self.camera_ns, self.viewer_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.fixture
def split_network():
    require(os.geteuid() == 0, "network namespaces need root")
    require(shutil.which("ip") is not None and shutil.which("iptables") is not None,
            "needs iproute2 and iptables (apt-get install iproute2 iptables)")
    network = SplitNetwork()
    yield network
    network.remove()


def test_auto_viewer_falls_back_to_the_relay_and_returns_to_p2p(cluster, split_network):
    net = split_network
    server_url = f"http://{CAMERA_ADDRESS}:{cluster.port}"
    cluster.start("server", "serve", "--host", CAMERA_ADDRESS, "--port", str(cluster.port),
                  prefix=net.prefix(net.camera_ns))
    camera = cluster.start("camera", "camera", "--server", server_url, "--stream", "far",
                           "--ice-host", CAMERA_ADDRESS, prefix=net.prefix(net.camera_ns))
    camera.wait_for_log("publishing 'far'", timeout=15)
    net.block_udp()

    connect_timeout = 3
    viewer = cluster.start("viewer", "view", "--server", server_url, "--stream", "far", "--json",
                           "--mode", "auto", "--connect-timeout", str(connect_timeout),
                           "--p2p-retry", "2", "--ice-host", VIEWER_ADDRESS,
                           prefix=net.prefix(net.viewer_ns))
    viewer.wait_for_log("switching to the relay", timeout=connect_timeout + 5)
    viewer.wait_for_log("(relay)", timeout=5)
    first_frame_ms = float(re.search(r"first frame after (\d+) ms \(relay\)", viewer.log()).group(1))
    assert first_frame_ms <= (connect_timeout + 2) * 1000, viewer.log()

    net.block_udp(False)
    viewer.wait_for_log("p2p connected again", timeout=20)
    viewer.kill(signal.SIGINT)
    summary = viewer.summary(timeout=15)
    assert summary["mode"] == "p2p" and summary["frames"] > 30, summary
