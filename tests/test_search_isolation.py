"""A search never returns a record of another workspace: not through the application's filter,
and not when that filter is missing (row-level security alone), for every mode and filter.

Twelve workspaces hold the same texts (tickets and customers, linked one hop), so every query
matches records in every workspace, and a leak would show.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment import search_schema, vectors
from enrichment.config import EnrichConfig
from enrichment.search import Searcher, SearchFilters, SearchMode, SearchQuery, SearchUnavailable
from tests.search_fixtures import drop_tables, embedder, enrich, login_role, reset

pytestmark = pytest.mark.slow

WORKSPACES = [f"ws{i:02d}" for i in range(12)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECTS = [
    "Refund for a double charge",
    "Parcel stuck in transit",
    "Cannot sign in after password reset",
    "Webhook signature mismatch",
    "Dashboard loads slowly",
    "Export to CSV has broken accents",
    "Tablet battery drains overnight",
    "Wrong delivery address",
]
BODIES = [
    "I was charged twice for the same order, please refund the duplicate payment.",
    "The tracking page has not changed for four days and the parcel is still at the hub.",
    "After resetting my password the login page says my credentials are invalid.",
    "Our endpoint rejects your webhooks because the HMAC signature does not match.",
    "The main dashboard takes a minute to load every Monday morning.",
    "Names with accents look broken when I open the exported CSV in Excel.",
    "The tablet loses half of its battery overnight even when it is switched off.",
    "I typed the wrong apartment number, please change the delivery address.",
]
CUSTOMERS = ["Acme Logistics", "Globex Retail", "Initech Software", "Umbrella Pharma"]
SEGMENTS = ["Enterprise", "Mid-market", "SMB"]
NOTES = [
    "Large account, renews every January, prefers phone calls.",
    "Uses the API heavily for order imports.",
    "Asked about single sign-on with Okta.",
    "Pays by invoice, needs VAT on every invoice.",
]

CONFIG: dict[str, Any] = {
    "sources": [
        {
            "name": "tickets",
            "table": "public.si_tickets",
            "columns": ["subject", "body"],
            "entity": {
                "type": "support_ticket",
                "category": "Support communication",
                "attributes": {"subject": "subject", "body": "message"},
            },
            "related": [
                {
                    "name": "customer",
                    "table": "public.si_customers",
                    "join": {"local": "customer_id", "remote": "id"},
                    "fields": ["segment"],
                    "entity_type": "customer",
                }
            ],
            "stages": ["context", "chunk", "embed"],
        },
        {
            "name": "customers",
            "table": "public.si_customers",
            "columns": ["name", "notes"],
            "entity": {"type": "customer", "category": "Customer profile"},
            "stages": ["context", "embed"],
        },
    ]
}


class Records:
    """What each workspace holds: (source, key) -> (workspace, updated_at)."""

    def __init__(self) -> None:
        self.owner: dict[tuple[str, str], tuple[str, datetime]] = {}

    def add(self, source: str, key: int, workspace: str, updated_at: datetime) -> None:
        self.owner[(source, str(key))] = (workspace, updated_at)


@pytest.fixture(scope="module")
def corpus(engine: Engine) -> Iterator[tuple[EnrichConfig, Records]]:
    reset(engine)
    records = Records()
    customers, tickets = [], []
    for w, workspace in enumerate(WORKSPACES):
        for c in range(len(CUSTOMERS)):
            key = w * 100 + c
            updated = T0 + timedelta(days=c * 3)
            customers.append(
                (key, workspace, CUSTOMERS[c], SEGMENTS[(w + c) % 3], NOTES[c], updated)
            )
            records.add("customers", key, workspace, updated)
        for t in range(len(SUBJECTS)):
            key = w * 100 + t
            updated = T0 + timedelta(days=t)
            customer = w * 100 + t % len(CUSTOMERS)
            tickets.append((key, workspace, customer, SUBJECTS[t], BODIES[t], updated))
            records.add("tickets", key, workspace, updated)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.si_tickets, public.si_customers; "
                "CREATE TABLE public.si_customers (id int PRIMARY KEY, workspace_id text, "
                "name text, segment text, notes text, updated_at timestamptz); "
                "CREATE TABLE public.si_tickets (id int PRIMARY KEY, workspace_id text, "
                "customer_id int REFERENCES public.si_customers (id), subject text, body text, "
                "updated_at timestamptz)"
            )
        )
        connection.execute(
            text("INSERT INTO public.si_customers VALUES (:k, :w, :n, :s, :o, :u)"),
            [dict(zip("kwnsou", row, strict=True)) for row in customers],
        )
        connection.execute(
            text("INSERT INTO public.si_tickets VALUES (:k, :w, :c, :s, :b, :u)"),
            [dict(zip("kwcsbu", row, strict=True)) for row in tickets],
        )
    config = enrich(
        engine,
        CONFIG,
        [(source, workspace, key) for (source, key), (workspace, _) in records.owner.items()],
    )
    yield config, records
    drop_tables(engine, "public.si_tickets", "public.si_customers")


class WithoutWorkspaceFilter(Searcher):
    """The application's workspace filter left out of every query: only row-level security
    (and the lexical function's own check of the transaction's workspace) remains."""

    def _workspace_condition(self, alias: str) -> str:
        return "TRUE"


FILTERS = {
    "none": SearchFilters(),
    "tickets": SearchFilters(sources=("tickets",)),
    "customers": SearchFilters(sources=("customers",)),
    "entity type": SearchFilters(entity_types=("customer",)),
    "category": SearchFilters(categories=("Support communication",)),
    "since": SearchFilters(updated_since=T0 + timedelta(days=4)),
    "before": SearchFilters(updated_before=T0 + timedelta(days=4)),
    "all at once": SearchFilters(
        sources=("tickets",),
        entity_types=("support_ticket",),
        categories=("Support communication",),
        updated_since=T0 + timedelta(days=1),
        updated_before=T0 + timedelta(days=6),
    ),
}


def _random_queries(rng: random.Random, count: int) -> list[str]:
    words = " ".join(SUBJECTS + BODIES + NOTES + CUSTOMERS).replace(",", "").split()
    queries = []
    for _ in range(count):
        start = rng.randrange(len(words) - 4)
        queries.append(" ".join(words[start : start + rng.randint(1, 4)]))
    return queries


def _check(query: SearchQuery, results: list[Any], records: Records) -> None:
    filters = query.filters
    for result in results:
        place = (result.source, result.record_key)
        assert result.workspace_id == query.workspace, (query, result)
        assert records.owner[place][0] == query.workspace, (query, result)
        if result.expanded_from is not None:
            continue  # filters choose the hits; their neighbours are added whatever they are
        if filters.sources:
            assert result.source in filters.sources
        if filters.entity_types:
            assert result.entity_type in filters.entity_types
        if filters.categories:
            assert result.semantic_category in filters.categories
        updated = records.owner[place][1]
        assert result.updated_at == updated
        if filters.updated_since:
            assert updated >= filters.updated_since
        if filters.updated_before:
            assert updated < filters.updated_before


@pytest.mark.parametrize("mode", list(SearchMode))
@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_results_belong_to_the_workspace_searched_and_match_the_filters(
    corpus: tuple[EnrichConfig, Records], engine: Engine, mode: SearchMode, filter_name: str
) -> None:
    config, records = corpus
    model = embedder()
    searcher = Searcher(engine, model, config=config)
    bypass = WithoutWorkspaceFilter(engine, model, config=config)
    rng = random.Random(f"{mode}-{filter_name}")
    texts = _random_queries(rng, 6)
    found = 0
    for text_, vector in zip(texts, model.embed(texts), strict=True):  # one model call
        query = SearchQuery(
            text=text_,
            workspace=rng.choice(WORKSPACES),
            mode=mode,
            k=5,
            filters=FILTERS[filter_name],
            expand=rng.random() < 0.5,
        )
        results = searcher.search(query, vector=vector).results
        _check(query, results, records)
        alone = bypass.search(query, vector=vector).results
        _check(query, alone, records)
        # Row-level security alone gives the very same answer.
        assert [(r.source, r.record_key, r.score) for r in alone] == [
            (r.source, r.record_key, r.score) for r in results
        ]
        found += len(results)
    assert found > 0  # the searches did find something to check


def test_an_unfiltered_vector_search_fills_k_from_its_own_workspace(
    corpus: tuple[EnrichConfig, Records], engine: Engine
) -> None:
    config, _records = corpus
    searcher = WithoutWorkspaceFilter(engine, embedder(), config=config)
    for workspace in WORKSPACES:
        query = SearchQuery(text="refund", workspace=workspace, mode="vector", k=12)
        results = searcher.search(query).results
        assert len(results) == 12  # 12 records of the workspace; 144 of others not shown
        assert {r.workspace_id for r in results} == {workspace}


def _as_search_role(connection: Any, workspace: str | None) -> None:
    if workspace is not None:
        connection.execute(
            text("SELECT set_config('enrichment.workspace', :w, true)"), {"w": workspace}
        )
    connection.execute(text(f"SET LOCAL ROLE {search_schema.DEFAULT_SEARCH_ROLE}"))


def _table(engine: Engine) -> vectors.VectorTable:
    with engine.connect() as connection:
        table = vectors.active_table(connection)
    assert table is not None
    return table


def test_a_query_without_any_workspace_filter_sees_only_the_workspace_set(
    corpus: tuple[EnrichConfig, Records], engine: Engine
) -> None:
    table = _table(engine)
    with engine.begin() as connection:
        everything = connection.execute(
            text(f"SELECT count(DISTINCT workspace_id) FROM {table.qualified}")
        ).scalar_one()
        _as_search_role(connection, "ws03")
        seen = connection.execute(
            text(f"SELECT DISTINCT workspace_id FROM {table.qualified}")
        ).scalars()
        assert list(seen) == ["ws03"]
    assert everything == len(WORKSPACES)  # the owner sees them all: the policy made the cut


def test_the_search_role_sees_nothing_when_no_workspace_is_set(
    corpus: tuple[EnrichConfig, Records], engine: Engine
) -> None:
    table = _table(engine)
    with engine.begin() as connection:
        total = connection.execute(text(f"SELECT count(*) FROM {table.qualified}")).scalar_one()
        _as_search_role(connection, None)
        count = connection.execute(text(f"SELECT count(*) FROM {table.qualified}")).scalar_one()
    assert total > 0 and count == 0  # rows there are, and none of them is visible


def test_the_lexical_function_refuses_a_transaction_without_a_workspace(
    corpus: tuple[EnrichConfig, Records], engine: Engine
) -> None:
    table = _table(engine)
    with (
        pytest.raises(Exception, match=r"enrichment\.workspace is not set"),
        engine.begin() as connection,
    ):
        _as_search_role(connection, None)
        connection.execute(
            text("SELECT * FROM enrichment.lexical_matches(:t, 'refund', 10)"),
            {"t": table.name},
        )


def test_the_lexical_function_reads_only_registered_vector_tables(
    corpus: tuple[EnrichConfig, Records], engine: Engine
) -> None:
    with (
        pytest.raises(Exception, match="no vector table 'record_state'"),
        engine.begin() as connection,
    ):
        _as_search_role(connection, "ws01")
        connection.execute(
            text("SELECT * FROM enrichment.lexical_matches('record_state', 'x', 10)")
        )


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM {table}",
        "UPDATE {table} SET workspace_id = 'ws01'",
        "INSERT INTO {table} (source, record_key, chunk_index) VALUES ('x', 'y', 0)",
    ],
)
def test_the_search_role_cannot_change_vectors(
    corpus: tuple[EnrichConfig, Records], engine: Engine, statement: str
) -> None:
    table = _table(engine)
    with pytest.raises(Exception, match="permission denied"), engine.begin() as connection:
        _as_search_role(connection, "ws01")
        connection.execute(text(statement.format(table=table.qualified)))


def test_a_search_as_a_role_that_bypasses_row_level_security_is_refused(
    corpus: tuple[EnrichConfig, Records], engine: Engine
) -> None:
    config, _ = corpus
    owner = Searcher(engine, embedder(), config=config, role=None)  # the tests' superuser
    with pytest.raises(SearchUnavailable, match="row-level security does not restrict"):
        owner.search(SearchQuery(text="refund", workspace="ws01"))


def test_a_login_role_granted_search_is_isolated_by_the_policy_alone(
    corpus: tuple[EnrichConfig, Records], engine: Engine, database_url: str
) -> None:
    config, records = corpus
    with login_role(database_url, engine) as (role, reader):
        with engine.begin() as connection:  # expansion reads the application's tables
            connection.execute(
                text(f"GRANT SELECT ON public.si_tickets, public.si_customers TO {role}")
            )
        searcher = WithoutWorkspaceFilter(reader, embedder(), config=config, role=None)
        for mode in SearchMode:
            query = SearchQuery(
                text="refund the duplicate payment", workspace="ws07", mode=mode, expand=True
            )
            results = searcher.search(query).results
            assert results
            _check(query, results, records)
        with reader.begin() as connection:
            connection.execute(text("SELECT set_config('enrichment.workspace', 'ws07', true)"))
            seen = connection.execute(
                text(f"SELECT DISTINCT workspace_id FROM {_table(engine).qualified}")
            ).scalars()
            assert list(seen) == ["ws07"]


def test_a_new_vector_table_is_readable_by_the_search_roles(
    corpus: tuple[EnrichConfig, Records], engine: Engine, database_url: str
) -> None:
    with login_role(database_url, engine) as (role, _), engine.begin() as connection:
        table = vectors.ensure_table(
            connection, model_name="next-model", model_version="next-model@2", dimensions=8
        )
        readers = {
            name: connection.execute(
                text("SELECT has_table_privilege(:role, :table, 'SELECT')"),
                {"role": name, "table": table.qualified},
            ).scalar_one()
            for name in (role, search_schema.DEFAULT_SEARCH_ROLE)
        }
        protected = connection.execute(
            text("SELECT relrowsecurity FROM pg_class WHERE oid = CAST(:t AS regclass)"),
            {"t": table.qualified},
        ).scalar_one()
        connection.execute(text(f"DROP TABLE {table.qualified}"))
        connection.execute(
            text("DELETE FROM enrichment.embedding_tables WHERE name = :n"), {"n": table.name}
        )
    assert readers == {role: True, search_schema.DEFAULT_SEARCH_ROLE: True}
    assert protected is True
