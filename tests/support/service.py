"""Fixtures that run the whole service (signaling + in-process relay) on loopback.

    async def test_something(live_service: LiveService) -> None:
        token = await live_service.login("kela")                 # demo password known
        expert = await live_service.connect_user("kela")         # authenticated socket.io client
        kiosk = await live_service.connect_kiosk()
        ack = await expert.call("presence:get", {})
        live_service.services                                     # the server's Services

The service runs in the test's own event loop on 127.0.0.1 and a free port, with a fresh data
folder (SQLite), `ice_addresses=["127.0.0.1"]`, no ICE servers and the demo data seeded
(`live_service.demo`, a `signaling.server.demo.DemoCredentials`). Clients opened through it are
disconnected when the test ends. `make_live_service(tmp_path, **settings)` starts one with
other settings (use it as an async context manager), e.g. `port=` to start it again on the
same port and data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import socketio
from aiohttp import web

from signaling.config import Settings
from signaling.server.app import create_app, create_runner
from signaling.server.demo import DemoCredentials, seed_demo
from signaling.transport.services import Services
from tests.support.net import LOOPBACK, free_port

__all__ = [
    "LiveService",
    "connect_refusal",
    "connect_socket",
    "http_login",
    "live_service",
    "make_live_service",
]


async def http_login(base_url: str, username: str, password: str) -> dict[str, Any]:
    """POST /api/login; returns the JSON body ({token, expires_at, user}) or raises."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/api/login", json={"username": username, "password": password}
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        if response.status != 200:
            raise PermissionError(f"login refused ({response.status}): {body}")
        return body


async def connect_socket(
    base_url: str, auth: dict[str, Any], *, wait_timeout: float = 10
) -> socketio.AsyncClient:
    """An authenticated python-socketio client over the websocket transport.

    Raises socketio.exceptions.ConnectionError when the server refuses the credentials.
    """
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(base_url, auth=auth, transports=["websocket"], wait_timeout=wait_timeout)
    return client


async def connect_refusal(base_url: str, auth: Any) -> Any:
    """Try to connect with `auth`, expecting a refusal; returns the server's reason
    (`{message, data: {code}}`). Fails the test if the connection is accepted."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []

    @client.on("connect_error")
    async def on_error(data: Any) -> None:
        reasons.append(data)

    try:
        await client.connect(base_url, auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return reasons[0] if reasons else None
    await client.disconnect()
    raise AssertionError(f"connection with auth {auth!r} was accepted")


@dataclass
class LiveService:
    base_url: str
    services: Services
    demo: DemoCredentials
    settings: Settings
    clients: list[socketio.AsyncClient] = field(default_factory=list)

    @property
    def passwords(self) -> dict[str, str]:
        return self.demo.passwords

    @property
    def kiosk_auth(self) -> dict[str, Any]:
        return {"endpoint_id": self.demo.endpoint_id, "credential": self.demo.endpoint_credential}

    async def login(self, username: str, password: str | None = None) -> str:
        """Log in over HTTP (demo password by default); returns the session token."""
        body = await http_login(
            self.base_url, username, password if password is not None else self.passwords[username]
        )
        return str(body["token"])

    async def issue_token(self, username: str) -> str:
        """A session token straight from the database: no argon2, for tests that log in a lot."""
        from sqlalchemy import select

        from signaling.directory.identity import issue_session
        from signaling.store.models import User

        async with self.services.sessions() as session:
            user = (
                await session.execute(select(User).where(User.username == username))
            ).scalar_one()
            issued = await issue_session(session, user, self.settings.session_ttl_seconds)
            await session.commit()
            return issued.token

    async def connect(self, auth: dict[str, Any]) -> socketio.AsyncClient:
        client = await connect_socket(self.base_url, auth)
        self.clients.append(client)
        return client

    async def connect_user(self, username: str, *, via_login: bool = False) -> socketio.AsyncClient:
        token = await (self.login(username) if via_login else self.issue_token(username))
        return await self.connect({"token": token})

    async def connect_kiosk(self) -> socketio.AsyncClient:
        return await self.connect(self.kiosk_auth)

    async def close_clients(self) -> None:
        for client in self.clients:
            # Bounded: a client the server already dropped must not hold the test's teardown.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), CLOSE_SECONDS)
        self.clients.clear()


CLOSE_SECONDS = 5.0
STOP_SECONDS = 30.0


@contextlib.asynccontextmanager
async def make_live_service(
    tmp_path: Path, *, demo: bool = True, features: list[str] | None = None, **overrides: Any
) -> AsyncIterator[LiveService]:
    """Run the whole service on 127.0.0.1 until the block ends (`features` overrides
    signaling.server.features.FEATURE_MODULES; `overrides` are Settings fields). A `port` override
    is
    where it listens (a restart test starts it twice on one port and `data_dir`)."""
    port = int(overrides.get("port") or free_port())
    values: dict[str, Any] = {
        "host": LOOPBACK,
        "port": port,
        "data_dir": tmp_path / "data",
        "ice_addresses": ["127.0.0.1"],
        "stun_urls": [],
        "turn_urls": [],
        "relay_listen_address": LOOPBACK,
    }
    values.update(overrides)
    settings = Settings.model_validate(values)
    app, services = create_app(settings, demo=False, features=features)
    # A short shutdown: aiohttp's default waits 60 s for the websockets and long-polling
    # requests that browsers still hold.
    runner = create_runner(app, settings, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    live: LiveService | None = None
    try:
        credentials = await seed_demo(services.sessions) if demo else DemoCredentials(0, 0, "")
        live = LiveService(
            base_url=f"http://{LOOPBACK}:{port}",
            services=services,
            demo=credentials,
            settings=settings,
        )
        yield live
    finally:
        if live is not None:
            await live.close_clients()
        # Let socket.io finish its disconnect bookkeeping before the loop goes away.
        await asyncio.sleep(0)
        try:
            await asyncio.wait_for(runner.cleanup(), STOP_SECONDS)
        except TimeoutError:
            # Name the hang and show what was still running, rather than sitting until the
            # suite's per-test timeout with nothing to go on.
            stacks = "\n".join(_task_stack(task) for task in asyncio.all_tasks())
            raise AssertionError(
                f"the service did not stop within {STOP_SECONDS:g} s; tasks:\n{stacks}"
            ) from None


def _task_stack(task: asyncio.Task[Any]) -> str:
    frames = task.get_stack(limit=6)
    where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
    return f"  {task.get_name()}: {where}"


@pytest_asyncio.fixture
async def live_service(tmp_path: Path) -> AsyncIterator[LiveService]:
    """The whole service with demo data, on loopback, for one test."""
    async with make_live_service(tmp_path) as live:
        yield live
