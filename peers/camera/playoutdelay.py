"""Chromium's playout-delay RTP header extension: a live camera asks browsers not to wait.

Without it Chromium renders each frame on a smoothed schedule, and the page's latency
sits at 19, 35 or 51 ms from load to load, a display tick apart. A sender that answers
the extension Chromium offers (``http://www.webrtc.org/experiments/rtp-hdrext/playout-delay``)
and sends a minimum of 0 and a maximum of ``MAX_DELAY_MS`` in its packets gets
Chromium's low-latency renderer: about 20 ms on loopback, every load.

aiortc 1.16 neither negotiates nor writes this extension. ``enable()`` adds it to
aiortc's video header extensions and to its per-stream header-extension map: private
internals, so aiortc is pinned, and tests/test_playoutdelay.py negotiates and sends it
for real.
"""

from __future__ import annotations

from aiortc import rtp
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
#: The most smoothing the browser may still do; 0 would leave it none against jitter.
MAX_DELAY_MS = 100
#: The extension's value: 12 bits of minimum, 12 of maximum, in 10 ms units.
VALUE = (MAX_DELAY_MS // 10).to_bytes(3, "big")

_configure = rtp.HeaderExtensionsMap.configure
_set = rtp.HeaderExtensionsMap.set


def _configure_with_playout_delay(self: rtp.HeaderExtensionsMap, parameters: RTCRtpParameters) -> None:
    _configure(self, parameters)
    self._playout_delay_id = next((ext.id for ext in parameters.headerExtensions if ext.uri == URI), None)


def _set_with_playout_delay(self: rtp.HeaderExtensionsMap, values: rtp.HeaderExtensions) -> tuple[int, bytes]:
    profile, packed = _set(self, values)
    extension_id = getattr(self, "_playout_delay_id", None)
    if extension_id is None:
        return profile, packed
    return rtp.pack_header_extensions([*rtp.unpack_header_extensions(profile, packed), (extension_id, VALUE)])


def enable() -> None:
    """Negotiate and send the extension on every video stream this process sends (idempotent)."""
    video = HEADER_EXTENSIONS["video"]
    if any(ext.uri == URI for ext in video):
        return
    free_id = max(ext.id for ext in video) + 1
    video.append(RTCRtpHeaderExtensionParameters(id=free_id, uri=URI))
    rtp.HeaderExtensionsMap.configure = _configure_with_playout_delay
    rtp.HeaderExtensionsMap.set = _set_with_playout_delay
