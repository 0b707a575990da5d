"""whip-whep's browser clients (tests/support/whipwhep/) on pages of their own, and ffmpeg's
WHIP muxer: the standard clients the tests and bench/standards.py drive."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from pathlib import Path

__all__ = ["WHEP_PAGE", "WHIP_PAGE", "PageSite", "ffmpeg_exe", "ffmpeg_whip_command"]

WHIPWHEP = Path(__file__).parent / "whipwhep"

#: whep.html: whip-whep's WHEPClient plays ?url= in #video (video and sound, recvonly).
WHEP_PAGE = """<!doctype html>
<meta charset="utf-8">
<video id="video" autoplay muted playsinline></video>
<script type="module">
import { WHEPClient } from "/whep.js";
const url = new URLSearchParams(location.search).get("url");
const media = new MediaStream();
document.getElementById("video").srcObject = media;
const pc = new RTCPeerConnection({ iceServers: [] });
pc.addTransceiver("video", { direction: "recvonly" });
pc.addTransceiver("audio", { direction: "recvonly" });
pc.ontrack = (event) => media.addTrack(event.track);
window.client = new WHEPClient();
window.viewing = client.view(pc, url).then(() => "ok", (error) => String(error));
window.framesDecoded = async () => {
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") return report.framesDecoded ?? 0;
  }
  return 0;
};
</script>
"""


#: whip.html: whip-whep's WHIPClient publishes the fake camera and microphone to ?url= (with ?token=).
WHIP_PAGE = """<!doctype html>
<meta charset="utf-8">
<script type="module">
import { WHIPClient } from "/whip.js";
const params = new URLSearchParams(location.search);
const media = await navigator.mediaDevices.getUserMedia(
  { video: { width: 640, height: 480, frameRate: 30 }, audio: true });
const pc = new RTCPeerConnection({ iceServers: [] });
for (const track of media.getTracks()) {
  if (track.kind === "video") track.contentHint = "detail";  // keep the size, drop the rate if need be
  pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
}
window.client = new WHIPClient();
window.publishing = client.publish(pc, params.get("url"), params.get("token")).then(
  () => "ok", (error) => String(error));
window.sent = async () => {
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "outbound-rtp" && report.kind === "video") return report;
  }
  return {};
};
</script>
"""



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PageSite:
    """whep.html, whip.html and whip-whep's modules on an origin of their own (another port)."""

    def __init__(self, folder: Path) -> None:
        for name in ("whep.js", "whip.js"):
            shutil.copy(WHIPWHEP / name, folder / name)
        (folder / "whep.html").write_text(WHEP_PAGE)
        (folder / "whip.html").write_text(WHIP_PAGE)
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


def ffmpeg_exe() -> str | None:
    """ffmpeg 9 with the whip muxer, from PyPI's imageio-ffmpeg (None when it is not installed)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_whip_command(url: str, seconds: float = 60, size: str = "640x360",
                        token: str | None = None) -> list[str]:
    """ffmpeg's whip muxer publishing its test pattern (H.264 Constrained Baseline, a keyframe
    a second) and a stereo tone to ``url``, as docs/standards.md gives the command."""
    return [ffmpeg_exe() or "ffmpeg", "-hide_banner", "-loglevel", "warning", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
            "-f", "lavfi", "-i", "sine=sample_rate=48000",
            "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-profile:v", "baseline", "-g", "30", "-bf", "0", "-c:a", "libopus", "-ac", "2",
            "-f", "whip", "-whip_flags", "dtls_active", *(["-authorization", token] if token else []), url]
