"""On a small labelled set, hybrid search finds at least as many of the relevant records in its
first ten as vector or lexical search alone (recall@10, averaged over the queries).

The set (tests/search_corpus.py) mixes the two ways people search support records: problems
described in their own words, where meaning matters, and look-ups of codes and product terms,
where the words do. Figures are in docs/search.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from statistics import mean
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment.search import Searcher, SearchMode, SearchQuery
from tests.search_corpus import DOCS, QUERIES
from tests.search_fixtures import drop_tables, embedder, enrich, reset

pytestmark = pytest.mark.slow

CONFIG: dict[str, Any] = {
    "sources": [
        {
            "name": "support",
            "table": "public.sq_support",
            "updated_at_column": None,
            "columns": ["body"],
            "entity": {"type": "support_record", "category": "Support record"},
            "stages": ["context", "embed"],
        }
    ]
}


def recall_at_10(found: list[str], relevant: frozenset[int]) -> float:
    return len({str(key) for key in relevant} & set(found[:10])) / len(relevant)


@pytest.fixture(scope="module")
def recalls(engine: Engine) -> Iterator[dict[SearchMode, dict[str, float]]]:
    """recall@10 per mode and query."""
    reset(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.sq_support; "
                "CREATE TABLE public.sq_support (id int PRIMARY KEY, workspace_id text, body text)"
            )
        )
        connection.execute(
            text("INSERT INTO public.sq_support VALUES (:id, 'kb', :body)"),
            [{"id": key, "body": body} for key, body in DOCS.items()],
        )
    config = enrich(engine, CONFIG, [("support", "kb", str(key)) for key in DOCS])
    model = embedder()
    searcher = Searcher(engine, model, config=config)
    texts = [query.text for query in QUERIES]
    figures: dict[SearchMode, dict[str, float]] = {mode: {} for mode in SearchMode}
    for query, vector in zip(QUERIES, model.embed(texts), strict=True):
        for mode in SearchMode:
            response = searcher.search(
                SearchQuery(text=query.text, workspace="kb", mode=mode, k=10), vector=vector
            )
            found = [result.record_key for result in response.results]
            figures[mode][query.text] = recall_at_10(found, query.relevant)
    yield figures
    drop_tables(engine, "public.sq_support")


def _mean(figures: dict[str, float], kind: str | None = None) -> float:
    return mean(figures[query.text] for query in QUERIES if kind is None or query.kind == kind)


def test_hybrid_recall_at_10_is_at_least_that_of_each_mode_alone(
    recalls: dict[SearchMode, dict[str, float]],
) -> None:
    table = {
        mode.value: {kind: _mean(recalls[mode], kind) for kind in ("meaning", "words", None)}
        for mode in SearchMode
    }
    print("\nrecall@10 (meaning / words / all):")
    for mode, row in table.items():
        print(f"  {mode:8} {row['meaning']:.3f} / {row['words']:.3f} / {row[None]:.3f}")
    hybrid = table["hybrid"][None]
    assert hybrid >= table["vector"][None]
    assert hybrid >= table["lexical"][None]


def test_each_mode_finds_what_it_is_for(recalls: dict[SearchMode, dict[str, float]]) -> None:
    """The set is not lopsided: meaning queries favour vectors, word queries the lexical
    index, so the comparison above says something about fusion."""
    assert _mean(recalls[SearchMode.VECTOR], "meaning") > _mean(
        recalls[SearchMode.LEXICAL], "meaning"
    )
    assert _mean(recalls[SearchMode.LEXICAL], "words") > _mean(recalls[SearchMode.VECTOR], "words")
