"""peers/ice.py and peers/icesettings.py: ICE server URLs and the local addresses ICE may offer."""

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from peercam.peers.ice import (
    IceOptions,
    aiortc_candidate,
    restrict_host_addresses,
    rtc_configuration,
)
from peercam.peers.icesettings import parse_ice_server, resolve_host_addresses

from peercam.shared.protocol import IceCandidate, IceServer, Welcome


def test_parse_stun_and_turn():
    assert parse_ice_server("stun:127.0.0.1:3478") == IceServer(urls=["stun:127.0.0.1:3478"])
    assert parse_ice_server("turn:al%40ice:s3cret@127.0.0.1:3478?transport=tcp") == IceServer(
        urls=["turn:127.0.0.1:3478?transport=tcp"], username="al@ice", credential="s3cret")


@pytest.mark.parametrize("url", ["http://x", "turn:127.0.0.1:3478", "stun:", "turn:user@host"])
def test_bad_ice_server_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_ice_server(url)


@pytest.fixture
def restore_host_addresses():
    yield
    restrict_host_addresses([])


def test_loopback_can_be_offered(restore_host_addresses):
    restrict_host_addresses(["127.0.0.1"])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    restrict_host_addresses(["lo"])
    assert "127.0.0.1" in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_star_stays_aioice_s_own_choice_while_restricted(restore_host_addresses):
    everywhere = resolve_host_addresses(["*"])
    restrict_host_addresses(["127.0.0.1"])
    assert resolve_host_addresses(["*"]) == everywhere
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]


def test_unknown_interface_is_refused(restore_host_addresses):
    with pytest.raises(ValueError, match="no-such-if0"):
        restrict_host_addresses(["no-such-if0"])


async def test_offer_carries_only_the_configured_address(restore_host_addresses):
    restrict_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
    await pc.close()
    assert candidates and all(" 127.0.0.1 " in c and "typ host" in c for c in candidates)


def test_own_settings_win_over_the_welcome(restore_host_addresses):
    welcome = Welcome(peer_id="p", ice_servers=[IceServer(urls=["stun:127.0.0.1:3478"])], protocol=1,
                      ice_hosts=["127.0.0.1"])
    from_server = IceOptions().configuration(welcome)
    assert [s.urls for s in from_server.iceServers] == [["stun:127.0.0.1:3478"]]
    assert IceOptions().host_addresses(welcome) == ["127.0.0.1"]
    # Computing a configuration patches nothing: aioice gathers from what it is told explicitly.
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) != ["127.0.0.1"]
    restrict_host_addresses(IceOptions().host_addresses(welcome))
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]

    own = IceOptions(servers=[], hosts=["lo"], transport="turn")
    configuration = own.configuration(welcome)
    assert configuration.iceServers == [] and configuration.iceTransportPolicy.value == "relay"
    assert own.host_addresses(welcome) == ["lo"]
    unknown = Welcome(peer_id="p", ice_servers=[], protocol=1, ice_hosts=["no-such-if0"])
    assert IceOptions().host_addresses(unknown) == []  # the server's list names what this machine lacks


def test_browser_candidate_becomes_an_aiortc_candidate():
    line = "candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0"
    candidate = aiortc_candidate(IceCandidate(line, sdp_mid="0", sdp_mline_index=0))
    assert (candidate.ip, candidate.port, candidate.type) == ("127.0.0.1", 50000, "srflx")
    assert candidate.sdpMid == "0"
