"""Builders of enrichment states for the quality suites and the report: records run through the
real queue and runner (with scripted stages), vectors written with the real vector store, and
metric snapshots stored with the real monitoring code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import numpy as np
from sqlalchemy import Engine, text

from enrichment import vectors
from enrichment.retry import RetryPolicy
from enrichment.stages.base import Completed
from quality.metrics import Metrics, compute_metrics
from quality.snapshots import store_snapshot
from tests.helpers import WORKSPACE, FakeStage, fold_now, pipeline, runner, send

SOURCE = "tickets"


def enrich(
    engine: Engine,
    keys: Iterable[str],
    *stages: FakeStage,
    source: str = SOURCE,
    workspace: str = WORKSPACE,
    retry: RetryPolicy | None = None,
) -> None:
    """Send UPDATE events for ``keys`` and drain them through ``stages``."""
    keys = list(keys)
    work = runner(engine, pipeline(source, *stages, retry=retry))
    send(engine, source, keys, workspace=workspace)
    work.drain()


def classify(confidences: dict[str, float]) -> FakeStage:
    """An AI-like stage whose outputs carry a label and the given confidence per record."""
    return FakeStage(
        "classify",
        {
            key: Completed(output={"label": "delivery", "confidence": confidence})
            for key, confidence in confidences.items()
        },
    )


def waiting_since(
    engine: Engine, keys: Sequence[str], *, days: float, source: str = SOURCE
) -> None:
    """Queue ``keys`` (not processed) as if their change had arrived ``days`` ago."""
    send(engine, source, keys)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE enrichment.events "
                "SET created_at = created_at - CAST(:d AS float8) * interval '1 day' "
                "WHERE folded_at IS NULL"
            ),
            {"d": days},
        )
    fold_now(engine)


def vector_table(engine: Engine, dimensions: int = 3) -> vectors.VectorTable:
    with engine.begin() as connection:
        return vectors.ensure_table(
            connection,
            model_name="test-model",
            model_version=f"test-model@{dimensions}d",
            dimensions=dimensions,
        )


def store_vectors(
    engine: Engine,
    table: vectors.VectorTable,
    rows: Sequence[tuple[str, str, str | None, Sequence[float]]],
    *,
    source: str = SOURCE,
) -> None:
    """(record key, workspace, chunk text, embedding) per record, one chunk each."""
    chunks = [
        vectors.ChunkRow(
            source=source,
            record_key=key,
            chunk_index=0,
            workspace_id=workspace,
            chunk_text=chunk_text,
            entity_type="ticket",
            semantic_category=None,
            related_entity_types=(),
            metadata={},
            text_hash=vectors.text_hash(chunk_text or ""),
            embedding=np.asarray(embedding, dtype=np.float32),
        )
        for key, workspace, chunk_text, embedding in rows
    ]
    with engine.begin() as connection:
        vectors.write_chunks(connection, table, source, chunks, {key: 1 for key, *_ in rows})


def register_table(engine: Engine, name: str, embedding_type: str, dimensions: int) -> None:
    """A vector table made outside the vector store (an import, an older layout), registered
    so that the suites read it: its embedding column is of ``embedding_type``."""
    with engine.begin() as connection:
        connection.execute(
            text(
                f'CREATE TABLE enrichment."{name}" (source text NOT NULL, record_key text NOT '
                "NULL, chunk_index integer NOT NULL, workspace_id text NOT NULL, chunk_text text, "
                f"embedding {embedding_type} NOT NULL)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO enrichment.embedding_tables "
                "(name, model_name, model_version, dimensions, state) "
                "VALUES (:name, 'imported', :name, :dimensions, 'building')"
            ),
            {"name": name, "dimensions": dimensions},
        )


def insert_raw_vector(
    engine: Engine, table: str, key: str, embedding: str, embedding_type: str
) -> None:
    """One row of a :func:`register_table` table; ``embedding`` is a text literal."""
    with engine.begin() as connection:
        connection.execute(
            text(
                f'INSERT INTO enrichment."{table}" '
                "(source, record_key, chunk_index, workspace_id, embedding) "
                f"VALUES (:source, :key, 0, :workspace, CAST(:embedding AS {embedding_type}))"
            ),
            {"source": SOURCE, "key": key, "workspace": WORKSPACE, "embedding": embedding},
        )


def store_history(engine: Engine, days: Sequence[float]) -> None:
    """Snapshots of the current metrics as if they had been taken ``days`` ago, one each."""
    with engine.begin() as connection:
        metrics = compute_metrics(connection)
        for ago in days:
            store_snapshot(
                connection,
                Metrics(
                    taken_at=metrics.taken_at - timedelta(days=ago),
                    options=metrics.options,
                    values=metrics.values,
                ),
            )
