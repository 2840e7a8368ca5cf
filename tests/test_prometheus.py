"""Prometheus exposition scraped over HTTP, and the Grafana dashboard against it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from quality.prometheus import PipelineCollector, serve
from tests.monitoring_data import States, clock

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deployments" / "grafana" / "pipeline-health.json"
SEED_NAMES = {
    "embedding_pipeline_throughput_docs_per_second",
    "embedding_pipeline_latency_seconds",
    "embedding_pipeline_errors_total",
    "embedding_pipeline_queue_depth",
    "pipeline_reprocessing_total",
    "pipeline_stale_documents_count",
}


@pytest.fixture
def queue(db: Engine) -> Engine:
    states = States(db).source("notes", ["a", "b"])
    for key in ("1", "2", "3"):
        states.record("notes", key, ("COMPLETED", "COMPLETED"), requested=130, finished=100)
        states.attempt("notes", key, "a", "COMPLETED", finished=110, duration=2.0)
        states.attempt("notes", key, "b", "COMPLETED", finished=100, duration=4.0)
    states.record("notes", "4", ("FAILED", "PENDING"), requested=7200, finished=60)
    states.attempt("notes", "4", "a", "FAILED", finished=600, duration=1, error_type="RateLimited")
    states.attempt(
        "notes", "4", "a", "FAILED", finished=60, duration=1, number=2, error_type="RateLimited"
    )
    states.record("notes", "5", ("PENDING", "PENDING"), requested=30)
    with db.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO enrichment.events (workspace_id, source, record_ids, action, reason) "
                "VALUES ('ws1', 'notes', '{1,2}', 'UPDATE', 'manual_reembed'), "
                "('ws1', 'notes', '{3}', 'UPDATE', 'entity_changed')"
            )
        )
    return db


@pytest.fixture
def scrape(queue: Engine) -> Iterator[dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    server, _ = serve(PipelineCollector(queue, clock=clock()), host="127.0.0.1", port=0)
    try:
        response = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=30)
    finally:
        server.shutdown()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        # A family with no sample right now (no AI stage, nothing growing) is still exposed.
        samples.setdefault(family.name + ("_total" if family.type == "counter" else ""), {})
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    yield samples


def test_the_endpoint_exposes_the_seed_metric_names(scrape) -> None:
    assert set(scrape) >= SEED_NAMES


def test_queue_depth_and_stale_documents_per_source(scrape) -> None:
    # Record 4: FAILED with no retry (a dead letter, not backlog); record 5 due at stage a.
    assert scrape["embedding_pipeline_queue_depth"] == {(("source", "notes"),): 1.0}
    assert scrape["pipeline_stale_documents_count"] == {(("source", "notes"),): 1.0}


def test_throughput_is_records_completed_per_second(scrape) -> None:
    assert scrape["embedding_pipeline_throughput_docs_per_second"] == {
        (("source", "notes"),): pytest.approx(3 / 3600)
    }


def test_latency_per_stage_and_quantile(scrape) -> None:
    latency = scrape["embedding_pipeline_latency_seconds"]

    assert latency[(("quantile", "0.5"), ("source", "notes"), ("stage", "b"))] == 4.0
    assert latency[(("quantile", "0.95"), ("source", "notes"), ("stage", "a"))] == pytest.approx(
        2.0
    )


def test_errors_and_reprocessing_are_counters_by_type_and_reason(scrape) -> None:
    assert scrape["embedding_pipeline_errors_total"] == {(("error_type", "RateLimited"),): 2.0}
    assert scrape["pipeline_reprocessing_total"] == {
        (("reason", "manual_reembed"),): 2.0,
        (("reason", "retry"),): 1.0,
    }


def test_scrapes_within_the_cache_time_share_one_reading(queue: Engine) -> None:
    cached = PipelineCollector(queue, clock=clock(), cache_seconds=3600)
    fresh = PipelineCollector(queue, clock=clock(), cache_seconds=0)

    assert cached.reading() is cached.reading()
    assert fresh.reading() is not fresh.reading()


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_the_dashboard_has_the_operations_panels() -> None:
    titles = [panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]]

    for wanted in (
        "Pipeline Throughput",
        "Queue Depth",
        "Processing Latency",
        "Error Rate",
        "Freshness SLA",
        "Reprocessing Queue",
        "Freshness SLO",
        "Failure rate SLO",
        "p95 processing time SLO",
        "Capacity",
    ):
        assert any(title.startswith(wanted) for title in titles), wanted


def test_every_metric_the_dashboard_queries_is_exposed(scrape) -> None:
    queried = {
        name
        for expr in dashboard_queries()
        for name in re.findall(r"\b((?:embedding_)?pipeline_[a-z_]+)", expr)
    }

    assert queried
    assert queried <= set(scrape)
