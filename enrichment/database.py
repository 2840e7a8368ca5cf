"""Connections: DATABASE_URL when set, otherwise the embedded PostgreSQL."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

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
