"""Metric snapshots: stored in long format, read back as trends, pruned by age."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text

from quality.metrics import MetricName, Scope
from quality.snapshots import history, latest_snapshot, prune_snapshots, take_snapshot
from tests.monitoring_data import NOW, States, clock


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_a_snapshot_stores_every_value_with_its_scope_in_long_format(db: Engine) -> None:
    states = States(db).source("notes", ["a", "b"])
    states.record("notes", "1", ("COMPLETED", "PENDING"), workspace="acme")

    metrics = take_snapshot(db, clock=clock())

    stored = rows(
        db,
        "SELECT taken_at, workspace_id, source, stage, name, value "
        "FROM enrichment.metric_snapshots",
    )
    assert len(stored) == len(metrics)
    assert {row[0] for row in stored} == {NOW}
    assert (NOW, None, None, None, "completeness_rate", 0.0) in stored
    assert (NOW, "acme", "notes", "b", "backlog_size", 1.0) in stored
    assert (NOW, None, "notes", None, "records", 1.0) in stored


def test_history_reads_one_metric_of_one_scope_in_time_order(db: Engine) -> None:
    states = States(db).source("notes", ["a"])
    states.snapshot_value("backlog_size", 7, seconds_ago=600)
    states.snapshot_value("backlog_size", 5, seconds_ago=1200)
    states.snapshot_value("backlog_size", 3, seconds_ago=600, source="notes")
    states.snapshot_value("backlog_size", 9, seconds_ago=90_000)

    with db.connect() as connection:
        overall = history(connection, "backlog_size", since=NOW - timedelta(days=1))
        notes = history(
            connection, "backlog_size", since=NOW - timedelta(days=1), scope=Scope(source="notes")
        )

    assert [point.value for point in overall] == [5, 7]
    assert [point.value for point in notes] == [3]


def test_latest_snapshot_returns_the_most_recent_one_whole(db: Engine) -> None:
    states = States(db).source("notes", ["a"])
    states.record("notes", "1", ("PENDING",))
    first = take_snapshot(db, clock=clock())
    states.record("notes", "2", ("PENDING",))
    later = clock()
    later.advance(300)
    take_snapshot(db, clock=later)

    with db.connect() as connection:
        latest = latest_snapshot(connection)

    assert latest is not None
    assert latest.taken_at == NOW + timedelta(seconds=300)
    assert latest.value(MetricName.BACKLOG_SIZE) == 2
    assert len(latest) == len(first)


def test_pruning_deletes_only_snapshots_older_than_the_cutoff(db: Engine) -> None:
    states = States(db).source("notes", ["a"])
    states.snapshot_value("backlog_size", 1, seconds_ago=40 * 86400)
    states.snapshot_value("backlog_size", 2, seconds_ago=86400)

    with db.begin() as connection:
        pruned = prune_snapshots(connection, older_than=NOW - timedelta(days=30))

    assert pruned == 1
    assert rows(db, "SELECT value FROM enrichment.metric_snapshots") == [(2.0,)]
