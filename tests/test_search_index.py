"""A vector table is filled without its HNSW index and indexed once the backlog is drained
(or on activation), so a backfill does not pay for the graph row by row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from enrichment import vectors
from enrichment.config import parse_config
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, sync
from tests.helpers import send

pytestmark = pytest.mark.slow

CONFIG = {
    "sources": [
        {
            "name": "notes",
            "table": "public.si_notes",
            "updated_at_column": None,
            "columns": ["body"],
            "entity": {"type": "note", "category": "Note"},
            "stages": ["context", "embed"],
        }
    ]
}


@pytest.fixture
def notes(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.si_notes; "
                "CREATE TABLE public.si_notes (id int PRIMARY KEY, workspace_id text, body text); "
                "INSERT INTO public.si_notes SELECT g, 'acme', 'note number ' || g "
                "FROM generate_series(1, 40) g"
            )
        )
    yield db
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.si_notes"))


def _runner(db: Engine) -> Runner:
    config = parse_config(CONFIG)
    pipelines = build_pipelines(db, config, Settings(retry_delays=(0.0,), retry_jitter=0.0))
    sync(db, config, pipelines)
    return Runner(db, pipelines, batch_size=10)


def _index_valid(db: Engine, table: vectors.VectorTable) -> bool | None:
    with db.connect() as connection:
        valid = connection.execute(
            text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name"
            ),
            {"name": vectors.search_index_name(table)},
        ).scalar()
    return None if valid is None else bool(valid)


def _only_table(db: Engine) -> vectors.VectorTable:
    with db.connect() as connection:
        (table,) = vectors.tables(connection)
    return table


def test_a_table_is_filled_unindexed_and_indexed_when_the_backlog_is_drained(
    notes: Engine,
) -> None:
    runner = _runner(notes)
    send(notes, "notes", [str(i) for i in range(1, 41)], "CREATE", workspace="acme")

    partial = runner.drain(max_records=60)  # context for 40, embed for 20: not done yet
    table = _only_table(notes)
    assert partial.indexed == []
    assert _index_valid(notes, table) is None
    with notes.connect() as connection:
        assert vectors.tables_without_search_index(connection) == [table]

    finished = runner.drain()
    assert finished.indexed == [table.name]
    assert finished.summary()["tables_indexed"] == 1
    assert _index_valid(notes, table) is True
    with notes.connect() as connection:
        assert vectors.tables_without_search_index(connection) == []
        assert vectors.row_count(connection, table) == 40

    # Later drains find it indexed and build nothing; writes go on through the index.
    send(notes, "notes", ["41"], "CREATE", workspace="acme")
    with notes.begin() as connection:
        connection.execute(text("INSERT INTO public.si_notes VALUES (41, 'acme', 'one more')"))
    assert runner.drain().indexed == []
    with notes.connect() as connection:
        assert vectors.row_count(connection, table) == 41


def test_an_invalid_index_left_by_an_interrupted_build_is_rebuilt(notes: Engine) -> None:
    runner = _runner(notes)
    send(notes, "notes", ["1", "2", "3"], "CREATE", workspace="acme")
    runner.drain(max_records=4)
    table = _only_table(notes)
    with notes.begin() as connection:  # what a cancelled CREATE INDEX CONCURRENTLY leaves
        connection.execute(
            text(
                f'CREATE INDEX "{vectors.search_index_name(table)}" ON {table.qualified} '
                "USING hnsw (embedding vector_cosine_ops)"
            )
        )
        connection.execute(
            text(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                f"'{vectors.SCHEMA}.\"{vectors.search_index_name(table)}\"'::regclass"
            )
        )
    assert _index_valid(notes, table) is False
    assert runner.drain().indexed == [table.name]
    assert _index_valid(notes, table) is True


def test_activation_builds_the_index_of_a_table_that_has_none(notes: Engine) -> None:
    runner = _runner(notes)
    send(notes, "notes", ["1", "2"], "CREATE", workspace="acme")
    runner.drain(max_records=3)
    table = _only_table(notes)
    assert _index_valid(notes, table) is None
    with notes.begin() as connection:
        vectors.activate(connection, table.name)
    assert _index_valid(notes, table) is True


def test_a_build_already_running_elsewhere_is_left_to_it(notes: Engine) -> None:
    runner = _runner(notes)
    send(notes, "notes", ["1"], "CREATE", workspace="acme")
    runner.drain(max_records=2)  # stops at its record limit: nothing indexed
    table = _only_table(notes)
    with notes.connect() as holder:
        holder.execute(
            text("SELECT pg_advisory_lock(hashtext(:lock))"), {"lock": f"hnsw:{table.name}"}
        )
        assert vectors.build_search_index(notes, table) is False
        holder.execute(
            text("SELECT pg_advisory_unlock(hashtext(:lock))"), {"lock": f"hnsw:{table.name}"}
        )
    assert vectors.build_search_index(notes, table) is True
    assert _index_valid(notes, table) is True
