"""Reprocessing (seed 002): bring back what would otherwise stay incomplete.

- failed attempts whose backoff has elapsed are due again (the queue's own retry schedule);
  they are counted here and worked by the drain that follows;
- records of a source table the queue has never seen (NULL state: rows that existed before
  the triggers, or whose event was lost) are queued;
- low-confidence results whose re-check age has passed are queued again (enrichment/rechecks.py);
- dead letters are only counted: a permanent error needs a person (``enrich retry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from enrichment.clock import Clock, DatabaseClock
from enrichment.config import SourceConfig
from enrichment.events import enqueue_records
from enrichment.rechecks import requeue_due_rechecks
from enrichment.source_tables import quote, workspace_expression
from enrichment.states import Action, Reason


@dataclass
class ReprocessReport:
    due_retries: int = 0
    unqueued: dict[str, int] = field(default_factory=dict)
    rechecks: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "due_retries": self.due_retries,
            "unqueued_records_queued": sum(self.unqueued.values()),
            "low_confidence_rechecks_queued": sum(self.rechecks.values()),
            "dead_letters": self.dead_letters,
        }


def count_due_retries(
    connection: Connection,
    sources: list[str],
    *,
    workspace: str | None = None,
    clock: Clock | None = None,
) -> tuple[int, int]:
    """(failed attempts due now, dead letters) of these sources."""
    row = connection.execute(
        text(
            "SELECT count(*) FILTER (WHERE next_attempt_at <= coalesce(CAST(:now AS timestamptz),"
            " now())), count(*) FILTER (WHERE next_attempt_at IS NULL) "
            "FROM enrichment.record_state WHERE status = 'FAILED' AND deleted_at IS NULL "
            "AND source = ANY(CAST(:sources AS text[])) "
            "AND (CAST(:workspace AS text) IS NULL OR workspace_id = CAST(:workspace AS text))"
        ),
        {"now": (clock or DatabaseClock()).now(), "sources": sources, "workspace": workspace},
    ).one()
    return int(row[0]), int(row[1])


def queue_unqueued(
    connection: Connection,
    source: SourceConfig,
    *,
    workspace: str | None = None,
    limit: int = 100_000,
) -> int:
    """Queue (CREATE events) rows of the source table with no state at all; returns how many.
    An anti-join on record_state's primary key, so it costs one pass over the source table."""
    key = f"s.{quote(source.key_column)}::text"
    workspace_sql = workspace_expression(f"s.{quote(source.workspace_column)}")
    rows = connection.execute(
        text(
            f"SELECT {workspace_sql} AS workspace_id, {key} AS record_key "
            f"FROM {quote(source.table)} s "
            "WHERE NOT EXISTS (SELECT 1 FROM enrichment.record_state r "
            f"  WHERE r.source = :source AND r.record_key = {key}) "
            f"AND (CAST(:workspace AS text) IS NULL OR {workspace_sql} = CAST(:workspace AS text)) "
            "LIMIT :limit"
        ),
        {"source": source.name, "workspace": workspace, "limit": limit},
    ).all()
    return enqueue_records(
        connection,
        source.name,
        ((row.workspace_id, row.record_key) for row in rows),
        Reason.REPROCESS,
        force=False,
        action=Action.CREATE,
    )


def queue_reprocessing(
    connection: Connection,
    sources: Sequence[SourceConfig],
    *,
    workspace: str | None = None,
    clock: Clock | None = None,
) -> ReprocessReport:
    """Everything reprocessing brings back, for these sources, in the caller's transaction:
    counts due retries and dead letters, queues never-seen rows and due re-checks of records a
    confidence gate held back. Fold pending events first: an event not yet folded is not a
    lost record."""
    report = ReprocessReport()
    report.due_retries, report.dead_letters = count_due_retries(
        connection, [s.name for s in sources], workspace=workspace, clock=clock
    )
    for source in sources:
        report.unqueued[source.name] = queue_unqueued(connection, source, workspace=workspace)
        report.rechecks[source.name] = requeue_due_rechecks(
            connection, clock, source=source.name, workspace=workspace
        )
    return report
