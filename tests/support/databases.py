"""Database fixtures: a scratch PostgreSQL database per test run, and per-test clean slates.

`postgres_url` (session) creates a uniquely named database on the PostgreSQL server at
127.0.0.1:5432 (trust authentication) and drops it at the end; tests are skipped with a
clear message only when no server is reachable. `fresh_postgres_url` empties its schema
before the test. `database_url` is parametrised over SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_HOST = os.environ.get("ETAPALVELU_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ETAPALVELU_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ETAPALVELU_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("ETAPALVELU_TEST_PG_DB", "test")

__all__ = ["database_url", "fresh_postgres_url", "postgres_url"]


async def _execute(database: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"etapalvelu_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_execute(PG_ADMIN_DB, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        pytest.skip(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({exc}); "
            "skipping the PostgreSQL variant"
        )
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_execute(PG_ADMIN_DB, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    database = postgres_url.rsplit("/", 1)[1]
    asyncio.run(
        _execute(
            database,
            "DROP SCHEMA public CASCADE",
            "CREATE SCHEMA public",
        )
    )
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url
