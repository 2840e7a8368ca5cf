"""Test fixtures: a real PostgreSQL with pgvector.

With DATABASE_URL set, tests use that server and create their own database in it (the role
needs CREATEDB). Without it, they use an embedded server in ``.enrich/test-pgdata``, started
once and reused by later runs. Each test session gets a fresh database, dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from enrichment import embedded, migrate
from enrichment.database import engine_for, libpq_url

REPO = Path(__file__).resolve().parent.parent
TABLES = (
    "attempts",
    "record_state",
    "events",
    "sources",
    "embedding_tables",
    "metric_snapshots",
    "alerts",
)


def _admin_url() -> str:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return libpq_url(configured)
    return embedded.start(REPO / ".enrich" / "test-pgdata", "postgres")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a fresh, migrated database for this test session."""
    admin_url = _admin_url()
    name = f"enrich_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(admin_url, name)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(engine_for(url))
    yield url
    engine_for(url).dispose()
    embedded.drop_database(admin_url, name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Engine:
    return engine_for(database_url)


def reset(engine: Engine) -> None:
    """Empty the enrichment schema: its vector tables dropped, its other tables truncated (for
    module-scoped data too, which must neither see another module's rows nor leave its own)."""
    with engine.begin() as connection:
        vector_tables = connection.execute(
            text("SELECT name FROM enrichment.embedding_tables")
        ).scalars()
        for name in vector_tables:
            connection.execute(text(f'DROP TABLE IF EXISTS enrichment."{name}"'))
        connection.execute(
            text("TRUNCATE " + ", ".join(f"enrichment.{t}" for t in TABLES) + " RESTART IDENTITY")
        )


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The session database, emptied before the test."""
    reset(engine)
    return engine


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A temporary Prefect API (SQLite, 127.0.0.1) for the flow tests of this session."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield str(PREFECT_API_URL.value())
