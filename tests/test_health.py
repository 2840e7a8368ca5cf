"""Health checks: the real model embeds, pgvector takes a write, the queue drains; and
`enrich health` exits non-zero when one fails."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from enrichment import cli, embedded, migrate, vectors
from enrichment.database import engine_for
from enrichment.embedders.local import SentenceTransformerEmbedder
from enrichment.settings import get_settings
from quality.health import check_model, check_pgvector, check_queue, configured_embedders
from tests.conftest import _admin_url
from tests.monitoring_data import States, clock


@pytest.mark.slow
def test_the_packaged_model_loads_and_embeds() -> None:
    check = check_model(lambda: configured_embedders(None))

    assert check.healthy, check.detail
    assert check.detail == "embeds: all-MiniLM-L6-v2 (384 dims)"


def test_a_model_that_cannot_load_fails_the_check(tmp_path: Path) -> None:
    check = check_model(lambda: [SentenceTransformerEmbedder(tmp_path, device="cpu")])

    assert not check.healthy
    assert check.detail.startswith(f"ValueError: Unrecognized model in {tmp_path}")


def test_a_provider_that_cannot_be_set_up_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from enrichment.config import parse_config

    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    config = parse_config(
        {
            "sources": [
                {
                    "name": "notes",
                    "table": "public.notes",
                    "columns": ["body"],
                    "entity": {"type": "note", "category": "Notes"},
                    "stages": [
                        {
                            "embed": {
                                "embedding": {
                                    "provider": "openai",
                                    "model": "m",
                                    "dimensions": 8,
                                    "api_key_env": "NO_SUCH_KEY",
                                }
                            }
                        }
                    ],
                }
            ]
        }
    )

    check = check_model(lambda: configured_embedders(config))

    assert not check.healthy
    assert "NO_SUCH_KEY is not set" in check.detail


def test_pgvector_takes_a_write_into_the_active_table_and_keeps_nothing(db: Engine) -> None:
    with db.begin() as connection:
        table = vectors.ensure_table(
            connection, model_name="probe-model", model_version="probe-v1", dimensions=4
        )

    check = check_pgvector(db)

    assert check.healthy, check.detail
    assert check.data["active_table"] == table.name
    with db.connect() as connection:
        assert vectors.row_count(connection, table) == 0


@pytest.fixture
def without_pgvector(database_url: str) -> Iterator[Engine]:
    """A database migrated to the queue tables only: no vector extension."""
    admin = _admin_url()
    name = f"enrich_novector_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(admin, name)
    engine = engine_for(make_url(admin).set(database=name).render_as_string(hide_password=False))
    migrate.upgrade(engine, "0001_queue")
    yield engine
    engine.dispose()
    embedded.drop_database(admin, name)


def test_pgvector_fails_where_the_extension_is_missing(without_pgvector: Engine) -> None:
    check = check_pgvector(without_pgvector)

    assert not check.healthy
    assert check.detail == "the vector extension is not installed (enrich db upgrade)"


@pytest.fixture
def states(db: Engine) -> States:
    return States(db).source("notes", ["a"])


def test_an_empty_queue_is_draining(db: Engine) -> None:
    assert check_queue(db, clock=clock()).healthy


def test_an_old_backlog_with_nothing_finished_is_a_stall(db: Engine, states: States) -> None:
    states.row("notes", "1", "a", "PENDING", requested=7200, due=7200, attempts=0)
    states.row("notes", "2", "a", "IN_PROGRESS", requested=7200, lease_expires=600)

    check = check_queue(db, stall_seconds=900, clock=clock())

    assert not check.healthy
    assert check.detail == (
        "not draining: backlog of 2 (oldest 7200 s), nothing finished in the last 15 min, "
        "1 leases expired"
    )


def test_a_backlog_with_recent_completions_is_draining(db: Engine, states: States) -> None:
    states.row("notes", "1", "a", "PENDING", requested=7200, due=7200, attempts=0)
    states.attempt("notes", "2", "a", "COMPLETED", finished=60, duration=1)

    check = check_queue(db, stall_seconds=900, clock=clock())

    assert check.healthy
    assert check.detail == "1 finished in the last 15 min"


def test_a_young_backlog_is_not_a_stall(db: Engine, states: States) -> None:
    states.row("notes", "1", "a", "PENDING", requested=300, due=300, attempts=0)

    assert check_queue(db, stall_seconds=900, clock=clock()).healthy


def test_a_backlog_shrinking_since_the_last_snapshot_is_draining(
    db: Engine, states: States
) -> None:
    states.row("notes", "1", "a", "PENDING", requested=7200, due=7200, attempts=0)
    states.snapshot_value("backlog_size", 40, seconds_ago=1800)

    check = check_queue(db, stall_seconds=900, clock=clock())

    assert check.healthy
    assert check.detail == "backlog shrinking (40 → 1)"


def test_a_backlog_growing_since_the_last_snapshot_is_a_stall(db: Engine, states: States) -> None:
    states.row("notes", "1", "a", "PENDING", requested=7200, due=7200, attempts=0)
    states.row("notes", "2", "a", "PENDING", requested=7000, due=7000, attempts=0)
    states.snapshot_value("backlog_size", 1, seconds_ago=1800)

    assert not check_queue(db, stall_seconds=900, clock=clock()).healthy


@pytest.fixture
def enrich(db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(tmp_path / "absent.yaml"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli.app, list(args))
    get_settings.cache_clear()


def test_enrich_health_exits_zero_and_reports_json_when_healthy(enrich) -> None:
    result = enrich("health", "--json", "--skip-model")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["healthy"] is True
    assert [check["name"] for check in report["checks"]] == ["pgvector", "queue"]


def test_enrich_health_exits_one_when_the_queue_stalls(enrich, db: Engine, states: States) -> None:
    states.row("notes", "1", "a", "PENDING", requested=7200, due=7200, attempts=0)

    result = enrich("health", "--skip-model")

    assert result.exit_code == 1
    assert "FAIL queue" in result.output
    assert "unhealthy" in result.output


@pytest.mark.slow
def test_enrich_health_loads_the_configured_model(enrich) -> None:
    result = enrich("health", "--json")

    assert result.exit_code == 0, result.output
    checks = {check["name"]: check for check in json.loads(result.output)["checks"]}
    assert checks["model"]["models"] == [{"model": "all-MiniLM-L6-v2", "dimensions": 384}]


def test_the_health_probe_row_never_stays(db: Engine) -> None:
    with db.begin() as connection:
        table = vectors.ensure_table(
            connection, model_name="probe-model", model_version="probe-v2", dimensions=3
        )
    for _ in range(2):
        assert check_pgvector(db).healthy
    with db.connect() as connection:
        count = connection.execute(
            text(f"SELECT count(*) FROM {table.qualified} WHERE source = 'enrich-health'")
        ).scalar_one()
    assert count == 0
