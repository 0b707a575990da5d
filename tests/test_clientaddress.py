"""signaling/clientaddress.py: X-Forwarded-For counts only from trusted proxies."""

import pytest

from signaling.clientaddress import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.1", "192.168.0.0/16"])


@pytest.mark.parametrize("remote, header, client", [
    ("10.0.0.1", "203.0.113.7", "203.0.113.7"),  # through the proxy
    ("10.0.0.1", "203.0.113.7, 192.168.1.2", "203.0.113.7"),  # through two proxies
    ("10.0.0.1", "1.1.1.1, 203.0.113.7", "203.0.113.7"),  # the client's own claim (1.1.1.1) is not trusted
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # not from a proxy: the header means nothing
    ("10.0.0.1", "garbage, 203.0.113.7", "203.0.113.7"),
    ("10.0.0.1", "203.0.113.7, not-an-address", "10.0.0.1"),  # garbled by the proxy's side: trust none
    ("10.0.0.1", "", "10.0.0.1"),
    ("10.0.0.1", "192.168.1.2", "10.0.0.1"),  # only proxies: the nearest one
])
def test_the_client_is_the_rightmost_address_no_trusted_proxy_wrote(remote, header, client):
    assert client_address(remote, header, PROXIES) == client


def test_bad_proxy_specs_are_refused_by_name():
    with pytest.raises(ValueError, match="'proxy.example'"):
        parse_networks(["proxy.example"])
