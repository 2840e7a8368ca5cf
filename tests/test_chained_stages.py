"""A drain takes a claimed batch on through the following stages of its plan: each stage's
rows are leased to the batch's owner in the transaction that persists the stage before, with
the same attempts, fencing and lease expiry as a claim's, and nothing is left leased when the
plan or the budget ends the chain."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from enrichment.clock import FrozenClock
from enrichment.errors import EnrichmentError
from enrichment.retry import RetryPolicy
from enrichment.stages.base import ClaimedRecord, Completed, Failed, Skipped
from tests.helpers import FakeStage, attempts, pipeline, runner, scalar, send, state, states

SOURCE = "chained"
LEASE_SECONDS = 30.0


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def _in_progress(engine: Engine) -> int:
    return int(
        scalar(engine, "SELECT count(*) FROM enrichment.record_state WHERE status = 'IN_PROGRESS'")
    )


def _due(engine: Engine, stage: str) -> set[str]:
    return {
        key
        for (key, name), row in states(engine, SOURCE).items()
        if name == stage and row["next_attempt_at"] is not None and row["lease_owner"] is None
    }


def test_a_batch_goes_through_every_stage_under_its_own_lease(db, clock):
    seen_while_running: list[tuple[str, str, str, str]] = []

    def earlier_stages_are_committed(records: Sequence[ClaimedRecord]) -> None:
        for record in records:
            row = state(db, SOURCE, record.record_key, record.stage)
            previous = "extract" if record.stage == "label" else "label"
            before = state(db, SOURCE, record.record_key, previous)
            seen_while_running.append(
                (record.stage, row["status"], before["status"], row["lease_owner"])
            )

    extract = FakeStage("extract")
    label = FakeStage("label", before_return=earlier_stages_are_committed)
    embed = FakeStage("embed", before_return=earlier_stages_are_committed)
    r = runner(db, pipeline(SOURCE, extract, label, embed), clock=clock, batch_size=7)
    keys = [f"r{i:02d}" for i in range(20)]
    send(db, SOURCE, keys, "CREATE")

    report = r.drain()

    assert {row["status"] for row in states(db, SOURCE).values()} == {"COMPLETED"}
    assert [len(batch) for batch in extract.batches] == [7, 7, 6]
    # Each later stage ran the same batches, in the same order, each record once.
    for later in (label, embed):
        assert [sorted(r.record_key for r in batch) for batch in later.batches] == [
            sorted(r.record_key for r in batch) for batch in extract.batches
        ]
        assert all(record.attempt == 1 for batch in later.batches for record in batch)
    # While a later stage ran, its row was leased and the stage before it committed.
    assert {(status, before) for _, status, before, _ in seen_while_running} == {
        ("IN_PROGRESS", "COMPLETED")
    }
    # One lease owner per batch, through all three stages, as the attempts log shows.
    owners: dict[str, set[str]] = defaultdict(set)
    for row in attempts(db):
        assert (row["attempt"], row["outcome"]) == (1, "COMPLETED")
        owners[row["record_key"]].add(row["worker"])
    assert all(len(worker) == 1 for worker in owners.values())
    assert len({next(iter(worker)) for worker in owners.values()}) == 3
    assert report.total("claimed") == 60
    assert report.total("completed") == 60
    assert [(row["stage"], row["batches"]) for row in report.by_stage()] == [
        ("extract", 3),
        ("label", 3),
        ("embed", 3),
    ]


def test_only_records_that_finished_go_on_and_the_rest_keep_their_own_schedule(db, clock):
    retry = RetryPolicy(delays=(60,), jitter=0)
    extract = FakeStage(
        "extract",
        {
            "failed": Failed("Timeout", "slow"),
            "gated": Skipped("low confidence", skip_remaining=True),
            "empty": Skipped("nothing to extract"),
        },
    )
    embed = FakeStage("embed")
    r = runner(db, pipeline(SOURCE, extract, embed, retry=retry), clock=clock)
    send(db, SOURCE, ["failed", "gated", "empty", "fine"], "CREATE")

    r.drain()

    assert sorted(embed.seen) == ["empty", "fine"]
    rows = states(db, SOURCE)
    assert rows[("failed", "extract")]["status"] == "FAILED"
    assert rows[("failed", "embed")]["status"] == "PENDING"
    assert rows[("failed", "embed")]["next_attempt_at"] is None
    assert rows[("gated", "embed")]["status"] == "SKIPPED"
    assert rows[("fine", "embed")]["status"] == rows[("empty", "embed")]["status"] == "COMPLETED"
    assert _in_progress(db) == 0


def test_stages_outside_the_plan_are_made_due_not_leased(db, clock):
    extract = FakeStage("extract")
    embed = FakeStage("embed")
    r = runner(db, pipeline(SOURCE, extract, embed), clock=clock, batch_size=4)
    keys = [f"r{i}" for i in range(10)]
    send(db, SOURCE, keys, "CREATE")

    r.drain(stages=["extract"])

    assert embed.seen == []
    assert _in_progress(db) == 0
    assert _due(db, "embed") == set(keys)

    r.drain()

    assert sorted(embed.seen) == sorted(keys)
    assert {row["status"] for row in states(db, SOURCE).values()} == {"COMPLETED"}


def test_the_record_limit_counts_chained_leases_and_leaves_the_rest_due(db, clock):
    extract = FakeStage("extract")
    embed = FakeStage("embed")
    r = runner(db, pipeline(SOURCE, extract, embed), clock=clock, batch_size=7)
    send(db, SOURCE, [f"r{i:02d}" for i in range(20)], "CREATE")

    report = r.drain(max_records=10)

    assert report.total("claimed") == 10
    assert (len(extract.seen), len(embed.seen)) == (7, 3)
    assert _in_progress(db) == 0
    assert len(_due(db, "embed")) == 4  # finished extract, not leased: due for any worker
    assert set(embed.seen) < set(extract.seen)


def test_a_batch_that_runs_out_of_time_leaves_its_next_stage_due_not_leased(db, clock):
    extract = FakeStage("extract", before_return=lambda records: time.sleep(0.3))
    embed = FakeStage("embed")
    r = runner(db, pipeline(SOURCE, extract, embed), clock=clock, batch_size=5)
    keys = [f"r{i}" for i in range(5)]
    send(db, SOURCE, keys, "CREATE")

    report = r.drain(time_budget=0.1)

    assert sorted(extract.seen) == sorted(keys)
    assert embed.seen == []
    assert report.total("completed") == 5
    assert _in_progress(db) == 0
    assert _due(db, "embed") == set(keys)


class _Misconfigured(EnrichmentError):
    """Stops a drain in the middle of a chain, as a worker that dies there would."""


def test_a_chained_lease_whose_worker_stops_is_reclaimed_and_retried(db, clock):
    def stop_once(records: Sequence[ClaimedRecord]) -> None:
        if len(embed.batches) == 1:
            raise _Misconfigured("the worker stops with the embed stage leased")

    extract = FakeStage("extract")
    embed = FakeStage("embed", before_return=stop_once)
    p = pipeline(
        SOURCE,
        extract,
        embed,
        retry=RetryPolicy(delays=(0,), jitter=0),
        lease_seconds=LEASE_SECONDS,
    )
    first = runner(db, p, clock=clock, worker="first")
    keys = ["a", "b", "c"]
    send(db, SOURCE, keys, "CREATE")

    with pytest.raises(_Misconfigured):
        first.drain()

    rows = states(db, SOURCE)
    for key in keys:
        assert rows[(key, "extract")]["status"] == "COMPLETED"
        leased = rows[(key, "embed")]
        assert (leased["status"], leased["attempts"]) == ("IN_PROGRESS", 1)
        assert leased["lease_owner"].startswith("first/")
        assert leased["lease_expires_at"] == clock.now() + timedelta(seconds=LEASE_SECONDS)

    clock.advance(LEASE_SECONDS + 1)
    second = runner(db, p, clock=clock, worker="second")
    report = second.drain()

    assert report.reclaimed == 3
    assert {row["status"] for row in states(db, SOURCE).values()} == {"COMPLETED"}
    for key in keys:
        assert [
            (a["stage"], a["attempt"], a["outcome"], a["error_type"]) for a in attempts(db, key)
        ] == [
            ("extract", 1, "COMPLETED", None),
            ("embed", 1, "FAILED", "LeaseExpired"),
            ("embed", 2, "COMPLETED", None),
        ]


def test_outcomes_of_a_chained_stage_are_fenced_like_a_claimed_one(db, clock):
    def lease_expires_and_another_worker_takes_over(records: Sequence[ClaimedRecord]) -> None:
        clock.advance(LEASE_SECONDS + 1)
        other = runner(db, p, clock=clock, worker="other")
        assert other.reclaim_expired() == len(records)

    extract = FakeStage("extract")
    embed = FakeStage(
        "embed",
        default=Completed(output={"stale": True}),
        before_return=lease_expires_and_another_worker_takes_over,
    )
    p = pipeline(
        SOURCE,
        extract,
        embed,
        retry=RetryPolicy(delays=(60,), jitter=0),
        lease_seconds=LEASE_SECONDS,
    )
    r = runner(db, p, clock=clock)
    send(db, SOURCE, ["a", "b"], "CREATE")

    report = r.drain()

    embed_batches = [b for b in report.batches if b.stage == "embed"]
    assert [(b.claimed, b.completed, b.lost_leases) for b in embed_batches] == [(2, 0, 2)]
    for key in ("a", "b"):
        row = state(db, SOURCE, key, "embed")
        assert (row["status"], row["output"]) == ("FAILED", None)
