"""Two network namespaces joined by a veth pair: real network faults for tests and benchmarks.

The camera side and the viewer side each get a namespace and an address of their own;
iptables in the viewer's namespace drops UDP (WebRTC cannot connect while HTTP and
WebSocket still can) or a share of it, and a token bucket (tc tbf) on the camera's end
of the link caps what reaches the viewer. Needs root, iproute2 and iptables. All traffic
stays inside the two namespaces, and remove() deletes them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

CAMERA_ADDRESS, VIEWER_ADDRESS = "10.213.7.1", "10.213.7.2"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("iptables") is None:
        return "needs iproute2 and iptables (apt-get install iproute2 iptables)"
    return None


class SplitNetwork:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.camera_ns, self.viewer_ns = f"pc-cam-{tag}", f"pc-view-{tag}"
        self._run("ip", "netns", "add", self.camera_ns)
        self._run("ip", "netns", "add", self.viewer_ns)
        self.camera_link = f"vc{tag}"
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

    def executable_in(self, ns: str, executable: str, directory: Path) -> Path:
        """A script in ``directory`` that runs ``executable`` inside ``ns``.

        For programs started by a tool that only takes a path, like Playwright launching
        Chromium (it talks to the browser over pipes, so the browser alone can move).
        """
        script = directory / f"{Path(executable).name}-in-{ns}"
        script.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {executable} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return script

    def block_udp(self, block: bool = True) -> None:
        action = "-A" if block else "-D"
        for chain in ("INPUT", "OUTPUT"):
            self._run(*self.prefix(self.viewer_ns), "iptables", action, chain, "-p", "udp", "-j", "DROP")

    def cut(self, cut: bool = True) -> None:
        """The viewer's side loses the network (False: gets it back): every packet in or out
        of its namespace is dropped, as when a laptop's Wi-Fi goes."""
        action = "-A" if cut else "-D"
        for chain in ("INPUT", "OUTPUT"):
            self._run(*self.prefix(self.viewer_ns), "iptables", action, chain, "-j", "DROP")

    def drop_udp_randomly(self, probability: float) -> None:
        """Lose this share of the UDP packets reaching the viewer (iptables' statistic match)."""
        self._run(*self.prefix(self.viewer_ns), "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic",
                  "--mode", "random", "--probability", str(probability), "-j", "DROP")

    def cap(self, kbit: int | None) -> None:
        """Cap what the camera's side sends the viewer at ``kbit`` kbit/s (None: lift it).

        tbf shapes egress only, so it sits on the camera's end; its queue holds 150 ms of
        packets, and past that it drops, as a congested home link would.
        """
        if kbit is None:
            subprocess.run([*self.prefix(self.camera_ns), "tc", "qdisc", "del", "dev", self.camera_link,
                            "root"], capture_output=True, timeout=10)
            return
        self._run(*self.prefix(self.camera_ns), "tc", "qdisc", "replace", "dev", self.camera_link, "root",
                  "tbf", "rate", f"{kbit}kbit", "burst", "16kb", "latency", "150ms")

    def remove(self) -> None:
        for ns in (self.camera_ns, self.viewer_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
