"""Connections: DATABASE_URL when set, otherwise the embedded PostgreSQL."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from enrichment import embedded
from enrichment.settings import Settings, get_settings


def database_url(settings: Settings | None = None) -> str:
    """The libpq URL to use, starting the embedded server if no DATABASE_URL is set."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.resolved_pgdata_dir, settings.embedded_database)


def sqlalchemy_url(url: str) -> str:
    """Force the psycopg 3 driver whatever scheme the URL was written with."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DATABASE_URL must point at PostgreSQL, got {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL as libpq (psycopg.connect) accepts it: no SQLAlchemy driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def engine_for(url: str) -> Engine:
    # pool_pre_ping: a flow that sat idle between schedule ticks must not fail on a dead socket.
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, pool_size=5, max_overflow=5)


def get_engine(settings: Settings | None = None) -> Engine:
    return engine_for(database_url(settings))


T = TypeVar("T")

# deadlock_detected, serialization_failure: the transaction lost a race and can simply rerun.
_CONFLICTS = frozenset({"40P01", "40001"})


def in_transaction(engine: Engine, work: Callable[[Connection], T], *, attempts: int = 5) -> T:
    """Run ``work`` in a transaction, rerunning it when PostgreSQL aborts it for a deadlock or
    a serialization conflict with a concurrent worker. Other errors propagate at once."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                return work(connection)
        except DBAPIError as err:
            sqlstate = getattr(err.orig, "sqlstate", None)
            if sqlstate not in _CONFLICTS or attempt == attempts:
                raise
            time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying the whole unit of work for: the database connection was lost or
    refused, or a network call timed out. Anything else (bad configuration, a bug) would fail
    again the same way."""
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or isinstance(
            error.orig, psycopg.OperationalError | psycopg.InterfaceError
        )
    return isinstance(
        error, psycopg.OperationalError | psycopg.InterfaceError | ConnectionError | TimeoutError
    )
