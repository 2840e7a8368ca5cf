"""The context stage: a wrong configuration stops the run naming the key; a record that is not
in its table is a dead letter naming the record and the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from enrichment.config import parse_config
from enrichment.errors import InvalidInput
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, sync
from tests.helpers import send, states


def _source(**overrides: object) -> dict:
    source = {
        "name": "tickets",
        "table": "public.ctx_tickets",
        "columns": ["body"],
        "entity": {"type": "ticket", "category": "Ticket"},
        "stages": ["context"],
    }
    return {"sources": [{**source, **overrides}]}


@pytest.fixture
def tickets(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.ctx_tickets; CREATE TABLE public.ctx_tickets "
                "(id int PRIMARY KEY, workspace_id text, body text, updated_at timestamptz); "
                "INSERT INTO public.ctx_tickets VALUES (1, 'acme', 'printer on fire', now())"
            )
        )
    yield db
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.ctx_tickets"))


def _runner(db: Engine, data: dict) -> Runner:
    config = parse_config(data)
    pipelines = build_pipelines(db, config, Settings(retry_delays=(), retry_jitter=0.0))
    sync(db, config, pipelines)
    return Runner(db, pipelines)


def test_a_column_missing_from_the_table_stops_the_run_naming_the_key(tickets: Engine) -> None:
    runner = _runner(tickets, _source(updated_at_column="modified_at"))
    send(tickets, "tickets", ["1"], "CREATE", workspace="acme")

    with pytest.raises(InvalidInput, match=r"updated_at_column.*modified_at"):
        runner.drain()


def test_a_record_missing_from_its_table_is_a_dead_letter_naming_it(tickets: Engine) -> None:
    runner = _runner(tickets, _source())
    send(tickets, "tickets", ["1", "99"], "CREATE", workspace="acme")
    runner.drain()

    rows = states(tickets, "tickets")
    assert rows[("1", "context")]["status"] == "COMPLETED"
    assert rows[("1", "context")]["output"]["text"] == "Ticket — body: printer on fire"
    missing = rows[("99", "context")]
    assert (missing["status"], missing["next_attempt_at"]) == ("FAILED", None)
    assert missing["last_error_type"] == "RecordNotFound"
    assert "'99'" in missing["last_error_message"] and "'id'" in missing["last_error_message"]


def test_a_template_failing_on_one_records_values_dead_letters_only_that_record(
    tickets: Engine,
) -> None:
    with tickets.begin() as connection:
        connection.execute(text("INSERT INTO public.ctx_tickets VALUES (2, 'acme', 'ok', now())"))
    # 'printer on fire' is 15 characters long: a division by zero for record 1 only.
    template = "{{ (record.body | length) // ((record.body | length) - 15) }}"
    runner = _runner(tickets, _source(template=template))
    send(tickets, "tickets", ["1", "2"], "CREATE", workspace="acme")
    runner.drain()

    rows = states(tickets, "tickets")
    assert rows[("2", "context")]["status"] == "COMPLETED"
    failed = rows[("1", "context")]
    assert (failed["status"], failed["last_error_type"]) == ("FAILED", "TemplateError")
    assert "record '1'" in failed["last_error_message"]
    assert "ZeroDivisionError" in failed["last_error_message"]


def test_a_stage_declaring_no_retries_dead_letters_on_the_first_failure(tickets: Engine) -> None:
    config = parse_config(_source(stages=[{"context": {"retry_delays": []}}]))
    pipelines = build_pipelines(tickets, config, Settings(retry_delays=(60.0, 300.0)))

    assert pipelines["tickets"].spec("context").retry.max_retries == 0


def test_one_to_many_related_rows_come_in_a_stable_order_whatever_their_physical_order(
    tickets: Engine,
) -> None:
    with tickets.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.ctx_notes; CREATE TABLE public.ctx_notes "
                "(id int PRIMARY KEY, ticket_id int, note text, seen boolean DEFAULT false); "
                "INSERT INTO public.ctx_notes (id, ticket_id, note) VALUES "
                "(1, 1, 'b: called back'), (2, 1, 'a: opened'), (3, 1, 'c: closed')"
            )
        )
    related = [
        {
            "name": "notes",
            "table": "public.ctx_notes",
            "join": {"local": "id", "remote": "ticket_id"},
            "fields": ["note"],
            "many": True,
        }
    ]
    runner = _runner(tickets, _source(related=related))
    send(tickets, "tickets", ["1"], "CREATE", workspace="acme")
    runner.drain()
    first = states(tickets, "tickets")[("1", "context")]

    with tickets.begin() as connection:  # rewrites rows 2 and 1: they move to the heap's end
        connection.execute(text("UPDATE public.ctx_notes SET seen = true WHERE id IN (2, 1)"))
    send(tickets, "tickets", ["1"], "UPDATE", workspace="acme")
    report = runner.drain()
    again = states(tickets, "tickets")[("1", "context")]

    assert report.total("unchanged") == 1  # same input: nothing downstream is redone
    assert again["input_hash"] == first["input_hash"]
    assert again["output"]["text"].index("a: opened") < again["output"]["text"].index("b: called")
    with tickets.begin() as connection:
        connection.execute(text("DROP TABLE public.ctx_notes"))
