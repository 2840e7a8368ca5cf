"""The enrich flow under a real, temporary Prefect API: it drains what is due batch by batch,
wakes on new events within its time budget, keeps record failures as database state, and
three runs at once process every record exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from sqlalchemy import Engine, text

from enrichment import capture, vectors
from enrichment.config import load_config
from enrichment.database import is_transient
from enrichment.settings import get_settings
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TABLE = "public.flow_notes"


def _config(stages: list[Any]) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": "flow_notes",
                "table": TABLE,
                "updated_at_column": None,
                "columns": ["body"],
                "entity": {"type": "note", "category": "Note"},
                "stages": stages,
            }
        ]
    }


@pytest.fixture
def configured(
    db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A notes table with capture triggers, and a configuration file the flows read."""
    path = tmp_path / "enrich.yaml"
    path.write_text(yaml.safe_dump(_config(["context", "embed"])))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(path))
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(
            text(
                f"DROP TABLE IF EXISTS {TABLE}; "
                f"CREATE TABLE {TABLE} (id int PRIMARY KEY, workspace_id text, body text)"
            )
        )
    yield path
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE} CASCADE"))


def _install(db: Engine, path: Path) -> None:
    """Register the source (a flow run does that) and install its triggers."""
    from flows.common import load_pipelines

    load_pipelines.fn()
    with db.begin() as connection:
        capture.install(connection, load_config(path).source("flow_notes"))


def _insert(db: Engine, first: int, count: int, workspace: str | None = "acme") -> None:
    with db.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO {TABLE} SELECT g, CAST(:workspace AS text), 'note number ' || g "
                "FROM generate_series(CAST(:first AS int), CAST(:last AS int)) g"
            ),
            {"first": first, "last": first + count - 1, "workspace": workspace},
        )


def _statuses(db: Engine) -> dict[tuple[str, str], int]:
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT stage, status, count(*) FROM enrichment.record_state "
                "WHERE source = 'flow_notes' GROUP BY 1, 2"
            )
        ).all()
    return {(stage, status): count for stage, status, count in rows}


def _vector_keys(db: Engine) -> set[str]:
    with db.connect() as connection:
        table = vectors.active_table(connection)
        if table is None:
            return set()
        return set(
            connection.execute(text(f"SELECT DISTINCT record_key FROM {table.qualified}")).scalars()
        )


async def _artifacts(key: str, state: Any) -> Any:
    """The artifacts of ``key`` that the flow run of ``state`` published (every enrich run of
    the session publishes the same key)."""
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )


def test_enrich_flow_drains_every_stage_in_batches_and_publishes_what_it_did(
    prefect_api: str, db: Engine, configured: Path
) -> None:
    from flows.enrich import enrich_flow

    _install(db, configured)
    _insert(db, 1, 25)
    state = enrich_flow(
        batch_size=10, time_budget_seconds=120, wait_for_events=False, return_state=True
    )
    summary = state.result()

    assert summary["completed"] == 50 and summary["failed"] == 0
    assert _statuses(db) == {("context", "COMPLETED"): 25, ("embed", "COMPLETED"): 25}
    assert _vector_keys(db) == {str(i) for i in range(1, 26)}
    (table,) = asyncio.run(_artifacts("enrich-run", state))
    rows = {(row["source"], row["stage"]): row for row in _table_rows(table.data)}
    assert rows[("flow_notes", "context")]["completed"] == 25
    assert rows[("flow_notes", "embed")]["batches"] == 3  # 10 + 10 + 5: a batch is a task


def _table_rows(data: Any) -> list[dict[str, Any]]:
    import json

    parsed = json.loads(data) if isinstance(data, str) else data
    return list(parsed)


def test_enrich_flow_with_a_stage_filter_runs_only_that_stage(
    prefect_api: str, db: Engine, configured: Path
) -> None:
    from flows.enrich import enrich_flow

    _install(db, configured)
    _insert(db, 1, 5)
    summary = enrich_flow(stages=["context"], time_budget_seconds=60, wait_for_events=False)

    assert summary["completed"] == 5
    assert _statuses(db) == {("context", "COMPLETED"): 5, ("embed", "PENDING"): 5}


def test_an_idle_enrich_flow_wakes_on_a_new_event_and_enriches_it_within_its_budget(
    prefect_api: str, db: Engine, configured: Path
) -> None:
    from flows.enrich import enrich_flow

    _install(db, configured)
    _insert(db, 1, 3)
    result: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: result.update(enrich_flow(time_budget_seconds=20, wait_for_events=True))
    )
    runner.start()
    wait_for(lambda: _vector_keys(db) == {"1", "2", "3"}, 60, "the first records' vectors")
    _insert(db, 4, 1)  # committed while the flow waits: the trigger's NOTIFY wakes it
    wait_for(lambda: "4" in _vector_keys(db), 15, "the new record's vector before the budget ends")
    runner.join(60)
    assert not runner.is_alive()
    assert result["wakeups"] >= 1
    assert result["completed"] == 8


def test_record_failures_are_database_state_and_the_flow_still_completes(
    prefect_api: str, db: Engine, configured: Path
) -> None:
    from flows.enrich import enrich_flow

    _install(db, configured)
    _insert(db, 1, 2)
    _insert(db, 3, 1, workspace=None)  # no workspace: a visible dead letter, not a crash
    summary = enrich_flow(time_budget_seconds=60, wait_for_events=False)

    assert summary["dead_lettered"] == 1
    assert _statuses(db)[("context", "FAILED")] == 1
    assert _vector_keys(db) == {"1", "2"}


def test_a_configuration_error_fails_the_flow_run_with_the_file_and_key(
    prefect_api: str, db: Engine, configured: Path
) -> None:
    from flows.enrich import enrich_flow

    configured.write_text(yaml.safe_dump(_config(["context", {"embed": {"batch_sise": 3}}])))
    state = enrich_flow(time_budget_seconds=5, wait_for_events=False, return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match=r"(?s)enrich\.yaml.*batch_sise"):
        state.result()


def test_only_lost_connections_and_timeouts_are_retried() -> None:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    assert is_transient(refused.value)
    assert is_transient(TimeoutError("read timed out"))
    assert not is_transient(ValueError("bad configuration"))


def test_three_enrich_runs_at_once_process_every_record_exactly_once(
    prefect_api: str, db: Engine, configured: Path, database_url: str
) -> None:
    configured.write_text(yaml.safe_dump(_config(["context"])))  # no model: 3 quick starts
    _install(db, configured)
    _insert(db, 1, 5000)
    env = os.environ | {
        "PREFECT_API_URL": prefect_api,
        "DATABASE_URL": database_url,
        "ENRICH_CONFIG": str(configured),
        "PYTHONPATH": str(REPO),
    }
    code = (
        "from flows.enrich import enrich_flow; "
        "enrich_flow(batch_size=25, time_budget_seconds=300, wait_for_events=False)"
    )
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO) for _ in range(3)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0, 0]

    assert _statuses(db) == {("context", "COMPLETED"): 5000}
    with db.connect() as connection:
        per_stage = connection.execute(
            text(
                "SELECT stage, count(*), count(DISTINCT record_key), count(DISTINCT worker) "
                "FROM enrichment.attempts WHERE source = 'flow_notes' GROUP BY stage"
            )
        ).all()
    for stage, attempts, records, _workers in per_stage:
        assert attempts == records == 5000, stage  # one attempt each: none claimed twice
    assert max(workers for *_, workers in per_stage) >= 2  # the runs overlapped


def test_the_stage_choice_offered_in_the_ui_is_every_stage_kind_of_the_configuration() -> None:
    from typing import get_args

    from enrichment.config import STAGE_KINDS
    from flows.common import StageName

    assert set(get_args(StageName)) == STAGE_KINDS
