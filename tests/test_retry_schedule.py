"""When failed and abandoned attempts are tried again, and when they become dead letters.

The clock is frozen and moved by hand; jitter is 0 so the schedule is exact.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from enrichment.clock import FrozenClock
from enrichment.pipeline import Pipeline, StageSpec
from enrichment.queue import Queue
from enrichment.retry import RetryPolicy
from enrichment.runner import Runner
from enrichment.settings import DEFAULT_RETRY_DELAYS
from enrichment.stages.base import Failed
from tests.helpers import AlwaysFails, FakeStage, attempts, fold_now, pipeline, runner, send, state

SOURCE = "messages"
SCHEDULE = (60, 300, 900, 3600, 14400)  # 1 min, 5 min, 15 min, 1 h, 4 h
EXACT = RetryPolicy(jitter=0)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def fail_through_schedule(r: Runner, clock: FrozenClock) -> None:
    """Fail attempt 1 and each of the five retries, advancing exactly to each retry."""
    assert r.drain().total("failed") == 1
    for delay in SCHEDULE:
        clock.advance(delay)
        assert r.drain().total("failed") == 1


# --- the default schedule ---------------------------------------------------------------------


def test_failing_record_is_retried_after_1m_5m_15m_1h_4h_and_not_before(db, clock):
    r = runner(db, pipeline(SOURCE, AlwaysFails("extract"), retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])
    assert r.drain().total("failed") == 1

    for attempt, delay in enumerate(SCHEDULE, start=2):
        failed_at = clock.now()
        row = state(db, SOURCE, "m1", "extract")
        assert row["next_attempt_at"] == failed_at + timedelta(seconds=delay)

        clock.advance(delay - 1)
        assert r.drain().total("claimed") == 0, f"retry {attempt - 1} ran early"

        clock.advance(1)
        report = r.drain()
        assert report.total("claimed") == 1, f"retry {attempt - 1} did not run on time"
        assert state(db, SOURCE, "m1", "extract")["attempts"] == attempt


def test_failing_record_is_dead_lettered_after_its_sixth_failed_attempt(db, clock):
    r = runner(db, pipeline(SOURCE, AlwaysFails("extract"), retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])

    fail_through_schedule(r, clock)

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("FAILED", 6, None)
    with db.connect() as connection:
        [letter] = Queue(connection).dead_letters()
    assert (letter.record_key, letter.attempts, letter.error_type) == ("m1", 6, "Flaky")
    clock.advance(365 * 24 * 3600)
    assert r.drain().total("claimed") == 0


def test_attempts_table_logs_every_failed_attempt_and_the_dead_letter_on_the_last(db, clock):
    start = clock.now()
    r = runner(db, pipeline(SOURCE, AlwaysFails("extract"), retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])

    fail_through_schedule(r, clock)

    rows = attempts(db, "m1")
    assert [a["attempt"] for a in rows] == [1, 2, 3, 4, 5, 6]
    assert {a["outcome"] for a in rows} == {"FAILED"}
    assert {a["error_type"] for a in rows} == {"Flaky"}
    assert [a["error_message"] for a in rows] == [f"attempt {n} of m1" for n in range(1, 7)]
    assert [a["dead_lettered"] for a in rows] == [False] * 5 + [True]
    elapsed = [0, *(sum(SCHEDULE[:n]) for n in range(1, 6))]
    assert [a["finished_at"] for a in rows] == [start + timedelta(seconds=s) for s in elapsed]


def test_record_that_recovers_on_a_retry_completes_and_is_not_retried_again(db, clock):
    stage = AlwaysFails("extract")
    r = runner(db, pipeline(SOURCE, stage, retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])
    r.drain()
    stage.default = None  # the model is back

    clock.advance(60)
    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["attempts"], row["last_error_type"]) == ("COMPLETED", 2, None)
    assert [(a["attempt"], a["outcome"]) for a in attempts(db)] == [(1, "FAILED"), (2, "COMPLETED")]
    clock.advance(24 * 3600)
    assert r.drain().total("claimed") == 0


# --- per-stage policies -----------------------------------------------------------------------


def test_each_stage_follows_its_own_retry_policy(db, clock):
    start = clock.now()
    fails = Failed("Flaky", "try again")
    extract = FakeStage("extract", {"m1": fails})
    embed = FakeStage("embed", {"m2": fails})
    p = Pipeline(
        SOURCE,
        (
            StageSpec(extract, retry=RetryPolicy(delays=(10, 20), jitter=0)),
            StageSpec(embed, retry=RetryPolicy(delays=(5,), jitter=0)),
        ),
    )
    r = runner(db, p, clock=clock)
    send(db, SOURCE, ["m1", "m2"])

    r.drain()  # m1 extract attempt 1 fails; m2 extract completes, embed attempt 1 fails
    assert state(db, SOURCE, "m1", "extract")["next_attempt_at"] == start + timedelta(seconds=10)
    assert state(db, SOURCE, "m2", "embed")["next_attempt_at"] == start + timedelta(seconds=5)

    clock.advance(5)
    r.drain()  # m2 embed attempt 2 fails: one retry allowed, so it is dead
    embed_row = state(db, SOURCE, "m2", "embed")
    assert (embed_row["attempts"], embed_row["next_attempt_at"]) == (2, None)
    assert state(db, SOURCE, "m1", "extract")["attempts"] == 1

    clock.advance(5)
    r.drain()  # m1 extract attempt 2 fails at t=10, next at t=30
    assert state(db, SOURCE, "m1", "extract")["next_attempt_at"] == start + timedelta(seconds=30)

    clock.advance(19)
    assert r.drain().total("claimed") == 0
    clock.advance(1)
    r.drain()  # m1 extract attempt 3 fails: two retries allowed, so it is dead
    extract_row = state(db, SOURCE, "m1", "extract")
    assert (extract_row["attempts"], extract_row["next_attempt_at"]) == (3, None)


def test_zero_delay_retries_run_in_the_same_drain_until_dead_lettered(db, clock):
    retry = RetryPolicy(delays=(0, 0, 0), jitter=0)
    r = runner(db, pipeline(SOURCE, AlwaysFails("extract"), retry=retry), clock=clock)
    send(db, SOURCE, ["m1"])

    report = r.drain()

    assert (report.total("failed"), report.total("dead_lettered")) == (4, 1)
    assert [a["attempt"] for a in attempts(db)] == [1, 2, 3, 4]


# --- expired leases ---------------------------------------------------------------------------


def abandon_lease(db, clock, *, lease: float = 30.0, owner: str = "crashed:99/abc") -> None:
    """A worker claims m1 and dies without a word."""
    with db.begin() as connection:
        [claimed] = Queue(connection, clock).claim(
            SOURCE, "extract", owner=owner, limit=10, lease_seconds=lease
        )
    assert claimed.record_key == "m1"


def test_lease_is_not_reclaimed_before_it_expires(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract"), retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)
    abandon_lease(db, clock, lease=30)

    clock.advance(29)
    report = r.drain()

    assert (report.reclaimed, report.total("claimed")) == (0, 0)
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["lease_owner"]) == ("IN_PROGRESS", "crashed:99/abc")


def test_expired_lease_is_reclaimed_and_counts_as_an_attempt(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract"), retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)
    abandon_lease(db, clock, lease=30)

    clock.advance(30)
    report = r.drain()

    assert report.reclaimed == 1
    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("FAILED", 1, None)
    assert row["last_error_type"] == "LeaseExpired"
    assert row["next_attempt_at"] == clock.now() + timedelta(seconds=60)
    [lost] = attempts(db)
    assert (lost["attempt"], lost["outcome"], lost["error_type"]) == (1, "FAILED", "LeaseExpired")
    assert lost["worker"] == "crashed:99/abc"
    assert "crashed:99/abc" in lost["error_message"]


def test_reclaimed_record_is_retried_on_the_stage_schedule(db, clock):
    r = runner(db, pipeline(SOURCE, FakeStage("extract"), retry=EXACT), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)
    abandon_lease(db, clock, lease=30)
    clock.advance(30)
    r.drain()

    clock.advance(59)
    assert r.drain().total("claimed") == 0
    clock.advance(1)
    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["attempts"]) == ("COMPLETED", 2)
    assert [(a["attempt"], a["outcome"], a["error_type"]) for a in attempts(db)] == [
        (1, "FAILED", "LeaseExpired"),
        (2, "COMPLETED", None),
    ]


def test_expired_lease_on_the_last_attempt_is_dead_lettered(db, clock):
    retry = RetryPolicy(delays=(), jitter=0)  # no retries at all
    r = runner(db, pipeline(SOURCE, FakeStage("extract"), retry=retry), clock=clock)
    send(db, SOURCE, ["m1"])
    fold_now(db, clock)
    abandon_lease(db, clock, lease=30)

    clock.advance(31)
    r.drain()

    row = state(db, SOURCE, "m1", "extract")
    assert (row["status"], row["last_error_type"], row["next_attempt_at"]) == (
        "FAILED",
        "LeaseExpired",
        None,
    )
    assert attempts(db)[-1]["dead_lettered"] is True


def test_expired_lease_of_another_source_is_left_to_that_sources_workers(db, clock):
    messages = runner(db, pipeline(SOURCE, FakeStage("extract"), retry=EXACT), clock=clock)
    tickets = runner(db, pipeline("tickets", FakeStage("triage")), clock=clock)
    send(db, SOURCE, ["m1"])
    send(db, "tickets", ["t1"])
    fold_now(db, clock)
    abandon_lease(db, clock, lease=30)
    clock.advance(31)

    report = tickets.drain()

    assert (report.reclaimed, report.total("completed")) == (0, 1)
    assert state(db, SOURCE, "m1", "extract")["status"] == "IN_PROGRESS"
    assert messages.drain().reclaimed == 1


# --- RetryPolicy ------------------------------------------------------------------------------


def test_default_policy_is_1m_5m_15m_1h_4h_with_five_retries():
    policy = RetryPolicy(jitter=0)

    assert DEFAULT_RETRY_DELAYS == SCHEDULE
    assert policy.max_retries == 5
    assert [policy.next_delay(n, retryable=True) for n in range(1, 7)] == [*SCHEDULE, None]


def test_jitter_keeps_each_delay_within_its_bounds():
    policy = RetryPolicy(delays=(100.0, 1000.0), jitter=0.2, rng=random.Random(7))

    first = [policy.next_delay(1, retryable=True) for _ in range(2000)]
    second = [policy.next_delay(2, retryable=True) for _ in range(2000)]

    assert all(80.0 <= d <= 120.0 for d in first)
    assert all(800.0 <= d <= 1200.0 for d in second)
    assert min(first) < 85.0 and max(first) > 115.0  # the whole range is used
    assert len(set(first)) > 1000


def test_zero_jitter_gives_the_exact_delays():
    policy = RetryPolicy(delays=(7.5, 30.0), jitter=0)

    assert [policy.next_delay(n, retryable=True) for n in (1, 2)] == [7.5, 30.0]


def test_max_retries_is_the_number_of_delays():
    policy = RetryPolicy(delays=(1.0, 2.0, 3.0), jitter=0)

    assert policy.max_retries == 3
    assert policy.next_delay(3, retryable=True) == 3.0
    assert policy.next_delay(4, retryable=True) is None


def test_no_delays_dead_letters_the_first_failure():
    assert RetryPolicy(delays=()).next_delay(1, retryable=True) is None


@pytest.mark.parametrize("attempt", [1, 3, 6])
def test_non_retryable_failure_is_never_retried(attempt):
    assert RetryPolicy().next_delay(attempt, retryable=False) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delays": (60.0, -1.0)}, "delays"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_invalid_policy_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)
