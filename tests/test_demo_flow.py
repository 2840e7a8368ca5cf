"""The demo flow (what `make demo` runs) end to end under a real, temporary Prefect API."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine

from enrichment import demo
from enrichment.settings import get_settings
from enrichment.status import queue_status

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_database(db: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def test_demo_flow_enriches_every_note_and_dead_letters_the_empty_one(
    demo_database: Engine,
) -> None:
    from flows.demo import demo_flow

    with prefect_test_harness(server_startup_timeout=60):
        summary = demo_flow(records=60, batch_size=25)

    assert summary["dead_lettered"] == 1  # note 50 has an empty body
    assert summary["completed"] == 59 * 2
    with demo_database.connect() as connection:
        stages = {s.stage: s for s in queue_status(connection, source=demo.SOURCE).stages}
    assert stages["measure"].completed == 59
    assert stages["measure"].dead_letters == 1
    assert stages["label_length"].completed == 59
    assert stages["label_length"].waiting == 1
    assert all(s.in_progress == 0 and s.backlog == 0 for s in stages.values())
