"""A query is only compared with vectors of its own model: a search whose embedder is another
model than the active table's is refused, and a blue-green switch moves searches to the new
model at activation, not before."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment import vectors
from enrichment.embedders.local import SentenceTransformerEmbedder, packaged_model_path
from enrichment.embedders.openai_compatible import (
    OpenAICompatibleConfig,
    OpenAICompatibleEmbedder,
)
from enrichment.search import ModelMismatch, Searcher, SearchMode, SearchQuery, SearchUnavailable
from tests.fake_openai import FakeOpenAI
from tests.search_fixtures import drop_tables, embedder, enrich

pytestmark = pytest.mark.slow

BASE: dict[str, Any] = {
    "sources": [
        {
            "name": "notes",
            "table": "public.sm_notes",
            "updated_at_column": None,
            "columns": ["body"],
            "entity": {"type": "note", "category": "Note"},
            "stages": ["context", "embed"],
        }
    ]
}
RECORDS = [("notes", "acme", "1"), ("notes", "acme", "2")]


@pytest.fixture
def notes(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.sm_notes; "
                "CREATE TABLE public.sm_notes (id int PRIMARY KEY, workspace_id text, body text); "
                "INSERT INTO public.sm_notes VALUES (1, 'acme', 'Refund the duplicate charge'), "
                "(2, 'acme', 'Parcel stuck in transit')"
            )
        )
    yield db
    drop_tables(db, "public.sm_notes")


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("TEST_EMBEDDINGS_KEY", "secret")
    with FakeOpenAI(dimensions=8) as server:
        yield server


def _fake_config(server: FakeOpenAI) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    config["sources"][0]["stages"][1] = {
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
    return config


def _fake_embedder(server: FakeOpenAI) -> OpenAICompatibleEmbedder:
    return OpenAICompatibleEmbedder(
        OpenAICompatibleConfig(
            model="fake-embedding", base_url=server.base_url, api_key="secret", dimensions=8
        )
    )


def _query(mode: SearchMode | str = "hybrid") -> SearchQuery:
    return SearchQuery(text="refund", workspace="acme", mode=mode)


def test_a_database_with_nothing_enriched_yet_says_so(db: Engine) -> None:
    with pytest.raises(SearchUnavailable, match="no vector table is active yet"):
        Searcher(db, embedder()).search(_query())


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_a_query_embedded_by_another_model_is_refused(
    notes: Engine, fake_openai: FakeOpenAI, mode: str
) -> None:
    enrich(notes, BASE, RECORDS)
    other = _fake_embedder(fake_openai)
    with pytest.raises(ModelMismatch) as raised:
        Searcher(notes, other).search(_query(mode))
    message = str(raised.value)
    assert "'fake-embedding@8d/openai-compatible' (8 dimensions)" in message
    assert f"{embedder().model_version!r} (384 dimensions)" in message


def test_the_same_dimensions_do_not_make_another_model_acceptable(notes: Engine) -> None:
    enrich(notes, BASE, RECORDS)
    renamed = SentenceTransformerEmbedder(packaged_model_path(), model_name="minilm-finetuned")
    assert renamed.model_version != embedder().model_version
    with pytest.raises(ModelMismatch, match="minilm-finetuned"):
        Searcher(notes, renamed).search(_query("vector"))


def test_a_lexical_search_does_not_depend_on_the_model(
    notes: Engine, fake_openai: FakeOpenAI
) -> None:
    enrich(notes, BASE, RECORDS)
    results = Searcher(notes, _fake_embedder(fake_openai)).search(_query("lexical")).results
    assert [r.record_key for r in results] == ["1"]


def test_searches_move_to_the_new_model_when_its_table_is_activated(
    notes: Engine, fake_openai: FakeOpenAI
) -> None:
    enrich(notes, BASE, RECORDS)
    enrich(notes, _fake_config(fake_openai), RECORDS)  # fills the green table, not active yet
    blue, green = embedder(), _fake_embedder(fake_openai)
    with notes.connect() as connection:
        building = next(t for t in vectors.tables(connection) if t.state == "building")

    assert Searcher(notes, blue).search(_query()).table != building.name
    with pytest.raises(ModelMismatch):
        Searcher(notes, green).search(_query())

    with notes.begin() as connection:
        vectors.activate(connection, building.name)
    response = Searcher(notes, green).search(_query("vector"))
    assert response.table == building.name
    assert {r.record_key for r in response.results} == {"1", "2"}
    with pytest.raises(ModelMismatch):
        Searcher(notes, blue).search(_query())
