"""The one authorization gate every HTTP route goes through.

Each route declares what it needs with ``@requires(Access...)``; ``create_app`` refuses
to start if any route declares nothing, and the gate refuses a request to a route it
has no rule for, so nothing is open by accident. A token rides in ``?token=`` or in
``Authorization: Bearer`` (what Prometheus' ``authorization`` setting sends). A missing
token is 401, a wrong one 403; both reasons say "token".

| access    | --auth open / publish | --auth all                                    |
|-----------|-----------------------|-----------------------------------------------|
| OPEN      | anyone                | anyone (pages, static files, /healthz, /ws)   |
| VIEW      | anyone                | a view token for the path's stream            |
| LIST      | anyone                | any valid token; the handler lists only what  |
|           |                       | it may view                                   |
| MONITOR   | anyone                | an admin token for ``*``                      |
| ADMIN     | an admin token (needs --secret), whatever --auth says                 |
| CONTROL   | an admin token when the server has a --secret; anyone without one     |
| PUBLISH   | a publish token for the path's stream; under --auth open only on a    |
|           | name an administrator reserved (WHIP: what /ws's ``publish`` asks)    |

/ws is OPEN at the HTTP level: every ``publish`` and ``watch`` on it carries its own token.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource, AbstractRoute

from .appkeys import CONFIG, REGISTRY
from .auth import Grant, TokenError, check_token, read_token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(enum.Enum):
    OPEN = "open"
    VIEW = "view"
    LIST = "list"
    MONITOR = "monitor"
    ADMIN = "admin"
    #: Run-time switches a lab server without a secret leaves to anyone (recording).
    CONTROL = "control"
    #: Publishing over HTTP (WHIP): the rules a camera's ``publish`` on /ws follows.
    PUBLISH = "publish"


ROUTE_ACCESS = web.AppKey("route_access", dict)
#: The grant of the token a request presented, once the gate accepted it (None: no token needed).
GRANT = web.RequestKey("grant", object)

_ATTRIBUTE = "__peercam_access__"


def requires(access: Access) -> Callable[[Handler], Handler]:
    """Declare what a route handler needs; the gate enforces it."""

    def declare(handler: Handler) -> Handler:
        setattr(handler, _ATTRIBUTE, access)
        return handler

    return declare


def access_table(app: web.Application, extra: dict[AbstractResource, Access]) -> dict:
    """Every route's access rule (one path may take GET and DELETE under different rules),
    from its handler's declaration, or ``extra`` for whole resources (static folders).
    Raises RuntimeError naming any route that declares nothing."""
    table: dict[AbstractRoute, Access] = {}
    for resource in app.router.resources():
        for route in resource:
            access = extra.get(resource) or getattr(route.handler, _ATTRIBUTE, None)
            if access is None:
                raise RuntimeError(f"{route.method} {resource.canonical} declares no access rule (@requires)")
            table[route] = access
    return table


def presented_token(request: web.Request) -> str:
    """The token a request carries: ``Authorization: Bearer T`` or ``?token=T``."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.query.get("token", "")


def _refuse(status: type[web.HTTPException], reason: str) -> web.HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status is web.HTTPUnauthorized else None
    return status(text=f"{reason}\n", headers=headers)


def _check(secret: str, token: str, stream: str, role: str) -> Grant:
    if not token:
        raise _refuse(web.HTTPUnauthorized, f"a token is required to {role} {stream!r}")
    try:
        return check_token(secret, token, stream, role)  # type: ignore[arg-type]
    except TokenError as exc:
        raise _refuse(web.HTTPForbidden, str(exc)) from None


def authorize(request: web.Request, access: Access) -> Grant | None:
    """The grant for this request under ``access``; raises 401/403 when it falls short."""
    config = request.app[CONFIG]
    secret = config.secret or ""
    token = presented_token(request)
    if access is Access.OPEN or (access is Access.CONTROL and not secret):
        return None
    if access in (Access.ADMIN, Access.CONTROL):
        if not secret:
            raise _refuse(web.HTTPForbidden, "the admin API needs the server to run with --secret "
                                             "(and an admin token)")
        if not token:
            raise _refuse(web.HTTPUnauthorized, "an admin token is required")
        try:
            grant = read_token(secret, token)
        except TokenError as exc:
            raise _refuse(web.HTTPForbidden, str(exc)) from None
        if grant.role != "admin":
            raise _refuse(web.HTTPForbidden, f"token grants {grant.role!r}, not 'admin'")
        return grant
    if access is Access.PUBLISH:
        return _publish_grant(request, secret, token)
    if config.auth != "all":
        return None
    if access is Access.VIEW:
        return _check(secret, token, request.match_info["name"], "view")
    if access is Access.MONITOR:
        return _check(secret, token, "*", "admin")
    # Access.LIST: any genuine token; the handler shows only what it may view.
    if not token:
        raise _refuse(web.HTTPUnauthorized, "a token is required to list streams")
    try:
        return read_token(secret, token)
    except TokenError as exc:
        raise _refuse(web.HTTPForbidden, str(exc)) from None


def _publish_grant(request: web.Request, secret: str, token: str) -> Grant | None:
    """Publishing needs a publish token under --auth publish and all, and on a reserved name;
    elsewhere a token is optional, and a valid one still counts (for TURN credentials)."""
    config = request.app[CONFIG]
    stream_name = request.match_info["name"]
    stream = request.app[REGISTRY].get(stream_name)
    if config.auth != "open" or (stream is not None and stream.reserved):
        if not secret:
            raise _refuse(web.HTTPForbidden, "this server has no --secret to check tokens with")
        return _check(secret, token, stream_name, "publish")
    try:
        return check_token(secret, token, stream_name, "publish") if secret and token else None
    except TokenError:
        return None


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    if match_info.http_exception is not None:  # no route: 404/405 as aiohttp decides
        return await handler(request)
    access = request.app[ROUTE_ACCESS].get(match_info.route)
    if access is None:  # fail closed: a route added without a rule
        raise web.HTTPForbidden(text="this route has no access rule\n")
    request[GRANT] = authorize(request, access)
    return await handler(request)


def may_view(request: web.Request, stream: str) -> bool:
    """Whether the request's grant (if the gate needed one) covers viewing ``stream``."""
    grant = request.get(GRANT)
    return grant is None or grant.allows(stream, "view")
