"""One-hop expansion: the records related to a hit (through the configured relationships, both
ways) join the results below it and say why; unrelated records do not, nor do related ones of
another workspace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment.config import EnrichConfig
from enrichment.search import Searcher, SearchFilters, SearchQuery, SearchResult
from tests.search_fixtures import drop_tables, embedder, enrich, reset

pytestmark = pytest.mark.slow

CONFIG: dict[str, Any] = {
    "sources": [
        {
            "name": "tickets",
            "table": "public.sx_tickets",
            "columns": ["body"],
            "entity": {"type": "support_ticket", "category": "Support communication"},
            "related": [
                {
                    "name": "customer",
                    "table": "public.sx_customers",
                    "join": {"local": "customer_id", "remote": "id"},
                    "fields": ["segment"],
                    "entity_type": "customer",
                },
                {  # a relation to a table that is not a source: text, but nothing to expand to
                    "name": "agent",
                    "table": "public.sx_agents",
                    "join": {"local": "agent_id", "remote": "id"},
                    "fields": ["name"],
                },
            ],
            "stages": ["context", "embed"],
        },
        {
            "name": "customers",
            "table": "public.sx_customers",
            "columns": ["name", "notes"],
            "entity": {"type": "customer", "category": "Customer profile"},
            "stages": ["context", "embed"],
        },
    ]
}

CUSTOMERS = [
    (1, "acme", "Nordwind Freight", "Enterprise", "Runs a fleet of refrigerated trucks."),
    (2, "acme", "Globex Retail", "SMB", "Sells garden furniture online."),
    (3, "beta", "Initech Software", "Mid-market", "Builds payroll software."),
]
TICKETS = [
    (10, "acme", 1, 7, "We were charged twice for the same order, refund the duplicate."),
    (11, "acme", 2, 7, "The parcel has been stuck at the hub for four days."),
    (12, "acme", 2, 7, "The dashboard takes a minute to load every morning."),
    # Wrong data: a beta ticket pointing at acme's customer. Expansion stays in its workspace.
    (20, "beta", 1, 7, "Our webhook endpoint rejects your signature."),
    (21, "beta", 3, 7, "Payroll export to CSV has broken accents."),
]


@pytest.fixture(scope="module")
def config(engine: Engine) -> Iterator[EnrichConfig]:
    reset(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.sx_tickets, public.sx_customers, public.sx_agents; "
                "CREATE TABLE public.sx_agents (id int PRIMARY KEY, name text); "
                "INSERT INTO public.sx_agents VALUES (7, 'Robin'); "
                "CREATE TABLE public.sx_customers (id int PRIMARY KEY, workspace_id text, "
                "name text, segment text, notes text, updated_at timestamptz DEFAULT now()); "
                "CREATE TABLE public.sx_tickets (id int PRIMARY KEY, workspace_id text, "
                "customer_id int, agent_id int, body text, updated_at timestamptz DEFAULT now())"
            )
        )
        connection.execute(
            text(
                "INSERT INTO public.sx_customers (id, workspace_id, name, segment, notes) "
                "VALUES (:i, :w, :n, :s, :o)"
            ),
            [dict(zip("iwnso", row, strict=True)) for row in CUSTOMERS],
        )
        connection.execute(
            text(
                "INSERT INTO public.sx_tickets (id, workspace_id, customer_id, agent_id, body) "
                "VALUES (:i, :w, :c, :a, :b)"
            ),
            [dict(zip("iwcab", row, strict=True)) for row in TICKETS],
        )
    records = [("customers", w, str(i)) for i, w, *_ in CUSTOMERS]
    records += [("tickets", w, str(i)) for i, w, *_ in TICKETS]
    yield enrich(engine, CONFIG, records)
    drop_tables(engine, "public.sx_tickets", "public.sx_customers", "public.sx_agents")


def _search(engine: Engine, config: EnrichConfig, **query: Any) -> list[SearchResult]:
    searcher = Searcher(engine, embedder(), config=config)
    return searcher.search(SearchQuery(**query)).results


def _places(results: list[SearchResult]) -> list[tuple[str, str]]:
    return [(r.source, r.record_key) for r in results]


def test_a_ticket_hit_brings_its_customer_and_no_other(
    engine: Engine, config: EnrichConfig
) -> None:
    results = _search(
        engine,
        config,
        text="charged twice, refund the duplicate",
        workspace="acme",
        k=1,
        filters=SearchFilters(sources=("tickets",)),
        expand=True,
    )
    hit, neighbour = results  # and nothing else: customer 2 is unrelated to ticket 10
    assert (hit.source, hit.record_key, hit.expanded_from) == ("tickets", "10", None)
    assert (neighbour.source, neighbour.record_key) == ("customers", "1")
    assert neighbour.expanded_from is not None
    assert neighbour.expanded_from.reason == "related to tickets:10 through customer"
    assert neighbour.score < hit.score
    assert neighbour.snippet is not None and "Nordwind Freight" in neighbour.snippet


def test_a_customer_hit_brings_its_tickets_through_the_relation_read_backwards(
    engine: Engine, config: EnrichConfig
) -> None:
    results = _search(
        engine,
        config,
        text="garden furniture shop",
        workspace="acme",
        mode="vector",
        k=1,
        filters=SearchFilters(sources=("customers",)),
        expand=True,
    )
    assert _places(results) == [("customers", "2"), ("tickets", "11"), ("tickets", "12")]
    reasons = {r.record_key: r.expanded_from.reason for r in results[1:] if r.expanded_from}
    assert reasons == {
        "11": "related to customers:2 through tickets.customer",
        "12": "related to customers:2 through tickets.customer",
    }


def test_expansion_does_not_cross_into_another_workspace(
    engine: Engine, config: EnrichConfig
) -> None:
    # Ticket 20 (beta) points at customer 1 (acme): neither side may bring the other.
    from_acme = _search(
        engine,
        config,
        text="refrigerated trucks",
        workspace="acme",
        mode="lexical",
        k=1,
        expand=True,
    )
    assert _places(from_acme) == [("customers", "1"), ("tickets", "10")]
    from_beta = _search(
        engine,
        config,
        text="webhook signature",
        workspace="beta",
        mode="lexical",
        k=1,
        expand=True,
    )
    assert _places(from_beta) == [("tickets", "20")]


def test_without_expand_only_hits_are_returned(engine: Engine, config: EnrichConfig) -> None:
    results = _search(
        engine,
        config,
        text="charged twice, refund the duplicate",
        workspace="acme",
        k=1,
        filters=SearchFilters(sources=("tickets",)),
    )
    assert _places(results) == [("tickets", "10")]


def test_a_neighbour_that_is_a_hit_already_is_listed_once(
    engine: Engine, config: EnrichConfig
) -> None:
    results = _search(engine, config, text="Nordwind refund", workspace="acme", k=5, expand=True)
    places = _places(results)
    assert len(places) == len(set(places))
    hits = [r for r in results if r.expanded_from is None]
    assert len(hits) == 5  # acme has 5 records: all hits, nothing left to add
    assert len(results) == 5
