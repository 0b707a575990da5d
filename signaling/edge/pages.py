"""The browser pages: the stream list at ``/``, the player at ``/view/{name}``, and the
browser camera at ``/publish/{name}``."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from .appkeys import WEB_ROOT
from .browserpolicy import content_security_policy
from .gate import Access, requires

routes = web.RouteTableDef()

#: A classic script written in the page (no src): player.html opens its socket with one.
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def find_web_root() -> Path:
    """web/ sits two folders up, installed (peercam/web) and in a checkout (web/) alike."""
    candidate = Path(__file__).resolve().parents[2] / "web"
    if not (candidate / "index.html").is_file():
        raise FileNotFoundError("peercam's web/ folder is missing from this installation")
    return candidate


def _page(request: web.Request, name: str) -> web.Response:
    """The page, read as it is now, with a policy that lets exactly its own inline scripts run."""
    html = (request.app[WEB_ROOT] / name).read_text(encoding="utf-8")
    policy = content_security_policy(_INLINE_SCRIPT.findall(html))
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": policy})


@routes.get("/")
@requires(Access.OPEN)  # the page holds no data: what it fetches goes through the gate
async def index(request: web.Request) -> web.Response:
    return _page(request, "index.html")


@routes.get("/view/{name}")
@requires(Access.OPEN)
async def player(request: web.Request) -> web.Response:
    return _page(request, "player.html")


@routes.get("/publish/{name}")
@requires(Access.OPEN)  # publishing itself needs the token on `publish`, checked by the server
async def browser_camera(request: web.Request) -> web.Response:
    return _page(request, "publish.html")
