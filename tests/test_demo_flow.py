"""The demo (what `make demo` runs) end to end under a real, temporary Prefect API, with the
shipped enrich.yaml (the fulfilment demo) and the real packaged model: `enrich demo` as a
person runs it, then the demo flow again, as an ad hoc run from the UI would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from enrichment import vectors
from enrichment.fulfilment import truth
from enrichment.fulfilment.outcome import SOURCE, DemoOutcome, outcome
from enrichment.settings import get_settings
from enrichment.status import queue_status

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ENRICH = Path(sys.executable).parent / "enrich"
RECORDS = 40
STAGES = ("redact", "context", "classify", "resolve", "summarize", "chunk", "embed")


@pytest.fixture
def demo_database(
    db: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(REPO / "enrich.yaml"))
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS fulfilment CASCADE"))
    yield db
    with db.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS fulfilment CASCADE"))
    get_settings.cache_clear()


def stored_keys(engine: Engine) -> dict[str, int]:
    """Record key -> chunks stored for it in the active vector table."""
    with engine.connect() as connection:
        table = vectors.active_table(connection)
        assert table is not None
        return dict(
            connection.execute(
                text(
                    f"SELECT record_key, count(*) FROM {table.qualified} WHERE source = :source "
                    "GROUP BY 1"
                ),
                {"source": SOURCE},
            ).all()
        )


def test_enrich_demo_enriches_every_exception_and_shows_the_outcome(
    demo_database: Engine, prefect_api: str
) -> None:
    # A process of its own, as a person runs it (and Prefect's log handlers keep their stream).
    result = subprocess.run(
        [str(ENRICH), "demo", "--records", str(RECORDS), "--workspaces", "3"],
        # Wide enough that a sample's row starts on one line of the printed table.
        env={**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    result_output = result.stdout + result.stderr

    assert result.returncode == 0, result_output
    with demo_database.connect() as connection:
        found = outcome(connection, gate=0.6)
        expected = truth(connection)
        stages = {s.stage: s for s in queue_status(connection, source=SOURCE).stages}
    assert found.exceptions == RECORDS and found.pending == 0 and found.dead_lettered == 0
    assert found.enriched + found.gated == RECORDS and found.enriched > found.gated
    assert found.labelled == RECORDS and found.labels_right >= 0.7 * RECORDS
    assert found.labels_right == sum(
        1 for sample_id, label in expected.items() if label == _label(demo_database, sample_id)
    )
    assert found.redactions.get("EMAIL", 0) > 0  # the messages' e-mail addresses
    assert set(stages) == set(STAGES)
    assert all(s.backlog == 0 and s.in_progress == 0 for s in stages.values())
    # What the person reads: the outcome, a sample with its summary, where to go next.
    assert f"{RECORDS} exceptions" in result_output
    assert "Labels against the generator's ground truth" in result_output
    assert found.samples and found.samples[0].summary
    sample = found.samples[0]
    assert sample.label is not None and sample.confidence is not None
    row = (
        rf"^\W*{sample.id}\W+{re.escape(sample.workspace_id)}\W+"
        rf"{re.escape(f'{sample.label} ({sample.confidence:.2f})')}\W+{sample.true_type}\b"
    )
    assert re.search(row, result_output, re.MULTILINE), result_output
    assert "enrich search" in result_output
    assert "Traceback" not in result_output
    # Every enriched exception is searchable; a gated one has no vectors yet.
    stored = stored_keys(demo_database)
    assert len(stored) == found.enriched


def test_the_demo_flow_run_again_reseeds_and_leaves_nothing_incomplete(
    demo_database: Engine, prefect_api: str
) -> None:
    from flows.demo import demo_flow

    first = demo_flow(records=RECORDS, workspaces=2, batch_size=32)
    again = demo_flow(records=RECORDS, workspaces=2, batch_size=32)

    for run in (first, again):
        assert run["dead_lettered"] == 0 and run["failed"] == 0
        found = DemoOutcome.from_json(run["outcome"])
        assert found.exceptions == RECORDS and found.pending == 0
        assert found.to_json() == run["outcome"]
    # The re-seeded rows replaced the old ones: one set of vectors per enriched exception.
    assert len(stored_keys(demo_database)) == DemoOutcome.from_json(again["outcome"]).enriched


def _label(engine: Engine, exception_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT ai_label FROM fulfilment.exceptions WHERE id = :id"), {"id": exception_id}
        ).scalar_one()
