"""`etapalvelu serve`: run the whole service until interrupted, printing where to go."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import ssl
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from signaling.config import ConfigError, Settings, load_settings
from signaling.data_dir import secure_data_dir, set_private_umask

log = logging.getLogger(__name__)

# SIGTERM: how long a draining process waits for the load balancer to notice (two /readyz
# 503s) before closing its sockets, and how long the whole drain may take.
DRAIN_NOTICE_SECONDS = 3.0
DRAIN_TIMEOUT_SECONDS = 10.0


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from --config, the environment and the flags present on `args`."""
    overrides: dict[str, Any] = {}
    for name in (
        "host",
        "port",
        "data_dir",
        "database_url",
        "redis_url",
        "tls_cert",
        "tls_key",
        "ice_addresses",
        "relay_mode",
        "relay_secret_file",
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    overrides.update(extra)
    return load_settings(getattr(args, "config", None), **overrides)


def fail(message: str) -> int:
    print(f"etapalvelu: {message}", file=sys.stderr)
    return 2


def run_serve(args: argparse.Namespace) -> int:
    # Everything the service writes (database, documents, keys) is its own: 0600 / 0700.
    set_private_umask()
    try:
        settings = settings_from_args(args)
        ssl_context = _ssl_context(settings)
    except ConfigError as exc:
        return fail(str(exc))
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        return fail(f"--log-level {args.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # alembic announces every plugin it loads; the migrations themselves stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # aioice logs every candidate pair of every call at INFO: the operator's terminal was
    # mostly that. Its warnings still show.
    if level > logging.DEBUG:
        logging.getLogger("aioice").setLevel(logging.WARNING)
    try:
        run_loop(_serve(settings, demo=bool(args.demo), ssl_context=ssl_context))
    except OSError as exc:
        return fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    except ConfigError as exc:
        return fail(str(exc))
    return 0


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed: the in-process relay forwards packets on this loop,
    and uvloop is the loop `etapalvelu relay` runs and `bench relay` measures, so the benchmark
    measures the loop that is deployed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate/key: {exc}") from exc
    return context


async def _serve(settings: Settings, *, demo: bool, ssl_context: ssl.SSLContext | None) -> None:
    from signaling.server.app import create_app, create_runner

    try:
        secure_data_dir(settings.data_dir)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the data folder {settings.data_dir} private: {exc.strerror or exc}"
        ) from exc
    try:
        app, services = create_app(settings, demo=demo)
    except ValueError as exc:  # e.g. an unsupported database URL
        raise ConfigError(str(exc)) from exc
    runner = create_runner(app, settings)
    try:
        await runner.setup()  # migrates the database, seeds the demo, starts the relay
    except (OSError, SQLAlchemyError) as exc:
        await services.engine.dispose()
        where = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
        raise ConfigError(f"cannot open the database {where}: {_first_line(exc)}") from exc
    try:
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context)
        await site.start()
        port = _bound_port(runner, settings.port)
        base = settings.model_copy(update={"port": port}).base_url
        # Everything loaded so far (modules, the app) lives as long as the process: keep it out
        # of the garbage collector's full passes, which otherwise stall the loop for hundreds
        # of milliseconds with thousands of sockets connected.
        gc.collect()
        gc.freeze()
        # Young collections less often, so that objects of in-flight events are mostly dead by
        # then and few get promoted; full collections (which scan every socket's objects)
        # then become rare.
        gc.set_threshold(50_000, 20, 100)
        print_banner(base, services.extras.get("demo_credentials"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("etapalvelu: draining", flush=True)
        from signaling.server.drain import drain

        # /readyz 503 at once, clients sent to reconnect elsewhere, handlers in flight finish.
        await drain(app, notice=DRAIN_NOTICE_SECONDS, limit=DRAIN_TIMEOUT_SECONDS)
        print("etapalvelu: stopping", flush=True)
    finally:
        await runner.cleanup()
        # Handlers started while the server shut down (a disconnect's presence update) still
        # hold database connections: let them finish, then close the pool, before the loop
        # ends. Otherwise aiosqlite's threads finish after the loop closed.
        await _finish_handlers(DRAIN_TIMEOUT_SECONDS / 2)
        await services.engine.dispose()


async def _finish_handlers(seconds: float) -> None:
    from socketio.async_server import task_reference_holder

    pending = [task for task in task_reference_holder if not task.done()]
    if pending:
        _done, late = await asyncio.wait(pending, timeout=seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured


def print_banner(base: str, demo: Any) -> None:
    kiosk = f"{base}/kiosk"
    if demo is not None:
        kiosk += demo.kiosk_fragment()
    lines = [
        f"Etäpalvelu is running at {base}/",
        f"  landing page:      {base}/",
        f"  kiosk:             {kiosk}",
        f"  expert console:    {base}/expert",
        f"  interpreter:       {base}/interpreter",
        f"  administration:    {base}/admin",
        f"  health / metrics:  {base}/healthz  {base}/metrics",
    ]
    if demo is not None:
        from signaling.server.demo import DEMO_USERS

        lines.append("")
        lines.append(
            "DEMO MODE: the credentials below are fixed and public; never use --demo in production."
        )
        for user in DEMO_USERS:
            what = user.role
            if user.authorities:
                what += " (" + ", ".join(user.authorities) + ")"
            if user.languages:
                what += " languages " + ", ".join(user.languages)
            lines.append(f"  {user.username:<10} password {user.password:<15} {what}")
        lines.append(
            f"  kiosk endpoint {demo.endpoint_id} credential {demo.endpoint_credential} "
            "(already in the kiosk URL above)"
        )
    lines.append("Press Ctrl+C to stop.")
    print("\n".join(lines), flush=True)
