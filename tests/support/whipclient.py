"""Debian's simple-whip-client (``/usr/bin/whip-client``, GStreamer's webrtcbin) as a WHIP
publisher for tests, with the two things it needs on these machines:

- a start-up shim (LD_PRELOAD, built here with gcc): whip-client links libsoup 2, while
  GStreamer's nice element pulls libsoup 3 in through libgupnp-igd, and libsoup aborts a
  process that has both ("libsoup2 symbols detected"). The shim hides the two libsoup 2
  symbols libsoup 3 probes for.
- a network of its own: libnice gathers no loopback candidates, so the client runs in a
  namespace joined to the test's own by a veth pair, and reaches the server (listening on
  SERVER_ADDRESS, on this side) over it.

Needs root, iproute2, gcc and whip-client (.ci/run installs simple-whip-client and gcc).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

WHIP_CLIENT = "/usr/bin/whip-client"
SERVER_ADDRESS, CLIENT_ADDRESS = "10.213.8.1", "10.213.8.2"

_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
typedef int gboolean; typedef void *gpointer; typedef struct _GModule GModule;
gboolean g_module_symbol(GModule *m, const char *name, gpointer *sym) {
    static gboolean (*real)(GModule *, const char *, gpointer *);
    if (!real) real = dlsym(RTLD_NEXT, "g_module_symbol");
    if (name && (!strcmp(name, "soup_uri_new") || !strcmp(name, "soup_server_new_with_options"))) {
        if (sym) *sym = 0;
        return 0;
    }
    return real(m, name, sym);
}
"""

#: The test pattern as x264 makes it (a keyframe every ``gop`` frames, and whenever the
#: server sends a PLI), and a sine, in Opus.
VIDEO_PIPELINE = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
    "! videoconvert ! queue ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
    "! rtph264pay pt=96 ssrc=2 config-interval=-1 ! queue "
    "! application/x-rtp,media=video,encoding-name=H264,payload=96"
)
AUDIO_PIPELINE = (
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc "
    "! rtpopuspay pt=100 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=100"
)


def unavailable_reason() -> str | None:
    """Why whip-client cannot run here, or None when it can."""
    if not os.path.exists(WHIP_CLIENT):
        return "simple-whip-client is not installed (apt-get install simple-whip-client)"
    if shutil.which("gcc") is None:
        return "gcc is not installed (apt-get install gcc libc6-dev): it builds whip-client's shim"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "whip-client's network namespace needs root and iproute2"
    return None


def build_shim(directory: Path) -> Path:
    """The LD_PRELOAD shim, compiled into ``directory``."""
    source, library = directory / "soupshim.c", directory / "soupshim.so"
    source.write_text(_SHIM)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
                   check=True, capture_output=True, timeout=60)
    return library


class ClientNetwork:
    """A namespace for whip-client, joined to this one by a veth pair: SERVER_ADDRESS is on
    this side (the server listens there), CLIENT_ADDRESS on the client's."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.namespace, self.link = f"pc-whip-{tag}", f"wh{tag}"
        self._run("ip", "netns", "add", self.namespace)
        try:
            self._run("ip", "link", "add", self.link, "type", "veth", "peer", "name", f"wc{tag}",
                      "netns", self.namespace)
            self._run("ip", "addr", "add", f"{SERVER_ADDRESS}/24", "dev", self.link)
            self._run("ip", "link", "set", self.link, "up")
            self._run("ip", "-n", self.namespace, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", f"wc{tag}")
            self._run("ip", "-n", self.namespace, "link", "set", f"wc{tag}", "up")
            self._run("ip", "-n", self.namespace, "link", "set", "lo", "up")
            self._wait_for_carrier(f"wc{tag}")
        except BaseException:
            self.remove()
            raise

    def _wait_for_carrier(self, link: str, timeout: float = 10.0) -> None:
        """libnice gathers only on interfaces that are running: the veth's carrier comes up
        a moment (seconds, on a busy machine) after both ends are up."""
        deadline = time.monotonic() + timeout
        while True:
            shown = subprocess.run(["ip", "-n", self.namespace, "-o", "link", "show", link],
                                   capture_output=True, text=True, timeout=10).stdout
            if "NO-CARRIER" not in shown and "state UP" in shown:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the veth pair's carrier never came up: {shown.strip()}")
            time.sleep(0.05)

    @staticmethod
    def _run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=10)

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=10)


class WhipClient:
    """whip-client publishing the test pattern (H.264, ``width`` x ``height`` at ``fps``, a
    keyframe every ``keyframe_interval`` frames) and a tone to ``url``, in ``network``'s
    namespace; ``stop()`` interrupts it, and it sends DELETE as it exits."""

    def __init__(self, network: ClientNetwork, shim: Path, url: str, log_path: Path, token: str = "",
                 width: int = 640, height: int = 360, fps: int = 30, keyframe_interval: int = 30) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        video = VIDEO_PIPELINE.format(width=width, height=height, fps=fps, gop=keyframe_interval)
        args = ["ip", "netns", "exec", network.namespace, "env", f"LD_PRELOAD={shim}", WHIP_CLIENT,
                "-u", url, "-o", "-V", video, "-A", AUDIO_PIPELINE]
        if token:
            args += ["-t", token]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> int:
        """Interrupt it (it sends DELETE first); its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
