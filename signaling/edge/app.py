"""The app factory and the server's run loop."""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import weakref

from aiohttp import WSCloseCode, web
from peercam.signaling.cluster.cluster import Cluster
from peercam.signaling.recording.recordings import Recordings
from peercam.signaling.registry.streams import StreamRegistry
from peercam.signaling.settings.clientaddress import resolve_client_address
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import ConnectionsByAddress

from peercam.shared.errors import StartupError

from . import api, metrics, mjpeg, pages, recordingapi, whep, whip
from .appkeys import CLUSTER, CONFIG, CONNECTIONS_BY_ADDRESS, METRICS, RECORDINGS, REGISTRY, SOCKETS, WEB_ROOT
from .browserpolicy import add_security_headers, check_host
from .gate import ROUTE_ACCESS, Access, access_table, gate
from .websocket import websocket_handler

log = logging.getLogger(__name__)


def create_app(config: ServerConfig | None = None,
               ingest: whip.IngestFactory | None = None) -> web.Application:
    """The server's app. ``ingest`` makes, once the server listens, what receives WHIP
    publishers (the top package passes peers/ingest's; without one, WHIP POSTs get 501)."""
    config = config or ServerConfig()
    # In order: who the client is, whether it came by an allowed host name, what it may do.
    app = web.Application(middlewares=[resolve_client_address(config.trusted_proxies), check_host, gate])
    app[CONFIG] = config
    app[REGISTRY] = StreamRegistry(config.limits)
    app[SOCKETS] = weakref.WeakSet()
    app[CONNECTIONS_BY_ADDRESS] = ConnectionsByAddress(config.limits.connections_per_address)
    app[WEB_ROOT] = pages.find_web_root()
    if config.redis is not None:
        app[CLUSTER] = Cluster(config.redis, app[REGISTRY])
        app.on_startup.append(_join_cluster)
        app.on_cleanup.append(_leave_cluster)
    if config.recording is not None:
        app[RECORDINGS] = Recordings(config.recording, app[REGISTRY])
        app.on_startup.append(_start_recording)
        app.on_cleanup.append(_stop_recording)
    app[METRICS] = metrics.Metrics(app[REGISTRY], app[SOCKETS], app.get(RECORDINGS), app.get(CLUSTER))
    app.router.add_get("/ws", websocket_handler)
    app.router.add_routes(api.routes)
    app.router.add_routes(recordingapi.routes)
    app.router.add_routes(mjpeg.routes)
    app.router.add_routes(metrics.routes)
    app.router.add_routes(pages.routes)
    whep.install(app)
    whip.install(app, ingest)
    static = app.router.add_static("/static/", app[WEB_ROOT], append_version=True)
    app[ROUTE_ACCESS] = access_table(app, {static: Access.OPEN})
    app.on_response_prepare.append(add_security_headers)
    app.on_shutdown.append(_close_sockets)
    return app


async def _join_cluster(app: web.Application) -> None:
    await app[CLUSTER].start()


async def _leave_cluster(app: web.Application) -> None:
    """After the sockets closed: the other instances forget this one's clients at once."""
    await app[CLUSTER].close()


async def _start_recording(app: web.Application) -> None:
    app[RECORDINGS].start()


async def _stop_recording(app: web.Application) -> None:
    """Every segment closed with what it was given (after the sockets closed)."""
    await app[RECORDINGS].close()


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


class Server:
    """A server running in this process: ``url`` to give clients, ``close()`` to stop it."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self.url = url

    async def close(self) -> None:
        """Shut down gracefully: every client is told, every socket closed."""
        # In a task of its own: the caller is often being cancelled (Ctrl-C), and aiohttp's
        # graceful shutdown, run in a cancelling task, gave up waiting for the open handlers
        # and then tripped on its own waiter as they ended ("Unhandled exception ...
        # InvalidStateError", one stop in two).
        await asyncio.shield(asyncio.create_task(self._runner.cleanup()))

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


async def start(config: ServerConfig, ingest: whip.IngestFactory | None = None) -> Server:
    """Start serving in this process's event loop; returns once it listens, with the running Server.
    ``ingest``: see create_app.

    Port 0 takes a free port (``Server.url`` says which). Raises StartupError when it
    cannot start: Redis missing or unreachable, the certificate unreadable, the port taken.
    """
    ssl_context = _ssl_context(config)
    app = create_app(config, ingest)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(_listen_failure(config, exc)) from exc
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1] if runner.addresses else config.port
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
    app[whip.PUBLISHERS].serve_on(_own_url(url, config.host))
    log.info("serving on %s/", url)
    return Server(runner, url)


def _own_url(url: str, host: str) -> str:
    """Where this server reaches itself: on loopback when it listens on every address."""
    if host in ("0.0.0.0", ""):
        return url.replace(f"//{host}:", "//127.0.0.1:", 1)
    if host == "::":
        return url.replace("//[::]:", "//[::1]:", 1)
    return url


def _ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """--cert and --key loaded, or a StartupError naming the file at fault."""
    if not config.cert_file:
        return None
    for flag, path in (("--cert", config.cert_file), ("--key", config.key_file or config.cert_file)):
        try:
            open(path, "rb").close()  # load_cert_chain's error would not say which file
        except OSError as exc:
            raise StartupError(f"cannot read {flag} {path} ({exc.strerror or exc}): "
                               "give a readable PEM file") from exc
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except ssl.SSLError as exc:
        raise StartupError(f"--cert {config.cert_file} and --key {config.key_file} are not a PEM "
                           f"certificate chain and its private key ({exc.strerror or exc})") from exc
    return context


def _listen_failure(config: ServerConfig, exc: OSError) -> str:
    """What went wrong binding, and which flag fixes it."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {config.port} on {config.host} is in use (another peercam? choose one with --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{config.host} is not an address of this machine (choose one with --host)"
    if exc.errno == errno.EACCES:
        return f"port {config.port} needs privileges this user lacks (choose one above 1023 with --port)"
    return f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}): check --host and --port"


async def serve(config: ServerConfig, started: asyncio.Event | None = None,
                ingest: whip.IngestFactory | None = None) -> None:
    """Run the server until cancelled, then shut down gracefully."""
    server = await start(config, ingest)
    try:
        if started is not None:
            started.set()
        await asyncio.Event().wait()
    finally:
        await server.close()
