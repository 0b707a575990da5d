"""The browser pages: the stream list at ``/``, the player at ``/view/{name}``, and the
browser camera at ``/publish/{name}``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .appkeys import WEB_ROOT
from .gate import Access, requires

routes = web.RouteTableDef()

_NO_CACHE = {"Cache-Control": "no-cache"}


def find_web_root() -> Path:
    """web/ sits two folders up, installed (peercam/web) and in a checkout (web/) alike."""
    candidate = Path(__file__).resolve().parents[2] / "web"
    if not (candidate / "index.html").is_file():
        raise FileNotFoundError("peercam's web/ folder is missing from this installation")
    return candidate


@routes.get("/")
@requires(Access.OPEN)  # the page holds no data: what it fetches goes through the gate
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[WEB_ROOT] / "index.html", headers=_NO_CACHE)


@routes.get("/view/{name}")
@requires(Access.OPEN)
async def player(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[WEB_ROOT] / "player.html", headers=_NO_CACHE)


@routes.get("/publish/{name}")
@requires(Access.OPEN)  # publishing itself needs the token on `publish`, checked by the server
async def browser_camera(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[WEB_ROOT] / "publish.html", headers=_NO_CACHE)
