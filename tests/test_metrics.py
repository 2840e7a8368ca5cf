"""Monitoring metrics against hand-built queue states with known answers (real PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from quality.metrics import (
    MetricName,
    MetricOptions,
    Metrics,
    Scope,
    capacity_hours_left,
    compute_metrics,
    confidence_bucket_name,
    quality_score,
)
from tests.monitoring_data import NOW, States, clock

DONE = ("COMPLETED", "COMPLETED")
NOTES = Scope(source="notes")


def metrics(engine: Engine, options: MetricOptions | None = None) -> Metrics:
    with engine.connect() as connection:
        return compute_metrics(connection, options, clock=clock())


@pytest.fixture
def states(db: Engine) -> States:
    return States(db).source("notes", ["a", "b"])


def test_metrics_are_taken_at_the_clocks_time(db: Engine, states: States) -> None:
    assert metrics(db).taken_at == NOW


def test_completeness_counts_records_whose_every_stage_is_completed_or_skipped(
    db: Engine, states: States
) -> None:
    states.record("notes", "1", DONE)
    states.record("notes", "2", ("COMPLETED", "SKIPPED"))
    states.record("notes", "3", ("COMPLETED", "PENDING"))
    states.record("notes", "4", ("FAILED", "PENDING"))

    found = metrics(db)

    assert found.value(MetricName.RECORDS, NOTES) == 4
    assert found.value(MetricName.COMPLETENESS_RATE, NOTES) == 50.0
    assert found.value(MetricName.COMPLETENESS_RATE) == 50.0


def test_stage_completeness_is_the_share_of_that_stages_rows_finished(
    db: Engine, states: States
) -> None:
    states.record("notes", "1", DONE)
    states.record("notes", "2", ("COMPLETED", "SKIPPED"))
    states.record("notes", "3", ("COMPLETED", "PENDING"))
    states.record("notes", "4", ("FAILED", "PENDING"))

    found = metrics(db)

    assert found.value(MetricName.COMPLETENESS_RATE, Scope(source="notes", stage="a")) == 75.0
    assert found.value(MetricName.COMPLETENESS_RATE, Scope(source="notes", stage="b")) == 50.0


def test_a_finished_last_stage_with_an_unfinished_earlier_stage_is_incomplete(
    db: Engine,
) -> None:
    # A stage inserted in the middle of the list: its rows are PENDING behind finished ones.
    states = States(db).source("notes", ["a", "new", "b"])
    states.record("notes", "1", ("COMPLETED", "PENDING", "COMPLETED"))
    states.record("notes", "2", ("COMPLETED", "COMPLETED", "COMPLETED"))

    assert metrics(db).value(MetricName.COMPLETENESS_RATE, NOTES) == 50.0


def test_deleted_records_count_nowhere(db: Engine, states: States) -> None:
    states.record("notes", "1", DONE)
    states.record("notes", "gone", ("SKIPPED", "SKIPPED"), deleted=True)

    found = metrics(db)

    assert found.value(MetricName.RECORDS, NOTES) == 1
    assert found.value(MetricName.COMPLETENESS_RATE, NOTES) == 100.0


def test_backlog_counts_due_running_and_retrying_rows_and_ages_the_oldest(
    db: Engine, states: States
) -> None:
    states.row("notes", "due", "a", "PENDING", requested=600, due=0, attempts=0)
    states.row("notes", "running", "a", "IN_PROGRESS", requested=1200, lease_expires=-60)
    states.row("notes", "retrying", "a", "FAILED", requested=1800, due=-300, finished=60)
    states.row("notes", "dead", "a", "FAILED", requested=7200, finished=60, attempts=6)
    states.row("notes", "done", "a", "COMPLETED", requested=9000, finished=8000)
    states.row("notes", "done", "b", "PENDING", requested=9000, due=0, attempts=0)
    states.row("notes", "waiting", "b", "PENDING", requested=99_000, attempts=0)

    found = metrics(db)
    stage_a = Scope(source="notes", stage="a")

    assert found.value(MetricName.BACKLOG_SIZE, stage_a) == 3
    assert found.value(MetricName.OLDEST_PENDING_AGE_SECONDS, stage_a) == 1800
    assert found.value(MetricName.BACKLOG_SIZE, NOTES) == 4
    assert found.value(MetricName.OLDEST_PENDING_AGE_SECONDS, NOTES) == 9000
    assert found.value(MetricName.RETRY_QUEUE, stage_a) == 1
    assert found.value(MetricName.RETRY_QUEUE_AGE_30M_2H, stage_a) == 1
    assert found.value(MetricName.RETRY_QUEUE_AGE_0_5M, stage_a) == 0


def test_no_backlog_has_no_oldest_pending_age(db: Engine, states: States) -> None:
    states.record("notes", "1", DONE)

    found = metrics(db)

    assert found.value(MetricName.BACKLOG_SIZE, NOTES) == 0
    assert found.value(MetricName.OLDEST_PENDING_AGE_SECONDS, NOTES) is None


def test_dead_letters_and_leases_past_their_expiry(db: Engine, states: States) -> None:
    states.row("notes", "dead", "a", "FAILED", finished=60, attempts=6, error_type="Bad")
    states.row("notes", "stuck", "a", "IN_PROGRESS", lease_expires=30)
    states.row("notes", "working", "a", "IN_PROGRESS", lease_expires=-30)

    found = metrics(db)

    assert found.value(MetricName.DEAD_LETTERS, NOTES) == 1
    assert found.value(MetricName.STUCK_IN_PROGRESS, NOTES) == 1


def test_over_retry_limit_uses_each_stages_own_limit(db: Engine, states: States) -> None:
    # 5 retries by default (6 attempts); stage b allows 1 retry (2 attempts).
    states.row("notes", "ok", "a", "FAILED", due=-60, finished=10, attempts=6)
    states.row("notes", "over", "a", "FAILED", due=-60, finished=10, attempts=7)
    states.row("notes", "ok", "b", "FAILED", due=-60, finished=10, attempts=2)
    states.row("notes", "over", "b", "FAILED", due=-60, finished=10, attempts=3)

    found = metrics(db, MetricOptions(max_retries=5, retry_limits={("notes", "b"): 1}))

    assert found.value(MetricName.OVER_RETRY_LIMIT, Scope(source="notes", stage="a")) == 1
    assert found.value(MetricName.OVER_RETRY_LIMIT, Scope(source="notes", stage="b")) == 1
    assert found.value(MetricName.OVER_RETRY_LIMIT) == 2


def test_stage_latency_throughput_and_failure_rate_come_from_attempts_in_the_window(
    db: Engine, states: States
) -> None:
    for key, duration in (("1", 1.0), ("2", 2.0), ("3", 3.0), ("4", 4.0)):
        states.attempt("notes", key, "a", "COMPLETED", finished=600, duration=duration)
    states.attempt("notes", "5", "a", "FAILED", finished=600, duration=10.0, error_type="X")
    states.attempt("notes", "old", "a", "COMPLETED", finished=3601, duration=500.0)

    found = metrics(db)
    stage_a = Scope(source="notes", stage="a")

    assert found.value(MetricName.ATTEMPTS, stage_a) == 5
    assert found.value(MetricName.STAGE_THROUGHPUT_PER_HOUR, stage_a) == 4
    assert found.value(MetricName.FAILURE_RATE, stage_a) == 20.0
    assert found.value(MetricName.STAGE_LATENCY_P50_SECONDS, stage_a) == 3.0
    # percentile_cont over 1, 2, 3, 4, 10: 4 + 0.8 * (10 - 4)
    assert found.value(MetricName.STAGE_LATENCY_P95_SECONDS, stage_a) == pytest.approx(8.8)


def test_rates_are_per_hour_whatever_the_window(db: Engine, states: States) -> None:
    for key in ("1", "2", "3"):
        states.attempt("notes", key, "a", "COMPLETED", finished=60, duration=1)

    found = metrics(db, MetricOptions(window_seconds=600))

    assert found.value(MetricName.STAGE_THROUGHPUT_PER_HOUR, NOTES) == 18


def test_no_attempts_in_the_window_means_no_failure_rate(db: Engine, states: States) -> None:
    states.record("notes", "1", DONE)

    assert metrics(db).value(MetricName.FAILURE_RATE, NOTES) is None


def test_throughput_and_mutation_latency_count_records_completed_in_the_window(
    db: Engine, states: States
) -> None:
    states.record("notes", "1", DONE, requested=110, finished=100)
    states.record("notes", "2", DONE, requested=120, finished=100)
    states.record("notes", "3", DONE, requested=130, finished=100)
    states.record("notes", "old", DONE, requested=7300, finished=7200)
    states.record("notes", "open", ("COMPLETED", "PENDING"), requested=50, finished=40)

    found = metrics(db)

    assert found.value(MetricName.THROUGHPUT_PER_HOUR, NOTES) == 3
    assert found.value(MetricName.ARRIVAL_RATE_PER_HOUR, NOTES) == 4
    assert found.value(MetricName.MUTATION_LATENCY_P50_SECONDS, NOTES) == 20
    assert found.value(MetricName.MUTATION_LATENCY_P95_SECONDS, NOTES) == pytest.approx(29)


def test_freshness_counts_records_enriched_within_the_sla_or_not_late_yet(
    db: Engine, states: States
) -> None:
    states.record("notes", "in time", DONE, requested=5000, finished=4000)
    states.record("notes", "late", DONE, requested=9000, finished=4000)
    states.record("notes", "young", ("COMPLETED", "PENDING"), requested=600, finished=500)
    states.record("notes", "stale", ("PENDING", "PENDING"), requested=4000)

    found = metrics(db, MetricOptions(freshness_sla_seconds=3600))

    assert found.value(MetricName.FRESHNESS_SLA_RATE, NOTES) == 50.0
    assert found.value(MetricName.STALE_RECORDS, NOTES) == 1


def test_confidence_distribution_reads_numbers_in_0_to_1_from_stage_outputs(
    db: Engine,
) -> None:
    states = States(db).source("tickets", ["classify", "embed"])
    confidences = [0.95, 0.75, 0.7, 0.5, 0.05, 1.0]
    for number, confidence in enumerate(confidences):
        states.record(
            "tickets", f"r{number}", DONE, outputs={"classify": {"confidence": confidence}}
        )
    states.record("tickets", "text", DONE, outputs={"classify": {"confidence": "high"}})
    states.record("tickets", "out of range", DONE, outputs={"classify": {"confidence": 1.5}})
    states.record("tickets", "none", DONE, outputs={"classify": {"label": "x"}})

    found = metrics(db)
    tickets = Scope(source="tickets")
    buckets = [found.value(confidence_bucket_name(b), tickets) for b in range(10)]

    assert found.value(MetricName.CONFIDENCE_COUNT, tickets) == 6
    assert found.value(MetricName.HIGH_CONFIDENCE_RATE, tickets) == pytest.approx(400 / 6)
    assert found.value(MetricName.CONFIDENCE_MEAN, tickets) == pytest.approx(sum(confidences) / 6)
    assert buckets == [1, 0, 0, 0, 0, 1, 0, 2, 0, 2]
    assert found.value(MetricName.CONFIDENCE_COUNT, Scope(source="tickets", stage="embed")) is None


def test_confidence_of_unfinished_rows_is_not_counted(db: Engine) -> None:
    # A re-queued row keeps its previous output until it runs again.
    states = States(db).source("tickets", ["classify"])
    states.row("tickets", "1", "classify", "PENDING", due=0, output={"confidence": 0.9})

    assert metrics(db).value(MetricName.CONFIDENCE_COUNT, Scope(source="tickets")) is None


def test_quality_score_weighs_completeness_success_and_confidence() -> None:
    assert quality_score(100.0, 0.0, 1.0) == 100.0
    assert quality_score(50.0, 20.0, 0.5) == pytest.approx(100 * (0.4 * 0.5 + 0.3 * 0.8 + 0.15))
    # No AI stage: completeness and success only, re-weighted.
    assert quality_score(70.0, None, None) == pytest.approx(100 * (0.4 * 0.7 + 0.3) / 0.7)


def test_quality_score_of_a_source(db: Engine) -> None:
    states = States(db).source("tickets", ["classify", "embed"])
    states.record("tickets", "1", DONE, outputs={"classify": {"confidence": 0.8}})
    states.record(
        "tickets", "2", ("COMPLETED", "PENDING"), outputs={"classify": {"confidence": 0.6}}
    )
    states.attempt("tickets", "1", "embed", "COMPLETED", finished=100, duration=1)
    states.attempt("tickets", "2", "embed", "FAILED", finished=100, duration=1, error_type="X")

    found = metrics(db)

    assert found.value(MetricName.QUALITY_SCORE, Scope(source="tickets")) == pytest.approx(
        quality_score(50.0, 50.0, 0.7)
    )


def test_capacity_hours_left() -> None:
    # 100 records/h clear 100 records within a one-hour SLA; growing by 10/h from 40.
    assert capacity_hours_left(
        backlog=40, growth_per_hour=10, capacity_per_hour=100, sla_seconds=3600
    ) == pytest.approx(6.0)
    assert (
        capacity_hours_left(backlog=150, growth_per_hour=0, capacity_per_hour=100, sla_seconds=3600)
        == 0.0
    )
    assert (
        capacity_hours_left(backlog=40, growth_per_hour=-5, capacity_per_hour=100, sla_seconds=3600)
        is None
    )
    assert (
        capacity_hours_left(backlog=40, growth_per_hour=5, capacity_per_hour=0, sla_seconds=3600)
        is None
    )


def test_capacity_is_the_peak_throughput_of_past_snapshots(db: Engine, states: States) -> None:
    # Now: 1 record completed and 3 arrived in the hour: the backlog grows by 2 per hour.
    states.record("notes", "done", DONE, requested=100, finished=50)
    states.record("notes", "x", ("PENDING", "PENDING"), requested=100)
    states.record("notes", "y", ("PENDING", "PENDING"), requested=100)
    states.snapshot_value("throughput_per_hour", 12.0, seconds_ago=86400, source="notes")
    states.snapshot_value("throughput_per_hour", 99.0, seconds_ago=86400 * 30, source="notes")

    found = metrics(db)

    assert found.value(MetricName.CAPACITY_PER_HOUR, NOTES) == 12
    assert found.value(MetricName.BACKLOG_GROWTH_PER_HOUR, NOTES) == 2
    # 12 records/h clear 12 within the SLA; the backlog of 2 grows by 2/h: 5 hours.
    assert found.value(MetricName.CAPACITY_HOURS_LEFT, NOTES) == pytest.approx(5.0)


def test_values_exist_per_workspace_source_and_stage_and_roll_up(db: Engine) -> None:
    states = States(db).source("notes", ["a", "b"]).source("mail", ["a"])
    states.record("notes", "1", DONE, workspace="acme")
    states.record("notes", "2", ("COMPLETED", "PENDING"), workspace="acme")
    states.record("notes", "3", ("PENDING", "PENDING"), workspace="globex")
    states.record("mail", "1", ("PENDING",), workspace="globex")

    found = metrics(db)
    backlog = MetricName.BACKLOG_SIZE

    assert found.value(backlog, Scope("acme", "notes", "b")) == 1
    assert found.value(backlog, Scope("globex", "notes", "a")) == 1
    assert found.value(backlog, Scope(None, "notes", "a")) == 1
    assert found.value(backlog, Scope("acme", "notes")) == 1
    assert found.value(backlog, Scope(None, "notes")) == 2
    assert found.value(backlog, Scope(None, "mail")) == 1
    assert found.value(backlog) == 3
    assert found.value(MetricName.COMPLETENESS_RATE, Scope("acme", "notes")) == 50.0
    assert found.value(MetricName.COMPLETENESS_RATE) == 25.0
    assert {scope.grain for scope in found.scopes()} == {
        "all",
        "source",
        "workspace_source",
        "source_stage",
        "workspace_source_stage",
    }


def test_an_empty_queue_has_zero_counts_and_no_rates(db: Engine) -> None:
    found = metrics(db)

    assert found.value(MetricName.BACKLOG_SIZE) == 0
    assert found.value(MetricName.DEAD_LETTERS) == 0
    assert found.value(MetricName.RECORDS) == 0
    assert found.value(MetricName.COMPLETENESS_RATE) is None
    assert found.value(MetricName.QUALITY_SCORE) is None
    assert found.value(MetricName.FAILURE_RATE) is None
