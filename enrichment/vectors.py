"""Vector tables in pgvector, one per embedding model version (blue-green).

A model change never mixes vectors of two models in one table: the new model's table is built
(``building``) while the old one serves (``active``), then ``activate`` switches search to it.
Writes use binary COPY into a staging table and one upsert per batch, in the same transaction
as the record state, so a vector is never visible for a record whose state says otherwise.

A new table is filled without its HNSW index: maintaining the graph row by row costs more than
the model on a small machine, and one build over the filled table is several times cheaper.
The index is built (concurrently, writes go on) when a drain finds nothing left to do, and at
the latest on activation.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import Connection as PsycopgConnection
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, text

from enrichment import search_schema
from enrichment.embedders.base import Vector
from enrichment.errors import InvalidInput

log = logging.getLogger(__name__)

SCHEMA = "enrichment"
_COLUMNS = (
    ("source", "text"),
    ("record_key", "text"),
    ("chunk_index", "int4"),
    ("workspace_id", "text"),
    ("chunk_text", "text"),
    ("entity_type", "text"),
    ("semantic_category", "text"),
    ("related_entity_types", "text[]"),
    ("metadata", "jsonb"),
    ("text_hash", "text"),
    ("model_name", "text"),
    ("model_version", "text"),
    ("embedding", "vector"),
    ("source_updated_at", "timestamptz"),
)


@dataclass(frozen=True)
class VectorTable:
    name: str
    model_name: str
    model_version: str
    dimensions: int
    state: str

    @property
    def qualified(self) -> str:
        return f'{SCHEMA}."{self.name}"'


@dataclass(frozen=True)
class ChunkRow:
    """One chunk's vector and everything search filters on."""

    source: str
    record_key: str
    chunk_index: int
    workspace_id: str
    chunk_text: str | None
    entity_type: str
    semantic_category: str | None
    related_entity_types: tuple[str, ...]
    metadata: Mapping[str, Any]
    text_hash: str
    embedding: Vector
    source_updated_at: datetime | None = None


def table_name(model_name: str, dimensions: int, model_version: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_")[:32] or "model"
    digest = hashlib.sha256(model_version.encode()).hexdigest()[:8]
    return f"embeddings_{slug}_{dimensions}_{digest}"


def text_hash(chunk_text: str) -> str:
    return hashlib.sha256(chunk_text.encode()).hexdigest()


def _row(values: Any) -> VectorTable:
    return VectorTable(
        name=values.name,
        model_name=values.model_name,
        model_version=values.model_version,
        dimensions=values.dimensions,
        state=values.state,
    )


def tables(connection: Connection) -> list[VectorTable]:
    rows = connection.execute(
        text(
            "SELECT name, model_name, model_version, dimensions, state "
            "FROM enrichment.embedding_tables ORDER BY created_at, name"
        )
    )
    return [_row(row) for row in rows]


def active_table(connection: Connection) -> VectorTable | None:
    return next((table for table in tables(connection) if table.state == "active"), None)


def ensure_table(
    connection: Connection, *, model_name: str, model_version: str, dimensions: int
) -> VectorTable:
    """The table for this model version, created on first use. The first table of a database
    becomes active at once; later ones are ``building`` until :func:`activate`. Every table
    is created searchable and protected: lexical column and index, row-level security by
    workspace, SELECT for the search roles (see search_schema)."""
    name = table_name(model_name, dimensions, model_version)
    # Serialise creators of the same table (several workers starting at once).
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    existing = connection.execute(
        text(
            "SELECT name, model_name, model_version, dimensions, state "
            "FROM enrichment.embedding_tables WHERE model_version = :version"
        ),
        {"version": model_version},
    ).first()
    if existing is not None:
        return _row(existing)
    qualified = f'{SCHEMA}."{name}"'
    connection.execute(
        text(
            f"""
            CREATE TABLE IF NOT EXISTS {qualified} (
                source                text NOT NULL,
                record_key            text NOT NULL,
                chunk_index           integer NOT NULL CHECK (chunk_index >= 0),
                workspace_id          text NOT NULL,
                chunk_text            text,
                entity_type           text NOT NULL,
                semantic_category     text,
                related_entity_types  text[] NOT NULL DEFAULT '{{}}',
                metadata              jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                text_hash             text NOT NULL,
                model_name            text NOT NULL,
                model_version         text NOT NULL,
                embedding             vector({int(dimensions)}) NOT NULL,
                source_updated_at     timestamptz,
                created_at            timestamptz NOT NULL DEFAULT now(),
                updated_at            timestamptz NOT NULL DEFAULT now(),
                {search_schema.LEXICAL_COLUMN_DDL},
                PRIMARY KEY (source, record_key, chunk_index)
            );
            CREATE INDEX IF NOT EXISTS "{name}_workspace" ON {qualified} (workspace_id, source);
            """
        )
    )
    search_schema.prepare_table(connection, name)
    has_active = connection.execute(
        text("SELECT 1 FROM enrichment.embedding_tables WHERE state = 'active'")
    ).first()
    state = "building" if has_active else "active"
    connection.execute(
        text(
            "INSERT INTO enrichment.embedding_tables "
            "(name, model_name, model_version, dimensions, state, activated_at) "
            "VALUES (:name, :model_name, :version, :dimensions, :state, "
            "CASE WHEN :state = 'active' THEN now() END)"
        ),
        {
            "name": name,
            "model_name": model_name,
            "version": model_version,
            "dimensions": dimensions,
            "state": state,
        },
    )
    return VectorTable(name, model_name, model_version, dimensions, state)


def search_index_name(table: VectorTable) -> str:
    return f"{table.name}_hnsw"


def _search_index_ddl(table: VectorTable, *, concurrently: bool) -> str:
    how = "CONCURRENTLY " if concurrently else ""
    return (
        f'CREATE INDEX {how}IF NOT EXISTS "{search_index_name(table)}" ON {table.qualified} '
        "USING hnsw (embedding vector_cosine_ops)"
    )


_INDEX_VALIDITY = """
    SELECT i.indisvalid FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema AND c.relname = :index
"""


def search_index_valid(connection: Connection, table: VectorTable) -> bool | None:
    """Whether the table's HNSW index is usable: None when there is none, False when an
    interrupted concurrent build left it invalid."""
    found: bool | None = connection.execute(
        text(_INDEX_VALIDITY), {"schema": SCHEMA, "index": search_index_name(table)}
    ).scalar()
    return found


def tables_without_search_index(connection: Connection) -> list[VectorTable]:
    """Active and building tables whose HNSW index is missing or left invalid by an
    interrupted build (retired tables need none)."""
    return [
        table
        for table in tables(connection)
        if table.state in ("active", "building") and not search_index_valid(connection, table)
    ]


def build_search_index(engine: Engine, table: VectorTable, *, memory: str = "256MB") -> bool:
    """Build the table's HNSW index without blocking writers. Returns False when another
    process is building it right now (it is left to that one)."""
    lock = f"hnsw:{table.name}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        locked = connection.execute(
            text("SELECT pg_try_advisory_lock(hashtext(:lock))"), {"lock": lock}
        ).scalar_one()
        if not locked:
            return False
        try:
            valid = search_index_valid(connection, table)
            if valid:
                return True
            if valid is False:  # an interrupted concurrent build left an invalid index
                connection.execute(
                    text(f'DROP INDEX CONCURRENTLY IF EXISTS {SCHEMA}."{search_index_name(table)}"')
                )
            connection.execute(
                text("SELECT set_config('maintenance_work_mem', :m, false)"), {"m": memory}
            )
            started = time.perf_counter()
            connection.execute(text(_search_index_ddl(table, concurrently=True)))
            # Fresh statistics of the filled table: search plans by them (which workspaces
            # are small enough for an exact scan, which words are too common to match on).
            # VACUUM also moves the rows the fill queued in the GIN index's pending list into
            # the index proper, which every lexical search would otherwise read through.
            connection.execute(text(f"VACUUM (ANALYZE) {table.qualified}"))
            log.info(
                "built the HNSW index of %s in %.1f s",
                table.qualified,
                time.perf_counter() - started,
            )
            return True
        finally:
            connection.execute(text("RESET maintenance_work_mem"))
            connection.execute(text("SELECT pg_advisory_unlock(hashtext(:lock))"), {"lock": lock})


def activate(connection: Connection, name: str) -> VectorTable:
    """Make ``name`` the table search reads; the previously active one is retired. A table
    still without its HNSW index gets it first (in this transaction)."""
    target = next((table for table in tables(connection) if table.name == name), None)
    if target is None:
        known = ", ".join(table.name for table in tables(connection)) or "none"
        raise InvalidInput("table", f"no vector table {name!r} (tables: {known})")
    valid = search_index_valid(connection, target)
    if valid is False:
        connection.execute(text(f'DROP INDEX {SCHEMA}."{search_index_name(target)}"'))
    connection.execute(text(_search_index_ddl(target, concurrently=False)))
    connection.execute(text(f"ANALYZE {target.qualified}"))  # statistics search plans by
    connection.execute(
        text(
            "UPDATE enrichment.embedding_tables SET state = 'retired', retired_at = now() "
            "WHERE state = 'active' AND name <> :name"
        ),
        {"name": name},
    )
    connection.execute(
        text(
            "UPDATE enrichment.embedding_tables SET state = 'active', activated_at = now() "
            "WHERE name = :name"
        ),
        {"name": name},
    )
    return VectorTable(
        target.name, target.model_name, target.model_version, target.dimensions, "active"
    )


def driver(connection: Connection) -> PsycopgConnection[Any]:
    """The psycopg connection under ``connection``, able to send and read vectors."""
    raw = connection.connection.driver_connection
    assert isinstance(raw, PsycopgConnection)
    if raw.adapters.types.get("vector") is None:
        register_vector(raw)
    return raw


def stored_vectors(
    connection: Connection, table: VectorTable, source: str, keys: Sequence[str]
) -> dict[tuple[str, int], tuple[str, Vector]]:
    """(record, chunk) -> (text hash, vector) of what is stored, to reuse unchanged chunks."""
    if not keys:
        return {}
    raw = driver(connection)
    with raw.cursor(binary=True) as cursor:
        cursor.execute(
            f"SELECT record_key, chunk_index, text_hash, embedding FROM {table.qualified} "
            "WHERE source = %s AND record_key = ANY(%s)",
            [source, list(keys)],
        )
        return {
            (key, index): (digest, np.asarray(vector.to_numpy(), dtype=np.float32))
            for key, index, digest, vector in cursor
        }


def write_chunks(
    connection: Connection,
    table: VectorTable,
    source: str,
    rows: Iterable[ChunkRow],
    chunk_counts: Mapping[str, int],
) -> int:
    """Upsert the chunks of a batch of records and delete chunks they no longer have.

    ``chunk_counts`` holds every record of the batch with its number of chunks, including
    records with none (all their vectors go). One COPY and two statements per batch.
    """
    raw = driver(connection)
    staging = f"staging_{table.name}"
    names = ", ".join(name for name, _ in _COLUMNS)
    written = 0
    with raw.cursor() as cursor:
        cursor.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
            f"(LIKE {table.qualified} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f'COPY "{staging}" ({names}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.set_types([type_name for _, type_name in _COLUMNS])
            for row in rows:
                copy.write_row(
                    (
                        row.source,
                        row.record_key,
                        row.chunk_index,
                        row.workspace_id,
                        row.chunk_text,
                        row.entity_type,
                        row.semantic_category,
                        list(row.related_entity_types),
                        Jsonb(dict(row.metadata)),
                        row.text_hash,
                        table.model_name,
                        table.model_version,
                        row.embedding,
                        row.source_updated_at,
                    )
                )
                written += 1
        updates = ", ".join(
            f"{name} = EXCLUDED.{name}"
            for name, _ in _COLUMNS
            if name not in ("source", "record_key", "chunk_index")
        )
        cursor.execute(
            f'INSERT INTO {table.qualified} AS t ({names}) SELECT {names} FROM "{staging}" '
            f"ON CONFLICT (source, record_key, chunk_index) DO UPDATE SET {updates}, "
            "updated_at = now()"
        )
        keys = list(chunk_counts)
        cursor.execute(
            f"DELETE FROM {table.qualified} AS t "
            "USING unnest(%s::text[], %s::int4[]) AS c(record_key, chunks) "
            "WHERE t.source = %s AND t.record_key = c.record_key AND t.chunk_index >= c.chunks",
            [keys, [chunk_counts[key] for key in keys], source],
        )
    return written


def delete_records(connection: Connection, source: str, keys: Sequence[str]) -> int:
    """Remove every vector of these records from every vector table (deleted records)."""
    if not keys:
        return 0
    deleted = 0
    for table in tables(connection):
        result = connection.execute(
            text(
                f"DELETE FROM {table.qualified} "
                "WHERE source = :source AND record_key = ANY(CAST(:keys AS text[]))"
            ),
            {"source": source, "keys": list(keys)},
        )
        deleted += result.rowcount
    return deleted


def row_count(connection: Connection, table: VectorTable) -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table.qualified}")).scalar_one())
