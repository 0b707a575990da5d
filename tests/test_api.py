"""signaling/edge/api.py and pages.py: HTTP endpoints of the real server."""

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from peercam.signaling.edge.app import create_app

INFO = {"width": 640, "height": 480, "fps": 30, "codec": "vp8"}


@pytest.fixture
async def http():
    async with TestServer(create_app(), host="127.0.0.1") as server:
        async with aiohttp.ClientSession(server.make_url("")) as session:
            yield session


async def test_streams_list_shows_what_was_published(http):
    assert await (await http.get("/api/streams")).json() == []
    async with http.ws_connect("/ws") as camera:
        await camera.receive_json()
        await camera.send_json({"type": "publish", "stream": "lab", "info": INFO})
        await camera.receive_json()
        async with http.ws_connect("/ws") as viewer:
            await viewer.receive_json()
            await viewer.send_json({"type": "watch", "stream": "lab"})
            await viewer.receive_json()
            streams = await (await http.get("/api/streams")).json()
            assert len(streams) == 1
            lab = streams[0]
            published = (lab["name"], lab["width"], lab["height"], lab["fps"], lab["codec"])
            assert published == ("lab", 640, 480, 30, "vp8") and lab["viewer_count"] == 1
            assert lab["live"] is True and lab["since"] > 0
            assert await (await http.get("/api/streams/lab")).json() == lab
    # The camera left: the stream is gone.
    response = await http.get("/api/streams/lab")
    assert response.status == 404


async def test_unknown_stream_is_404_with_a_reason(http):
    response = await http.get("/api/streams/nothing-here")
    assert response.status == 404
    assert "nothing-here" in (await response.json())["reason"]


async def test_healthz(http):
    body = await (await http.get("/healthz")).json()
    assert body["status"] == "ok"


@pytest.mark.parametrize("path, marker", [("/", "/static/js/index.js"),
                                          ("/view/demo", "/static/js/player.js")])
async def test_pages_are_served(http, path, marker):
    response = await http.get(path)
    assert response.status == 200 and response.content_type == "text/html"
    assert marker in await response.text()


async def test_static_assets_are_served(http):
    response = await http.get("/static/js/player.js")
    assert response.status == 200 and "javascript" in response.content_type


@pytest.mark.parametrize("path", ["/static/../signaling/edge/app.py", "/static/%2e%2e/%2e%2e/etc/passwd",
                                  "/static/..%2f..%2fetc%2fpasswd", "/view/..%2f..%2fetc%2fpasswd"])
async def test_path_traversal_does_not_leave_web(http, path):
    response = await http.get(path)
    text = await response.text()
    assert "root:" not in text and "create_app" not in text
