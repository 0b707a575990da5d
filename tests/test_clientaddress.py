"""signaling/settings/clientaddress.py: X-Forwarded-For counts only from trusted proxies, also through
the reverse proxies docs/cluster.md shows (HAProxy, nginx), whatever the client writes in it."""

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from peercam.signaling.edge.app import create_app
from peercam.signaling.edge.appkeys import CONNECTIONS_BY_ADDRESS
from peercam.signaling.settings.clientaddress import client_address, parse_networks
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import Limits

from .reverseproxy import HAProxy, Nginx

PROXIES = parse_networks(["10.0.0.1", "192.168.0.0/16"])


@pytest.mark.parametrize("remote, lines, client", [
    ("10.0.0.1", ["203.0.113.7"], "203.0.113.7"),  # through the proxy
    ("10.0.0.1", ["203.0.113.7, 192.168.1.2"], "203.0.113.7"),  # through two proxies
    ("10.0.0.1", ["1.1.1.1, 203.0.113.7"], "203.0.113.7"),  # the client's own claim (1.1.1.1) is not trusted
    ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # not from a proxy: the header means nothing
    ("10.0.0.1", ["garbage, 203.0.113.7"], "203.0.113.7"),
    ("10.0.0.1", ["203.0.113.7, not-an-address"], "10.0.0.1"),  # garbled by the proxy's side: trust none
    ("10.0.0.1", [""], "10.0.0.1"),
    ("10.0.0.1", [], "10.0.0.1"),
    ("10.0.0.1", ["192.168.1.2"], "10.0.0.1"),  # only proxies: the nearest one
    # Several lines are one list: the client's claim first, the proxy's line (HAProxy) last.
    ("10.0.0.1", ["1.1.1.1", "203.0.113.7"], "203.0.113.7"),
    ("10.0.0.1", ["1.1.1.1, 2.2.2.2", "203.0.113.7, 192.168.1.2"], "203.0.113.7"),
    ("10.0.0.1", ["1.1.1.1", "203.0.113.7", ""], "10.0.0.1"),  # an empty last line: garbled
])
def test_the_client_is_the_rightmost_address_no_trusted_proxy_wrote(remote, lines, client):
    assert client_address(remote, lines, PROXIES) == client


def test_bad_proxy_specs_are_refused_by_name():
    with pytest.raises(ValueError, match="'proxy.example'"):
        parse_networks(["proxy.example"])


#: On loopback the proxy reaches the server from 127.0.0.1; its clients come from other
#: loopback addresses (all of 127/8 is the machine's own).
ATTACKER, NEIGHBOUR = "127.0.0.2", "127.0.0.3"
SHARE = 2


@pytest.mark.parametrize("proxy_class", [HAProxy, Nginx])
async def test_forged_x_forwarded_for_through_the_documented_proxies_gets_one_share(proxy_class, tmp_path):
    config = ServerConfig(limits=Limits(connections_per_address=SHARE),
                          trusted_proxies=parse_networks(["127.0.0.1"]))
    app = create_app(config)
    async with TestServer(app, host="127.0.0.1") as server:
        proxy = proxy_class(tmp_path, server.port)
        try:
            await proxy.ready()
            url = f"{proxy.url}/ws"
            attacker = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ATTACKER, 0)))
            neighbour = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(NEIGHBOUR, 0)))
            async with attacker, neighbour:
                # Each socket claims other addresses, on one line and on two (HAProxy adds its own).
                sockets, answers = [], []  # (held: a socket let go of closes)
                for n in range(5):
                    headers = CIMultiDict([("X-Forwarded-For", f"198.51.100.{n}"),
                                           ("X-Forwarded-For", f"203.0.113.{n}, 192.0.2.{n}")])
                    sockets.append(ws := await attacker.ws_connect(url, headers=headers))
                    answers.append(json.loads((await asyncio.wait_for(ws.receive(), 5)).data))
                kinds = [a.get("code", a["type"]) for a in answers]
                assert kinds == ["welcome"] * SHARE + ["too-many-connections"] * (5 - SHARE), kinds
                assert app[CONNECTIONS_BY_ADDRESS][ATTACKER] == SHARE

                # The client beside it has its own share, and watches.
                ws = await neighbour.ws_connect(url, headers={"X-Forwarded-For": ATTACKER})
                assert json.loads((await asyncio.wait_for(ws.receive(), 5)).data)["type"] == "welcome"
                await ws.send_json({"type": "watch", "stream": "cam"})
                assert json.loads((await asyncio.wait_for(ws.receive(), 5)).data)["type"] == "watching"
                assert app[CONNECTIONS_BY_ADDRESS][NEIGHBOUR] == 1
                assert app[CONNECTIONS_BY_ADDRESS][ATTACKER] == SHARE
        finally:
            proxy.stop()
