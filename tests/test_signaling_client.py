"""peers/signaling_client.py: which signaling server a peer tries next, and when; a server
too old for it; and its WebSocket (the websockets library's client) against aiohttp's server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from peercam.peers.signaling_client import Backoff, ServerList, SignalingClient, SignalingError

from peercam.shared.protocol import PROTOCOL_VERSION, Welcome, encode

A, B, C = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"


async def paused(servers: ServerList) -> bool:
    """Whether ``wait()`` waited for the backoff (0.04 to 0.06 s here) rather than not at all."""
    started = time.monotonic()
    await servers.wait()
    return time.monotonic() - started >= 0.04


async def test_each_server_in_turn_at_once_then_the_backoff_between_rounds():
    servers = ServerList([A, B, C], Backoff(first=0.05, cap=0.05))
    assert servers.current == A and not servers.all_failed
    tried = []
    for _ in range(4):
        servers.failed()
        tried.append((servers.current, servers.all_failed, await paused(servers)))
    assert tried == [(B, False, False), (C, False, False), (A, True, True), (B, False, False)]


async def test_a_working_server_is_kept_and_no_server_is_tried_twice_between_waits():
    servers = ServerList([A, B, C], Backoff(first=0.05, cap=0.05))
    servers.failed()  # A could not be reached
    assert not await paused(servers)
    servers.succeeded()
    assert servers.current == B  # it stays there while it works
    servers.failed()  # B lost after a while: C at once, but A only after the backoff
    assert servers.current == C and not await paused(servers)
    servers.failed()
    assert servers.current == A and await paused(servers)


async def test_one_server_is_tried_again_after_the_backoff_each_time():
    servers = ServerList(A, Backoff(first=0.05, cap=0.05))
    assert servers.urls == (A,)
    for _ in range(2):
        servers.failed()
        assert servers.current == A and servers.all_failed and await paused(servers)


@pytest.mark.parametrize("servers, words", [
    ([], "no signaling server given"),
    ([A, "ftp://127.0.0.1:4"], "bad server URL 'ftp://127.0.0.1:4'"),
])
def test_bad_server_lists_are_refused_at_once(servers, words):
    with pytest.raises(ValueError, match=words):
        ServerList(servers)


@contextlib.asynccontextmanager
async def stand_in(handler) -> AsyncIterator[str]:
    """A stand-in signaling server on 127.0.0.1 whose /ws is ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_get("/ws", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/"))


@pytest.mark.parametrize("protocol, refused", [(PROTOCOL_VERSION - 1, True), (PROTOCOL_VERSION, False)])
async def test_a_server_of_an_older_protocol_is_refused_with_the_versions(protocol, refused):
    """Its messages would not decode (protocol 3 named stream-live's camera_id publisher): the peer
    says so at once instead of waiting for a stream-live it cannot read. The server here is a stand-in
    that only welcomes, as a server of that protocol does."""
    async def welcome(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(encode(Welcome(peer_id="p", ice_servers=[], protocol=protocol)))
        await ws.receive()
        return ws

    async with stand_in(welcome) as url:
        client = SignalingClient(url)
        try:
            if refused:
                with pytest.raises(SignalingError, match=rf"speaks protocol {protocol}, this peer "
                                                         rf"{PROTOCOL_VERSION}: upgrade the server"):
                    await client.connect()
            else:
                assert (await client.connect()).protocol == PROTOCOL_VERSION
        finally:
            await client.close()


async def test_messages_of_every_size_both_ways_pings_and_the_servers_close_reason():
    """Text and binary, small and large (a relay keyframe's size, and a few bytes), a ping from
    the server in between; then the server closes with a reason, which the peer's error names."""
    sent = os.urandom(1_500_000)
    got: dict[str, object] = {}

    async def peer(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(encode(Welcome(peer_id="p", ice_servers=[], protocol=PROTOCOL_VERSION)))
        await ws.ping(b"are you there")
        await ws.send_bytes(sent)
        got["big"] = (await ws.receive_bytes(timeout=10))
        got["small"] = (await ws.receive_bytes(timeout=10))
        got["text"] = (await ws.receive_str(timeout=10))
        await ws.close(code=4000, message=b"bye")
        return ws

    async with stand_in(peer) as url:
        client = SignalingClient(url)
        try:
            assert (await client.connect()).peer_id == "p"
            frame = await asyncio.wait_for(client._receive(), 10)
            assert hashlib.sha256(frame).digest() == hashlib.sha256(sent).digest()
            big, small = os.urandom(300_000), b"\x00\xffabc"
            await client.send_bytes(big)
            await client.send_bytes(small)
            await client.send(Welcome(peer_id="ü" * 10, ice_servers=[], protocol=PROTOCOL_VERSION))
            with pytest.raises(SignalingError, match=r"closed the connection \(4000 bye\)"):
                await asyncio.wait_for(client._receive(), 10)
        finally:
            await client.close()
    assert got["big"] == big and got["small"] == small
    assert "ü" * 10 in got["text"]  # UTF-8 both ways
