"""The database: SQLAlchemy 2 async engine, declarative base and alembic migrations.

SQLite (the default, a file in the data folder) and PostgreSQL (asyncpg) are both supported.
Every model of every feature derives from `Base`; schema changes are alembic revisions in
`signaling/migrations/versions/` (see the README there), applied at startup by `migrate`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Stable constraint names, so that migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Every id column is an INTEGER: 32 bits on PostgreSQL, and SQLite's rowids stay within it.
# An id that comes from outside (an event, a body, a URL) beyond it would pass a bare `int`
# and make PostgreSQL fail ("integer out of range"): the client would get `internal` for bad
# input. Schemas declare ids as `DbId` (`DbId | None` when optional), and counts or sizes
# that are stored with `le=DB_INT_MAX`, so such values are refused as invalid before any
# query; ids in URLs go through `parse_db_id`.
DB_INT_MAX = 2**31 - 1
DbId = Annotated[int, Field(gt=0, le=DB_INT_MAX)]


def parse_db_id(text: str) -> int | None:
    """The id a URL's path or query names, or None when it names none: ASCII digits only
    (`int()` would also take "+1", " 1", "1_0" and Unicode digits) within 1..DB_INT_MAX."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(DB_INT_MAX)):
        return None
    value = int(text)
    return value if 0 < value <= DB_INT_MAX else None


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite keeps no time zone, so values are stored as naive UTC and made aware on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver (aiosqlite, asyncpg)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres") and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, enforced foreign keys and a busy timeout, and its
    files mode 0600. Bound parameters (token and credential hashes, names) never appear in
    SQLAlchemy's logs or in the text of its errors."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_sqlite_files(Path(database))
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _private_sqlite_files(database: Path) -> None:
    """The database file exists before SQLite opens it, mode 0600; SQLite gives its -wal and
    -shm files the database's mode. A new folder for it is made 0700 (an existing one is left
    as it is: it may be shared, like /tmp; `data_dir.secure_data_dir` tightens the data
    folder)."""
    from signaling.data_dir import DIR_MODE, private_file

    database.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # If a file cannot be made or changed here, SQLite fails to open it the same way, and the
    # caller reports that as "cannot open the database".
    with contextlib.suppress(OSError):
        private_file(database)
        for suffix in ("-wal", "-shm", "-journal"):
            companion = database.with_name(database.name + suffix)
            if companion.exists():
                private_file(companion)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer writes; the busy timeout makes concurrent
    # writers wait for the lock instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    # The migrations travel inside the package, so an installed copy finds them too.
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), revision)


def _current_heads(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(connection).get_current_heads())


async def migrate(engine: AsyncEngine, revision: str = "heads") -> None:
    """Bring the schema up to `revision` (all heads by default); safe to call every start."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_heads)


def head_revisions() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(_alembic_config()).get_heads())
