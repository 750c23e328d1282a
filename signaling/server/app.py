"""Assembles the signaling server: aiohttp app + socket.io + database + in-process relay.

    app, services = create_app(settings, demo=False)

builds everything without touching the network or the database; running the app (aiohttp's
startup) then migrates the database, seeds the demo data when asked, starts the in-process
relay (`services.relay`, created by create_app so that feature setups can attach their listener;
None when `media_relay.control.LocalRelay` does not exist), and starts the revocation sweep. Feature
modules (`signaling.server.features.FEATURE_MODULES`) are imported here: their `@on_event` handlers
become live and their optional `setup(app, services)` runs before the app starts. A feature
with async startup/cleanup work adds it with `app.cleanup_ctx.append(...)` in `setup`; that
runs after the database is migrated and is cleaned up before it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import socketio
from aiohttp import web
from sqlalchemy import update

from signaling.config import Settings
from signaling.data_dir import secure_data_dir
from signaling.db import create_engine, migrate, session_factory
from signaling.server import drain, http_api
from signaling.server.dispatch import Dispatcher, engine_buffer_size
from signaling.server.features import FEATURE_MODULES, import_optional
from signaling.store.models import Endpoint, User
from signaling.transport import http, http_security, pages
from signaling.transport.protocol import REGISTRY
from signaling.transport.relay_placement import RelayRouter
from signaling.transport.services import Services
from signaling.transport.socket_server import GuardedServer

log = logging.getLogger(__name__)

DEMO_KEY = web.AppKey("demo", bool)


def load_features(names: list[str] | None = None) -> list[ModuleType]:
    modules = []
    for name in FEATURE_MODULES if names is None else names:
        module = import_optional(name)
        if module is not None:
            modules.append(module)
    return modules


def create_socketio_server(settings: Settings) -> socketio.AsyncServer:
    manager = (
        socketio.AsyncRedisManager(settings.redis_url, channel=settings.redis_channel)
        if settings.redis_url
        else None
    )
    return GuardedServer(
        async_mode="aiohttp",
        client_manager=manager,
        # The consoles are served from this origin; a production deployment behind another
        # origin sets public_url, which is then the only one allowed.
        cors_allowed_origins=[settings.public_url.rstrip("/")] if settings.public_url else None,
        max_http_buffer_size=engine_buffer_size(settings.max_message_bytes),
        logger=False,
        engineio_logger=False,
        ping_interval=20,
        ping_timeout=20,
    )


def create_app(
    settings: Settings, *, demo: bool = False, features: list[str] | None = None
) -> tuple[web.Application, Services]:
    """Build the whole signaling server (see the module docstring). `features` overrides
    FEATURE_MODULES (tests of one feature in isolation)."""
    modules = load_features(features)
    engine = create_engine(settings.sqlalchemy_url)
    sio = create_socketio_server(settings)
    services = Services(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        sio=sio,
        # Created now so that feature setups can attach their listeners; started at startup.
        relay=_create_relay(settings) if settings.relay_mode == "local" else None,
    )
    # Which relay each call uses (signaling/transport/relay_placement.py): the in-process one, or
    # the
    # relay nodes registered in Redis.
    services.extras["relay_router"] = RelayRouter(settings, services.relay)
    app = web.Application(
        client_max_size=settings.max_document_bytes + 1024 * 1024,
        # drain.gate first: a draining process refuses /readyz and new sockets (SIGTERM, serve)
        middlewares=[drain.gate, http.json_errors],
    )
    app[http.SERVICES_KEY] = services
    if services.relay is not None:
        # the relay's figures in the registry this app serves at /metrics
        from media_relay.metrics import RelayCollector

        services.metrics.registry.register(RelayCollector(services.relay))
    app[DEMO_KEY] = demo
    sio.attach(app)
    dispatcher = Dispatcher(services, REGISTRY)
    services.extras["dispatcher"] = dispatcher
    dispatcher.install()
    http_security.install(app)
    pages.add_routes(app)
    http_api.add_routes(app)
    # Runs before any feature's cleanup_ctx (it is first) and is cleaned up after them.
    app.cleanup_ctx.append(_lifecycle)
    if settings.redis_url:
        # Presence and limits across processes (signaling/flow/leases.py); started after migrating.
        from signaling.flow import leases

        leases.install(app, services)
    deferred: list[Any] = []
    for module in modules:
        setup = getattr(module, "setup", None)
        if setup is not None:
            result = setup(app, services)
            if inspect.isawaitable(result):
                deferred.append(result)
    if deferred:
        # An async setup cannot add routes (the router freezes at startup); it may do the rest.
        async def run_deferred(_app: web.Application) -> None:
            for awaitable in deferred:
                await awaitable

        app.on_startup.append(run_deferred)
    return app, services


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = http.services_of(app)
    settings = services.settings
    # 0700 / 0600 before anything is written (serve does it too, with a friendlier error).
    secure_data_dir(settings.data_dir)
    await migrate(services.engine)
    if not settings.redis_url:
        # A lone process starts with no sockets, so nobody is connected; with Redis other
        # processes may hold sockets: signaling/flow/leases.py sweeps dead processes instead.
        await _mark_everyone_disconnected(services)
    if app[DEMO_KEY]:
        from signaling.server.demo import seed_demo

        services.extras["demo_credentials"] = await seed_demo(services.sessions)
    router: RelayRouter = services.extras["relay_router"]
    await router.start()
    if services.relay is not None:
        log.info("in-process media relay started")
    elif router.mode == "nodes":
        log.info("media relays: nodes registered in Redis (%d live)", len(router.live))
    dispatcher: Dispatcher = services.extras["dispatcher"]
    sweeper = asyncio.create_task(dispatcher.run_sweeper(settings.revocation_check_seconds))
    metrics_runner = await _start_metrics_listener(app) if settings.metrics_address else None
    try:
        yield
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        try:
            await router.stop()
        except Exception:
            log.exception("stopping the relay failed")
        manager = services.sio.manager
        if isinstance(manager, socketio.AsyncRedisManager):
            with contextlib.suppress(Exception):
                thread = getattr(manager, "thread", None)
                if thread is not None:
                    thread.cancel()
        await services.engine.dispose()


def create_runner(
    app: web.Application, settings: Settings, *, shutdown_timeout: float = 5.0
) -> web.AppRunner:
    """The runner `serve` (and the tests' live service) put the app on."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        # Idle and half-open connections (no complete request head) are closed after this;
        # aiohttp's own default keeps them for an hour.
        keepalive_timeout=settings.http_idle_timeout,
    )


async def _start_metrics_listener(app: web.Application) -> web.AppRunner:
    """/metrics alone on `metrics_address`, for a private monitoring network (no token)."""
    settings = http.services_of(app).settings
    host, _, port = settings.metrics_address.rpartition(":")
    host = host.strip("[]")

    async def metrics(_request: web.Request) -> web.Response:
        return http_api.metrics_response(app)

    metrics_app = web.Application()
    http_security.install(metrics_app)
    metrics_app.router.add_get("/metrics", metrics)
    runner = create_runner(metrics_app, settings, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, int(port)).start()
    log.info("metrics served on %s", settings.metrics_address)
    return runner


async def _mark_everyone_disconnected(services: Services) -> None:
    async with services.sessions() as session:
        await session.execute(update(User).where(User.online.is_(True)).values(online=False))
        await session.execute(
            update(Endpoint).where(Endpoint.presence != "offline").values(presence="offline")
        )
        await session.commit()


def _create_relay(settings: Settings) -> Any:
    """The in-process relay (not started yet), or None while media_relay is not there."""
    try:
        control = import_optional("media_relay.control")
    except ImportError as exc:
        # The relay package is half-present (e.g. mid-development); serve without media.
        log.warning("media relay not importable (%s); calls will have no media", exc)
        return None
    if control is None or not hasattr(control, "LocalRelay"):
        log.info("media relay not available; calls will have no media")
        return None
    return control.LocalRelay(control.RelayConfig.from_settings(settings))
