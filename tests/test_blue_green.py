"""A model change is a blue-green re-embed: the new model's table is filled while the old one
serves, then activated; vectors of two models never share a table."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from enrichment import backfill, vectors
from enrichment.config import parse_config
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, sync
from tests.fake_openai import FakeOpenAI
from tests.helpers import send

pytestmark = pytest.mark.slow

BASE = {
    "sources": [
        {
            "name": "notes",
            "table": "public.bg_notes",
            "updated_at_column": None,
            "columns": ["body"],
            "entity": {"type": "note", "category": "Note"},
            "stages": ["context", "embed"],
        }
    ]
}


@pytest.fixture
def notes(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.bg_notes; "
                "CREATE TABLE public.bg_notes (id int PRIMARY KEY, workspace_id text, body text); "
                "INSERT INTO public.bg_notes VALUES (1, 'acme', 'first note'), "
                "(2, 'acme', 'second note'), (3, 'globex', 'third note')"
            )
        )
    yield db
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.bg_notes"))


def _runner(db: Engine, config_data: dict) -> Runner:
    config = parse_config(config_data)
    pipelines = build_pipelines(db, config, Settings(retry_delays=(0.0,), retry_jitter=0.0))
    sync(db, config, pipelines)
    return Runner(db, pipelines)


def _counts(db: Engine) -> dict[str, tuple[str, int]]:
    with db.connect() as connection:
        return {
            t.name: (t.state, vectors.row_count(connection, t)) for t in vectors.tables(connection)
        }


def test_model_change_fills_a_new_table_while_the_old_one_serves_then_switches(
    notes: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    blue = _runner(notes, BASE)
    send(notes, "notes", ["1", "2"], "CREATE", workspace="acme")
    send(notes, "notes", ["3"], "CREATE", workspace="globex")
    blue.drain()
    (blue_table,) = _counts(notes)
    assert _counts(notes)[blue_table] == ("active", 3)

    with FakeOpenAI(dimensions=8) as server:
        monkeypatch.setenv("TEST_EMBEDDINGS_KEY", "secret")
        changed = copy.deepcopy(BASE)
        changed["sources"][0]["stages"][1] = {
            "embed": {
                "embedding": {
                    "provider": "openai",
                    "model": "fake-embedding",
                    "base_url": server.base_url,
                    "api_key_env": "TEST_EMBEDDINGS_KEY",
                    "dimensions": 8,
                }
            }
        }
        green = _runner(notes, changed)  # the config changed: every record is re-queued
        green.drain()

    counts = _counts(notes)
    (green_table,) = set(counts) - {blue_table}
    assert counts == {blue_table: ("active", 3), green_table: ("building", 3)}

    assert backfill.activate_filled_table(green, "notes") == green_table
    assert _counts(notes) == {blue_table: ("retired", 3), green_table: ("active", 3)}
    assert backfill.activate_filled_table(green, "notes") is None  # nothing left to switch

    # A delete reaches every table, serving or not.
    send(notes, "notes", ["3"], "DELETE", workspace="globex")
    green.drain()
    assert _counts(notes) == {blue_table: ("retired", 2), green_table: ("active", 2)}
