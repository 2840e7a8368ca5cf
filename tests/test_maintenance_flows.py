"""The reprocess, reconcile and backfill flows under a real, temporary Prefect API, against
the real database and model: what each finds, what it fixes, and how it fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from enrichment.settings import get_settings

pytestmark = pytest.mark.slow

TABLE = "public.maint_notes"
CONFIG = {
    "sources": [
        {
            "name": "maint_notes",
            "table": TABLE,
            "columns": ["body"],
            "entity": {"type": "note", "category": "Note"},
            "stages": ["context", "embed"],
        }
    ]
}


@pytest.fixture
def notes(
    db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """Ten notes with capture triggers, enriched once by the enrich flow."""
    path = tmp_path / "enrich.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(path))
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(
            text(
                f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id int PRIMARY KEY, "
                "workspace_id text, body text, updated_at timestamptz NOT NULL DEFAULT now())"
            )
        )
    from flows.common import load_pipelines

    load_pipelines.fn()
    with db.begin() as connection:
        capture.install(connection, load_config(path).source("maint_notes"))
        connection.execute(
            text(
                f"INSERT INTO {TABLE} (id, workspace_id, body) "
                "SELECT g, 'acme', 'maintenance note ' || g FROM generate_series(1, 10) g"
            )
        )
    yield db
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE} CASCADE"))


def _enrich(**parameters: Any) -> dict[str, float]:
    from flows.enrich import enrich_flow

    return enrich_flow(wait_for_events=False, time_budget_seconds=120, **parameters)


def _vector_keys(db: Engine) -> set[str]:
    with db.connect() as connection:
        table = vectors.active_table(connection)
        assert table is not None
        return set(
            connection.execute(text(f"SELECT DISTINCT record_key FROM {table.qualified}")).scalars()
        )


def _without_triggers(db: Engine, sql: str) -> None:
    """A change the capture triggers do not see (a lost event)."""
    with db.begin() as connection:
        connection.execute(text(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER"))
        connection.execute(text(sql))
        connection.execute(text(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER"))


async def _artifacts(key: str, state: Any) -> list[Any]:
    """The artifacts of ``key`` that the flow run of ``state`` published (other tests of the
    session publish the same keys)."""
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )


def test_reprocess_queues_records_the_queue_never_saw_and_due_retries_then_works_them(
    prefect_api: str, notes: Engine
) -> None:
    from flows.reprocess import reprocess_flow

    _enrich()
    _without_triggers(
        notes, f"INSERT INTO {TABLE} (id, workspace_id, body) VALUES (11, 'acme', 'x')"
    )
    with notes.begin() as connection:  # record 3 failed its embed stage; its backoff is over
        connection.execute(
            text(
                "UPDATE enrichment.record_state SET status = 'FAILED', attempts = 1, output = NULL,"
                " next_attempt_at = now() - interval '1 second', finished_at = now() "
                "WHERE source = 'maint_notes' AND record_key = '3' AND stage = 'embed'"
            )
        )

    summary = reprocess_flow(time_budget_seconds=120)

    assert summary["unqueued_records_queued"] == 1
    assert summary["due_retries"] == 1
    assert summary["dead_letters"] == 0
    assert summary["low_confidence_rechecks_queued"] == 0  # no confidence gate here
    assert "11" in _vector_keys(notes)
    with notes.connect() as connection:
        statuses = connection.execute(
            text(
                "SELECT status, count(*) FROM enrichment.record_state "
                "WHERE source = 'maint_notes' GROUP BY 1"
            )
        ).all()
    assert dict(statuses) == {"COMPLETED": 22}


def test_reprocess_of_an_unknown_source_fails_naming_the_known_ones(
    prefect_api: str, notes: Engine
) -> None:
    from flows.reprocess import reprocess_flow

    state = reprocess_flow(source="nope", return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"nope.*maint_notes"):
        state.result()


def test_reconcile_fixes_orphans_lost_deletes_missing_vectors_and_stale_records(
    prefect_api: str, notes: Engine
) -> None:
    from flows.reconcile import reconcile_flow

    _enrich()
    with notes.begin() as connection:
        table = vectors.active_table(connection)
        assert table is not None
        # record 1: its vectors went missing; record 2: the queue forgot it (orphan vectors)
        connection.execute(text(f"DELETE FROM {table.qualified} WHERE record_key = '1'"))
        connection.execute(
            text(
                "DELETE FROM enrichment.record_state WHERE source = 'maint_notes' "
                "AND record_key = '2'"
            )
        )
    _without_triggers(notes, f"DELETE FROM {TABLE} WHERE id = 4")  # a lost DELETE
    _without_triggers(  # a lost UPDATE: the text changed after the record was enriched
        notes, f"UPDATE {TABLE} SET body = 'rewritten note', updated_at = now() WHERE id = 5"
    )

    state = reconcile_flow(freshness_sla_seconds=0.001, return_state=True)
    summary = state.result()

    assert summary["orphan_vectors_deleted"] >= 1
    assert summary["vanished_records_deleted"] == 1
    assert summary["missing_vectors_requeued"] == 1
    assert summary["stale_records_requeued"] == 1
    assert "2" not in _vector_keys(notes)
    _enrich()  # the next enrich run folds and works what reconcile queued
    keys = _vector_keys(notes)
    assert "1" in keys and "4" not in keys
    with notes.connect() as connection:
        table = vectors.active_table(connection)
        assert table is not None
        stored = connection.execute(
            text(f"SELECT chunk_text FROM {table.qualified} WHERE record_key = '5'")
        ).scalar_one()
    assert "rewritten note" in stored
    (artifact,) = asyncio.run(_artifacts("reconcile-run", state))
    assert "orphan vectors deleted" in artifact.data


def test_reconcile_of_an_unknown_source_fails(prefect_api: str, notes: Engine) -> None:
    from flows.reconcile import reconcile_flow

    state = reconcile_flow(source="unknown_source", return_state=True)
    assert state.is_failed()


def test_backfill_redoes_a_workspace_with_progress_to_completion(
    prefect_api: str, notes: Engine
) -> None:
    from flows.backfill import backfill_flow

    _enrich()
    with notes.begin() as connection:  # another workspace's new records wait meanwhile
        connection.execute(
            text(
                f"INSERT INTO {TABLE} (id, workspace_id, body) "
                "SELECT g, 'globex', 'other note ' || g FROM generate_series(101, 103) g"
            )
        )
    state = backfill_flow(source="maint_notes", workspace="acme", batch_size=4, return_state=True)
    summary = state.result()

    assert summary["queued"] == 10  # the workspace's records only: progress ends at 100 %
    assert summary["completed"] == 20  # forced: both stages again, input unchanged or not
    assert "101" not in _vector_keys(notes)  # the other workspace was left alone
    # Moved by the batches of the last stage (4, 8, 10 of 10 records), not set at the end.
    (progress,) = asyncio.run(_artifacts("backfill-progress", state))
    assert json.loads(str(progress.data)) == 100.0


def test_backfill_of_an_unknown_source_fails(prefect_api: str, notes: Engine) -> None:
    from flows.backfill import backfill_flow

    state = backfill_flow(source="nope", return_state=True)
    assert state.is_failed()
