"""Search the enriched records of one workspace: by meaning (``vector``: the query's embedding
against the chunks', HNSW), by words (``lexical``: PostgreSQL full text over the chunk text,
GIN) or both (``hybrid``: reciprocal rank fusion of the two lists), with filters, top-k and an
optional one-hop expansion through the configured relationships.

A workspace is required by every call, and two locks keep a search inside it: every query
filters on it, and the search runs as a role that the vector table's row-level security shows
only the rows of the workspace set for the transaction (see search_schema). A search that could
read other workspaces (row-level security not in force for its role) is refused, as is one whose
embedder is not the model of the vectors it would be compared with.

Results are records, not chunks: each record appears once, with its best chunk as the snippet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
from psycopg import Cursor, errors
from psycopg.rows import dict_row
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import Engine

from enrichment import vectors
from enrichment.config import EnrichConfig
from enrichment.embedders.base import Embedder, EmbeddingError, EmbeddingUnavailable, Vector
from enrichment.errors import EnrichmentError, InvalidInput, UnknownSource
from enrichment.expansion import Expander, Neighbour
from enrichment.search_schema import DEFAULT_SEARCH_ROLE, WORKSPACE_SETTING, quote_identifier
from enrichment.vectors import VectorTable

MAX_K = 100
MAX_QUERY_CHARS = 2_000
MAX_NAME_CHARS = 200
MAX_FILTER_VALUES = 100


class SearchMode(StrEnum):
    VECTOR = "vector"
    LEXICAL = "lexical"
    HYBRID = "hybrid"


class SearchUnavailable(EnrichmentError):
    """The database is not ready to search safely: no active vector table, no search role,
    or a role that row-level security does not restrict."""


class ModelMismatch(EnrichmentError):
    """The query would be embedded by another model than the vectors it is compared with."""


class UnknownWorkspace(InvalidInput):
    def __init__(self, workspace: str) -> None:
        super().__init__(
            "workspace", f"unknown workspace {workspace!r}: no enriched record belongs to it"
        )


# --- the query ----------------------------------------------------------------------------------


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_no_nul)]


def _invalid(err: ValidationError) -> InvalidInput:
    """The first problem of a validation error as an InvalidInput naming its field."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = len(err.errors()) - 1
    also = f"; and {more} more problem{'s' * (more > 1)}" if more else ""
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, InvalidInput):  # a nested input (the filters) named its own field
        return InvalidInput(f"{where}.{inner.field}" if where else inner.field, inner.problem)
    given = "" if first["type"] == "missing" else f" (got {first['input']!r:.80})"
    return InvalidInput(where or "query", f"{first['msg']}{given}{also}")


class _Input(BaseModel):
    """Validated at construction: a mistake is an InvalidInput naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _invalid(err) from None


def _aware(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class SearchFilters(_Input):
    """Which chunks may match: all given filters at once; within one, any of its values."""

    sources: tuple[Name, ...] = Field(default=(), max_length=MAX_FILTER_VALUES)
    entity_types: tuple[Name, ...] = Field(default=(), max_length=MAX_FILTER_VALUES)
    categories: tuple[Name, ...] = Field(default=(), max_length=MAX_FILTER_VALUES)
    updated_since: datetime | None = Field(
        default=None, description="Source row updated at or after (inclusive)."
    )
    updated_before: datetime | None = Field(
        default=None, description="Source row updated before (exclusive)."
    )

    @field_validator("updated_since", "updated_before")
    @classmethod
    def _zone(cls, value: datetime | None) -> datetime | None:
        return _aware(value)

    @field_validator("updated_before")
    @classmethod
    def _window(cls, before: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("updated_since")
        if since is not None and before is not None and since >= before:
            raise ValueError(
                f"must be after updated_since ({since.isoformat()}), got {before.isoformat()}"
            )
        return before


class SearchQuery(_Input):
    text: str = Field(max_length=MAX_QUERY_CHARS)
    workspace: Name
    mode: SearchMode = SearchMode.HYBRID
    k: int = Field(default=10, ge=1, le=MAX_K)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    expand: bool = Field(default=False, description="Add records one hop from the hits.")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        _no_nul(value)
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


@dataclass(frozen=True)
class SearchOptions:
    """How hard to look. With the defaults, recall@10 of the HNSW search against exact search
    was 0.967 on 100,000 vectors (docs/benchmarks.md)."""

    min_candidates: int = 20  # chunks each list starts from (more for a large k)
    candidates_per_result: int = 4
    max_candidates: int = 2_000  # a list grows (x4) while its chunks are too few records
    ef_search: int = 64  # hnsw.ef_search: the HNSW scan's candidate list
    max_scan_tuples: int = 20_000  # hnsw.max_scan_tuples of an iterative scan
    exact_below: int = 5_000  # chunks passing the filters (planner's estimate) for an exact scan
    rrf_k: int = 60  # reciprocal rank fusion: 1 / (rrf_k + rank)
    common_share: float = 0.01  # lexical: words in more of the chunks than this are left out
    snippet_chars: int = 300
    expansion_weight: float = 0.5  # a neighbour's score: its hit's score times this
    expansion_per_hit: int = 3  # neighbours per hit and link

    def candidates(self, k: int) -> int:
        return max(self.min_candidates, self.candidates_per_result * k)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Where the record stood in each list: rank (1 = best) and raw score, None if absent."""

    vector_rank: int | None = None
    distance: float | None = None  # cosine distance of its best chunk
    lexical_rank: int | None = None
    lexical_score: float | None = None  # its best chunk: 1 + scaled ts_rank_cd if it has
    # the query words proper, the scaled ts_rank_cd alone if only some (see migration 0003)


@dataclass(frozen=True)
class Expansion:
    """Why a record that did not match was added: it is one hop from a hit."""

    source: str
    record_key: str
    link: str

    @property
    def reason(self) -> str:
        return f"related to {self.source}:{self.record_key} through {self.link}"


@dataclass(frozen=True)
class SearchResult:
    source: str
    record_key: str
    chunk_index: int
    workspace_id: str
    score: float
    snippet: str | None  # None when the source stores no text (privacy: block)
    entity_type: str
    semantic_category: str | None
    related_entity_types: tuple[str, ...]
    metadata: Mapping[str, Any]
    updated_at: datetime
    match: Match = field(default_factory=Match)
    expanded_from: Expansion | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "record_key": self.record_key,
            "chunk_index": self.chunk_index,
            "workspace_id": self.workspace_id,
            "score": self.score,
            "snippet": self.snippet,
            "entity_type": self.entity_type,
            "semantic_category": self.semantic_category,
            "related_entity_types": list(self.related_entity_types),
            "metadata": dict(self.metadata),
            "updated_at": self.updated_at.isoformat(),
            "match": self.match.__dict__,
            "expanded_from": None
            if self.expanded_from is None
            else {**self.expanded_from.__dict__, "reason": self.expanded_from.reason},
        }


@dataclass(frozen=True)
class SearchResponse:
    query: SearchQuery
    results: list[SearchResult]
    table: str
    model_version: str
    exact: bool  # the vector list came from an exact scan (few rows, or the index fell short)
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query.model_dump(mode="json"),
            "table": self.table,
            "model_version": self.model_version,
            "exact": self.exact,
            "seconds": round(self.seconds, 6),
            "results": [result.as_dict() for result in self.results],
        }


# --- SQL ----------------------------------------------------------------------------------------

# Chunks nearest to the query among the workspace's (filtered) chunks. The planner takes the
# HNSW index when it expects that to pay (an iterative scan: it goes on past ef_search until it
# has found LIMIT rows that pass the filters, or max_scan_tuples) and an exact scan of the
# workspace's rows otherwise. relaxed_order may return them slightly out of order, so they are
# materialized here and ranked below by their distance, not by scan order. The exact variant
# orders by an expression the index cannot serve, so nothing but an exact scan can answer it.
_NEAREST = """
    nearest AS MATERIALIZED (
        SELECT v.source, v.record_key, v.chunk_index,
               v.embedding <=> %(vector)b AS distance
        FROM {table} AS v
        WHERE {conditions}
        ORDER BY {order}
        LIMIT %(candidates)s
    ),
    vector_hits AS (
        SELECT *, row_number() OVER (ORDER BY distance, source, record_key) AS vector_rank
        FROM (
            SELECT DISTINCT ON (source, record_key) *
            FROM nearest ORDER BY source, record_key, distance
        ) AS best
    )"""

# Chunks whose words match any of the query's, best ranked first, from the GIN index, by a
# function that reads only the workspace set for the transaction (see migration 0003).
_MATCHES = """
    matches AS MATERIALIZED (
        SELECT * FROM enrichment.lexical_matches(
            %(table_name)s, %(text)s, %(candidates)s,
            CAST(%(sources)s AS text[]), CAST(%(entity_types)s AS text[]),
            CAST(%(categories)s AS text[]), CAST(%(updated_since)s AS timestamptz),
            CAST(%(updated_before)s AS timestamptz), CAST(%(common_share)s AS real),
            %(partial)s)
    ),
    lexical_hits AS (
        SELECT source, record_key, chunk_index, rank AS lexical_score,
               row_number() OVER (ORDER BY rank DESC, source, record_key) AS lexical_rank
        FROM (
            SELECT DISTINCT ON (source, record_key) *
            FROM matches ORDER BY source, record_key, rank DESC
        ) AS best
    )"""

_HITS = {
    SearchMode.VECTOR: """
    hits AS (
        SELECT source, record_key, chunk_index, 1 - distance AS score,
               vector_rank, distance, NULL::bigint AS lexical_rank, NULL::real AS lexical_score
        FROM vector_hits
    )""",
    SearchMode.LEXICAL: """
    hits AS (
        SELECT source, record_key, chunk_index, lexical_score::float8 AS score,
               NULL::bigint AS vector_rank, NULL::float8 AS distance, lexical_rank, lexical_score
        FROM lexical_hits
    )""",
    # Reciprocal rank fusion: a record's score is the sum over the lists of 1 / (rrf_k + its
    # rank there). Its chunk is the vector list's best, else the lexical list's.
    SearchMode.HYBRID: """
    hits AS (
        SELECT coalesce(v.source, l.source) AS source,
               coalesce(v.record_key, l.record_key) AS record_key,
               coalesce(v.chunk_index, l.chunk_index) AS chunk_index,
               coalesce(1.0 / (%(rrf_k)s + v.vector_rank), 0)
                 + coalesce(1.0 / (%(rrf_k)s + l.lexical_rank), 0) AS score,
               v.vector_rank, v.distance, l.lexical_rank, l.lexical_score
        FROM vector_hits AS v
        FULL JOIN lexical_hits AS l ON l.source = v.source AND l.record_key = v.record_key
    )""",
}

# The best k hits' chunks, read back through the workspace filter and the table's row-level
# security, one primary-key lookup each (LATERAL: the planner cannot estimate how few hits
# there are, and would otherwise hash-join the whole workspace). The list sizes ride along:
# too few chunks or records make the search look again.
_RESULTS = """,
    best_hits AS (
        SELECT * FROM hits ORDER BY score DESC, source, record_key LIMIT %(k)s
    )
SELECT h.source, h.record_key, h.chunk_index, h.score::float8 AS score,
       h.vector_rank, h.distance, h.lexical_rank, h.lexical_score,
       c.workspace_id, c.chunk_text, c.entity_type, c.semantic_category,
       c.related_entity_types, c.metadata, c.updated_at,
       {counts}
FROM best_hits AS h
CROSS JOIN LATERAL (
    SELECT c.workspace_id, c.chunk_text, c.entity_type, c.semantic_category,
           c.related_entity_types, c.metadata,
           coalesce(c.source_updated_at, c.updated_at) AS updated_at
    FROM {table} AS c
    WHERE c.source = h.source AND c.record_key = h.record_key
      AND c.chunk_index = h.chunk_index AND {workspace}
) AS c
ORDER BY h.score DESC, h.source, h.record_key"""

_COUNTS = {
    "vector": "(SELECT count(*) FROM nearest) AS vector_chunks, "
    "(SELECT count(*) FROM vector_hits) AS vector_records",
    "lexical": "(SELECT count(*) FROM matches) AS lexical_chunks, "
    "(SELECT count(*) FROM lexical_hits) AS lexical_records",
}

# The best chunk of each neighbour (nearest to the query when there is a query vector), one
# primary-key range lookup per neighbour, through the workspace filter and the policy.
_NEIGHBOURS = """
SELECT n.source, n.record_key, c.chunk_index, c.workspace_id, c.chunk_text, c.entity_type,
       c.semantic_category, c.related_entity_types, c.metadata, c.updated_at
FROM unnest(CAST(%(sources)s AS text[]), CAST(%(keys)s AS text[])) AS n(source, record_key)
CROSS JOIN LATERAL (
    SELECT c.chunk_index, c.workspace_id, c.chunk_text, c.entity_type, c.semantic_category,
           c.related_entity_types, c.metadata,
           coalesce(c.source_updated_at, c.updated_at) AS updated_at
    FROM {table} AS c
    WHERE c.source = n.source AND c.record_key = n.record_key AND {workspace}
    ORDER BY {distance}, c.chunk_index
    LIMIT 1
) AS c"""


# --- the searcher -------------------------------------------------------------------------------


class Searcher:
    """Searches the active vector table.

    ``embedder`` embeds the queries of the vector and hybrid modes; it must be the model of the
    active table (lexical searches need none). ``config`` names the sources, entity types and
    categories filters may use, and the relationships expansion follows. ``role`` is the role
    each search switches to (``SET LOCAL ROLE``) so that row-level security applies; ``None``
    when the engine connects as such a role already.
    """

    def __init__(
        self,
        engine: Engine,
        embedder: Embedder | None = None,
        *,
        config: EnrichConfig | None = None,
        role: str | None = DEFAULT_SEARCH_ROLE,
        options: SearchOptions | None = None,
    ) -> None:
        self.engine = engine
        self.embedder = embedder
        self.config = config
        self.role = role
        self.options = options or SearchOptions()
        self._expander = Expander(engine, config) if config is not None else None

    def search(self, query: SearchQuery, *, vector: Vector | None = None) -> SearchResponse:
        """The top ``query.k`` records of ``query.workspace``, best first; with ``expand``,
        their neighbours join them, each scored below the hit that led to it. ``vector`` is
        the query's embedding when the caller has it already (by this searcher's embedder);
        otherwise it is computed here."""
        started = time.perf_counter()
        self._check_filters(query.filters)
        if query.expand and self._expander is None:
            raise InvalidInput("expand", "needs the configuration of the sources' relationships")
        if query.mode is not SearchMode.LEXICAL:
            vector = self._query_vector(query.text, vector)
        with self._transaction(query, vector) as (cursor, table):
            results, exact = self._hits(cursor, table, query, vector)
            if not results:
                self._check_workspace(cursor, table, query.workspace)
            if query.expand and results:
                added = self._neighbours(cursor, table, query, vector, results)
                results = sorted(results + added, key=lambda result: -result.score)
        return SearchResponse(
            query, results, table.name, table.model_version, exact, time.perf_counter() - started
        )

    def explain(self, query: SearchQuery, *, vector: Vector | None = None) -> str:
        """How PostgreSQL runs the search's main query for this workspace and these filters
        (EXPLAIN ANALYZE): which index, how many rows. For operators and benchmarks."""
        if query.mode is not SearchMode.LEXICAL:
            vector = self._query_vector(query.text, vector)
        with self._transaction(query, vector) as (cursor, table):
            params, exact = self._plan(cursor, table, query, vector)
            sql = self._sql(table, query, exact=exact)
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
            return "\n".join(str(next(iter(row.values()))) for row in cursor.fetchall())

    @contextmanager
    def _transaction(
        self, query: SearchQuery, vector: Vector | None
    ) -> Iterator[tuple[Cursor[dict[str, Any]], VectorTable]]:
        """A read-only transaction set up for the query's workspace, as the search role, on
        the active table (whose model the query vector is checked against)."""
        with (
            self.engine.begin() as connection,
            vectors.driver(connection).cursor(row_factory=dict_row) as cursor,
        ):
            table = self._begin(cursor, query)
            if query.mode is not SearchMode.LEXICAL:
                self._check_model(table, vector)
            yield cursor, table

    # The application's own workspace filter, the first lock; row-level security is the second.
    def _workspace_condition(self, alias: str) -> str:
        return f"{alias}.workspace_id = %(workspace)s"

    # --- checks ---------------------------------------------------------------------------------

    def _check_filters(self, filters: SearchFilters) -> None:
        """Entity types and categories the configuration does not know are typos: say so
        (sources are checked against the registered ones, in the database)."""
        if self.config is None:
            return
        for name, given, known in (
            (
                "filters.entity_types",
                filters.entity_types,
                {s.entity.type for s in self.config.sources},
            ),
            (
                "filters.categories",
                filters.categories,
                {s.entity.category for s in self.config.sources},
            ),
        ):
            for value in given:
                if value not in known:
                    choices = ", ".join(repr(k) for k in sorted(known))
                    raise InvalidInput(name, f"unknown value {value!r} (known: {choices})")

    def _query_vector(self, text: str, given: Vector | None) -> Vector:
        if self.embedder is None:
            raise InvalidInput("mode", "vector and hybrid search need an embedder (the model)")
        if given is not None:
            return np.asarray(given, dtype=np.float32)
        try:
            (embedded,) = self.embedder.embed([text])
        except EmbeddingUnavailable as err:
            raise SearchUnavailable(f"the query could not be embedded: {err}") from err
        if isinstance(embedded, EmbeddingError):
            raise InvalidInput("text", f"the query could not be embedded: {embedded.message}")
        return embedded

    def _check_model(self, table: VectorTable, vector: Vector | None) -> None:
        assert self.embedder is not None and vector is not None
        version = self.embedder.model_version
        if version != table.model_version or vector.shape != (table.dimensions,):
            raise ModelMismatch(
                f"the query is embedded by {version!r} ({vector.shape[0]} dimensions) but the "
                f"active vector table {table.name} holds vectors of {table.model_version!r} "
                f"({table.dimensions} dimensions): search with that model, or activate the "
                "table of this one once it is filled (`enrich vectors activate`)"
            )

    def _check_workspace(
        self, cursor: Cursor[dict[str, Any]], table: VectorTable, workspace: str
    ) -> None:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table.qualified} AS c "
            f"WHERE {self._workspace_condition('c')})",
            {"workspace": workspace},
        )
        row = cursor.fetchone()
        if row is None or not row["exists"]:
            raise UnknownWorkspace(workspace)

    # --- the transaction ------------------------------------------------------------------------

    def _begin(self, cursor: Cursor[dict[str, Any]], query: SearchQuery) -> VectorTable:
        """Set the transaction up (workspace, role, index scan settings, read only) and return
        the active table, once row-level security is known to restrict this role on it."""
        options = self.options
        settings = {
            WORKSPACE_SETTING: query.workspace,
            # Plan every search for its own workspace and filters: a generic plan, made once for
            # all workspaces, could take the HNSW index for a workspace of ten rows.
            "plan_cache_mode": "force_custom_plan",
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.ef_search": str(options.ef_search),
            "hnsw.max_scan_tuples": str(options.max_scan_tuples),
            "transaction_read_only": "on",
        }
        calls = ", ".join(f"set_config(%(n{i})s, %(v{i})s, true)" for i in range(len(settings)))
        params = {f"n{i}": name for i, name in enumerate(settings)}
        params |= {f"v{i}": value for i, value in enumerate(settings.values())}
        cursor.execute(f"SELECT {calls}", params)
        self._switch_role(cursor, self.role)
        try:
            cursor.execute(
                "SELECT t.name, t.model_name, t.model_version, t.dimensions, t.state, "
                "row_security_active(format('enrichment.%I', t.name)) AS protected, "
                "current_user AS role, "
                "ARRAY(SELECT s.name FROM enrichment.sources AS s ORDER BY s.name) AS sources "
                "FROM enrichment.embedding_tables AS t WHERE t.state = 'active'"
            )
        except errors.InsufficientPrivilege as err:
            raise SearchUnavailable(
                f"the search role may not read the vector table registry ({err}): grant it "
                "with enrichment.search_schema.grant_search (docs/search.md)"
            ) from None
        row = cursor.fetchone()
        if row is None:
            raise SearchUnavailable(
                "no vector table is active yet: enrich some records first (`enrich run`)"
            )
        table = VectorTable(
            row["name"], row["model_name"], row["model_version"], row["dimensions"], row["state"]
        )
        role, sources = row["role"], row["sources"]
        if not row["protected"]:
            raise SearchUnavailable(
                f"row-level security does not restrict role {role!r} on {table.qualified} "
                "(it owns the table, is a superuser or has BYPASSRLS), so a search could read "
                "other workspaces: search as a role it restricts (ENRICH_SEARCH_ROLE, "
                "docs/search.md)"
            )
        for source in query.filters.sources:
            if source not in sources:
                raise UnknownSource(source, list(sources), field="filters.sources")
        return table

    def _switch_role(self, cursor: Cursor[dict[str, Any]], role: str | None) -> None:
        """SET LOCAL ROLE: ``None`` goes back to the connecting role (the one that reads the
        source tables for expansion)."""
        if self.role is None:
            return
        try:
            cursor.execute("SELECT set_config('role', %s, true)", [role or "none"])
        except errors.InvalidParameterValue:
            raise SearchUnavailable(
                f"the search role {role!r} does not exist: create it (docs/search.md) or set "
                "ENRICH_SEARCH_ROLE"
            ) from None
        except errors.InsufficientPrivilege:
            raise SearchUnavailable(
                f"this connection's role may not switch to the search role {role!r}: "
                f"GRANT {quote_identifier(role or '')} TO the role of DATABASE_URL "
                "(docs/search.md)"
            ) from None

    def _params(
        self, query: SearchQuery, table: VectorTable, vector: Vector | None
    ) -> dict[str, Any]:
        filters = query.filters
        return {
            "workspace": query.workspace,
            "vector": vector,
            "text": query.text,
            "table_name": table.name,
            "k": query.k,
            "rrf_k": self.options.rrf_k,
            "common_share": self.options.common_share,
            # Chunks with only some of a query's common words fill a lexical search's list;
            # in a hybrid one they would only push the vector list's results down.
            "partial": query.mode is SearchMode.LEXICAL,
            "sources": list(filters.sources) or None,
            "entity_types": list(filters.entity_types) or None,
            "categories": list(filters.categories) or None,
            "updated_since": filters.updated_since,
            "updated_before": filters.updated_before,
        }

    def _conditions(self, filters: SearchFilters) -> str:
        conditions = [self._workspace_condition("v")]
        if filters.sources:
            conditions.append("v.source = ANY(%(sources)s)")
        if filters.entity_types:
            conditions.append("v.entity_type = ANY(%(entity_types)s)")
        if filters.categories:
            conditions.append("v.semantic_category = ANY(%(categories)s)")
        if filters.updated_since is not None:
            conditions.append("coalesce(v.source_updated_at, v.updated_at) >= %(updated_since)s")
        if filters.updated_before is not None:
            conditions.append("coalesce(v.source_updated_at, v.updated_at) < %(updated_before)s")
        return " AND ".join(conditions)

    def _sql(self, table: VectorTable, query: SearchQuery, *, exact: bool = False) -> str:
        mode = query.mode
        ctes, counts = [], []
        if mode is not SearchMode.LEXICAL:
            order = "v.embedding <=> %(vector)b"
            ctes.append(
                _NEAREST.format(
                    table=table.qualified,
                    conditions=self._conditions(query.filters),
                    order=f"({order}) + 0" if exact else order,
                )
            )
            counts.append(_COUNTS["vector"])
        else:
            counts.append("NULL::bigint AS vector_chunks, NULL::bigint AS vector_records")
        if mode is not SearchMode.VECTOR:
            ctes.append(_MATCHES)
            counts.append(_COUNTS["lexical"])
        else:
            counts.append("NULL::bigint AS lexical_chunks, NULL::bigint AS lexical_records")
        ctes.append(_HITS[mode])
        return (
            "WITH"
            + ",".join(ctes)
            + _RESULTS.format(
                counts=", ".join(counts),
                table=table.qualified,
                workspace=self._workspace_condition("c"),
            )
        )

    def _hits(
        self,
        cursor: Cursor[dict[str, Any]],
        table: VectorTable,
        query: SearchQuery,
        vector: Vector | None,
    ) -> tuple[list[SearchResult], bool]:
        """Run the search; look again, with more candidates, while a list's chunks are too few
        records, and with an exact scan when the index scan stopped short of its limit (a
        narrow filter whose rows the HNSW graph reaches only late)."""
        params, exact = self._plan(cursor, table, query, vector)
        candidates = params["candidates"]
        while True:
            params["candidates"] = candidates
            cursor.execute(self._sql(table, query, exact=exact), params)
            rows = cursor.fetchall()
            first = rows[0] if rows else {}
            grow = candidates < self.options.max_candidates and any(
                first.get(f"{kind}_chunks") == candidates
                and first.get(f"{kind}_records", 0) < query.k
                for kind in ("vector", "lexical")
            )
            if grow:
                candidates = min(candidates * 4, self.options.max_candidates)
                continue
            if query.mode is not SearchMode.LEXICAL and not exact:
                found = first.get("vector_chunks", 0)
                if found < candidates:
                    exact = True
                    continue
            return [self._result(row) for row in rows], exact

    def _plan(
        self,
        cursor: Cursor[dict[str, Any]],
        table: VectorTable,
        query: SearchQuery,
        vector: Vector | None,
    ) -> tuple[dict[str, Any], bool]:
        """The main query's parameters, with the first list size, and whether its vector list
        is scanned exactly from the start: what a search runs first and ``explain`` shows."""
        params = self._params(query, table, vector)
        params["candidates"] = self.options.candidates(query.k)
        exact = query.mode is not SearchMode.LEXICAL and self._few_rows(
            cursor, table, query, params
        )
        return params, exact

    def _few_rows(
        self,
        cursor: Cursor[dict[str, Any]],
        table: VectorTable,
        query: SearchQuery,
        params: Mapping[str, Any],
    ) -> bool:
        """Whether the planner expects few enough chunks to pass the workspace and filters for
        an exact scan to beat the index. Its own choice comes far too late for 384-dimension
        vectors: an exact scan reads about 3 µs a row, while a filtered HNSW scan must visit
        1 / selectivity rows for each one it keeps (on 100,000 vectors the exact scan of 2,000
        rows took 1 ms, the planner's HNSW scan 18 ms; docs/benchmarks.md)."""
        if self.options.exact_below <= 0:
            return False
        cursor.execute(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table.qualified} AS v "
            f"WHERE {self._conditions(query.filters)}",
            params,
        )
        row = cursor.fetchone()
        plan: list[dict[str, Any]] = row["QUERY PLAN"] if row else []
        return bool(plan) and float(plan[0]["Plan"]["Plan Rows"]) <= self.options.exact_below

    def _result(
        self,
        row: Mapping[str, Any],
        *,
        score: float | None = None,
        expanded_from: Expansion | None = None,
    ) -> SearchResult:
        text = row["chunk_text"]
        return SearchResult(
            source=row["source"],
            record_key=row["record_key"],
            chunk_index=row["chunk_index"],
            workspace_id=row["workspace_id"],
            score=float(row["score"] if score is None else score),
            snippet=None if text is None else _snippet(text, self.options.snippet_chars),
            entity_type=row["entity_type"],
            semantic_category=row["semantic_category"],
            related_entity_types=tuple(row["related_entity_types"] or ()),
            metadata=row["metadata"] or {},
            updated_at=row["updated_at"],
            match=Match(
                vector_rank=row.get("vector_rank"),
                distance=row.get("distance"),
                lexical_rank=row.get("lexical_rank"),
                lexical_score=row.get("lexical_score"),
            )
            if expanded_from is None
            else Match(),
            expanded_from=expanded_from,
        )

    def _neighbours(
        self,
        cursor: Cursor[dict[str, Any]],
        table: VectorTable,
        query: SearchQuery,
        vector: Vector | None,
        hits: Sequence[SearchResult],
    ) -> list[SearchResult]:
        """Records one hop from the hits, scored below the hit that led to them."""
        assert self._expander is not None
        self._switch_role(cursor, None)  # the source tables are the application's to read
        neighbours = self._expander.neighbours(
            cursor,
            query.workspace,
            [(hit.source, hit.record_key) for hit in hits],
            per_hit=self.options.expansion_per_hit,
        )
        self._switch_role(cursor, self.role)
        found = {(hit.source, hit.record_key) for hit in hits}
        neighbours = [n for n in neighbours if (n.source, n.record_key) not in found]
        if not neighbours:
            return []
        distance = "(c.embedding <=> %(vector)b)" if vector is not None else "c.chunk_index"
        cursor.execute(
            _NEIGHBOURS.format(
                table=table.qualified,
                distance=distance,
                workspace=self._workspace_condition("c"),
            ),
            {
                "workspace": query.workspace,
                "vector": vector,
                "sources": [n.source for n in neighbours],
                "keys": [n.record_key for n in neighbours],
            },
        )
        rows = {(row["source"], row["record_key"]): row for row in cursor.fetchall()}
        scores = {(hit.source, hit.record_key): hit.score for hit in hits}
        added = []
        for neighbour in neighbours:
            row = rows.get((neighbour.source, neighbour.record_key))
            if row is None:  # not enriched (yet), or not in this workspace
                continue
            added.append(self._expanded(row, neighbour, scores))
        return added

    def _expanded(
        self, row: Mapping[str, Any], neighbour: Neighbour, scores: Mapping[tuple[str, str], float]
    ) -> SearchResult:
        hit_score = scores[(neighbour.hit_source, neighbour.hit_key)]
        return self._result(
            row,
            score=hit_score * self.options.expansion_weight,
            expanded_from=Expansion(neighbour.hit_source, neighbour.hit_key, neighbour.link),
        )


def _snippet(text: str, limit: int) -> str:
    """The text, cut at a word boundary near ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"
