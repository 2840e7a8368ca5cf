"""Every state transition of the record-state queue, on a real PostgreSQL.

A record has one row per stage. Events fold into rows (PENDING, only the first stage due);
claims lease rows (IN_PROGRESS); outcomes finish them (COMPLETED / SKIPPED / FAILED), and
finishing a stage is what makes the next one due.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from enrichment.clock import FrozenClock
from enrichment.errors import UnknownSource
from enrichment.events import enqueue
from enrichment.queue import Queue
from enrichment.retry import RetryPolicy
from enrichment.runner import Runner
from enrichment.stages.base import ClaimedRecord, Completed, Failed, Skipped
from tests.helpers import (
    OMIT,
    WORKSPACE,
    FakeStage,
    RaisingStage,
    attempts,
    fold_now,
    pipeline,
    runner,
    scalar,
    send,
    state,
    states,
)

SOURCE = "messages"
YEAR = 365 * 24 * 3600


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def claim(engine: Engine, clock: FrozenClock, stage: str, owner: str, lease: float = 30.0):
    with engine.begin() as connection:
        return Queue(connection, clock).claim(
            SOURCE, stage, owner=owner, limit=100, lease_seconds=lease
        )


def event_times(engine: Engine) -> list:
    with engine.connect() as connection:
        return list(
            connection.execute(text("SELECT created_at FROM enrichment.events ORDER BY id"))
            .scalars()
            .all()
        )


# --- fold and claim ---------------------------------------------------------------------------


def test_fold_creates_one_row_per_stage_with_only_the_first_stage_due(db, clock):
    stages = FakeStage("extract"), FakeStage("embed"), FakeStage("index")
    runner(db, pipeline(SOURCE, *stages), clock=clock)
    send(db, SOURCE, ["m1", "m2"], "CREATE")

    result = fold_now(db, clock)

    assert (result.events, result.requeued_records) == (1, 2)
    rows = states(db, SOURCE)
    assert len(rows) == 6
    for key in ("m1", "m2"):
        for index, stage in enumerate(("extract", "embed", "index")):
            row = rows[(key, stage)]
            assert row["status"] == "PENDING"
            assert row["stage_index"] == index
            assert row["attempts"] == 0
            assert row["workspace_id"] == WORKSPACE
            assert row["lease_owner"] is None
            assert row["next_attempt_at"] == (clock.now() if index == 0 else None)


def test_claim_leases_the_row_to_its_owner_until_expiry_and_counts_an_attempt(db, clock):
    runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    claimed = claim(db, clock, "extract", owner="worker-a/1", lease=30)

    assert [(c.record_key, c.workspace_id, c.attempt) for c in claimed] == [("m1", WORKSPACE, 1)]
    row = state(db, SOURCE, "m1", "extract")
    assert row["status"] == "IN_PROGRESS"
    assert row["lease_owner"] == "worker-a/1"
    assert row["lease_expires_at"] == clock.now() + timedelta(seconds=30)
    assert row["started_at"] == clock.now()
    assert row["attempts"] == 1
    assert row["next_attempt_at"] is None


def test_claimed_rows_are_not_claimed_again_and_the_limit_is_respected(db, clock):
    runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    send(db, SOURCE, ["m1", "m2", "m3"])
    fold_now(db, clock)

    with db.begin() as connection:
        first = Queue(connection, clock).claim(
            SOURCE, "extract", owner="a", limit=2, lease_seconds=30
        )
    second = claim(db, clock, "extract", owner="b")
    third = claim(db, clock, "extract", owner="c")

    assert len(first) == 2
    assert len(second) == 1
    assert third == []
    assert {c.record_key for c in first} | {c.record_key for c in second} == {"m1", "m2", "m3"}


# --- outcomes ---------------------------------------------------------------------------------


def test_completed_stores_output_and_input_hash_and_makes_the_next_stage_due(db, clock):
    extract = FakeStage("extract", {"m1": Completed(output={"title": "hi"}, input_hash="h1")})
    r = runner(db, pipeline(SOURCE, extract, FakeStage("embed")), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    report = r.run_batch(SOURCE, "extract")

    assert (report.claimed, report.completed) == (1, 1)
    row = state(db, SOURCE, "m1", "extract")
    assert row["status"] == "COMPLETED"
    assert row["output"] == {"title": "hi"}
    assert row["input_hash"] == "h1"
    assert row["lease_owner"] is None
    assert row["lease_expires_at"] is None
    assert row["next_attempt_at"] is None
    assert row["finished_at"] == clock.now()
    embed = state(db, SOURCE, "m1", "embed")
    assert (embed["status"], embed["next_attempt_at"]) == ("PENDING", clock.now())
    [attempt] = attempts(db)
    assert (attempt["stage"], attempt["attempt"], attempt["outcome"]) == ("extract", 1, "COMPLETED")
    assert attempt["worker"].startswith("worker-a/")


def test_skipped_stores_its_reason_and_makes_the_next_stage_due(db, clock):
    extract = FakeStage("extract", {"m1": Skipped("empty message")})
    r = runner(db, pipeline(SOURCE, extract, FakeStage("embed")), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    report = r.run_batch(SOURCE, "extract")

    assert report.skipped == 1
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["skip_reason"], row["output"]) == ("SKIPPED", "empty message", None)
    embed = state(db, SOURCE, "m1", "embed")
    assert (embed["status"], embed["next_attempt_at"]) == ("PENDING", clock.now())
    [attempt] = attempts(db)
    assert (attempt["outcome"], attempt["error_message"]) == ("SKIPPED", "empty message")


def test_skip_remaining_skips_every_later_stage_with_the_same_reason(db, clock):
    extract = FakeStage("extract", {"m1": Skipped("low confidence", skip_remaining=True)})
    embed, index = FakeStage("embed"), FakeStage("index")
    r = runner(db, pipeline(SOURCE, extract, embed, index), clock=clock)
    send(db, SOURCE, ["m1", "m2"])

    r.drain()

    for stage in ("extract", "embed", "index"):
        row = state(db, SOURCE, "m1", stage)
        assert (row["status"], row["skip_reason"]) == ("SKIPPED", "low confidence")
        assert row["next_attempt_at"] is None
        assert state(db, SOURCE, "m2", stage)["status"] == "COMPLETED"
    assert embed.seen == index.seen == ["m2"]


def test_retryable_failure_is_failed_with_null_output_and_scheduled_after_the_first_delay(
    db, clock
):
    extract = FakeStage("extract", {"m1": Completed(output={"v": 1}, input_hash="h")})
    r = runner(db, pipeline(SOURCE, extract), clock=clock)  # default policy: 60 s ± 10 %
    send(db, SOURCE, ["m1"])
    r.drain()
    send(db, SOURCE, ["m1"])  # requeue: the previous output is kept until the stage runs
    fold_now(db, clock)
    assert state(db, SOURCE, "m1", "extract")["output"] == {"v": 1}
    extract.outcomes["m1"] = Failed("Timeout", "model timed out")

    report = r.run_batch(SOURCE, "extract")

    assert (report.failed, report.dead_lettered) == (1, 0)
    row = state(db, SOURCE, "m1", "extract")
    assert row["status"] == "FAILED"
    assert row["output"] is None
    assert (row["last_error_type"], row["last_error_message"]) == ("Timeout", "model timed out")
    assert row["lease_owner"] is None
    delay = (row["next_attempt_at"] - clock.now()).total_seconds()
    assert 54 <= delay <= 66
    failure = attempts(db)[-1]
    assert failure["outcome"] == "FAILED"
    assert (failure["error_type"], failure["error_message"]) == ("Timeout", "model timed out")
    assert (failure["attempt"], failure["dead_lettered"]) == (1, False)


def test_permanent_failure_is_dead_lettered_at_once(db, clock):
    extract = FakeStage("extract", {"m1": Failed("BadRecord", "no body", retryable=False)})
    r = runner(db, pipeline(SOURCE, extract), clock=clock)
    send(db, SOURCE, ["m1"])

    report = r.drain()

    assert (report.total("failed"), report.total("dead_lettered")) == (1, 1)
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["next_attempt_at"], row["attempts"]) == ("FAILED", None, 1)
    assert attempts(db)[-1]["dead_lettered"] is True
    clock.advance(YEAR)
    assert r.drain().total("claimed") == 0


# --- stage order ------------------------------------------------------------------------------


@pytest.mark.parametrize("first_stage", ["PENDING", "IN_PROGRESS", "FAILED", "DEAD_LETTER"])
def test_later_stage_is_never_claimable_until_the_earlier_stage_finishes(db, clock, first_stage):
    outcomes = {
        "FAILED": Failed("Timeout", "slow"),
        "DEAD_LETTER": Failed("BadRecord", "no body", retryable=False),
    }
    extract = FakeStage("extract", {"m1": outcomes.get(first_stage, Completed())})
    r = runner(db, pipeline(SOURCE, extract, FakeStage("embed")), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)
    if first_stage == "IN_PROGRESS":
        claim(db, clock, "extract", owner="a")
    elif first_stage in outcomes:
        r.run_batch(SOURCE, "extract")
    assert state(db, SOURCE, "m1", "extract")["status"] == first_stage.replace(
        "DEAD_LETTER", "FAILED"
    )

    clock.advance(10 * YEAR)

    assert claim(db, clock, "embed", owner="b") == []
    assert state(db, SOURCE, "m1", "embed")["status"] == "PENDING"


def test_drain_runs_every_record_through_the_stages_in_declared_order(db, clock):
    def extract_is_done(records: list[ClaimedRecord]) -> None:
        for record in records:
            assert state(db, SOURCE, record.record_key, "extract")["status"] == "COMPLETED"

    extract = FakeStage("extract")
    embed = FakeStage("embed", before_return=extract_is_done)
    r = runner(db, pipeline(SOURCE, extract, embed), clock=clock, batch_size=7)
    keys = [f"m{i}" for i in range(20)]
    send(db, SOURCE, keys)

    r.drain()

    assert sorted(extract.seen) == sorted(embed.seen) == sorted(keys)
    assert {row["status"] for row in states(db, SOURCE).values()} == {"COMPLETED"}


# --- lease fencing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "late_outcome",
    [
        Completed(output={"stale": True}),
        Skipped("stale", skip_remaining=True),
        Failed("Timeout", "stale"),
    ],
    ids=["completed", "skipped", "failed"],
)
def test_reclaimed_lease_fences_off_the_first_workers_outcome(db, clock, late_outcome):
    retry = RetryPolicy(delays=(0,), jitter=0)
    holder: dict[str, str] = {}

    def lease_expires_and_another_worker_takes_over(records: list[ClaimedRecord]) -> None:
        clock.advance(31)
        other = Runner(db, [p], clock=clock, worker="worker-b")
        assert other.reclaim_expired() == 1
        [taken] = claim(db, clock, "extract", owner="worker-b/1")
        holder["owner"] = "worker-b/1"
        assert taken.attempt == 2

    extract = FakeStage(
        "extract", default=late_outcome, before_return=lease_expires_and_another_worker_takes_over
    )
    p = pipeline(SOURCE, extract, FakeStage("embed"), retry=retry, lease_seconds=30)
    r = runner(db, p, clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    report = r.run_batch(SOURCE, "extract")

    assert report.lost_leases == 1
    assert (report.completed, report.skipped, report.failed) == (0, 0, 0)
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["lease_owner"], row["attempts"]) == (
        "IN_PROGRESS",
        holder["owner"],
        2,
    )
    assert row["output"] is None
    embed = state(db, SOURCE, "m1", "embed")
    assert (embed["status"], embed["next_attempt_at"]) == ("PENDING", None)
    assert [(a["attempt"], a["error_type"]) for a in attempts(db)] == [(1, "LeaseExpired")]


# --- events -----------------------------------------------------------------------------------


def test_updates_of_one_record_coalesce_into_one_pending_unit_of_work(db, clock):
    extract = FakeStage("extract")
    r = runner(db, pipeline(SOURCE, extract, FakeStage("embed")), clock=clock)
    for _ in range(3):
        send(db, SOURCE, ["m1"])

    result = fold_now(db, clock)

    assert (result.events, result.requeued_records) == (3, 1)
    rows = states(db, SOURCE)
    assert sorted(rows) == [("m1", "embed"), ("m1", "extract")]
    assert {row["requested_at"] for row in rows.values()} == {min(event_times(db))}
    r.drain()
    assert extract.seen == ["m1"]


def test_updates_folded_separately_keep_the_oldest_request_time(db, clock):
    runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    first, second = event_times(db)
    assert first < second
    [row] = states(db, SOURCE).values()
    assert (row["status"], row["requested_at"]) == ("PENDING", first)


def test_update_while_a_retry_is_scheduled_keeps_the_oldest_request_time(db, clock):
    extract = FakeStage("extract", {"m1": Failed("Timeout", "slow")})
    r = runner(db, pipeline(SOURCE, extract), clock=clock)
    send(db, SOURCE, ["m1"])
    r.drain()
    assert state(db, SOURCE, "m1", "extract")["status"] == "FAILED"

    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    first, _ = event_times(db)
    assert state(db, SOURCE, "m1", "extract")["requested_at"] == first


def test_update_after_completion_starts_a_new_request_time(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    send(db, SOURCE, ["m1"])
    r.drain()

    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    _, second = event_times(db)
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["requested_at"], row["attempts"]) == ("PENDING", second, 0)


@pytest.mark.parametrize(
    ("existed", "actions", "status"),
    [
        (False, ["CREATE", "DELETE"], None),  # never comes to life
        (True, ["UPDATE", "DELETE"], "SKIPPED"),
        (True, ["DELETE", "UPDATE"], "PENDING"),
    ],
    ids=["create-then-delete", "update-then-delete", "delete-then-update"],
)
def test_the_newest_event_of_a_fold_decides(db, clock, existed, actions, status):
    r = runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    if existed:
        send(db, SOURCE, ["m1"], "CREATE")
        r.drain()
    for action in actions:
        send(db, SOURCE, ["m1"], action)

    fold_now(db, clock)

    row = states(db, SOURCE).get(("m1", "extract"))
    assert (row["status"] if row else None) == status


def test_delete_of_an_unknown_record_changes_nothing(db, clock):
    runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    send(db, SOURCE, ["never-seen"], "DELETE")

    result = fold_now(db, clock)

    assert (result.events, result.deleted_records) == (1, 0)
    assert states(db, SOURCE) == {}


def test_delete_removes_pending_work_and_marks_the_record_deleted(db, clock):
    extract = FakeStage("extract", {"m1": Completed(output={"v": 1})})
    embed = FakeStage("embed")
    r = runner(db, pipeline(SOURCE, extract, embed), clock=clock)
    send(db, SOURCE, ["m1", "m2"])
    fold_now(db, clock)
    r.run_batch(SOURCE, "extract")  # extract COMPLETED, embed due
    clock.advance(5)

    send(db, SOURCE, ["m1"], "DELETE")
    result = fold_now(db, clock)

    assert result.deleted_records == 1
    for stage in ("extract", "embed"):
        row = state(db, SOURCE, "m1", stage)
        assert (row["status"], row["skip_reason"]) == ("SKIPPED", "record deleted")
        assert row["output"] is None
        assert row["deleted_at"] == clock.now()
        assert row["next_attempt_at"] is None
    r.drain()
    assert embed.seen == ["m2"]
    assert state(db, SOURCE, "m2", "embed")["status"] == "COMPLETED"


def test_delete_while_in_progress_fences_off_the_workers_outcome(db, clock):
    def record_is_deleted_meanwhile(records: list[ClaimedRecord]) -> None:
        send(db, SOURCE, ["m1"], "DELETE")
        fold_now(db, clock)

    extract = FakeStage("extract", before_return=record_is_deleted_meanwhile)
    r = runner(db, pipeline(SOURCE, extract), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    report = r.run_batch(SOURCE, "extract")

    assert (report.lost_leases, report.completed) == (1, 0)
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["skip_reason"], row["output"]) == ("SKIPPED", "record deleted", None)
    assert attempts(db) == []


def test_create_after_delete_resurrects_the_record(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract"), FakeStage("embed")), clock=clock)
    send(db, SOURCE, ["m1"], "CREATE")
    r.drain()
    send(db, SOURCE, ["m1"], "DELETE")
    fold_now(db, clock)

    send(db, SOURCE, ["m1"], "CREATE")
    fold_now(db, clock)

    extract = state(db, SOURCE, "m1", "extract")
    assert extract["status"] == "PENDING"
    assert (extract["deleted_at"], extract["skip_reason"], extract["attempts"]) == (None, None, 0)
    assert extract["next_attempt_at"] == clock.now()
    r.drain()
    assert {row["status"] for row in states(db, SOURCE).values()} == {"COMPLETED"}


def test_resending_an_event_with_the_same_idempotency_key_changes_nothing(db, clock):
    extract = FakeStage("extract")
    r = runner(db, pipeline(SOURCE, extract), clock=clock)
    assert send(db, SOURCE, ["m1"], idempotency_key="crm-42").inserted == 1
    r.drain()
    before = states(db, SOURCE)

    again = send(db, SOURCE, ["m1"], idempotency_key="crm-42")

    assert (again.inserted, again.duplicates) == (0, 1)
    assert fold_now(db, clock).events == 0
    assert scalar(db, "SELECT count(*) FROM enrichment.events") == 1
    assert states(db, SOURCE) == before
    assert r.drain().total("claimed") == 0
    assert extract.seen == ["m1"]


def test_update_while_in_progress_requeues_the_record_and_fences_off_the_old_lease(db, clock):
    def record_changes_meanwhile(records: list[ClaimedRecord]) -> None:
        if len(extract.batches) == 1:
            send(db, SOURCE, ["m1"])
            fold_now(db, clock)

    extract = FakeStage(
        "extract",
        default=lambda record: Completed(output={"run": len(extract.batches)}),
        before_return=record_changes_meanwhile,
    )
    r = runner(db, pipeline(SOURCE, extract, FakeStage("embed")), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)

    report = r.run_batch(SOURCE, "extract")

    assert (report.lost_leases, report.completed) == (1, 0)
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("PENDING", 0, None)
    assert row["next_attempt_at"] == clock.now()
    assert row["output"] is None
    assert state(db, SOURCE, "m1", "embed")["next_attempt_at"] is None

    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["output"]) == ("COMPLETED", {"run": 2})
    assert [(a["stage"], a["attempt"]) for a in attempts(db)] == [("extract", 1), ("embed", 1)]


def test_clean_drain_leaves_nothing_in_progress(db, clock):
    extract = FakeStage(
        "extract",
        {
            "m1": Failed("Timeout", "slow"),
            "m2": Failed("BadRecord", "bad", retryable=False),
            "m3": Skipped("empty"),
            "m4": Skipped("low confidence", skip_remaining=True),
            "m5": OMIT,
            "m6": Completed(output={"nan": float("nan")}),
        },
    )
    embed = FakeStage("embed", {"m7": Failed("Timeout", "slow")})
    r = runner(db, pipeline(SOURCE, extract, embed), clock=clock, batch_size=3)
    send(db, SOURCE, [f"m{i}" for i in range(1, 30)])

    report = r.drain()

    assert report.total("claimed") > 0
    assert (
        scalar(db, "SELECT count(*) FROM enrichment.record_state WHERE status = 'IN_PROGRESS'") == 0
    )
    assert (
        scalar(db, "SELECT count(*) FROM enrichment.record_state WHERE lease_owner IS NOT NULL")
        == 0
    )


# --- stage contract violations ----------------------------------------------------------------


def test_stage_exception_fails_every_record_of_the_batch_as_retryable(db, clock):
    r = runner(
        db, pipeline(SOURCE, RaisingStage("extract", RuntimeError("model down"))), clock=clock
    )
    send(db, SOURCE, ["m1", "m2", "m3"])

    report = r.drain()

    assert (report.total("failed"), report.total("dead_lettered")) == (3, 0)
    for key in ("m1", "m2", "m3"):
        row = state(db, SOURCE, key, "extract")
        assert (row["status"], row["last_error_type"]) == ("FAILED", "RuntimeError")
        assert row["last_error_message"] == "model down"
        assert row["next_attempt_at"] is not None
    assert [a["error_type"] for a in attempts(db)] == ["RuntimeError"] * 3


def test_missing_outcome_fails_only_that_record(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract", {"m2": OMIT})), clock=clock)
    send(db, SOURCE, ["m1", "m2"])

    r.drain()

    assert state(db, SOURCE, "m1", "extract")["status"] == "COMPLETED"
    row = state(db, SOURCE, "m2", "extract")
    assert (row["status"], row["last_error_type"]) == ("FAILED", "MissingOutcome")
    assert "'m2'" in row["last_error_message"]
    assert row["next_attempt_at"] is not None


@pytest.mark.parametrize(
    "output",
    [{"score": float("nan")}, {"score": float("inf")}, {(1, 2): "tuple key"}],
    ids=["nan", "infinity", "tuple-key"],
)
def test_non_json_output_is_a_permanent_invalid_output_failure_naming_the_record(db, clock, output):
    r = runner(db, pipeline(SOURCE, FakeStage("extract", {"m2": Completed(output)})), clock=clock)
    send(db, SOURCE, ["m1", "m2"])

    report = r.drain()

    assert report.total("dead_lettered") == 1
    assert state(db, SOURCE, "m1", "extract")["status"] == "COMPLETED"
    row = state(db, SOURCE, "m2", "extract")
    assert (row["status"], row["last_error_type"]) == ("FAILED", "InvalidOutput")
    assert "'m2'" in row["last_error_message"]
    assert (row["next_attempt_at"], row["output"]) == (None, None)


def test_output_postgres_cannot_store_is_a_permanent_invalid_output_failure(db, clock):
    extract = FakeStage("extract", {"m2": Completed({"text": "nul \x00 byte"})})
    r = runner(db, pipeline(SOURCE, extract), clock=clock)
    send(db, SOURCE, ["m1", "m2"])

    report = r.drain()

    assert report.total("dead_lettered") == 1
    assert state(db, SOURCE, "m1", "extract")["status"] == "COMPLETED"
    row = state(db, SOURCE, "m2", "extract")
    assert (row["status"], row["last_error_type"]) == ("FAILED", "InvalidOutput")
    assert "'m2'" in row["last_error_message"]


def test_output_with_backslash_u0000_as_text_is_stored(db, clock):
    output = {"text": "\\u0000 is how JSON escapes NUL"}
    r = runner(db, pipeline(SOURCE, FakeStage("extract", {"m1": Completed(output)})), clock=clock)
    send(db, SOURCE, ["m1"])

    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["output"]) == ("COMPLETED", output)


def test_failure_text_with_a_nul_character_is_stored_escaped(db, clock):
    extract = FakeStage("extract", {"m1": Failed("Decode\x00Error", "bad byte \x00 here")})
    r = runner(db, pipeline(SOURCE, extract), clock=clock)
    send(db, SOURCE, ["m1", "m2"])

    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert row["status"] == "FAILED"
    assert row["last_error_type"] == "Decode\\x00Error"
    assert row["last_error_message"] == "bad byte \\x00 here"
    assert state(db, SOURCE, "m2", "extract")["status"] == "COMPLETED"


def test_skip_reason_with_a_nul_character_is_stored_escaped(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract", {"m1": Skipped("nul \x00")})), clock=clock)
    send(db, SOURCE, ["m1"])

    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["skip_reason"]) == ("SKIPPED", "nul \\x00")


def test_returning_something_other_than_an_outcome_is_a_permanent_failure(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract", {"m1": "done"})), clock=clock)
    send(db, SOURCE, ["m1"])

    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["last_error_type"]) == ("FAILED", "InvalidOutcome")
    assert "'m1'" in row["last_error_message"]
    assert row["next_attempt_at"] is None


# --- dead letters -----------------------------------------------------------------------------


@pytest.fixture
def dead_letters(db, clock):
    """messages: m1 extract BadInput, m2 extract Timeout, m3 embed Timeout (all dead), m4
    extract Timeout (retrying, not dead); tickets: t1 extract Timeout (dead)."""
    extract = FakeStage(
        "extract",
        {
            "m1": Failed("BadInput", "no text", retryable=False),
            "m2": Failed("Timeout", "slow", retryable=False),
            "m4": Failed("Timeout", "slow"),
        },
    )
    embed = FakeStage("embed", {"m3": Failed("Timeout", "slow", retryable=False)})
    tickets = FakeStage("extract", {"t1": Failed("Timeout", "slow", retryable=False)})
    r = runner(
        db,
        pipeline(SOURCE, extract, embed),
        pipeline("tickets", tickets),
        clock=clock,
    )
    send(db, SOURCE, ["m1", "m2", "m3", "m4"])
    send(db, "tickets", ["t1"])
    r.drain()
    return r, extract, embed, tickets


def letters(db, **filters) -> set[tuple[str, str, str]]:
    with db.connect() as connection:
        found = Queue(connection).dead_letters(**filters)
    return {(d.source, d.stage, d.record_key) for d in found}


def test_dead_letters_lists_every_dead_letter_and_no_scheduled_retry(db, dead_letters):
    assert letters(db) == {
        (SOURCE, "extract", "m1"),
        (SOURCE, "extract", "m2"),
        (SOURCE, "embed", "m3"),
        ("tickets", "extract", "t1"),
    }
    with db.connect() as connection:
        [m1] = Queue(connection).dead_letters(error_type="BadInput")
    assert (m1.workspace_id, m1.attempts, m1.error_message) == (WORKSPACE, 1, "no text")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"source": "tickets"}, {("tickets", "extract", "t1")}),
        ({"stage": "embed"}, {(SOURCE, "embed", "m3")}),
        (
            {"error_type": "Timeout"},
            {(SOURCE, "extract", "m2"), (SOURCE, "embed", "m3"), ("tickets", "extract", "t1")},
        ),
        (
            {"source": SOURCE, "stage": "extract", "error_type": "Timeout"},
            {(SOURCE, "extract", "m2")},
        ),
        ({"error_type": "NoSuchError"}, set()),
    ],
    ids=["source", "stage", "error-type", "all-filters", "no-match"],
)
def test_dead_letters_are_filtered_by_source_stage_and_error_type(
    db, dead_letters, filters, expected
):
    assert letters(db, **filters) == expected


def test_retry_dead_letters_requeues_only_the_matching_dead_letters(db, clock, dead_letters):
    r, extract, embed, _ = dead_letters
    clock.advance(10)
    with db.begin() as connection:
        count = Queue(connection, clock).retry_dead_letters(source=SOURCE, error_type="Timeout")

    assert count == 2
    for key, stage in (("m2", "extract"), ("m3", "embed")):
        row = state(db, SOURCE, key, stage)
        assert (row["status"], row["attempts"], row["next_attempt_at"]) == (
            "PENDING",
            0,
            clock.now(),
        )
    assert letters(db) == {(SOURCE, "extract", "m1"), ("tickets", "extract", "t1")}
    assert state(db, SOURCE, "m4", "extract")["status"] == "FAILED"  # still waiting to retry

    extract.outcomes.pop("m2")
    embed.outcomes.pop("m3")
    r.drain()
    assert state(db, SOURCE, "m2", "embed")["status"] == "COMPLETED"
    assert state(db, SOURCE, "m3", "embed")["status"] == "COMPLETED"


# --- unknown sources --------------------------------------------------------------------------


def test_enqueue_refuses_events_for_an_unregistered_source_naming_the_field(db, clock):
    runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    events = [
        {"workspace_id": WORKSPACE, "source": SOURCE, "record_ids": ["m1"], "action": "CREATE"},
        {"workspace_id": WORKSPACE, "source": "ghost", "record_ids": ["g1"], "action": "CREATE"},
    ]

    with pytest.raises(UnknownSource) as raised, db.begin() as connection:
        enqueue(connection, events)

    assert raised.value.field == "events[1].source"
    assert "events[1].source" in str(raised.value)
    assert "'ghost'" in str(raised.value)
    assert scalar(db, "SELECT count(*) FROM enrichment.events") == 0


def test_event_with_unknown_source_inserted_directly_gets_a_visible_fold_error(db, clock):
    runner(db, pipeline(SOURCE, FakeStage("extract")), clock=clock)
    with db.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO enrichment.events (workspace_id, source, record_ids, action) "
                "VALUES ('ws1', 'ghost', '{g1}', 'CREATE'), ('ws1', :source, '{m1}', 'CREATE')"
            ),
            {"source": SOURCE},
        )

    result = fold_now(db, clock)

    assert (result.events, result.rejected, result.requeued_records) == (2, 1, 1)
    with db.connect() as connection:
        ghost = connection.execute(
            text("SELECT folded_at, fold_error FROM enrichment.events WHERE source = 'ghost'")
        ).one()
    assert ghost.folded_at is not None
    assert ghost.fold_error == "unknown source 'ghost'"
    assert set(states(db)) == {("m1", "extract")}
