"""The async SQLAlchemy engine, schema migrations, and plain connections for notifications."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(
    os.environ.get("FLOWBUS_MIGRATIONS_DIR", Path(__file__).resolve().parents[2] / "migrations")
)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    DBAPIError,
    OSError,
    asyncpg.PostgresConnectionError,
)
"""Failures of the database connection, not of the work: the work is tried again."""


class DatabaseNotConfigured(RuntimeError):
    """No database URL was given."""


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The URL for a plain asyncpg connection (LISTEN, the relay's session lock)."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def listening(
    database_url: str, channel: str, callback: Callable[[], None]
) -> AsyncIterator[None]:
    """Call `callback` on every notification on `channel` while inside."""
    conn: Any = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.add_listener(channel, lambda *_: callback())
        yield
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(conn.close())


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """An async engine on asyncpg with orjson for JSONB columns.

    `pre_ping` tests every connection taken from the pool with a round trip first; a
    caller that retries its work on a connection error (the worker) can do without.
    """
    if not url:
        raise DatabaseNotConfigured(
            "no database URL: set FLOWBUS_DATABASE_URL or run `flowbus dev` for an embedded one"
        )
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (Alembic runs in a thread: it has its own loop)."""
    from alembic import command

    await asyncio.to_thread(command.upgrade, _alembic_config(url), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        try:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except Exception:
            return None
    return None if row is None else str(row[0])


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
