"""Shared set-up of the service-flow tests: a migrated database with offices, kiosks and people.

Domain tests call the functions of signaling.flow.queues / appointments / calls / interpreters /
service_log directly over an AsyncSession, with explicit `now` times; socket-level tests use
`live_service` (tests/support/service.py) instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
import socketio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from signaling.db import create_engine, migrate, session_factory
from signaling.directory.identity import principal_for_endpoint, principal_for_user
from signaling.directory.principals import Principal
from signaling.store.models import Authority, Endpoint, Office, User, UserLanguage, UserPresence

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

__all__ = [
    "T0",
    "World",
    "build_world",
    "call",
    "extra_kiosk",
    "flow_engine_fixture",
    "flow_sessions_fixture",
    "world_fixture",
]


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    kela: int
    vero: int
    office: int
    office2: int
    kiosk: Principal
    kiosk2: Principal
    kiosk3: Principal
    far_kiosk: Principal  # at office2
    expert: Principal  # kela
    expert2: Principal  # kela
    vero_expert: Principal
    interpreter: Principal  # fse, ara
    interpreter2: Principal  # fse
    arabic: Principal  # ara
    clerk: Principal  # of office
    admin: Principal


async def _user(
    session: AsyncSession,
    username: str,
    role: str,
    *,
    authorities: list[Authority] = (),  # type: ignore[assignment]
    languages: list[str] = (),  # type: ignore[assignment]
    office_id: int | None = None,
) -> User:
    user = User(
        username=username,
        display_name=username.title(),
        role=role,
        password_hash="x",
        office_id=office_id,
        presence=UserPresence.AVAILABLE.value,
        online=True,
        authorities=list(authorities),
        languages=[UserLanguage(code=c) for c in languages],
    )
    session.add(user)
    await session.flush()
    return user


async def build_world(sessions: async_sessionmaker[AsyncSession]) -> World:
    async with sessions() as session:
        kela = (
            await session.execute(select(Authority).where(Authority.code == "kela"))
        ).scalar_one()
        vero = (
            await session.execute(select(Authority).where(Authority.code == "vero"))
        ).scalar_one()
        office = Office(name="Kallio", municipality="Helsinki")
        office2 = Office(name="Inari", municipality="Inari")
        session.add_all([office, office2])
        await session.flush()
        kiosks = [
            Endpoint(office_id=office.id, name=f"Kiosk {i}", credential_hash="x") for i in (1, 2, 3)
        ]
        far = Endpoint(office_id=office2.id, name="Inari kiosk", credential_hash="x")
        session.add_all([*kiosks, far])
        await session.flush()
        users = [
            await _user(session, "expert", "expert", authorities=[kela], languages=["fin"]),
            await _user(session, "expert2", "expert", authorities=[kela], languages=["fin"]),
            await _user(session, "veroexpert", "expert", authorities=[vero], languages=["fin"]),
            await _user(session, "tulkki", "interpreter", languages=["fse", "ara"]),
            await _user(session, "tulkki2", "interpreter", languages=["fse"]),
            await _user(session, "arabic", "interpreter", languages=["ara"]),
            await _user(session, "clerk", "clerk", office_id=office.id),
            await _user(session, "admin", "admin"),
        ]
        await session.commit()
        principals = []
        for user in users:
            await session.refresh(user, ["authorities", "languages"])
            principals.append(principal_for_user(user))
        return World(
            sessions,
            kela.id,
            vero.id,
            office.id,
            office2.id,
            *(principal_for_endpoint(k) for k in kiosks),
            principal_for_endpoint(far),
            *principals,
        )


@pytest_asyncio.fixture(name="flow_engine")
async def flow_engine_fixture(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'flow.db'}")
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(name="flow_sessions")
async def flow_sessions_fixture(flow_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(flow_engine)


@pytest_asyncio.fixture(name="world")
async def world_fixture(flow_sessions: async_sessionmaker[AsyncSession]) -> World:
    return await build_world(flow_sessions)


async def extra_kiosk(live: Any, name: str = "Kallio kioski 2") -> socketio.AsyncClient:
    """Enrol another kiosk in the demo office and connect it."""
    from signaling.directory.directory import EndpointCreate, create_endpoint

    async with live.services.sessions() as session:
        endpoint, credential = await create_endpoint(
            session, EndpointCreate(office_id=live.demo.office_id, name=name)
        )
        await session.commit()
        endpoint_id = endpoint.id
    client: socketio.AsyncClient = await live.connect(
        {"endpoint_id": endpoint_id, "credential": credential}
    )
    return client


async def call(client: socketio.AsyncClient, event: str, data: Any = None) -> dict[str, Any]:
    """Emit with an ack and return it (fails the test after 10 s without one)."""
    ack: dict[str, Any] = await client.call(event, {} if data is None else data, timeout=10)
    return ack
