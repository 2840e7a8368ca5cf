"""Confidence gates and re-checks on the real queue: a gated record's later stages are SKIPPED
with the reason, it comes back after the re-check age (a FrozenClock moves, nothing sleeps),
its gate decides again, and after max_rechecks for the same input it stays gated, visibly.
Also the runner's hooks the AI stages rely on: a gate's own result is written like a
completion's, written results are forgotten on failure and gate, announcements come after the
commit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from typer.testing import CliRunner

from enrichment import cli
from enrichment.clock import FrozenClock
from enrichment.rechecks import gated_records, requeue_due_rechecks
from enrichment.retry import RetryPolicy
from enrichment.settings import get_settings
from enrichment.stages.base import ClaimedRecord, Completed, Failed, Recheck, Skipped
from tests.helpers import FakeStage, pipeline, runner, send, state, states

SOURCE = "gated"
DAY = 86_400.0
REASON = "low confidence: label 'x' has confidence 0.4000, below min_confidence 0.6"


class GateStage(FakeStage):
    """Gates the keys in ``low`` (with the input hash in ``inputs``), completes the others."""

    def __init__(self, *, max_rechecks: int = 2) -> None:
        super().__init__("classify", default=self._decide)
        self.low: set[str] = set()
        self.inputs: dict[str, str] = {}
        self.max_rechecks = max_rechecks

    def _decide(self, record: ClaimedRecord) -> Completed | Skipped:
        digest = self.inputs.get(record.record_key, "input-1")
        if record.record_key in self.low:
            return Skipped(
                REASON,
                skip_remaining=True,
                output={"label": "x", "confidence": 0.4},
                recheck=Recheck(DAY, self.max_rechecks, digest),
            )
        return Completed(output={"label": "x", "confidence": 0.9}, input_hash=digest)


@pytest.fixture
def clean(db: Engine) -> Engine:
    with db.begin() as connection:
        connection.execute(text("TRUNCATE enrichment.rechecks"))
    return db


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def gate() -> GateStage:
    return GateStage()


@pytest.fixture
def later() -> FakeStage:
    return FakeStage("resolve")


@pytest.fixture
def run(clean: Engine, clock: FrozenClock, gate: GateStage, later: FakeStage):
    worker = runner(clean, pipeline(SOURCE, FakeStage("context"), gate, later), clock=clock)

    def drain() -> None:
        worker.drain()

    return drain


def requeue(engine: Engine, clock: FrozenClock, **filters: Any) -> int:
    with engine.begin() as connection:
        return requeue_due_rechecks(connection, clock, **filters)


def recheck_row(engine: Engine, key: str) -> Mapping[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM enrichment.rechecks WHERE source = :s AND record_key = :k"),
            {"s": SOURCE, "k": key},
        ).mappings()
        return next(iter(row), None)


def test_a_gated_record_skips_its_later_stages_with_the_reason(clean, run, gate, later) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1", "r2"])

    run()

    assert state(clean, SOURCE, "r1", "classify")["status"] == "SKIPPED"
    assert state(clean, SOURCE, "r1", "classify")["output"] == {"label": "x", "confidence": 0.4}
    resolved = state(clean, SOURCE, "r1", "resolve")
    assert (resolved["status"], resolved["skip_reason"]) == ("SKIPPED", REASON)
    assert later.seen == ["r2"]


def test_the_gate_schedules_a_recheck_after_its_age(clean, run, gate, clock) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])

    run()

    row = recheck_row(clean, "r1")
    assert row is not None
    assert row["due_at"] == clock.now() + timedelta(days=1)
    assert (row["rechecks"], row["max_rechecks"], row["reason"]) == (0, 2, REASON)
    assert row["workspace_id"] == "ws1"


def test_a_gated_record_is_not_requeued_before_its_recheck_age(clean, run, gate, clock) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()

    clock.advance(DAY - 60)

    assert requeue(clean, clock) == 0


def test_after_the_recheck_age_the_record_comes_back_and_its_gate_decides_again(
    clean, run, gate, later, clock
) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    gate.low = set()  # this time the classifier is sure
    clock.advance(DAY)

    assert requeue(clean, clock) == 1
    run()

    assert gate.seen == ["r1", "r1"]
    assert later.seen == ["r1"]
    assert state(clean, SOURCE, "r1", "resolve")["status"] == "COMPLETED"


def test_the_requeue_is_an_update_event_with_reason_reprocess(clean, run, gate, clock) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    clock.advance(DAY)

    requeue(clean, clock)

    with clean.connect() as connection:
        event = (
            connection.execute(text("SELECT * FROM enrichment.events ORDER BY id DESC LIMIT 1"))
            .mappings()
            .one()
        )
    assert (event["action"], event["reason"], event["force"]) == ("UPDATE", "reprocess", False)
    assert list(event["record_ids"]) == ["r1"] and event["workspace_id"] == "ws1"


def test_a_due_recheck_is_requeued_once_however_often_it_is_asked(clean, run, gate, clock) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    clock.advance(DAY)

    assert requeue(clean, clock) == 1
    assert requeue(clean, clock) == 0
    clock.advance(3 * DAY)
    assert requeue(clean, clock) == 0  # not gated again yet: nothing new is due


def test_the_same_input_gated_again_stops_after_max_rechecks_and_stays_visible(
    clean, run, gate, clock
) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    for _ in range(2):  # max_rechecks = 2
        clock.advance(DAY)
        assert requeue(clean, clock) == 1
        run()

    clock.advance(30 * DAY)

    assert requeue(clean, clock) == 0
    assert len(gate.seen) == 3
    with clean.connect() as connection:
        [held] = gated_records(connection, source=SOURCE)
    assert (held.record_key, held.rechecks, held.max_rechecks) == ("r1", 2, 2)
    assert held.due_at is None and held.reason == REASON


def test_a_different_input_starts_the_count_afresh(clean, run, gate, clock) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    for _ in range(2):
        clock.advance(DAY)
        requeue(clean, clock)
        run()
    gate.inputs["r1"] = "input-2"  # the record changed: an UPDATE event, gated again

    send(clean, SOURCE, ["r1"])
    run()

    row = recheck_row(clean, "r1")
    assert row is not None and row["rechecks"] == 0 and row["due_at"] is not None
    clock.advance(DAY)
    assert requeue(clean, clock) == 1


def test_a_record_completed_since_its_gate_is_not_requeued_and_its_row_goes(
    clean, run, gate, clock
) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    gate.low = set()
    send(clean, SOURCE, ["r1"])  # changed before the re-check: classified again, surely
    run()
    clock.advance(DAY)

    assert requeue(clean, clock) == 0
    assert recheck_row(clean, "r1") is None


def test_a_deleted_record_is_not_requeued(clean, run, gate, clock) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()
    send(clean, SOURCE, ["r1"], action="DELETE")
    run()
    clock.advance(DAY)

    assert requeue(clean, clock) == 0
    with clean.connect() as connection:
        assert gated_records(connection, source=SOURCE) == []


def test_requeue_can_be_limited_to_a_workspace_and_a_source(clean, run, gate, clock) -> None:
    gate.low = {"a1", "b1"}
    send(clean, SOURCE, ["a1"], workspace="acme")
    send(clean, SOURCE, ["b1"], workspace="globex")
    run()
    clock.advance(DAY)

    assert requeue(clean, clock, source="other") == 0
    assert requeue(clean, clock, workspace="acme") == 1
    assert requeue(clean, clock, source=SOURCE) == 1


def test_requeue_takes_at_most_limit_records(clean, run, gate, clock) -> None:
    gate.low = {f"r{i}" for i in range(5)}
    send(clean, SOURCE, sorted(gate.low))
    run()
    clock.advance(DAY)

    assert requeue(clean, clock, limit=3) == 3
    assert requeue(clean, clock, limit=3) == 2


def test_a_gate_without_rechecks_is_final_at_once_and_listed(clean, clock) -> None:
    gate = GateStage(max_rechecks=0)
    gate.low = {"r1"}
    worker = runner(clean, pipeline(SOURCE, gate, FakeStage("resolve")), clock=clock)
    send(clean, SOURCE, ["r1"])
    worker.drain()
    clock.advance(DAY)

    assert requeue(clean, clock) == 0
    with clean.connect() as connection:
        [held] = gated_records(connection)
    assert held.due_at is None and held.rechecks == 0


# --- the runner's hooks for stages that write outside record_state --------------------------


class WritingGate(FakeStage):
    """Records what the runner asks it to write, forget and announce (in the database, so a
    rolled-back transaction leaves no trace)."""

    def __init__(self, name: str, engine: Engine, outcomes: Mapping[str, object]) -> None:
        super().__init__(name, outcomes)
        self.engine = engine
        self.announced: list[dict[str, str]] = []

    def write(self, connection: Connection, effects: Mapping[str, Any]) -> None:
        for key, value in effects.items():
            self._log(connection, "write", key, str(value))

    def forget(self, connection: Connection, keys: Sequence[str]) -> None:
        for key in keys:
            self._log(connection, "forget", key, "")

    def announce(self, finished: Mapping[str, Completed | Skipped]) -> None:
        # Read from another connection: only committed outcomes are visible there.
        with self.engine.connect() as connection:
            committed = dict(
                connection.execute(
                    text(
                        "SELECT record_key, status FROM enrichment.record_state "
                        "WHERE stage = :stage AND record_key = ANY(:keys)"
                    ),
                    {"stage": self.name, "keys": list(finished)},
                ).all()
            )
        self.announced.append(
            {key: f"{type(o).__name__}/{committed.get(key)}" for key, o in finished.items()}
        )

    def _log(self, connection: Connection, what: str, key: str, value: str) -> None:
        connection.execute(
            text("INSERT INTO public.stage_log VALUES (:stage, :what, :key, :value)"),
            {"stage": self.name, "what": what, "key": key, "value": value},
        )


@pytest.fixture
def stage_log(clean: Engine):
    with clean.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.stage_log; CREATE TABLE public.stage_log "
                "(stage text, what text, key text, value text)"
            )
        )

    def read() -> list[tuple[str, str, str, str]]:
        with clean.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    text("SELECT * FROM public.stage_log ORDER BY stage, what, key")
                )
            ]

    yield read
    with clean.begin() as connection:
        connection.execute(text("DROP TABLE public.stage_log"))


def test_a_gates_own_result_is_written_and_later_stages_forget_theirs(
    clean, clock, stage_log
) -> None:
    first = WritingGate(
        "classify",
        clean,
        {
            "ok": Completed(output={}, effects="label=a"),
            "low": Skipped(REASON, skip_remaining=True, effects="label=b"),
        },
    )
    second = WritingGate("resolve", clean, {})
    worker = runner(clean, pipeline(SOURCE, first, second), clock=clock)
    send(clean, SOURCE, ["ok", "low"])

    worker.drain()

    assert stage_log() == [
        ("classify", "write", "low", "label=b"),
        ("classify", "write", "ok", "label=a"),
        ("resolve", "forget", "low", ""),
        ("resolve", "write", "ok", "None"),
    ]


def test_a_failed_attempt_forgets_this_stages_and_later_stages_results(
    clean, clock, stage_log
) -> None:
    first = WritingGate("classify", clean, {"bad": Failed("OutOfSetAnswer", "nope")})
    second = WritingGate("resolve", clean, {})
    retry = RetryPolicy(delays=(60.0,))
    worker = runner(clean, pipeline(SOURCE, first, second, retry=retry), clock=clock)
    send(clean, SOURCE, ["bad"])

    worker.drain()

    assert stage_log() == [("classify", "forget", "bad", ""), ("resolve", "forget", "bad", "")]
    assert state(clean, SOURCE, "bad", "classify")["status"] == "FAILED"


def test_announcements_come_after_the_commit_with_what_was_finished(
    clean, clock, stage_log
) -> None:
    first = WritingGate(
        "classify",
        clean,
        {"a": Completed(output={}), "b": Skipped("no text"), "c": Failed("Boom", "x")},
    )
    worker = runner(clean, pipeline(SOURCE, first), clock=clock)
    send(clean, SOURCE, ["a", "b", "c"])

    worker.drain()

    assert first.announced == [{"a": "Completed/COMPLETED", "b": "Skipped/SKIPPED"}]


def test_an_announcement_that_fails_does_not_undo_the_recorded_outcomes(clean, clock) -> None:
    class Loud(FakeStage):
        def announce(self, finished: Mapping[str, Completed | Skipped]) -> None:
            raise RuntimeError("the events API is down")

    worker = runner(clean, pipeline(SOURCE, Loud("classify")), clock=clock)
    send(clean, SOURCE, ["a"])

    report = worker.drain()

    assert report.total("completed") == 1
    assert {row["status"] for row in states(clean, SOURCE).values()} == {"COMPLETED"}


# --- enrich rechecks -----------------------------------------------------------------------


@pytest.fixture
def enrich(clean: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(cli.app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def test_enrich_rechecks_lists_gated_records_with_their_reason(clean, run, gate, enrich) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1", "r2"])
    run()

    result = enrich("rechecks", "--json")

    assert result.exit_code == 0
    [held] = json.loads(result.output)
    assert (held["record_key"], held["stage"], held["reason"]) == ("r1", "classify", REASON)
    assert held["rechecks"] == 0 and held["due_at"] is not None


def test_enrich_rechecks_requeue_brings_back_due_records(clean, run, gate, enrich) -> None:
    gate.low = {"r1"}
    send(clean, SOURCE, ["r1"])
    run()  # gated on the frozen clock's day, long before the database's today: due now

    result = enrich("rechecks", "--requeue")

    assert result.exit_code == 0 and "re-queued 1 records" in result.output
    assert enrich("rechecks", "--requeue").output.startswith("re-queued 0")
