"""H.264 Main and High for aiortc: a process-wide patch, installed once by ``install_h264_profiles()``.

aiortc negotiates only Constrained Baseline and Baseline (``42e01f``, ``42001f``). Cameras
send Main or High, and a WHIP publisher may offer only those: aiortc then raises in
setRemoteDescription. These entries let it receive them (WHIP in) and send a Main stream
as it is (passthrough): H.264 depacketizes the same whatever the profile. Compatibility
in aiortc compares the profile, not the level, so one entry per profile covers every level.
"""

from __future__ import annotations

from aiortc.codecs import CODECS
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

__all__ = ["H264_PROFILE_LEVEL_IDS", "install_h264_profiles"]

#: Main and High at level 3.1, the level aiortc's own entries name; the payload types are
#: free in aiortc's table (VP8 and H.264 take 97-102, Opus 96).
H264_PROFILE_LEVEL_IDS = {"main": ("4d001f", 103), "high": ("64001f", 105)}

_installed = False


def install_h264_profiles() -> None:
    """Add Main and High (each with its RTX) to aiortc's video codecs; idempotent."""
    global _installed
    if _installed:
        return
    feedback = next(codec.rtcpFeedback for codec in CODECS["video"] if codec.mimeType == "video/H264")
    for profile_level_id, payload_type in H264_PROFILE_LEVEL_IDS.values():
        CODECS["video"] += [
            RTCRtpCodecParameters(
                mimeType="video/H264", clockRate=90000, payloadType=payload_type,
                rtcpFeedback=[RTCRtcpFeedback(type=f.type, parameter=f.parameter) for f in feedback],
                parameters={"level-asymmetry-allowed": "1", "packetization-mode": "1",
                            "profile-level-id": profile_level_id}),
            RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=payload_type + 1,
                                  parameters={"apt": payload_type}),
        ]
    _installed = True
