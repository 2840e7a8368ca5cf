"""Bad input is refused with an InvalidInput error that names the field, before anything is
written; the database's CHECK constraints refuse what gets past the code."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from enrichment.errors import InvalidInput, UnknownSource, UnknownStage
from enrichment.events import enqueue, parse_event
from tests.helpers import WORKSPACE, FakeStage, pipeline, runner, scalar

SOURCE = "messages"
GOOD: dict[str, Any] = {
    "workspace_id": WORKSPACE,
    "source": SOURCE,
    "record_ids": ["m1"],
    "action": "UPDATE",
}


def event(**changes: Any) -> dict[str, Any]:
    raw = {**GOOD, **changes}
    return {name: value for name, value in raw.items() if value is not ...}


MALFORMED = [
    pytest.param(event(workspace_id=...), "workspace_id", id="missing-workspace_id"),
    pytest.param(event(workspace_id=""), "workspace_id", id="empty-workspace_id"),
    pytest.param(event(source=...), "source", id="missing-source"),
    pytest.param(event(record_ids=[]), "record_ids", id="empty-record_ids"),
    pytest.param(event(record_ids=...), "record_ids", id="missing-record_ids"),
    pytest.param(event(record_ids=["m1", None]), "record_ids", id="record-id-none"),
    pytest.param(event(record_ids=["m1", ""]), "record_ids", id="record-id-empty"),
    pytest.param(event(record_ids=[True]), "record_ids", id="record-id-bool"),
    pytest.param(event(record_ids=None), "record_ids", id="record_ids-none"),
    pytest.param(event(priority="high"), "priority", id="extra-field"),
    pytest.param(event(action="UPSERT"), "action", id="unknown-action"),
    pytest.param(event(action=...), "action", id="missing-action"),
    pytest.param(event(reason="because"), "reason", id="unknown-reason"),
]


@pytest.mark.parametrize(("raw", "field"), MALFORMED)
def test_malformed_event_is_refused_naming_the_field(raw, field):
    with pytest.raises(InvalidInput) as raised:
        parse_event(raw)

    assert raised.value.field == field
    assert repr(field) in str(raised.value)


@pytest.mark.parametrize(("raw", "field"), MALFORMED)
def test_enqueue_refuses_a_malformed_event_and_writes_nothing(db, raw, field):
    runner(db, pipeline(SOURCE, FakeStage("extract")))

    with pytest.raises(InvalidInput) as raised, db.begin() as connection:
        enqueue(connection, [GOOD, raw])

    assert raised.value.field == field
    assert raised.value.record == "event 1"
    assert "event 1" in str(raised.value)
    assert scalar(db, "SELECT count(*) FROM enrichment.events") == 0


def test_record_id_error_says_which_position_is_bad():
    with pytest.raises(InvalidInput, match="position 1 is None"):
        parse_event(event(record_ids=["m1", None]))


def test_unknown_action_error_shows_what_was_given():
    with pytest.raises(InvalidInput, match="UPSERT"):
        parse_event(event(action="UPSERT"))


def test_integer_record_ids_are_accepted_as_text():
    assert parse_event(event(record_ids=[7, "m8"])).record_ids == ("7", "m8")


def test_enqueue_refuses_an_unknown_source_naming_the_field(db):
    runner(db, pipeline(SOURCE, FakeStage("extract")))

    with pytest.raises(UnknownSource) as raised, db.begin() as connection:
        enqueue(connection, [event(source="nope")])

    assert isinstance(raised.value, InvalidInput)
    assert raised.value.field == "events[0].source"
    assert "events[0].source" in str(raised.value)
    assert "'nope'" in str(raised.value)
    assert repr(SOURCE) in str(raised.value)  # and lists the known ones


def test_drain_refuses_an_unknown_source_naming_the_field(db):
    r = runner(db, pipeline(SOURCE, FakeStage("extract")))

    with pytest.raises(UnknownSource) as raised:
        r.drain(sources=["nope"])

    assert raised.value.field == "source"
    assert "'nope'" in str(raised.value)


def test_drain_refuses_an_unknown_stage_naming_the_field(db):
    r = runner(db, pipeline(SOURCE, FakeStage("extract"), FakeStage("embed")))

    with pytest.raises(UnknownStage) as raised:
        r.drain(stages=["nope"])

    assert isinstance(raised.value, InvalidInput)
    assert raised.value.field == "stage"
    assert "'stage'" in str(raised.value)
    assert "'nope'" in str(raised.value)
    assert "'extract', 'embed'" in str(raised.value) or "'embed', 'extract'" in str(raised.value)


def test_drain_with_an_unknown_stage_does_no_work(db):
    extract = FakeStage("extract")
    r = runner(db, pipeline(SOURCE, extract))
    with db.begin() as connection:
        enqueue(connection, [GOOD])

    with pytest.raises(UnknownStage):
        r.drain(stages=["extract", "nope"])

    assert extract.seen == []
    assert scalar(db, "SELECT count(*) FROM enrichment.events WHERE folded_at IS NULL") == 1


def test_pipeline_spec_refuses_an_unknown_stage_naming_the_field():
    p = pipeline(SOURCE, FakeStage("extract"))

    with pytest.raises(UnknownStage) as raised:
        p.spec("nope")

    assert raised.value.field == "stage"
    assert "'nope'" in str(raised.value)
    assert repr(SOURCE) in str(raised.value)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: pipeline("Bad Source", FakeStage("extract")), "source"),
        (lambda: pipeline(SOURCE), "stages"),
        (lambda: pipeline(SOURCE, FakeStage("Extract!")), "stages[0].name"),
        (lambda: pipeline(SOURCE, FakeStage("a"), FakeStage("a")), "stages[1].name"),
        (lambda: pipeline(SOURCE, FakeStage("a"), lease_seconds=0), "stages[0].lease_seconds"),
    ],
    ids=["source-name", "no-stages", "stage-name", "duplicate-stage", "lease"],
)
def test_bad_pipeline_declaration_is_refused_naming_the_field(make, field):
    with pytest.raises(InvalidInput) as raised:
        make()

    assert raised.value.field == field
    assert repr(field) in str(raised.value)


# --- the database's own checks ----------------------------------------------------------------


INSERT_EVENT = (
    "INSERT INTO enrichment.events (workspace_id, source, record_ids, action) "
    "VALUES (:workspace_id, :source, CAST(:record_ids AS text[]), :action)"
)


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"action": "UPSERT"}, "events_action_check"),
        ({"record_ids": []}, "events_record_ids_check"),
        ({"workspace_id": ""}, "events_workspace_id_check"),
        ({"source": ""}, "events_source_check"),
    ],
    ids=["action", "record_ids", "workspace_id", "source"],
)
def test_database_rejects_a_bad_event_inserted_directly(db, changes, constraint):
    with pytest.raises(IntegrityError) as raised, db.begin() as connection:
        connection.execute(text(INSERT_EVENT), {**GOOD, **changes})

    assert raised.value.orig.diag.constraint_name == constraint
    assert scalar(db, "SELECT count(*) FROM enrichment.events") == 0


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("status = 'DONE', next_attempt_at = NULL", "record_state_status_check"),
        ("status = 'IN_PROGRESS', next_attempt_at = NULL", "record_state_lease_iff_in_progress"),
        ("lease_owner = 'w'", "record_state_lease_iff_in_progress"),
        ("status = 'COMPLETED'", "record_state_due_only_when_waiting"),
        ("status = 'FAILED', output = '{}'", "record_state_failed_has_no_output"),
        ("attempts = -1", "record_state_attempts_check"),
    ],
)
def test_database_rejects_an_inconsistent_record_state(db, assignment, constraint):
    r = runner(db, pipeline(SOURCE, FakeStage("extract")))
    with db.begin() as connection:
        enqueue(connection, [GOOD])
    r.fold_events()  # m1 is PENDING and due

    with pytest.raises(IntegrityError) as raised, db.begin() as connection:
        connection.execute(text(f"UPDATE enrichment.record_state SET {assignment}"))

    assert raised.value.orig.diag.constraint_name == constraint
