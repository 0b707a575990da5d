"""signaling/settings/limits.py: every limit refuses with a clear error, and the rest keeps working."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from peercam.signaling.edge.app import create_app
from peercam.signaling.edge.appkeys import CLUSTER, CONNECTIONS_BY_ADDRESS
from peercam.signaling.edge.auth import make_token
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import Limits

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


@pytest.mark.parametrize("role", ["publish", "admin"])
async def test_a_token_exempts_only_a_socket_that_publishes_with_it(role):
    """Sockets that show a publish or admin token but only watch take the address's share."""
    share, secret = 2, "s3cret"
    shown = make_token(secret, "lab" if role == "publish" else "*", role, 600)
    app = create_app(ServerConfig(limits=Limits(connections_per_address=share), secret=secret))
    by_address = app[CONNECTIONS_BY_ADDRESS]
    async with TestServer(app, host="127.0.0.1") as server:
        url = server.make_url("/ws")
        here = aiohttp.ClientSession()
        neighbour = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0)))
        async with here, neighbour:
            async def connect(session=here, token: str | None = None) -> Client:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                client = Client(await session.ws_connect(url, headers=headers))
                client.welcome = await client.expect("welcome")
                return client

            watchers, answers = [], []  # (held: a socket let go of closes)
            for _ in range(5):  # each in on the token's credit; watching counts it
                watchers.append(watcher := await connect(token=shown))
                await watcher.send({"type": "watch", "stream": "lab"})
                answers.append((await watcher.receive()).get("code", "watching"))
            assert answers == ["watching"] * share + ["too-many-connections"] * 3, answers
            assert by_address["127.0.0.1"] == share

            # On credit, publishing without a valid token counts too.
            sneaky = await connect(token=shown)
            await sneaky.send({"type": "publish", "stream": "other", "info": INFO})
            assert (await sneaky.expect("error"))["code"] == "too-many-connections"

            # The camera still gets in over the full share, and publishing with its token
            # keeps it out of the count.
            camera = await connect(token=make_token(secret, "lab", "publish", 600))
            await camera.send({"type": "publish", "stream": "lab", "info": INFO,
                               "token": make_token(secret, "lab", "publish", 600)})
            await camera.expect("published")
            assert by_address["127.0.0.1"] == share

            # The client beside them has its own share, and sees the camera.
            viewer = await connect(neighbour)
            await viewer.send({"type": "watch", "stream": "lab"})
            assert (await viewer.expect("watching"))["live"] is True
            assert by_address["127.0.0.3"] == 1


async def test_a_camera_gives_its_place_back_once_it_publishes_with_its_token():
    secret = "s3cret"
    app = create_app(ServerConfig(limits=Limits(connections_per_address=1), secret=secret))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        camera = Client(await session.ws_connect(server.make_url("/ws")))  # no token yet: counted
        await camera.expect("welcome")
        assert app[CONNECTIONS_BY_ADDRESS]["127.0.0.1"] == 1
        publish_token = make_token(secret, "lab", "publish", 600)
        await camera.send({"type": "publish", "stream": "lab", "info": INFO, "token": publish_token})
        await camera.expect("published")
        assert app[CONNECTIONS_BY_ADDRESS]["127.0.0.1"] == 0
        # A second publish with the token (refused: it already publishes) changes nothing.
        await camera.send({"type": "publish", "stream": "lab", "info": INFO, "token": publish_token})
        assert (await camera.expect("error"))["code"] == "wrong-state"
        viewer = Client(await session.ws_connect(server.make_url("/ws")))
        await viewer.expect("welcome")
        await viewer.send({"type": "watch", "stream": "lab"})
        assert (await viewer.expect("watching"))["live"] is True
        assert app[CONNECTIONS_BY_ADDRESS]["127.0.0.1"] == 1
