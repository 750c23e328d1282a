"""The identity data model and migrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from signaling.db import (
    Base,
    create_engine,
    current_revisions,
    head_revisions,
    migrate,
    normalize_url,
    session_factory,
)
from signaling.directory import directory
from signaling.store.models import Authority, Endpoint, Office, User, UserLanguage, UserSession

SEEDED = {"kela", "poliisi", "vero", "te", "dvv", "migri", "kunta", "rakennusvalvonta"}


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


def test_one_chain_of_migrations() -> None:
    heads = head_revisions()
    assert len(heads) == 1, f"migrations must form one chain, found heads {heads}"


async def test_migrates_from_empty_to_head_and_is_idempotent(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revisions(engine) == ()
        await migrate(engine)
        assert await current_revisions(engine) == head_revisions()
        await migrate(engine)  # a restart migrates again: nothing happens
        assert await current_revisions(engine) == head_revisions()
    finally:
        await engine.dispose()


async def test_migrations_build_exactly_what_the_models_declare(engine: AsyncEngine) -> None:
    """The whole chain of migrations against every table any module declares: a column, index
    or constraint that one side has and the other lacks is a difference (one check for all
    migrations, on SQLite and on PostgreSQL, instead of one per migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import signaling.store
    from signaling.server.features import FEATURE_MODULES, import_optional

    for name in FEATURE_MODULES:
        import_optional(name)
    # Every table is declared in signaling/store/ (tests/signaling/test_layout.py).
    for module in pkgutil.iter_modules(signaling.store.__path__):
        importlib.import_module(f"signaling.store.{module.name}")
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert diff == []
    declared = set(Base.metadata.tables)
    # The tables of the latest features are among them (an import missed above would hide them).
    assert {"expert_availability", "join_tokens", "kiosk_self_tests"} <= declared
    assert {"interpreter_reservations", "office_desk_services", "receipts"} <= declared


async def test_authorities_are_seeded_in_three_languages(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        rows = (await session.execute(select(Authority))).scalars().all()
    codes = {a.code for a in rows}
    assert codes >= SEEDED
    building = next(a for a in rows if a.code == "rakennusvalvonta")
    assert (building.name_fi, building.name_sv, building.name_en) == (
        "Rakennusvalvonta",
        "Byggnadstillsyn",
        "Building control",
    )
    assert building.name("sv") == "Byggnadstillsyn"
    assert all(a.name_fi and a.name_sv and a.name_en for a in rows)


async def test_office_endpoint_user_round_trip(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        office = await directory.create_office(
            session, directory.OfficeCreate(name="Kirjasto", municipality="Espoo")
        )
        endpoint, credential = await directory.create_endpoint(
            session, directory.EndpointCreate(office_id=office.id, name="Kioski")
        )
        expert = await directory.create_user(
            session,
            directory.UserCreate(
                username="expert1",
                display_name="Eeva Expert",
                role="expert",
                password="salasana-123",
                authorities=["kela", "migri"],
                languages=["fin", "fse", "fss"],
            ),
        )
        clerk = await directory.create_user(
            session,
            directory.UserCreate(
                username="clerk1",
                display_name="Kalle Clerk",
                role="clerk",
                password="salasana-123",
                office_id=office.id,
            ),
        )
        await session.commit()
        ids = (office.id, endpoint.id, expert.id, clerk.id)
    async with sessions() as session:
        office_id, endpoint_id, expert_id, clerk_id = ids
        loaded = await directory.get_user(session, expert_id)
        assert loaded is not None
        assert sorted(a.code for a in loaded.authorities) == ["kela", "migri"]
        assert loaded.language_codes == ["fin", "fse", "fss"]
        assert loaded.role == "expert" and loaded.enabled and loaded.presence == "offline"
        assert loaded.signing_public_key is None
        assert loaded.password_hash.startswith("$argon2")
        assert loaded.created_at.tzinfo is not None
        kiosk = await session.get(Endpoint, endpoint_id)
        assert kiosk is not None and kiosk.office_id == office_id
        # Only the credential's hash is stored.
        assert credential not in kiosk.credential_hash and len(kiosk.credential_hash) == 64
        clerk_row = await session.get(User, clerk_id)
        assert clerk_row is not None and clerk_row.office_id == office_id
        office_row = await session.get(Office, office_id)
        assert office_row is not None and office_row.default_language == "fi"


async def test_utc_timestamps_round_trip(sessions: async_sessionmaker[AsyncSession]) -> None:
    helsinki = timezone(timedelta(hours=2))
    moment = datetime(2026, 1, 2, 12, 30, tzinfo=helsinki)
    async with sessions() as session:
        user = await directory.create_user(
            session,
            directory.UserCreate(
                username="t1", display_name="T", role="admin", password="salasana-123"
            ),
        )
        session.add(UserSession(token_hash="a" * 64, user_id=user.id, expires_at=moment))
        await session.commit()
    async with sessions() as session:
        row = (await session.execute(select(UserSession))).scalar_one()
        assert row.expires_at == moment
        assert row.expires_at.tzinfo is not None
        assert row.expires_at.utcoffset() == timedelta(0)
        assert row.expires_at == datetime(2026, 1, 2, 10, 30, tzinfo=UTC)


async def test_naive_datetime_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    from sqlalchemy.exc import StatementError

    async with sessions() as session:
        user = await directory.create_user(
            session,
            directory.UserCreate(
                username="t2", display_name="T", role="admin", password="salasana-123"
            ),
        )
        session.add(
            UserSession(token_hash="b" * 64, user_id=user.id, expires_at=datetime(2026, 1, 1))
        )
        with pytest.raises(StatementError, match="naive datetime"):
            await session.commit()


async def test_duplicate_username_is_a_conflict(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    data = directory.UserCreate(
        username="same", display_name="A", role="interpreter", password="salasana-123"
    )
    async with sessions() as session:
        await directory.create_user(session, data)
        await session.commit()
    async with sessions() as session:
        with pytest.raises(directory.DirectoryError) as caught:
            await directory.create_user(session, data)
        assert caught.value.code == "conflict"
    # The database itself enforces it too.
    async with sessions() as session:
        session.add(User(username="same", display_name="B", role="admin", password_hash="x"))
        with pytest.raises(IntegrityError):
            await session.commit()


@pytest.mark.parametrize("code", ["FI", "fi", "suomi", "f1n", "", "f e"])
def test_language_codes_must_be_iso_639_3(code: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="ISO 639-3"):
        directory.UserCreate(
            username="x1", display_name="X", role="expert", password="p" * 8, languages=[code]
        )
    with pytest.raises(ValueError, match="ISO 639-3"):
        UserLanguage(code=code)


async def test_directory_refusals_change_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        with pytest.raises(directory.DirectoryError, match="clerk belongs to an office"):
            await directory.create_user(
                session,
                directory.UserCreate(
                    username="cc", display_name="C", role="clerk", password="p" * 8
                ),
            )
        with pytest.raises(directory.DirectoryError, match="no authority nope"):
            await directory.create_user(
                session,
                directory.UserCreate(
                    username="ee",
                    display_name="E",
                    role="expert",
                    password="p" * 8,
                    authorities=["nope"],
                ),
            )
        with pytest.raises(directory.DirectoryError, match="only experts"):
            await directory.create_user(
                session,
                directory.UserCreate(
                    username="ii",
                    display_name="I",
                    role="interpreter",
                    password="p" * 8,
                    authorities=["kela"],
                ),
            )
        with pytest.raises(directory.DirectoryError, match="no office 999"):
            await directory.create_endpoint(
                session, directory.EndpointCreate(office_id=999, name="K")
            )
        await session.commit()
    async with sessions() as session:
        assert (await session.execute(select(User))).scalars().all() == []
        assert (await session.execute(select(Endpoint))).scalars().all() == []


async def test_foreign_keys_are_enforced(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(Endpoint(office_id=12345, name="orphan", credential_hash="x" * 64))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_deleting_an_office_removes_its_endpoints(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        office = await directory.create_office(
            session, directory.OfficeCreate(name="O", municipality="M")
        )
        await directory.create_endpoint(
            session, directory.EndpointCreate(office_id=office.id, name="K")
        )
        await session.commit()
        await session.execute(text("DELETE FROM offices"))
        await session.commit()
        assert (await session.execute(select(Endpoint))).scalars().all() == []


def test_database_urls_get_async_drivers() -> None:
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValueError, match="unsupported database"):
        normalize_url("mysql://u@h/db")
