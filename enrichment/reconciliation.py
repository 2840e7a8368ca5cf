"""Reconciliation: the database is the truth and the vectors are derived (seed 001), so
anything the two disagree on is found and, where the fix is unambiguous, fixed:

- vectors whose record is deleted or unknown to the queue (orphans): deleted;
- records the queue holds whose source row is gone (a lost DELETE): a DELETE event;
- records whose embed stage completed with chunks but which have no vectors: re-queued;
- records whose source row changed after their last enrichment and longer ago than the
  freshness SLA (a lost UPDATE): re-queued (unchanged input is then detected and kept);
- vector tables of other model versions: reported (activation and dropping are decisions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from enrichment import vectors
from enrichment.clock import Clock, DatabaseClock
from enrichment.config import SourceConfig
from enrichment.events import enqueue_records
from enrichment.source_tables import quote
from enrichment.states import Action, Reason


@dataclass(frozen=True)
class OtherModelTable:
    """A vector table that is not the one searches read, and what it holds."""

    name: str
    model_version: str
    state: str
    rows: int
    records: int


@dataclass
class ReconcileReport:
    orphan_vectors_deleted: int = 0
    vanished_records: dict[str, int] = field(default_factory=dict)
    missing_vectors: dict[str, int] = field(default_factory=dict)
    stale_records: dict[str, int] = field(default_factory=dict)
    other_model_tables: list[OtherModelTable] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "orphan_vectors_deleted": self.orphan_vectors_deleted,
            "vanished_records_deleted": sum(self.vanished_records.values()),
            "missing_vectors_requeued": sum(self.missing_vectors.values()),
            "stale_records_requeued": sum(self.stale_records.values()),
            "other_model_tables": [asdict(table) for table in self.other_model_tables],
        }


def delete_orphan_vectors(connection: Connection) -> int:
    """Delete vectors (in every table) of records that are deleted or not in the queue."""
    deleted = 0
    for table in vectors.tables(connection):
        deleted += connection.execute(
            text(
                f"DELETE FROM {table.qualified} v WHERE NOT EXISTS ("
                "  SELECT 1 FROM enrichment.record_state r WHERE r.source = v.source "
                "  AND r.record_key = v.record_key AND r.deleted_at IS NULL)"
            )
        ).rowcount
    return deleted


def _enqueue(
    connection: Connection,
    source: str,
    rows: Sequence[Any],
    action: Action,
    *,
    force: bool = False,
) -> int:
    return enqueue_records(
        connection,
        source,
        ((row.workspace_id, row.record_key) for row in rows),
        Reason.REPROCESS,
        force=force,
        action=action,
    )


def delete_vanished_records(connection: Connection, source: SourceConfig) -> int:
    """DELETE events for live records whose source row no longer exists."""
    rows = connection.execute(
        text(
            "SELECT DISTINCT r.workspace_id, r.record_key FROM enrichment.record_state r "
            f"LEFT JOIN {quote(source.table)} s ON s.{quote(source.key_column)}::text = "
            "r.record_key WHERE r.source = :source AND r.deleted_at IS NULL "
            f"AND s.{quote(source.key_column)} IS NULL"
        ),
        {"source": source.name},
    ).all()
    return _enqueue(connection, source.name, rows, Action.DELETE)


def requeue_missing_vectors(connection: Connection, source: SourceConfig) -> int:
    """Re-queue (forced) records whose embed stage says it stored chunks in a table that has
    none of them."""
    known = {table.name: table for table in vectors.tables(connection)}
    tables = connection.execute(
        text(
            "SELECT DISTINCT output->>'table' FROM enrichment.record_state "
            "WHERE source = :source AND status = 'COMPLETED' AND output ? 'table' "
            "AND deleted_at IS NULL"
        ),
        {"source": source.name},
    ).scalars()
    rows: list[Any] = []
    for name in tables:
        table = known.get(name)
        if table is None or table.state == "retired":
            continue  # a retired table's records are re-embedded into the new one
        rows += connection.execute(
            text(
                "SELECT r.workspace_id, r.record_key FROM enrichment.record_state r "
                "WHERE r.source = :source AND r.status = 'COMPLETED' AND r.deleted_at IS NULL "
                "AND r.output->>'table' = :table AND (r.output->>'chunks')::int > 0 "
                f"AND NOT EXISTS (SELECT 1 FROM {table.qualified} v "
                "  WHERE v.source = r.source AND v.record_key = r.record_key)"
            ),
            {"source": source.name, "table": name},
        ).all()
    return _enqueue(connection, source.name, rows, Action.UPDATE, force=True)


def requeue_stale_records(
    connection: Connection,
    source: SourceConfig,
    *,
    freshness_sla_seconds: float,
    clock: Clock | None = None,
) -> int:
    """Re-queue records whose source row changed after their last enrichment finished, when
    the change is older than the SLA (so events still in flight are not doubled)."""
    if source.updated_at_column is None:
        return 0
    now: datetime | None = (clock or DatabaseClock()).now()
    updated = f"s.{quote(source.updated_at_column)}"
    rows = connection.execute(
        text(
            "WITH enriched AS ("
            "  SELECT record_key, workspace_id, max(finished_at) AS enriched_at "
            "  FROM enrichment.record_state WHERE source = :source AND deleted_at IS NULL "
            "  GROUP BY record_key, workspace_id "
            "  HAVING bool_and(status IN ('COMPLETED', 'SKIPPED'))) "
            "SELECT e.workspace_id, e.record_key FROM enriched e "
            f"JOIN {quote(source.table)} s ON s.{quote(source.key_column)}::text = e.record_key "
            f"WHERE {updated} > e.enriched_at AND {updated} < "
            "coalesce(CAST(:now AS timestamptz), now()) - make_interval(secs => :sla)"
        ),
        {"source": source.name, "now": now, "sla": freshness_sla_seconds},
    ).all()
    return _enqueue(connection, source.name, rows, Action.UPDATE)


def other_model_tables(connection: Connection) -> list[OtherModelTable]:
    """Building and retired vector tables with their size, for the report."""
    found = []
    for table in vectors.tables(connection):
        if table.state == "active":
            continue
        rows, records = connection.execute(
            text(f"SELECT count(*), count(DISTINCT (source, record_key)) FROM {table.qualified}")
        ).one()
        found.append(
            OtherModelTable(table.name, table.model_version, table.state, int(rows), int(records))
        )
    return found


def reconcile(
    connection: Connection,
    sources: Sequence[SourceConfig],
    *,
    freshness_sla_seconds: float,
    clock: Clock | None = None,
) -> ReconcileReport:
    """Every check of this module, in the caller's transaction (fold pending events first:
    a DELETE still in the events table does not make its vectors orphans yet)."""
    report = ReconcileReport(orphan_vectors_deleted=delete_orphan_vectors(connection))
    for source in sources:
        report.vanished_records[source.name] = delete_vanished_records(connection, source)
        report.missing_vectors[source.name] = requeue_missing_vectors(connection, source)
        report.stale_records[source.name] = requeue_stale_records(
            connection, source, freshness_sla_seconds=freshness_sla_seconds, clock=clock
        )
    report.other_model_tables = other_model_tables(connection)
    return report
