"""Reprocessing (seed 002): bring back what would otherwise stay incomplete.

- failed attempts whose backoff has elapsed are due again (the queue's own retry schedule);
  they are counted here and worked by the drain that follows;
- records of a source table the queue has never seen (NULL state: rows that existed before
  the triggers, or whose event was lost) are queued;
- dead letters are only counted: a permanent error needs a person (``enrich retry``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from enrichment.clock import Clock, DatabaseClock
from enrichment.config import SourceConfig
from enrichment.events import enqueue
from enrichment.source_tables import quote, workspace_expression
from enrichment.states import Action, Reason

ENQUEUE_CHUNK = 1000


@dataclass
class ReprocessReport:
    due_retries: int = 0
    unqueued: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "due_retries": self.due_retries,
            "unqueued_records_queued": sum(self.unqueued.values()),
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
    by_workspace: dict[str, list[str]] = {}
    for row in rows:
        by_workspace.setdefault(row.workspace_id, []).append(row.record_key)
    enqueue(
        connection,
        [
            {
                "workspace_id": workspace_id,
                "source": source.name,
                "record_ids": keys[start : start + ENQUEUE_CHUNK],
                "action": Action.CREATE,
                "reason": Reason.REPROCESS,
            }
            for workspace_id, keys in by_workspace.items()
            for start in range(0, len(keys), ENQUEUE_CHUNK)
        ],
    )
    return len(rows)
