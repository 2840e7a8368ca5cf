"""Is the pipeline able to work right now? Three checks, each with what it found:

- **model**: every configured embedding model loads and embeds a probe text into a finite
  vector of its dimension;
- **pgvector**: the extension is installed and a vector can be written and read back, and the
  active vector table (if any) accepts a row (all in a transaction that is rolled back);
- **queue**: the queue is draining: it is unhealthy when there is a backlog older than the
  stall window, nothing finished within it, and the backlog has not shrunk since the last
  snapshot taken before the window.

``enrich health`` runs them and exits non-zero when one fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from enrichment import vectors
from enrichment.clock import Clock, DatabaseClock
from enrichment.config import EmbedStageConfig, EnrichConfig, LocalEmbedding, OpenAIEmbedding
from enrichment.embedders.base import Embedder, EmbeddingError
from enrichment.sources import build_embedder
from quality.sql import query

PROBE_TEXT = "health check: the embedding model is loaded and embeds this sentence"


@dataclass(frozen=True)
class Check:
    name: str
    healthy: bool
    detail: str
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "healthy": self.healthy,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            **self.data,
        }


@dataclass(frozen=True)
class HealthReport:
    checks: tuple[Check, ...]

    @property
    def healthy(self) -> bool:
        return all(check.healthy for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checks": [check.as_dict() for check in self.checks],
        }


def _timed(name: str, work: Callable[[], tuple[bool, str, dict[str, Any]]]) -> Check:
    started = time.perf_counter()
    try:
        healthy, detail, data = work()
    except Exception as err:  # a check that cannot even run is a failed check, with the reason
        healthy, detail, data = False, f"{type(err).__name__}: {err}", {}
    return Check(name, healthy, detail, time.perf_counter() - started, data)


def configured_embedders(config: EnrichConfig | None) -> list[Embedder]:
    """One embedder per distinct embedding configuration of the sources' embed stages; the
    packaged local model when there is no configuration file."""
    settings: list[LocalEmbedding | OpenAIEmbedding] = [LocalEmbedding()] if config is None else []
    for source in config.sources if config is not None else ():
        for stage in source.stages:
            if isinstance(stage, EmbedStageConfig) and stage.embedding not in settings:
                settings.append(stage.embedding)
    return [build_embedder(embedding) for embedding in settings]


def check_model(embedders: Callable[[], Sequence[Embedder]]) -> Check:
    """Each embedder (built here, so a provider that cannot even be set up fails the check)
    loads its model and embeds :data:`PROBE_TEXT` into a finite vector of its declared
    dimension."""

    def work() -> tuple[bool, str, dict[str, Any]]:
        built = embedders()
        if not built:
            return False, "no embedding model configured", {}
        models: list[dict[str, Any]] = []
        for embedder in built:
            (result,) = embedder.embed([PROBE_TEXT])
            if isinstance(result, EmbeddingError):
                return (
                    False,
                    f"{embedder.model_name}: {result.error_type}: {result.message}",
                    {"models": models},
                )
            vector = np.asarray(result)
            if vector.shape != (embedder.dimensions,) or not np.isfinite(vector).all():
                return (
                    False,
                    f"{embedder.model_name}: a vector of shape {vector.shape}, "
                    f"expected ({embedder.dimensions},) of finite numbers",
                    {"models": models},
                )
            models.append({"model": embedder.model_name, "dimensions": embedder.dimensions})
        names = ", ".join(f"{m['model']} ({m['dimensions']} dims)" for m in models)
        return True, f"embeds: {names}", {"models": models}

    return _timed("model", work)


def check_pgvector(engine: Engine) -> Check:
    """Write and read a vector, and a probe row into the active vector table; roll it all
    back. Fails when the extension is missing, the role cannot write, or the disk is full."""

    def work() -> tuple[bool, str, dict[str, Any]]:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                return probe(connection)
            finally:
                transaction.rollback()

    def probe(connection: Connection) -> tuple[bool, str, dict[str, Any]]:
        version = connection.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
        if version is None:
            return False, "the vector extension is not installed (enrich db upgrade)", {}
        connection.execute(
            text("CREATE TEMPORARY TABLE enrich_health_probe (v vector(3)) ON COMMIT DROP")
        )
        connection.execute(text("INSERT INTO enrich_health_probe VALUES ('[1,2,3]')"))
        distance = connection.execute(
            text("SELECT v <-> '[1,2,4]' FROM enrich_health_probe")
        ).scalar_one()
        if abs(distance - 1.0) > 1e-6:
            return False, f"vector arithmetic is wrong: distance {distance}, expected 1", {}
        data: dict[str, Any] = {"extension_version": version}
        written = ""
        table = vectors.active_table(connection)
        if table is not None:
            connection.execute(
                text(
                    f"INSERT INTO {table.qualified} (source, record_key, chunk_index, "
                    "workspace_id, entity_type, text_hash, model_name, model_version, "
                    "embedding) VALUES ('enrich-health', 'probe', 0, 'enrich-health', "
                    "'probe', 'probe', :model, :version, "
                    "CAST(array_fill(0.5, ARRAY[:dims]) AS vector))"
                ),
                {
                    "model": table.model_name,
                    "version": table.model_version,
                    "dims": table.dimensions,
                },
            )
            data["active_table"] = table.name
            written = f" and a row into {table.name}"
        return True, f"pgvector {version}: wrote and read a vector{written}", data

    return _timed("pgvector", work)


def check_queue(
    engine: Engine, *, stall_seconds: float = 900.0, clock: Clock | None = None
) -> Check:
    """The queue is draining unless a backlog older than ``stall_seconds`` sits there while
    nothing finished in the last ``stall_seconds`` and it has not shrunk since the last
    snapshot taken before then."""

    def work() -> tuple[bool, str, dict[str, Any]]:
        with engine.connect() as connection:
            row = connection.execute(
                query("queue_progress"),
                {"now": (clock or DatabaseClock()).now(), "stall_seconds": stall_seconds},
            ).one()
        now: datetime = row.now
        oldest_age = (
            (now - row.oldest_requested_at).total_seconds()
            if row.oldest_requested_at is not None
            else None
        )
        data = {
            "backlog": row.backlog,
            "oldest_pending_age_seconds": oldest_age,
            "finished_recently": row.finished_recently,
            "backlog_before": row.backlog_before,
            "stuck_in_progress": row.stuck,
            "stall_seconds": stall_seconds,
        }
        window = f"{stall_seconds / 60:g} min"
        if row.backlog == 0:
            return True, "no backlog", data
        if row.finished_recently > 0:
            return True, f"{row.finished_recently} finished in the last {window}", data
        if oldest_age is not None and oldest_age <= stall_seconds:
            return True, f"backlog of {row.backlog}, all younger than {window}", data
        if row.backlog_before is not None and row.backlog < row.backlog_before:
            return True, f"backlog shrinking ({row.backlog_before:g} → {row.backlog})", data
        return (
            False,
            f"not draining: backlog of {row.backlog} (oldest {oldest_age:.0f} s), nothing "
            f"finished in the last {window}"
            + (f", {row.stuck} leases expired" if row.stuck else ""),
            data,
        )

    return _timed("queue", work)


def run_health(
    engine: Engine,
    embedders: Callable[[], Sequence[Embedder]] | None,
    *,
    stall_seconds: float = 900.0,
    clock: Clock | None = None,
) -> HealthReport:
    """All checks; the model check is left out when ``embedders`` is None."""
    checks = []
    if embedders is not None:
        checks.append(check_model(embedders))
    checks.append(check_pgvector(engine))
    checks.append(check_queue(engine, stall_seconds=stall_seconds, clock=clock))
    return HealthReport(tuple(checks))
