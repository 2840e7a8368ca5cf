"""Changing a source's declared stages carries existing records along, redoing nothing."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.helpers import FakeStage, pipeline, runner, send, states


def _drained(db: Engine, *stage_names: str) -> None:
    work = runner(db, pipeline("notes", *(FakeStage(name) for name in stage_names)))
    send(db, "notes", ["1", "2"])
    work.drain()


def test_added_stage_gets_a_due_row_for_every_finished_record(db: Engine) -> None:
    _drained(db, "a", "b")
    added = FakeStage("c")
    runner(db, pipeline("notes", FakeStage("a"), FakeStage("b"), added)).drain()

    assert sorted(added.seen) == ["1", "2"]
    assert {row["status"] for row in states(db, "notes").values()} == {"COMPLETED"}


def test_stage_inserted_in_the_middle_runs_before_the_stages_after_it(db: Engine) -> None:
    _drained(db, "a", "c")
    runner(db, pipeline("notes", FakeStage("a"), FakeStage("b"), FakeStage("c")))

    rows = states(db, "notes")
    assert rows[("1", "b")]["status"] == "PENDING"
    assert rows[("1", "b")]["next_attempt_at"] is not None  # due: 'a' is finished
    assert rows[("1", "b")]["stage_index"] == 1
    assert rows[("1", "c")]["stage_index"] == 2
    assert rows[("1", "c")]["status"] == "COMPLETED"  # done work is kept, not redone


def test_removed_stage_rows_are_deleted_and_later_stages_unblocked(db: Engine) -> None:
    work = runner(db, pipeline("notes", FakeStage("a"), FakeStage("b"), FakeStage("c")))
    send(db, "notes", ["1"])
    work.drain(stages=["a"])  # b and c still PENDING, c waiting behind b

    last = FakeStage("c")
    runner(db, pipeline("notes", FakeStage("a"), last)).drain()

    rows = states(db, "notes")
    assert set(rows) == {("1", "a"), ("1", "c")}
    assert last.seen == ["1"]
    assert rows[("1", "c")]["stage_index"] == 1


def test_registering_the_same_stages_again_changes_nothing(db: Engine) -> None:
    _drained(db, "a", "b")
    before = {key: dict(row) for key, row in states(db, "notes").items()}
    runner(db, pipeline("notes", FakeStage("a"), FakeStage("b")))
    after = {key: dict(row) for key, row in states(db, "notes").items()}
    assert after == before
