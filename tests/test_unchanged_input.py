"""A stage that sees the input of its last completion again does not make later stages redo
their work; a forced event (manual re-embed) does."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from enrichment.events import enqueue
from enrichment.stages.base import ClaimedRecord, Completed, Failed
from tests.helpers import FakeStage, pipeline, runner, send, states


class HashingStage(FakeStage):
    """Completes with an input hash taken from ``inputs`` (what the stage 'read')."""

    def __init__(self, name: str, inputs: dict[str, str]) -> None:
        super().__init__(name)
        self.inputs = inputs

    def run(self, records: Sequence[ClaimedRecord]) -> dict[str, object]:
        self.batches.append(list(records))
        return {
            r.record_key: Completed(
                output={"text": self.inputs[r.record_key]},
                input_hash=f"h:{self.inputs[r.record_key]}",
            )
            for r in records
        }


def _three_stages(db: Engine, inputs: dict[str, str]):
    first = HashingStage("context", inputs)
    second = HashingStage("chunk", inputs)
    third = HashingStage("embed", inputs)
    work = runner(db, pipeline("notes", first, second, third))
    return work, first, second, third


def test_unchanged_input_restores_later_stages_without_running_them(db: Engine) -> None:
    inputs = {"1": "a", "2": "b"}
    work, first, second, third = _three_stages(db, inputs)
    send(db, "notes", ["1", "2"], "CREATE")
    work.drain()
    before = {k: dict(v) for k, v in states(db, "notes").items()}

    inputs["2"] = "b changed"
    send(db, "notes", ["1", "2"])
    report = work.drain()

    assert sorted(first.seen) == ["1", "1", "2", "2"]
    assert sorted(second.seen) == ["1", "2", "2"]  # record 1's input was unchanged
    assert sorted(third.seen) == ["1", "2", "2"]
    assert report.total("unchanged") == 1
    after = states(db, "notes")
    assert {row["status"] for row in after.values()} == {"COMPLETED"}
    assert after[("1", "embed")]["output"] == before[("1", "embed")]["output"]
    assert after[("2", "embed")]["output"] == {"text": "b changed"}


def test_forced_event_redoes_every_stage_even_for_unchanged_input(db: Engine) -> None:
    inputs = {"1": "a"}
    work, _, _, third = _three_stages(db, inputs)
    send(db, "notes", ["1"], "CREATE")
    work.drain()

    with db.begin() as connection:
        enqueue(
            connection,
            [
                {
                    "workspace_id": "ws1",
                    "source": "notes",
                    "record_ids": ["1"],
                    "action": "UPDATE",
                    "reason": "manual_reembed",
                    "force": True,
                }
            ],
        )
    report = work.drain()

    assert third.seen == ["1", "1"]
    assert report.total("unchanged") == 0


def test_stage_that_failed_last_time_runs_again_and_stages_after_it_too(db: Engine) -> None:
    inputs = {"1": "a"}
    first = HashingStage("context", inputs)
    flaky = FakeStage("chunk", {"1": Failed("Boom", "no", retryable=False)})
    third = HashingStage("embed", inputs)
    work = runner(db, pipeline("notes", first, flaky, third))
    send(db, "notes", ["1"], "CREATE")
    work.drain()
    assert states(db, "notes")[("1", "chunk")]["input_hash"] is None  # cleared by the failure

    flaky.outcomes.clear()
    send(db, "notes", ["1"])
    work.drain()

    assert flaky.seen == ["1", "1"]
    assert third.seen == ["1"]
    assert {row["status"] for row in states(db, "notes").values()} == {"COMPLETED"}
