"""signaling/limits.py: every limit refuses with a clear error, and the rest keeps working."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from signaling.app import create_app
from signaling.appkeys import CLUSTER
from signaling.config import ServerConfig
from signaling.limits import Limits

from .test_websocket import INFO, Client

SMALL = Limits(messages_per_second=5, message_burst=5, max_sdp_bytes=100, viewers_per_stream=2,
               streams=2, connections_per_address=6)


@pytest.fixture(params=["alone", "with-redis"])
async def small_server(request):
    """A server with small limits: alone, or one instance of a deployment on Redis (the
    limits hold per instance there too)."""
    redis = request.getfixturevalue("redis_server").url if request.param == "with-redis" else None
    app = create_app(ServerConfig(limits=SMALL, redis=redis))
    async with TestServer(app, host="127.0.0.1") as server:
        if redis is not None:
            async def joined() -> None:
                while not app[CLUSTER].connected:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(joined(), 10)
        async with aiohttp.ClientSession() as session:
            async def connect() -> Client:
                client = Client(await session.ws_connect(server.make_url("/ws")))
                client.welcome = await client.expect("welcome")
                return client

            yield connect, server


async def test_message_rate_is_limited_per_connection(small_server):
    connect, _ = small_server
    chatty, calm = await connect(), await connect()
    for _ in range(12):
        await chatty.send({"type": "stats", "stats": {"mode": "p2p", "fps": 30}})
    codes = [(await chatty.expect("error"))["code"] for _ in range(12)]
    assert "rate-limited" in codes
    await calm.send({"type": "watch", "stream": "cam"})
    assert (await calm.expect("watching"))["live"] is False


async def test_sdp_size_viewers_per_stream_and_stream_count(small_server):
    connect, _ = small_server
    camera = await connect()
    await camera.send({"type": "publish", "stream": "cam", "info": INFO})
    await camera.expect("published")
    viewers = []
    for _ in range(2):
        viewer = await connect()
        await viewer.send({"type": "watch", "stream": "cam"})
        await viewer.expect("watching")
        await viewer.expect("stream-live")
        viewers.append(viewer)
    third = await connect()
    await third.send({"type": "watch", "stream": "cam"})
    assert (await third.expect("error"))["code"] == "stream-full"

    await viewers[0].send({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 40})
    error = await viewers[0].expect("error")
    assert error["code"] == "too-large" and "SDP" in error["reason"]

    other = await connect()
    await other.send({"type": "publish", "stream": "two", "info": INFO})
    await other.expect("published")
    await third.send({"type": "publish", "stream": "three", "info": INFO})
    assert (await third.expect("error"))["code"] == "too-many-streams"


async def test_connections_per_address(small_server):
    connect, server = small_server
    clients = [await connect() for _ in range(SMALL.connections_per_address)]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.make_url("/ws")) as extra:
            message = await extra.receive()
            assert json.loads(message.data)["code"] == "too-many-connections"
            assert (await extra.receive()).type == aiohttp.WSMsgType.CLOSE
    await clients[0].ws.close()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.make_url("/ws")) as again:
            assert (await again.receive_json())["type"] == "welcome"
