"""Metric snapshots: every metric of a monitor run, stored so that trends survive.

``enrichment.metric_snapshots`` is long format, one row per (taken_at, workspace_id, source,
stage, name) with its value; a NULL workspace_id, source or stage means "all of them" (see
``docs/monitoring.md``). Readers select one metric over a time range through the
``(name, taken_at)`` index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text

from enrichment.clock import Clock
from quality.metrics import Metric, MetricOptions, Metrics, Scope, compute_metrics

_INSERT = text(
    """
    INSERT INTO enrichment.metric_snapshots
        (taken_at, workspace_id, source, stage, name, value)
    SELECT CAST(:taken_at AS timestamptz), s.workspace_id, s.source, s.stage, s.name, s.value
    FROM unnest(CAST(:workspaces AS text[]), CAST(:sources AS text[]), CAST(:stages AS text[]),
                CAST(:names AS text[]), CAST(:values AS float8[]))
         AS s(workspace_id, source, stage, name, value)
    """
)


def store_snapshot(connection: Connection, metrics: Metrics) -> int:
    """Write every value of ``metrics`` at its ``taken_at``, in one statement; returns the
    number of rows written. Storing the same Metrics twice writes them twice."""
    values = metrics.values
    if not values:
        return 0
    connection.execute(
        _INSERT,
        {
            "taken_at": metrics.taken_at,
            "workspaces": [m.scope.workspace_id for m in values],
            "sources": [m.scope.source for m in values],
            "stages": [m.scope.stage for m in values],
            "names": [m.name for m in values],
            "values": [m.value for m in values],
        },
    )
    return len(values)


def take_snapshot(
    engine: Engine, options: MetricOptions | None = None, *, clock: Clock | None = None
) -> Metrics:
    """Compute every metric and store it, in one REPEATABLE READ transaction: the values of a
    snapshot all describe the same moment, and a snapshot is stored whole or not at all."""
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            metrics = compute_metrics(connection, options, clock=clock)
            store_snapshot(connection, metrics)
    return metrics


def prune_snapshots(connection: Connection, *, older_than: datetime) -> int:
    """Delete snapshot rows taken before ``older_than``; returns how many went.
    Index: metric_snapshots_taken_brin (taken_at)."""
    result = connection.execute(
        text("DELETE FROM enrichment.metric_snapshots WHERE taken_at < :cutoff"),
        {"cutoff": older_than},
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class Point:
    taken_at: datetime
    value: float


def history(
    connection: Connection,
    name: str,
    *,
    since: datetime,
    until: datetime | None = None,
    scope: Scope | None = None,
) -> list[Point]:
    """One metric of one scope (default: everything) over time, oldest first.
    Index: metric_snapshots_name_taken_idx (name, taken_at)."""
    scope = scope or Scope()
    rows = connection.execute(
        text(
            """
            SELECT taken_at, value
            FROM enrichment.metric_snapshots
            WHERE name = :name
              AND taken_at >= :since
              AND (CAST(:until AS timestamptz) IS NULL OR taken_at <= CAST(:until AS timestamptz))
              AND workspace_id IS NOT DISTINCT FROM CAST(:workspace AS text)
              AND source IS NOT DISTINCT FROM CAST(:source AS text)
              AND stage IS NOT DISTINCT FROM CAST(:stage AS text)
            ORDER BY taken_at
            """
        ),
        {
            "name": name,
            "since": since,
            "until": until,
            "workspace": scope.workspace_id,
            "source": scope.source,
            "stage": scope.stage,
        },
    )
    return [Point(row.taken_at, row.value) for row in rows]


def latest_snapshot(connection: Connection, *, max_age: timedelta | None = None) -> Metrics | None:
    """The most recent stored snapshot (every scope and metric of it), or None when there is
    none (or none younger than ``max_age``)."""
    taken_at = connection.execute(
        text(
            "SELECT max(taken_at) FROM enrichment.metric_snapshots "
            "WHERE name = 'backlog_size' AND taken_at > "
            "coalesce(statement_timestamp() - CAST(:max_age AS interval), '-infinity')"
        ),
        {"max_age": max_age},
    ).scalar_one()
    if taken_at is None:
        return None
    rows = connection.execute(
        text(
            "SELECT workspace_id, source, stage, name, value FROM enrichment.metric_snapshots "
            "WHERE taken_at = :taken_at"
        ),
        {"taken_at": taken_at},
    )
    values = tuple(
        Metric(Scope(row.workspace_id, row.source, row.stage), row.name, row.value) for row in rows
    )
    return Metrics(taken_at=taken_at, options=MetricOptions(), values=values)
