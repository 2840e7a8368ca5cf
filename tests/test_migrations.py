"""Schema migrations on a fresh database of their own (the session database stays as it is)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from enrichment import embedded, migrate
from enrichment.database import engine_for
from tests.conftest import _admin_url

QUEUE_TABLES = {"attempts", "events", "record_state", "sources"}
HEAD_TABLES = QUEUE_TABLES | {"embedding_tables", "rechecks", "metric_snapshots", "alerts"}


@pytest.fixture
def fresh(database_url: str) -> Iterator[Engine]:
    """An empty database on the session database's server, dropped afterwards."""
    admin_url = _admin_url()
    name = f"enrich_migrations_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(admin_url, name)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    try:
        yield engine
    finally:
        engine.dispose()
        embedded.drop_database(admin_url, name)


def tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names(schema=migrate.SCHEMA))


def test_fresh_database_has_no_revision(fresh):
    assert migrate.current_revision(fresh) is None


def test_upgrade_creates_the_tables_at_the_head_revision(fresh):
    migrate.upgrade(fresh)

    assert tables(fresh) == HEAD_TABLES | {"alembic_version"}
    assert migrate.current_revision(fresh) == migrate.head_revision()
    assert migrate.head_revision() == "0005_monitoring"


def test_first_revision_creates_only_the_queue_tables(fresh):
    migrate.upgrade(fresh, "0001_queue")

    assert tables(fresh) == QUEUE_TABLES | {"alembic_version"}


def test_upgrade_twice_is_a_no_op(fresh):
    migrate.upgrade(fresh)
    with fresh.begin() as connection:
        connection.execute(
            text("INSERT INTO enrichment.sources (name, stages) VALUES ('kept', '{a}')")
        )

    migrate.upgrade(fresh)

    assert migrate.current_revision(fresh) == migrate.head_revision()
    with fresh.connect() as connection:
        names = connection.execute(text("SELECT name FROM enrichment.sources")).scalars().all()
    assert names == ["kept"]


def test_downgrade_removes_every_table(fresh):
    migrate.upgrade(fresh)

    migrate.downgrade(fresh)

    assert tables(fresh) & HEAD_TABLES == set()
    assert migrate.current_revision(fresh) is None


def test_upgrade_downgrade_upgrade_round_trip_leaves_a_working_schema(fresh):
    migrate.upgrade(fresh)
    migrate.downgrade(fresh)

    migrate.upgrade(fresh)

    assert tables(fresh) == HEAD_TABLES | {"alembic_version"}
    assert migrate.current_revision(fresh) == migrate.head_revision()
    with fresh.begin() as connection:  # the indexes and constraints came back too
        indexes = {
            index["name"]
            for table in QUEUE_TABLES
            for index in inspect(connection).get_indexes(table, schema=migrate.SCHEMA)
        }
        connection.execute(
            text(
                "INSERT INTO enrichment.events (workspace_id, source, record_ids, action, "
                "idempotency_key) VALUES ('w', 's', '{r}', 'CREATE', 'k')"
            )
        )
    assert {
        "events_idempotency_key_key",
        "events_unfolded_idx",
        "record_state_due_idx",
        "record_state_leased_idx",
        "record_state_dead_idx",
        "attempts_record_idx",
        "attempts_finished_idx",
    } <= indexes


def test_migrations_leave_the_session_database_untouched(fresh, engine):
    migrate.upgrade(fresh)
    migrate.downgrade(fresh)

    assert tables(engine) >= QUEUE_TABLES
    assert migrate.current_revision(engine) == migrate.head_revision()
