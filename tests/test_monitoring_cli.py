"""`enrich metrics show` and `enrich alerts list`, in-process against the test database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from enrichment import cli
from enrichment.settings import get_settings
from quality import alerts
from quality.alerts import Rule
from quality.metrics import Metric, MetricOptions, Metrics, Scope
from tests.monitoring_data import NOW, States


@pytest.fixture
def enrich(db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(tmp_path / "absent.yaml"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli.app, list(args))
    get_settings.cache_clear()


def test_metrics_show_json_has_every_scope_and_metric(enrich, db: Engine) -> None:
    states = States(db).source("notes", ["a", "b"])
    states.record("notes", "1", ("COMPLETED", "PENDING"), workspace="acme")

    result = enrich("metrics", "show", "--json", "--source", "notes")

    assert result.exit_code == 0, result.output
    scopes = {
        (s["workspace_id"], s["source"], s["stage"]): s["metrics"]
        for s in json.loads(result.output)["scopes"]
    }
    assert set(scopes) == {
        (None, "notes", None),
        ("acme", "notes", None),
        (None, "notes", "a"),
        (None, "notes", "b"),
        ("acme", "notes", "a"),
        ("acme", "notes", "b"),
    }
    assert scopes[(None, "notes", None)]["completeness_rate"] == 0.0
    assert scopes[("acme", "notes", "b")]["backlog_size"] == 1.0


def test_metrics_show_prints_a_table_per_source(enrich, db: Engine) -> None:
    States(db).source("notes", ["a"]).record("notes", "1", ("PENDING",))

    result = enrich("metrics", "show")

    assert result.exit_code == 0, result.output
    assert "source=notes" in result.output
    assert "backlog_size" in result.output


def test_alerts_list_shows_firing_alerts_and_with_all_the_resolved_ones(enrich, db: Engine) -> None:
    rule = Rule("backlog", "backlog_size", "above", None, 10.0, "source")
    for value, minutes in ((50.0, 0), (5.0, 5), (60.0, 10)):
        metrics = Metrics(
            NOW.replace(minute=minutes),
            MetricOptions(),
            (Metric(Scope(source="notes"), "backlog_size", value),),
        )
        with db.begin() as connection:
            alerts.evaluate(connection, metrics, [rule])

    firing = json.loads(enrich("alerts", "list", "--json").output)
    history = json.loads(enrich("alerts", "list", "--all", "--json").output)

    assert [(a["rule"], a["status"], a["value"]) for a in firing] == [("backlog", "firing", 60.0)]
    assert [a["status"] for a in history] == ["firing", "resolved"]
    table = enrich("alerts", "list").output
    assert "backlog" in table and "source=notes" in table
