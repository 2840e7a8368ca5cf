"""`enrich search`: the configured sources' model, filters and expansion from the command line,
results as a table or as JSON, and bad input ending with exit status 2 and the field named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from enrichment import cli
from enrichment.settings import get_settings
from tests.search_fixtures import drop_tables, enrich, reset

pytestmark = pytest.mark.slow

CONFIG: dict[str, Any] = {
    "sources": [
        {
            "name": "tickets",
            "table": "public.sc_tickets",
            "columns": ["body"],
            "entity": {"type": "support_ticket", "category": "Support communication"},
            "related": [
                {
                    "name": "customer",
                    "table": "public.sc_customers",
                    "join": {"local": "customer_id", "remote": "id"},
                    "fields": ["segment"],
                }
            ],
            "stages": ["context", "embed"],
        },
        {
            "name": "customers",
            "table": "public.sc_customers",
            "columns": ["name"],
            "entity": {"type": "customer", "category": "Customer profile"},
            "stages": ["context", "embed"],
        },
    ]
}


@pytest.fixture(scope="module")
def enriched(engine: Engine) -> Iterator[None]:
    reset(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.sc_tickets, public.sc_customers; "
                "CREATE TABLE public.sc_customers (id int PRIMARY KEY, workspace_id text, "
                "name text, segment text, updated_at timestamptz); "
                "CREATE TABLE public.sc_tickets (id int PRIMARY KEY, workspace_id text, "
                "customer_id int, body text, updated_at timestamptz); "
                "INSERT INTO public.sc_customers VALUES "
                "(1, 'acme', 'Nordwind Freight', 'Enterprise', '2026-01-05'), "
                "(2, 'globex', 'Globex Retail', 'SMB', '2026-01-05'); "
                "INSERT INTO public.sc_tickets VALUES "
                "(10, 'acme', 1, 'We were charged twice, refund the duplicate.', '2026-01-10'), "
                "(11, 'acme', 1, 'The parcel is stuck at the hub.', '2026-02-10'), "
                "(20, 'globex', 2, 'We were charged twice, refund the duplicate.', '2026-01-10')"
            )
        )
    enrich(
        engine,
        CONFIG,
        [
            ("customers", "acme", "1"),
            ("customers", "globex", "2"),
            ("tickets", "acme", "10"),
            ("tickets", "acme", "11"),
            ("tickets", "globex", "20"),
        ],
    )
    yield
    drop_tables(engine, "public.sc_tickets", "public.sc_customers")


@pytest.fixture
def search(
    enriched: None, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Invoke `enrich search ARGS...` on the test database with the configuration above."""
    config = tmp_path / "enrich.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(config))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli.app, ["search", *args], catch_exceptions=True)
    get_settings.cache_clear()


def test_json_output_carries_key_source_score_snippet_and_metadata(search: Any) -> None:
    result = search("refund the duplicate", "--workspace", "acme", "--k", "1", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["query"]["workspace"] == "acme"
    assert answer["query"]["mode"] == "hybrid"
    (hit,) = answer["results"]
    assert (hit["source"], hit["record_key"], hit["workspace_id"]) == ("tickets", "10", "acme")
    assert hit["score"] > 0
    assert "charged twice" in hit["snippet"]
    assert hit["metadata"] == {"body": "We were charged twice, refund the duplicate."}
    assert hit["match"]["vector_rank"] == 1 and hit["match"]["lexical_rank"] == 1


def test_filters_and_expansion_from_the_command_line(search: Any) -> None:
    result = search(
        "charged twice",
        "--workspace",
        "acme",
        "--mode",
        "lexical",
        "--source",
        "tickets",
        "--entity-type",
        "support_ticket",
        "--category",
        "Support communication",
        "--since",
        "2026-01-01",
        "--before",
        "2026-02-01",
        "--expand",
        "--json",
    )
    assert result.exit_code == 0, result.output
    results = json.loads(result.output)["results"]
    assert [(r["source"], r["record_key"]) for r in results] == [
        ("tickets", "10"),
        ("customers", "1"),
    ]
    assert results[1]["expanded_from"]["reason"] == "related to tickets:10 through customer"


def test_the_table_shows_results_and_why_neighbours_were_added(search: Any) -> None:
    result = search("refund", "--workspace", "acme", "--mode", "vector", "--k", "1", "--expand")
    assert result.exit_code == 0, result.output
    assert "results in workspace 'acme'" in result.output
    assert "tickets" in result.output and "charged twice" in result.output
    assert "related to tickets:10 through customer" in result.output


def test_a_search_without_a_workspace_is_a_usage_error(search: Any) -> None:
    result = search("refund")
    assert result.exit_code == 2
    assert "--workspace" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "0"], "field 'k'"),
        (["--since", "last week"], "field '--since'"),
        (["--source", "orders"], "unknown source 'orders'"),
        (["--workspace", "initech"], "unknown workspace 'initech'"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    search: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    argv = ["enrich", "search", "refund", "--workspace", "acme", *args]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
