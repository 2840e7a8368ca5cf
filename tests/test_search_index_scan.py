"""Filtered vector search with and without the HNSW index: an iterative index scan gives a small
workspace in a large table its k results, an index scan that stops short falls back to an
exact scan, and a table without its index (still filling) is searched exactly.

Workspaces whose filtered rows the planner estimates at most ``exact_below`` are searched
exactly by choice (faster than a filtered HNSW scan there); the tests of the index scan turn
that off or down. The vectors here are random unit vectors written straight into a vector
table of the real model's version (the model would only make the test slower): the small
workspace's vectors point away from the query, so a plain index scan (ef_search candidates,
then the filter) finds almost none of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from enrichment import vectors
from enrichment.database import engine_for
from enrichment.search import Searcher, SearchOptions, SearchQuery
from enrichment.vectors import ChunkRow, VectorTable
from tests.search_fixtures import embedder

pytestmark = pytest.mark.slow

BIG, SMALL = 4000, 60  # rows of the two workspaces
DIMENSIONS = 384


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    query = _unit(rng.standard_normal((1, DIMENSIONS)))[0]
    big = _unit(rng.standard_normal((BIG, DIMENSIONS)) + 0.5 * query)  # near the query
    small = _unit(rng.standard_normal((SMALL, DIMENSIONS)) - 0.5 * query)  # away from it
    return query, big, small


def _write(db: Engine, big: np.ndarray, small: np.ndarray) -> VectorTable:
    model = embedder()
    rows = [
        ChunkRow(
            source="notes",
            record_key=f"{workspace}-{i}",
            chunk_index=0,
            workspace_id=workspace,
            chunk_text=f"note {i} of {workspace}",
            entity_type="note",
            semantic_category="Note",
            related_entity_types=(),
            metadata={},
            text_hash=str(i),
            embedding=vector,
        )
        for workspace, block in (("big", big), ("small", small))
        for i, vector in enumerate(block)
    ]
    with db.begin() as connection:
        table = vectors.ensure_table(
            connection,
            model_name=model.model_name,
            model_version=model.model_version,
            dimensions=DIMENSIONS,
        )
        vectors.write_chunks(connection, table, "notes", rows, {row.record_key: 1 for row in rows})
    return table


@pytest.fixture
def indexed(db: Engine, data: tuple[np.ndarray, ...]) -> VectorTable:
    _, big, small = data
    table = _write(db, big, small)
    assert vectors.build_search_index(db, table)  # also ANALYZEs the table
    return table


@pytest.fixture
def index_only(database_url: str) -> Iterator[Engine]:
    """Connections on which the planner may not scan the table in any other way than by the
    HNSW index: the case where a plain index scan would starve a small workspace."""
    url = make_url(database_url).update_query_dict(
        {"options": "-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off"}
    )
    engine = engine_for(url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


def _exact(query: np.ndarray, block: np.ndarray, workspace: str, k: int) -> list[str]:
    order = np.argsort(-(block @ query), kind="stable")[:k]
    return [f"{workspace}-{i}" for i in order]


def _search(engine: Engine, query: np.ndarray, workspace: str, **options: int):
    searcher = Searcher(engine, embedder(), options=SearchOptions(**options))
    request = SearchQuery(text="notes", workspace=workspace, mode="vector", k=10)
    return searcher, request, searcher.search(request, vector=query)


def _drop_workspace_index(db: Engine, table: VectorTable) -> None:
    with db.begin() as connection:
        connection.execute(text(f'DROP INDEX enrichment."{table.name}_workspace"'))


def test_an_iterative_index_scan_gives_a_small_workspace_its_k_results(
    indexed: VectorTable, index_only: Engine, db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    query = data[0]
    _drop_workspace_index(db, indexed)
    searcher, request, response = _search(index_only, query, "small", exact_below=0)
    assert "Index Scan using" in searcher.explain(request, vector=query)
    assert f"{indexed.name}_hnsw" in searcher.explain(request, vector=query)
    assert len(response.results) == 10
    assert {r.workspace_id for r in response.results} == {"small"}
    assert response.exact is False  # the index scan found them, not the fallback


def test_the_scan_without_iteration_would_have_starved_it(
    indexed: VectorTable, index_only: Engine, db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    """What the test above guards against: ef_search candidates, then the filter."""
    query = data[0]
    _drop_workspace_index(db, indexed)
    with index_only.begin() as connection:
        connection.execute(text("SET LOCAL hnsw.iterative_scan = off"))
        connection.execute(text("SET LOCAL hnsw.ef_search = 100"))
        found = connection.execute(
            text(
                f"SELECT count(*) FROM (SELECT 1 FROM {indexed.qualified} "
                "WHERE workspace_id = 'small' ORDER BY embedding <=> CAST(:q AS vector) "
                "LIMIT 40) AS s"
            ),
            {"q": str(query.tolist())},
        ).scalar_one()
    assert found < 10


def test_an_index_scan_that_stops_short_falls_back_to_an_exact_scan(
    indexed: VectorTable, index_only: Engine, db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    query, _, small = data
    _drop_workspace_index(db, indexed)
    _, _, response = _search(index_only, query, "small", max_scan_tuples=50, exact_below=0)
    assert response.exact is True
    assert [r.record_key for r in response.results] == _exact(query, small, "small", 10)


def test_a_large_workspace_is_searched_through_the_index(
    indexed: VectorTable, db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    query = data[0]
    searcher, request, response = _search(db, query, "big", exact_below=1000)
    assert f"{indexed.name}_hnsw" in searcher.explain(request, vector=query)
    assert response.exact is False
    assert len(response.results) == 10
    assert {r.workspace_id for r in response.results} == {"big"}


def test_a_workspace_with_few_rows_is_searched_exactly_even_with_the_index(
    indexed: VectorTable, db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    query, _, small = data
    searcher, request, response = _search(db, query, "small")  # 60 rows, below exact_below
    assert "hnsw" not in searcher.explain(request, vector=query)
    assert response.exact is True
    assert [r.record_key for r in response.results] == _exact(query, small, "small", 10)


def test_a_table_without_its_index_is_searched_exactly(
    db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    query, big, small = data
    table = _write(db, big, small)
    with db.begin() as connection:
        connection.execute(text(f"ANALYZE {table.qualified}"))
    for workspace, block in (("big", big), ("small", small)):
        searcher, request, response = _search(db, query, workspace)
        assert "hnsw" not in searcher.explain(request, vector=query)
        assert [r.record_key for r in response.results] == _exact(query, block, workspace, 10)


def test_a_table_keeps_its_vectors_in_the_row_however_wide_the_text(
    db: Engine, data: tuple[np.ndarray, ...]
) -> None:
    """An exact scan reads the vectors from the rows: they must not go to the TOAST table,
    where pgvector's default storage would send them once the text and the lexical column make
    a row wider than 2 kB."""
    _, big, small = data
    table = _write(db, big[:50], small[:5])
    with db.begin() as connection:
        connection.execute(
            text(
                f"UPDATE {table.qualified} SET chunk_text = "
                "(SELECT string_agg(md5(random()::text || g), ' ') FROM generate_series(1, 40) g "
                "WHERE record_key IS NOT NULL)"
            )
        )
        wide, vectors_out_of_line = connection.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_column_size(t.*) > 2000), "
                "count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL) "
                f"FROM {table.qualified} AS t"
            )
        ).one()
    assert wide == 55
    assert vectors_out_of_line == 0
