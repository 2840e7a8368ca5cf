"""The `enrich` command line, run in-process against the test database."""

from __future__ import annotations

import io
import json

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from enrichment import cli
from enrichment.settings import get_settings
from enrichment.stages.base import Failed
from tests.helpers import FakeStage, pipeline, runner, send


@pytest.fixture
def enrich(db: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch):
    """Invoke `enrich ARGS...` with DATABASE_URL pointing at the test database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner_ = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner_.invoke(cli.app, list(args), input=input, catch_exceptions=True)

    yield invoke
    get_settings.cache_clear()


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in getattr(group, "commands", {}).items():
        found.append((*prefix, name))
        found += _commands(command, (*prefix, name))
    return found


def test_every_command_has_help(enrich) -> None:
    commands = _commands(typer.main.get_command(cli.app))  # type: ignore[arg-type]
    assert {
        ("status",),
        ("failures",),
        ("retry",),
        ("db", "start"),
        ("db", "stop"),
        ("db", "status"),
        ("db", "url"),
        ("db", "upgrade"),
    } <= set(commands)
    for command in commands:
        result = enrich(*command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_status_json_counts_by_stage(db: Engine, enrich) -> None:
    work = runner(
        db, pipeline("notes", FakeStage("a", {"2": Failed("Bad", "no", False)}), FakeStage("b"))
    )
    send(db, "notes", ["1", "2", "3"])
    work.drain()

    result = enrich("status", "--json")
    assert result.exit_code == 0, result.output
    stages = {(s["source"], s["stage"]): s for s in json.loads(result.output)["stages"]}
    assert stages[("notes", "a")]["completed"] == 2
    assert stages[("notes", "a")]["dead_letters"] == 1
    assert stages[("notes", "b")]["completed"] == 2
    assert stages[("notes", "b")]["waiting"] == 1  # record 2, behind its dead letter
    assert stages[("notes", "b")]["backlog"] == 0


def test_failures_lists_dead_letters_and_retry_requeues_them(db: Engine, enrich) -> None:
    work = runner(
        db, pipeline("notes", FakeStage("a", {"2": Failed("BadInput", "field 'x'", False)}))
    )
    send(db, "notes", ["1", "2"])
    work.drain()

    listed = json.loads(enrich("failures", "--json").output)
    assert [(f["record_key"], f["error_type"], f["error_message"]) for f in listed] == [
        ("2", "BadInput", "field 'x'")
    ]
    assert "requeued 1" in enrich("retry", "--error-type", "BadInput").output
    assert json.loads(enrich("failures", "--json").output) == []


def test_events_add_queues_an_event(db: Engine, enrich) -> None:
    runner(db, pipeline("notes", FakeStage("a")))
    result = enrich("events", "add", "--source", "notes", "--workspace", "acme", "7", "8")
    assert result.exit_code == 0, result.output
    assert json.loads(enrich("status", "--json").output)["events"]["unfolded"] == 1


def test_bad_event_input_exits_2_naming_the_field_and_queues_nothing(
    db: Engine, enrich, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner(db, pipeline("notes", FakeStage("a")))
    good = '{"source": "notes", "workspace_id": "acme", "record_ids": [1], "action": "UPDATE"}'
    bad = '{"source": "notes", "workspace_id": "", "record_ids": [2], "action": "UPDATE"}'
    monkeypatch.setattr("sys.argv", ["enrich", "events", "load", "-"])
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{good}\n{bad}\n"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "-:2" in error and "workspace_id" in error
    assert json.loads(enrich("status", "--json").output)["events"]["unfolded"] == 0


def test_db_url_and_status_use_database_url_without_starting_anything(enrich, database_url) -> None:
    assert enrich("db", "url").output.strip() == database_url
    status = json.loads(enrich("db", "status", "--json").output)
    assert status["mode"] == "external"
    assert status["revision"] == status["head"]
