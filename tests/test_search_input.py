"""Bad search input gets a clear error naming the field: empty queries, k out of range,
unknown filters and values, unknown workspaces, a search the configuration cannot serve."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment.config import EnrichConfig
from enrichment.errors import InvalidInput, UnknownSource
from enrichment.search import (
    MAX_K,
    Searcher,
    SearchFilters,
    SearchMode,
    SearchQuery,
    SearchUnavailable,
    UnknownWorkspace,
)
from tests.search_fixtures import drop_tables, embedder, enrich, reset

BASE: dict[str, Any] = {"text": "refund", "workspace": "acme"}


@pytest.mark.parametrize(
    ("given", "field", "problem"),
    [
        ({"text": ""}, "text", "must not be empty"),
        ({"text": "   \n"}, "text", "must not be empty"),
        ({"text": "x" * 2001}, "text", "at most 2000 characters"),
        ({"text": "a\x00b"}, "text", "NUL"),
        ({"workspace": ""}, "workspace", "at least 1 character"),
        ({"k": 0}, "k", "greater than or equal to 1"),
        ({"k": MAX_K + 1}, "k", f"less than or equal to {MAX_K}"),
        ({"k": "ten"}, "k", "valid integer"),
        ({"mode": "semantic"}, "mode", "'vector', 'lexical' or 'hybrid'"),
        ({"limit": 5}, "limit", "Extra inputs are not permitted"),
        ({"filters": {"colour": "red"}}, "filters.colour", "Extra inputs are not permitted"),
        ({"filters": {"sources": [""]}}, "filters.sources.0", "at least 1 character"),
        ({"filters": {"updated_since": "yesterday"}}, "filters.updated_since", "datetime"),
        (
            {"filters": {"updated_since": "2026-02-01", "updated_before": "2026-01-01"}},
            "filters.updated_before",
            "must be after updated_since",
        ),
    ],
)
def test_a_bad_query_names_the_field(given: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        SearchQuery(**{**BASE, **given})
    assert raised.value.field == field
    assert problem in raised.value.problem


def test_a_query_without_a_workspace_is_refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        SearchQuery(text="refund")
    assert raised.value.field == "workspace"
    assert "Field required" in raised.value.problem


def test_an_unknown_filter_is_refused_by_the_filters_too() -> None:
    with pytest.raises(InvalidInput) as raised:
        SearchFilters(colours=("red",))
    assert raised.value.field == "colours"


def test_a_time_without_a_zone_is_taken_as_utc() -> None:
    filters = SearchFilters(updated_since=datetime(2026, 1, 1))
    assert filters.updated_since is not None
    assert filters.updated_since.isoformat() == "2026-01-01T00:00:00+00:00"


def test_the_query_text_is_trimmed() -> None:
    assert SearchQuery(text="  refund  ", workspace="acme").text == "refund"


# --- against the database ---------------------------------------------------------------------

CONFIG: dict[str, Any] = {
    "sources": [
        {
            "name": "notes",
            "table": "public.sb_notes",
            "updated_at_column": None,
            "columns": ["body"],
            "entity": {"type": "note", "category": "Note"},
            "stages": ["context", "embed"],
        }
    ]
}


@pytest.fixture(scope="module")
def config(engine: Engine) -> Iterator[EnrichConfig]:
    reset(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.sb_notes; "
                "CREATE TABLE public.sb_notes (id int PRIMARY KEY, workspace_id text, body text); "
                "INSERT INTO public.sb_notes VALUES (1, 'acme', 'Refund the duplicate charge'), "
                "(2, 'acme', 'Parcel stuck in transit'), (3, 'globex', 'Dashboard is slow')"
            )
        )
    yield enrich(
        engine, CONFIG, [("notes", "acme", "1"), ("notes", "acme", "2"), ("notes", "globex", "3")]
    )
    drop_tables(engine, "public.sb_notes")


@pytest.mark.parametrize("mode", list(SearchMode))
def test_an_unknown_workspace_is_an_error_not_an_empty_result(
    engine: Engine, config: EnrichConfig, mode: SearchMode
) -> None:
    searcher = Searcher(engine, embedder(), config=config)
    with pytest.raises(UnknownWorkspace) as raised:
        searcher.search(SearchQuery(text="refund", workspace="initech", mode=mode))
    assert raised.value.field == "workspace"
    assert "unknown workspace 'initech'" in str(raised.value)


def test_a_known_workspace_without_matches_is_an_empty_result(
    engine: Engine, config: EnrichConfig
) -> None:
    searcher = Searcher(engine, embedder(), config=config)
    query = SearchQuery(text="zeppelin", workspace="globex", mode="lexical")
    assert searcher.search(query).results == []


def test_an_unknown_source_filter_names_the_known_ones(
    engine: Engine, config: EnrichConfig
) -> None:
    searcher = Searcher(engine, embedder(), config=config)
    query = SearchQuery(text="refund", workspace="acme", filters={"sources": ["tickets"]})
    with pytest.raises(UnknownSource) as raised:
        searcher.search(query)
    assert raised.value.field == "filters.sources"
    assert "unknown source 'tickets' (known: 'notes')" in str(raised.value)


@pytest.mark.parametrize(
    ("filters", "field", "value"),
    [
        ({"entity_types": ["ticket"]}, "filters.entity_types", "'ticket' (known: 'note')"),
        ({"categories": ["Notes"]}, "filters.categories", "'Notes' (known: 'Note')"),
    ],
)
def test_a_filter_value_the_configuration_does_not_know_is_refused(
    engine: Engine, config: EnrichConfig, filters: dict[str, Any], field: str, value: str
) -> None:
    searcher = Searcher(engine, embedder(), config=config)
    with pytest.raises(InvalidInput) as raised:
        searcher.search(SearchQuery(text="refund", workspace="acme", filters=filters))
    assert raised.value.field == field
    assert value in str(raised.value)


def test_lexical_search_needs_no_model(engine: Engine, config: EnrichConfig) -> None:
    searcher = Searcher(engine, None, config=config)
    results = searcher.search(SearchQuery(text="refund", workspace="acme", mode="lexical"))
    assert [r.record_key for r in results.results] == ["1"]


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_vector_and_hybrid_search_without_a_model_are_refused(
    engine: Engine, config: EnrichConfig, mode: str
) -> None:
    searcher = Searcher(engine, None, config=config)
    with pytest.raises(InvalidInput) as raised:
        searcher.search(SearchQuery(text="refund", workspace="acme", mode=mode))
    assert raised.value.field == "mode"


def test_expansion_without_the_configuration_is_refused(
    engine: Engine, config: EnrichConfig
) -> None:
    searcher = Searcher(engine, embedder())
    with pytest.raises(InvalidInput) as raised:
        searcher.search(SearchQuery(text="refund", workspace="acme", expand=True))
    assert raised.value.field == "expand"


def test_a_search_role_that_does_not_exist_is_named(engine: Engine, config: EnrichConfig) -> None:
    searcher = Searcher(engine, embedder(), config=config, role="no_such_reader")
    with pytest.raises(SearchUnavailable, match="'no_such_reader' does not exist"):
        searcher.search(SearchQuery(text="refund", workspace="acme"))
