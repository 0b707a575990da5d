"""ECDHE-RSA cipher suites for aiortc's DTLS: a process-wide patch, installed once by
``install_rsa_dtls_ciphers()``.

aiortc's certificate is ECDSA, and as DTLS client it offers ECDHE-ECDSA suites only. A
peer whose certificate is RSA (GStreamer 1.22's webrtcbin: simple-whip-client) then has
no suite it can pick, and the handshake fails with "no shared cipher". Offering the
ECDHE-RSA twins as well lets such a peer choose one; as DTLS server, aiortc still picks an
ECDSA suite for its own certificate, so connections with browsers are unchanged.
The WHIP side (peers/ingest/) installs it when it starts.
"""

from __future__ import annotations

from aiortc.rtcdtlstransport import RTCCertificate

__all__ = ["DTLS_CIPHERS", "install_rsa_dtls_ciphers"]

#: aiortc's own list, then the same suites for an RSA certificate.
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:"
    b"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)

_installed = False


def install_rsa_dtls_ciphers() -> None:
    """Make every DTLS context of aiortc offer DTLS_CIPHERS; idempotent."""
    global _installed
    if _installed:
        return
    create_context = RTCCertificate._create_ssl_context  # private: aiortc is pinned for it

    def create_context_with_rsa(self, srtp_profiles):
        context = create_context(self, srtp_profiles)
        context.set_cipher_list(DTLS_CIPHERS)
        return context

    RTCCertificate._create_ssl_context = create_context_with_rsa  # type: ignore[method-assign]
    _installed = True
