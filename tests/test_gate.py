"""signaling/edge/gate.py: every route declares what it needs, and nothing undeclared is served."""

import pytest
from aiohttp import web
from peercam.signaling.edge import app as app_module
from peercam.signaling.edge.app import create_app
from peercam.signaling.edge.gate import ROUTE_ACCESS
from peercam.signaling.settings.config import ServerConfig


def test_every_route_declares_what_it_needs():
    app = create_app(ServerConfig())
    assert set(app[ROUTE_ACCESS]) == {route for resource in app.router.resources() for route in resource}


def test_a_route_without_a_declaration_stops_the_server_from_starting(monkeypatch):
    stray = web.RouteTableDef()

    @stray.get("/stray")
    async def undeclared(request):
        return web.Response(text="open by accident")

    monkeypatch.setattr(app_module.pages, "routes", [*app_module.pages.routes, *stray])
    with pytest.raises(RuntimeError, match="/stray"):
        create_app(ServerConfig())
