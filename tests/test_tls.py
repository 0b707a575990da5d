"""HTTPS/WSS with a private CA (--cert/--key, --ca), a WHIP publisher on a server whose
certificate is made out to a DNS name, and WebSocket origin checks."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from peercam.signaling.edge.app import create_app
from peercam.signaling.settings.config import ServerConfig

DNS_NAME = "cams.example.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """A private CA and a certificate from it for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("peercam test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    # One made out to a DNS name only, as a public server's is; its file carries the CA after it.
    named = (x509.CertificateBuilder().subject_name(_name(DNS_NAME)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(3).not_valid_before(now)
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(DNS_NAME)]), critical=False)
             .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem",
             "named": folder / "named.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["named"].write_bytes(named.public_bytes(serialization.Encoding.PEM) +
                               ca.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def test_wss_with_a_private_ca(lab, certificates):
    server = lab.start("server", "serve", "--port", str(lab.port),
                           "--cert", str(certificates["cert"]), "--key", str(certificates["key"]))
    server.wait_for_log("https://127.0.0.1", timeout=10)
    url = f"https://127.0.0.1:{lab.port}"
    camera = lab.start("camera", "camera", "--server", url, "--stream", "sec", "--ice-host", "127.0.0.1",
                           "--ca", str(certificates["ca"]))
    camera.wait_for_log("publishing 'sec'", timeout=15)
    viewer = lab.start("viewer", "view", "--server", url, "--stream", "sec", "--json", "--duration", "2",
                           "--ice-host", "127.0.0.1", "--ca", str(certificates["ca"]))
    assert viewer.summary(timeout=30)["frames"] > 0
    untrusting = lab.start("viewer", "view", "--server", url, "--stream", "sec")
    code, _ = untrusting.result(timeout=30)
    assert code != 0 and "certificate verify failed" in untrusting.log()


async def test_a_whip_publisher_on_a_server_whose_certificate_names_its_dns_name(lab, certificates,
                                                                                 loopback_ice):
    """The server's in-process camera for a WHIP publisher reaches the server on loopback,
    where a certificate made out to a DNS name matches no address: it trusts the server's
    own certificate there, and the publisher's stream goes live, passed through."""
    server = lab.start("server", "serve", "--port", str(lab.port), "--ice-host", "127.0.0.1",
                       "--cert", str(certificates["named"]), "--key", str(certificates["key"]))
    server.wait_for_log("https://127.0.0.1", timeout=10)
    # This test's own client checks the chain, though not the name (it reaches 127.0.0.1).
    client = ssl.create_default_context(cafile=str(certificates["ca"]))
    client.check_hostname = False
    publisher = RTCPeerConnection()
    publisher.addTransceiver(VideoStreamTrack(), direction="sendonly")  # aiortc's own frames, VP8
    await publisher.setLocalDescription(await publisher.createOffer())
    async with aiohttp.ClientSession(f"https://127.0.0.1:{lab.port}",
                                     connector=aiohttp.TCPConnector(ssl=client)) as http:
        async def stream() -> dict:
            async with http.get("/api/streams/tlscam") as response:
                return await response.json() if response.status == 200 else {}

        try:
            async with http.post("/whip/tlscam", data=publisher.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp"}) as response:
                assert response.status == 201, await response.text()
                answer = await response.text()
            await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            deadline = asyncio.get_running_loop().time() + 20
            while not ((live := await stream()).get("live") and (live.get("camera") or {}).get("stats")):
                assert asyncio.get_running_loop().time() < deadline, f"never live: {live}"
                await asyncio.sleep(0.2)
            assert live["source"] == "whip" and (live["width"], live["height"]) == (640, 480), live
            assert live["layers"][0]["passthrough"], live["layers"]
            assert "certificate verify failed" not in server.log()
        finally:
            await publisher.close()


async def test_websocket_origin_is_checked():
    config = ServerConfig(allowed_origins=("https://cams.example.org",))
    async with TestServer(create_app(config), host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(server.make_url("/ws"), headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        async with session.ws_connect(server.make_url("/ws"),
                                      headers={"Origin": "https://cams.example.org"}) as ws:
            assert (await ws.receive_json())["type"] == "welcome"
        async with session.ws_connect(server.make_url("/ws")) as ws:  # no Origin: not a browser
            assert (await ws.receive_json())["type"] == "welcome"
