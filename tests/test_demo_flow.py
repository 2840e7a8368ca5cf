"""The demo flow (what `make demo` runs) end to end under a real, temporary Prefect API, with
the shipped enrich.yaml and the real packaged model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from enrichment import demo, vectors
from enrichment.settings import get_settings
from enrichment.status import queue_status

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo_database(
    db: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(REPO / "enrich.yaml"))
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {demo.SCHEMA} CASCADE"))
    yield db
    get_settings.cache_clear()


def test_demo_flow_embeds_every_note_and_a_rerun_embeds_nothing_again(
    demo_database: Engine, prefect_api: str
) -> None:
    from flows.demo import demo_flow

    first = demo_flow(records=40, batch_size=16)
    again = demo_flow(records=40, batch_size=16)

    assert first["completed"] == 40 * 3 and first["dead_lettered"] == 0
    with demo_database.connect() as connection:
        stages = {s.stage: s for s in queue_status(connection, source=demo.SOURCE).stages}
        table = vectors.active_table(connection)
        assert table is not None
        per_workspace = dict(
            connection.execute(
                text(
                    f"SELECT workspace_id, count(DISTINCT record_key) FROM {table.qualified} "
                    "GROUP BY 1"
                )
            ).all()
        )
    assert [stages[name].completed for name in ("context", "chunk", "embed")] == [40, 40, 40]
    assert all(s.backlog == 0 and s.in_progress == 0 for s in stages.values())
    assert per_workspace == {"acme": 13, "globex": 14, "initech": 13}
    # The second run re-created the same notes: their input is unchanged, nothing re-embedded.
    assert again["unchanged"] == 40
    assert again["completed"] == 40  # the context stage only
