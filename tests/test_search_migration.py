"""Migration 0003 makes vector tables that exist already searchable and protected, and its
downgrade takes exactly that away again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from enrichment import embedded, migrate
from enrichment.database import engine_for
from tests.conftest import _admin_url

TABLE = "enrichment.embeddings_old_model_3_0000"


@pytest.fixture
def at_0002(database_url: str) -> Iterator[Engine]:
    """A database of its own at revision 0002, with a vector table made by 0002's code."""
    admin_url = _admin_url()
    name = f"enrich_search_migration_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(admin_url, name)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    migrate.upgrade(engine, "0002_vectors")
    with engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TABLE {TABLE} (source text, record_key text, chunk_index int, "
                "workspace_id text NOT NULL, chunk_text text, embedding vector(3), "
                "PRIMARY KEY (source, record_key, chunk_index)); "
                f"INSERT INTO {TABLE} VALUES "
                "('notes', '1', 0, 'acme', 'Cheap flights to Lisbon', '[1, 0, 0]'), "
                "('notes', '2', 0, 'globex', 'Cheap flights to Porto', '[0, 1, 0]'); "
                "INSERT INTO enrichment.embedding_tables (name, model_name, model_version, "
                "dimensions, state) VALUES ('embeddings_old_model_3_0000', 'old', 'old@1', 3, "
                "'active')"
            )
        )
    try:
        yield engine
    finally:
        engine.dispose()
        embedded.drop_database(admin_url, name)


def _lexemes_and_protection(engine: Engine) -> tuple[list[str], bool]:
    with engine.connect() as connection:
        lexemes = connection.execute(
            text(f"SELECT chunk_tsv::text FROM {TABLE} ORDER BY record_key")
        ).scalars()
        protected = connection.execute(
            text(f"SELECT relrowsecurity FROM pg_class WHERE oid = '{TABLE}'::regclass")
        ).scalar_one()
        return list(lexemes), protected


def _vector_storage(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                text(
                    "SELECT attstorage FROM pg_attribute WHERE attname = 'embedding' "
                    f"AND attrelid = '{TABLE}'::regclass"
                )
            ).scalar_one()
        )


def test_upgrade_adds_the_lexical_column_and_row_level_security_to_existing_tables(
    at_0002: Engine,
) -> None:
    migrate.upgrade(at_0002)

    lexemes, protected = _lexemes_and_protection(at_0002)
    assert _vector_storage(at_0002) == "m"  # kept in the row, however wide it gets
    assert lexemes == ["'cheap':1 'flight':2 'lisbon':4", "'cheap':1 'flight':2 'porto':4"]
    assert protected is True
    with at_0002.begin() as connection:
        connection.execute(text("SELECT set_config('enrichment.workspace', 'acme', true)"))
        connection.execute(text("SET LOCAL ROLE enrich_search"))
        seen = connection.execute(text(f"SELECT record_key FROM {TABLE}")).scalars()
        assert list(seen) == ["1"]
        matches = connection.execute(
            text(
                "SELECT record_key FROM enrichment.lexical_matches("
                "'embeddings_old_model_3_0000', 'flights', 10)"
            )
        ).scalars()
        assert list(matches) == ["1"]


def test_downgrade_to_0002_removes_what_0003_added(at_0002: Engine) -> None:
    migrate.upgrade(at_0002)
    migrate.downgrade(at_0002, "0002_vectors")

    with at_0002.connect() as connection:
        columns = connection.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'enrichment' AND table_name = 'embeddings_old_model_3_0000'"
                " ORDER BY ordinal_position"
            )
        ).scalars()
        protected = connection.execute(
            text(f"SELECT relrowsecurity FROM pg_class WHERE oid = '{TABLE}'::regclass")
        ).scalar_one()
        functions = connection.execute(
            text(
                "SELECT count(*) FROM pg_proc WHERE pronamespace = 'enrichment'::regnamespace "
                "AND proname IN ('lexical_matches', 'search_tsquery')"
            )
        ).scalar_one()
    assert list(columns) == [
        "source",
        "record_key",
        "chunk_index",
        "workspace_id",
        "chunk_text",
        "embedding",
    ]
    assert protected is False
    assert functions == 0
    assert _vector_storage(at_0002) == "e"  # pgvector's default again
