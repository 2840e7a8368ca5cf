"""Prometheus exposition of the pipeline's metrics (``enrich metrics serve``).

The names the operations dashboards expect:

- ``embedding_pipeline_throughput_docs_per_second{source}``: records completed per second
  over the window;
- ``embedding_pipeline_latency_seconds{source,stage,quantile}``: attempt duration, p50/p95
  over the window;
- ``embedding_pipeline_errors_total{error_type}``: failed attempts, ever;
- ``embedding_pipeline_queue_depth{source}``: the backlog (rows due, running or retrying);
- ``pipeline_reprocessing_total{reason}``: records sent through again, by reason (retry,
  related_changed, schema_changed, manual_reembed, …);
- ``pipeline_stale_documents_count{source}``: records not enriched within the freshness SLA of
  their change;

and, for the dashboard's capacity line, SLO panels and reprocessing queue, the ``pipeline_*``
gauges below. Every scrape computes the metrics in the database (cached for a few seconds, so
a burst of scrapes costs one computation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Engine

from enrichment.clock import Clock
from quality.metrics import (
    RETRY_AGE_METRICS,
    MetricName,
    MetricOptions,
    Metrics,
    compute_metrics,
)
from quality.sql import query

# Retry-queue age buckets as label values.
_AGE_LABELS = {
    name: str(name).removeprefix("retry_queue_age_") for name in RETRY_AGE_METRICS.values()
}


@dataclass(frozen=True)
class _Reading:
    metrics: Metrics
    errors: dict[str, float]
    reprocessing: dict[str, float]
    seconds: float


class PipelineCollector(Collector):
    """Collects from the database on scrape; one reading serves every scrape within
    ``cache_seconds``."""

    def __init__(
        self,
        engine: Engine,
        options: MetricOptions | None = None,
        *,
        cache_seconds: float = 15.0,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.options = options or MetricOptions()
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._reading: _Reading | None = None
        self._read_at = 0.0

    def reading(self) -> _Reading:
        with self._lock:
            if self._reading is None or time.monotonic() - self._read_at >= self.cache_seconds:
                self._reading = self._read()
                self._read_at = time.monotonic()
            return self._reading

    def _read(self) -> _Reading:
        started = time.perf_counter()
        with self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                metrics = compute_metrics(connection, self.options, clock=self.clock)
                errors = {
                    row.error_type: float(row.failures)
                    for row in connection.execute(query("error_totals"))
                }
                reprocessing = {
                    row.reason: float(row.records)
                    for row in connection.execute(query("reprocessing_totals"))
                }
        return _Reading(metrics, errors, reprocessing, time.perf_counter() - started)

    def collect(self) -> Iterator[Metric]:
        reading = self.reading()
        metrics = reading.metrics
        sources, stages = metrics.scopes("source"), metrics.scopes("source_stage")

        def per_source(name: str, doc: str, metric: str, scale: float = 1.0) -> Metric:
            family = GaugeMetricFamily(name, doc, labels=["source"])
            for scope in sources:
                value = metrics.value(metric, scope)
                if value is not None:
                    family.add_metric([scope.source or ""], value * scale)
            return family

        yield per_source(
            "embedding_pipeline_throughput_docs_per_second",
            "Records completed (every stage) per second over the window.",
            MetricName.THROUGHPUT_PER_HOUR,
            1 / 3600,
        )
        yield per_source(
            "embedding_pipeline_capacity_docs_per_second",
            "Observed capacity: the highest throughput in the lookback, per second.",
            MetricName.CAPACITY_PER_HOUR,
            1 / 3600,
        )
        latency = GaugeMetricFamily(
            "embedding_pipeline_latency_seconds",
            "Attempt duration per stage (claim to outcome) over the window, by quantile.",
            labels=["source", "stage", "quantile"],
        )
        for scope in stages:
            for quantile, name in (
                ("0.5", MetricName.STAGE_LATENCY_P50_SECONDS),
                ("0.95", MetricName.STAGE_LATENCY_P95_SECONDS),
            ):
                value = metrics.value(name, scope)
                if value is not None:
                    latency.add_metric([scope.source or "", scope.stage or "", quantile], value)
        yield latency
        errors = CounterMetricFamily(
            "embedding_pipeline_errors_total",
            "Failed attempts by error type, ever.",
            labels=["error_type"],
        )
        for error_type, count in sorted(reading.errors.items()):
            errors.add_metric([error_type], count)
        yield errors
        yield per_source(
            "embedding_pipeline_queue_depth",
            "Backlog: stage rows due, running or waiting for a retry.",
            MetricName.BACKLOG_SIZE,
        )
        reprocessing = CounterMetricFamily(
            "pipeline_reprocessing_total",
            "Records sent through the pipeline again, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(reading.reprocessing.items()):
            reprocessing.add_metric([reason], count)
        yield reprocessing
        yield per_source(
            "pipeline_stale_documents_count",
            "Records not complete and changed longer ago than the freshness SLA.",
            MetricName.STALE_RECORDS,
        )
        yield per_source(
            "pipeline_freshness_sla_ratio",
            "Share of records enriched within the freshness SLA of their change.",
            MetricName.FRESHNESS_SLA_RATE,
            1 / 100,
        )
        yield per_source(
            "pipeline_completeness_ratio",
            "Share of records with every stage COMPLETED or SKIPPED.",
            MetricName.COMPLETENESS_RATE,
            1 / 100,
        )
        yield per_source(
            "pipeline_failure_ratio",
            "Failed attempts / attempts over the window.",
            MetricName.FAILURE_RATE,
            1 / 100,
        )
        yield per_source(
            "pipeline_quality_score", "Quality score, 0 to 100.", MetricName.QUALITY_SCORE
        )
        yield per_source(
            "pipeline_high_confidence_ratio",
            "Share of AI stage outputs with confidence >= the high-confidence threshold.",
            MetricName.HIGH_CONFIDENCE_RATE,
            1 / 100,
        )
        yield per_source(
            "pipeline_dead_letters",
            "Stage rows failed with no retry left.",
            MetricName.DEAD_LETTERS,
        )
        yield per_source(
            "pipeline_capacity_hours_left",
            "Hours until the backlog outgrows one freshness SLA of capacity, at the current "
            "trend (absent when it is not growing).",
            MetricName.CAPACITY_HOURS_LEFT,
        )
        mutation = GaugeMetricFamily(
            "pipeline_mutation_latency_seconds",
            "Source change to record enriched, records completed in the window, by quantile.",
            labels=["source", "quantile"],
        )
        for scope in sources:
            for quantile, name in (
                ("0.5", MetricName.MUTATION_LATENCY_P50_SECONDS),
                ("0.95", MetricName.MUTATION_LATENCY_P95_SECONDS),
            ):
                value = metrics.value(name, scope)
                if value is not None:
                    mutation.add_metric([scope.source or "", quantile], value)
        yield mutation
        retry_queue = GaugeMetricFamily(
            "pipeline_retry_queue_documents",
            "Failed stage rows waiting for a retry, by how long their record has waited.",
            labels=["source", "age"],
        )
        for scope in sources:
            for name, label in _AGE_LABELS.items():
                value = metrics.value(name, scope)
                if value is not None:
                    retry_queue.add_metric([scope.source or "", label], value)
        yield retry_queue
        yield GaugeMetricFamily(
            "pipeline_metrics_compute_seconds",
            "How long the last computation of these metrics took in the database.",
            value=reading.seconds,
        )


def registry(collector: PipelineCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def serve(
    collector: PipelineCollector, *, host: str = "127.0.0.1", port: int = 9464
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (port 0: any free port, see
    ``server.server_port``). Stop it with ``server.shutdown()``."""
    return start_http_server(port, addr=host, registry=registry(collector))
