"""Monitoring metrics per workspace, source and stage, computed in the database.

Three aggregate queries (``quality/sql/metrics.sql``) read record_state once, the attempts of
the window through their ``finished_at`` index, and the throughput peak from past snapshots;
what comes back is a few rows per scope, which are turned into named values here. The derived
values (quality score, capacity projection) are small formulas over those aggregates, kept in
plain functions so they can be read and tested on their own.

Every metric is documented in ``docs/monitoring.md``; :data:`METRICS` is the same list in code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Connection

from enrichment.clock import Clock, DatabaseClock
from quality.sql import query

Grain = Literal["all", "source", "workspace_source", "source_stage", "workspace_source_stage"]
GRAINS: tuple[Grain, ...] = (
    "all",
    "source",
    "workspace_source",
    "source_stage",
    "workspace_source_stage",
)
RECORD_GRAINS: tuple[Grain, ...] = ("all", "source", "workspace_source")


@dataclass(frozen=True, order=True)
class Scope:
    """Where a value applies. ``None`` means all of them: ``Scope()`` is everything,
    ``Scope(source="notes")`` every workspace and stage of source notes."""

    workspace_id: str | None = None
    source: str | None = None
    stage: str | None = None

    @property
    def grain(self) -> Grain:
        if self.source is None:
            return "all"
        if self.stage is None:
            return "source" if self.workspace_id is None else "workspace_source"
        return "source_stage" if self.workspace_id is None else "workspace_source_stage"

    @property
    def label(self) -> str:
        """``all``, or ``workspace=acme source=notes stage=embed`` (the set parts only)."""
        parts = [
            f"{key}={value}"
            for key, value in (
                ("workspace", self.workspace_id),
                ("source", self.source),
                ("stage", self.stage),
            )
            if value is not None
        ]
        return " ".join(parts) or "all"


class MetricName(StrEnum):
    """Names of the metrics, as stored in ``enrichment.metric_snapshots.name``."""

    RECORDS = "records"
    COMPLETENESS_RATE = "completeness_rate"
    BACKLOG_SIZE = "backlog_size"
    OLDEST_PENDING_AGE_SECONDS = "oldest_pending_age_seconds"
    THROUGHPUT_PER_HOUR = "throughput_per_hour"
    ARRIVAL_RATE_PER_HOUR = "arrival_rate_per_hour"
    STAGE_THROUGHPUT_PER_HOUR = "stage_throughput_per_hour"
    STAGE_LATENCY_P50_SECONDS = "stage_latency_p50_seconds"
    STAGE_LATENCY_P95_SECONDS = "stage_latency_p95_seconds"
    MUTATION_LATENCY_P50_SECONDS = "mutation_latency_p50_seconds"
    MUTATION_LATENCY_P95_SECONDS = "mutation_latency_p95_seconds"
    ATTEMPTS = "attempts"
    FAILED_ATTEMPTS = "failed_attempts"
    FAILURE_RATE = "failure_rate"
    DEAD_LETTERS = "dead_letters"
    OVER_RETRY_LIMIT = "over_retry_limit"
    STUCK_IN_PROGRESS = "stuck_in_progress"
    RETRY_QUEUE = "retry_queue"
    RETRY_QUEUE_AGE_0_5M = "retry_queue_age_0_5m"
    RETRY_QUEUE_AGE_5M_30M = "retry_queue_age_5m_30m"
    RETRY_QUEUE_AGE_30M_2H = "retry_queue_age_30m_2h"
    RETRY_QUEUE_AGE_2H_24H = "retry_queue_age_2h_24h"
    RETRY_QUEUE_AGE_24H_PLUS = "retry_queue_age_24h_plus"
    CONFIDENCE_COUNT = "confidence_count"
    CONFIDENCE_MEAN = "confidence_mean"
    HIGH_CONFIDENCE_RATE = "high_confidence_rate"
    QUALITY_SCORE = "quality_score"
    FRESHNESS_SLA_RATE = "freshness_sla_rate"
    STALE_RECORDS = "stale_records"
    CAPACITY_PER_HOUR = "capacity_per_hour"
    BACKLOG_GROWTH_PER_HOUR = "backlog_growth_per_hour"
    CAPACITY_HOURS_LEFT = "capacity_hours_left"


def confidence_bucket_name(bucket: int) -> str:
    """``confidence_bucket_0`` (0 ≤ c < 0.1) … ``confidence_bucket_9`` (0.9 ≤ c ≤ 1)."""
    if not 0 <= bucket <= 9:
        raise ValueError(f"confidence buckets are 0..9, got {bucket}")
    return f"confidence_bucket_{bucket}"


CONFIDENCE_BUCKETS = tuple(confidence_bucket_name(bucket) for bucket in range(10))

RETRY_AGE_METRICS: dict[str, MetricName] = {
    "retry_age_0_5m": MetricName.RETRY_QUEUE_AGE_0_5M,
    "retry_age_5m_30m": MetricName.RETRY_QUEUE_AGE_5M_30M,
    "retry_age_30m_2h": MetricName.RETRY_QUEUE_AGE_30M_2H,
    "retry_age_2h_24h": MetricName.RETRY_QUEUE_AGE_2H_24H,
    "retry_age_24h_plus": MetricName.RETRY_QUEUE_AGE_24H_PLUS,
}


@dataclass(frozen=True)
class MetricInfo:
    unit: str
    grains: tuple[Grain, ...]
    description: str


_ALL = GRAINS
METRICS: dict[str, MetricInfo] = {
    MetricName.RECORDS: MetricInfo("records", RECORD_GRAINS, "live records (not deleted)"),
    MetricName.COMPLETENESS_RATE: MetricInfo(
        "percent",
        _ALL,
        "records with every stage COMPLETED or SKIPPED; per stage: rows of the stage finished",
    ),
    MetricName.BACKLOG_SIZE: MetricInfo(
        "rows", _ALL, "stage rows due, running or waiting for a retry (as `enrich status`)"
    ),
    MetricName.OLDEST_PENDING_AGE_SECONDS: MetricInfo(
        "seconds", _ALL, "age of the oldest change still in the backlog (only with a backlog)"
    ),
    MetricName.THROUGHPUT_PER_HOUR: MetricInfo(
        "records/hour", RECORD_GRAINS, "records that became complete in the window, per hour"
    ),
    MetricName.ARRIVAL_RATE_PER_HOUR: MetricInfo(
        "records/hour", RECORD_GRAINS, "records whose pending change arrived in the window"
    ),
    MetricName.STAGE_THROUGHPUT_PER_HOUR: MetricInfo(
        "rows/hour", _ALL, "attempts that finished their stage (COMPLETED/SKIPPED) in the window"
    ),
    MetricName.STAGE_LATENCY_P50_SECONDS: MetricInfo(
        "seconds", _ALL, "median attempt duration in the window (claim to outcome)"
    ),
    MetricName.STAGE_LATENCY_P95_SECONDS: MetricInfo(
        "seconds", _ALL, "95th percentile attempt duration in the window"
    ),
    MetricName.MUTATION_LATENCY_P50_SECONDS: MetricInfo(
        "seconds", RECORD_GRAINS, "median change-to-enriched time of records completed in window"
    ),
    MetricName.MUTATION_LATENCY_P95_SECONDS: MetricInfo(
        "seconds", RECORD_GRAINS, "95th percentile change-to-enriched time, same records"
    ),
    MetricName.ATTEMPTS: MetricInfo("attempts", _ALL, "attempts that finished in the window"),
    MetricName.FAILED_ATTEMPTS: MetricInfo("attempts", _ALL, "of which FAILED"),
    MetricName.FAILURE_RATE: MetricInfo(
        "percent", _ALL, "failed attempts / attempts in the window (only with attempts)"
    ),
    MetricName.DEAD_LETTERS: MetricInfo("rows", _ALL, "FAILED with no attempt scheduled"),
    MetricName.OVER_RETRY_LIMIT: MetricInfo(
        "rows", _ALL, "rows whose retries (attempts - 1) exceed their stage's retry limit"
    ),
    MetricName.STUCK_IN_PROGRESS: MetricInfo(
        "rows", _ALL, "IN_PROGRESS with the lease expired (a worker died or stalled)"
    ),
    MetricName.RETRY_QUEUE: MetricInfo("rows", _ALL, "FAILED with a retry scheduled"),
    **{
        name: MetricInfo("rows", _ALL, f"retry queue, record waiting {name.split('_age_')[1]}")
        for name in RETRY_AGE_METRICS.values()
    },
    MetricName.CONFIDENCE_COUNT: MetricInfo(
        "rows", _ALL, "finished rows whose output carries a confidence in 0..1"
    ),
    MetricName.CONFIDENCE_MEAN: MetricInfo("0..1", _ALL, "mean confidence of those rows"),
    MetricName.HIGH_CONFIDENCE_RATE: MetricInfo(
        "percent", _ALL, "of those rows, confidence >= high_confidence (0.7)"
    ),
    **{
        name: MetricInfo("rows", _ALL, f"confidence in [{int(name[-1]) / 10:.1f}, +0.1)")
        for name in CONFIDENCE_BUCKETS
    },
    MetricName.QUALITY_SCORE: MetricInfo(
        "0..100", RECORD_GRAINS, "completeness, failure rate and confidence (see quality_score)"
    ),
    MetricName.FRESHNESS_SLA_RATE: MetricInfo(
        "percent", RECORD_GRAINS, "records enriched within the SLA of their change, or not late yet"
    ),
    MetricName.STALE_RECORDS: MetricInfo(
        "records", RECORD_GRAINS, "not complete, change older than the freshness SLA"
    ),
    MetricName.CAPACITY_PER_HOUR: MetricInfo(
        "records/hour", RECORD_GRAINS, "highest throughput_per_hour in the lookback, or now"
    ),
    MetricName.BACKLOG_GROWTH_PER_HOUR: MetricInfo(
        "records/hour", RECORD_GRAINS, "arrival rate minus throughput"
    ),
    MetricName.CAPACITY_HOURS_LEFT: MetricInfo(
        "hours", RECORD_GRAINS, "until the backlog outgrows one SLA of capacity (see docs)"
    ),
}


@dataclass(frozen=True)
class Metric:
    scope: Scope
    name: str
    value: float


@dataclass(frozen=True)
class MetricOptions:
    """What the metrics are measured against. Defaults: a one-hour window, a one-hour
    freshness SLA, confidence 0.7, 5 retries (the default retry schedule), a week of history
    for the capacity peak."""

    window_seconds: float = 3600.0
    freshness_sla_seconds: float = 3600.0
    high_confidence: float = 0.7
    max_retries: int = 5
    retry_limits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    capacity_lookback_seconds: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {self.window_seconds}")
        if self.freshness_sla_seconds <= 0:
            raise ValueError(f"freshness_sla_seconds must be > 0, got {self.freshness_sla_seconds}")
        if not 0 <= self.high_confidence <= 1:
            raise ValueError(f"high_confidence must be in 0..1, got {self.high_confidence}")


@dataclass(frozen=True)
class Metrics:
    """Every metric value of one moment, by scope and name."""

    taken_at: datetime
    options: MetricOptions
    values: tuple[Metric, ...]

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def value(self, name: str, scope: Scope | None = None) -> float | None:
        """The value of ``name`` in ``scope`` (default: everything), or None when it is not
        defined there (a rate without a denominator, a metric of another grain)."""
        return self._index().get((scope or Scope(), name))

    def named(self, name: str) -> list[Metric]:
        return [metric for metric in self.values if metric.name == name]

    def scopes(self, grain: Grain | None = None) -> list[Scope]:
        """The scopes present (of one grain, if given), in display order."""
        found = {m.scope for m in self.values if grain is None or m.scope.grain == grain}
        return sorted(found, key=_scope_order)

    def for_scope(self, scope: Scope) -> dict[str, float]:
        return {metric.name: metric.value for metric in self.values if metric.scope == scope}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"taken_at": ..., "scopes": [{"workspace_id", "source", "stage",
        "metrics": {name: value}}]}``."""
        return {
            "taken_at": self.taken_at.isoformat(),
            "window_seconds": self.options.window_seconds,
            "freshness_sla_seconds": self.options.freshness_sla_seconds,
            "scopes": [
                {
                    "workspace_id": scope.workspace_id,
                    "source": scope.source,
                    "stage": scope.stage,
                    "metrics": self.for_scope(scope),
                }
                for scope in self.scopes()
            ],
        }

    def _index(self) -> dict[tuple[Scope, str], float]:
        cached: dict[tuple[Scope, str], float] | None = self.__dict__.get("_cache")
        if cached is None:
            cached = {(metric.scope, metric.name): metric.value for metric in self.values}
            object.__setattr__(self, "_cache", cached)
        return cached


def _scope_order(scope: Scope) -> tuple[str, str, str]:
    # "all" first, then by source, workspace, stage; None sorts before any name.
    return (scope.source or "", scope.workspace_id or "", scope.stage or "")


# --- formulas ---------------------------------------------------------------------------------

QUALITY_WEIGHTS = {"completeness": 0.4, "success": 0.3, "confidence": 0.3}


def quality_score(
    completeness_rate: float, failure_rate: float | None, confidence_mean: float | None
) -> float:
    """A 0-100 score: 40 % completeness, 30 % attempt success (100 - failure rate), 30 % mean
    confidence of AI stage outputs.

    Rates are percentages, the confidence 0..1. With no attempts in the window the success
    part counts as full (nothing failed); with no confidence at all (no AI stage) the score is
    the other two parts, re-weighted to 100.
    """
    completeness = _clamp(completeness_rate / 100.0)
    success = 1.0 if failure_rate is None else 1.0 - _clamp(failure_rate / 100.0)
    parts = [
        (QUALITY_WEIGHTS["completeness"], completeness),
        (QUALITY_WEIGHTS["success"], success),
    ]
    if confidence_mean is not None:
        parts.append((QUALITY_WEIGHTS["confidence"], _clamp(confidence_mean)))
    weight = sum(w for w, _ in parts)
    return 100.0 * sum(w * v for w, v in parts) / weight


def capacity_hours_left(
    *,
    backlog: float,
    growth_per_hour: float,
    capacity_per_hour: float,
    sla_seconds: float,
) -> float | None:
    """Hours until the backlog outgrows the throughput: until it holds more records than the
    pipeline clears within one freshness SLA at its capacity (after that, new changes miss
    the SLA). 0 when it already does; None when it is not growing, or when no capacity has
    been observed yet (nothing completed in the lookback: there is no trend to project)."""
    if capacity_per_hour <= 0:
        return None
    limit = capacity_per_hour * sla_seconds / 3600.0
    if backlog > limit:
        return 0.0
    if growth_per_hour <= 0:
        return None
    return (limit - backlog) / growth_per_hour


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _rate(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


# --- computing --------------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.values: dict[tuple[Scope, str], float] = {}

    def put(self, scope: Scope, name: str, value: float | int | None) -> None:
        if value is not None:
            self.values[(scope, str(name))] = float(value)

    def get(self, scope: Scope, name: str) -> float | None:
        return self.values.get((scope, str(name)))

    def metrics(self) -> tuple[Metric, ...]:
        ordered = sorted(
            self.values.items(), key=lambda item: (_scope_order(item[0][0]), item[0][1])
        )
        return tuple(Metric(scope, name, value) for (scope, name), value in ordered)


class _Numbers:
    """A result row with its numbers as floats (PostgreSQL's sum() of counts is numeric)."""

    def __init__(self, row: Any) -> None:
        self._values = {
            key: float(value) if isinstance(value, Decimal | int) else value
            for key, value in row._mapping.items()
        }

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


def _scope(row: Any) -> Scope:
    mapping = row._mapping
    return Scope(
        workspace_id=mapping.get("workspace_id"),
        source=mapping.get("source"),
        stage=mapping.get("stage"),
    )


def _retry_limit_params(options: MetricOptions) -> dict[str, Any]:
    keys = sorted(options.retry_limits)
    return {
        "max_retries": options.max_retries,
        "limit_sources": [source for source, _ in keys],
        "limit_stages": [stage for _, stage in keys],
        "limit_retries": [options.retry_limits[key] for key in keys],
    }


def compute_metrics(
    connection: Connection, options: MetricOptions | None = None, *, clock: Clock | None = None
) -> Metrics:
    """Every metric, for every scope that has data, as of now (the clock's time, or the
    database's). Runs three aggregate queries; call it in a REPEATABLE READ transaction (as
    :func:`quality.snapshots.take_snapshot` does) for values that agree with each other."""
    options = options or MetricOptions()
    now: datetime = connection.execute(
        query("now"), {"now": (clock or DatabaseClock()).now()}
    ).scalar_one()
    window_hours = options.window_seconds / 3600.0
    out = _Collector()

    attempt_rows = connection.execute(
        query("attempt_metrics"), {"now": now, "window_seconds": options.window_seconds}
    ).all()
    for row in attempt_rows:
        scope = _scope(row)
        out.put(scope, MetricName.ATTEMPTS, row.attempts)
        out.put(scope, MetricName.FAILED_ATTEMPTS, row.failed)
        out.put(scope, MetricName.FAILURE_RATE, _rate(row.failed, row.attempts))
        out.put(scope, MetricName.STAGE_THROUGHPUT_PER_HOUR, row.succeeded / window_hours)
        out.put(scope, MetricName.STAGE_LATENCY_P50_SECONDS, row.latency_p50)
        out.put(scope, MetricName.STAGE_LATENCY_P95_SECONDS, row.latency_p95)

    peaks = {
        Scope(workspace_id=row.workspace_id, source=row.source): float(row.peak)
        for row in connection.execute(
            query("peak_throughput"),
            {"now": now, "lookback_seconds": options.capacity_lookback_seconds},
        )
    }
    state_rows = connection.execute(
        query("state_metrics"),
        {
            "now": now,
            "window_seconds": options.window_seconds,
            "sla_seconds": options.freshness_sla_seconds,
            "high_confidence": options.high_confidence,
            **_retry_limit_params(options),
        },
    ).all()
    for raw in state_rows:
        scope = _scope(raw)
        numbers = _Numbers(raw)
        _stage_metrics(out, scope, numbers)
        if scope.stage is None:
            _record_metrics(out, scope, numbers, options, window_hours, peaks.get(scope, 0.0))
        else:
            out.put(scope, MetricName.COMPLETENESS_RATE, _rate(numbers.finished, numbers.rows))

    return Metrics(taken_at=now, options=options, values=out.metrics())


def _stage_metrics(out: _Collector, scope: Scope, row: Any) -> None:
    out.put(scope, MetricName.BACKLOG_SIZE, row.backlog)
    out.put(scope, MetricName.OLDEST_PENDING_AGE_SECONDS, row.oldest_pending_age)
    out.put(scope, MetricName.DEAD_LETTERS, row.dead_letters)
    out.put(scope, MetricName.STUCK_IN_PROGRESS, row.stuck)
    out.put(scope, MetricName.OVER_RETRY_LIMIT, row.over_retry_limit)
    out.put(scope, MetricName.RETRY_QUEUE, row.retrying)
    for column, age_name in RETRY_AGE_METRICS.items():
        out.put(scope, age_name, getattr(row, column))
    if row.confidence_count:
        out.put(scope, MetricName.CONFIDENCE_COUNT, row.confidence_count)
        out.put(scope, MetricName.CONFIDENCE_MEAN, row.confidence_mean)
        out.put(
            scope,
            MetricName.HIGH_CONFIDENCE_RATE,
            _rate(row.high_confidence, row.confidence_count),
        )
        for bucket, bucket_name in enumerate(CONFIDENCE_BUCKETS):
            out.put(scope, bucket_name, getattr(row, f"confidence_bucket_{bucket}"))


def _record_metrics(
    out: _Collector,
    scope: Scope,
    row: Any,
    options: MetricOptions,
    window_hours: float,
    peak_throughput: float,
) -> None:
    out.put(scope, MetricName.RECORDS, row.records)
    completeness = _rate(row.complete, row.records)
    out.put(scope, MetricName.COMPLETENESS_RATE, completeness)
    throughput = row.completed_in_window / window_hours
    arrivals = row.requested_in_window / window_hours
    out.put(scope, MetricName.THROUGHPUT_PER_HOUR, throughput)
    out.put(scope, MetricName.ARRIVAL_RATE_PER_HOUR, arrivals)
    out.put(scope, MetricName.MUTATION_LATENCY_P50_SECONDS, row.mutation_latency_p50)
    out.put(scope, MetricName.MUTATION_LATENCY_P95_SECONDS, row.mutation_latency_p95)
    out.put(scope, MetricName.FRESHNESS_SLA_RATE, _rate(row.fresh, row.records))
    out.put(scope, MetricName.STALE_RECORDS, row.stale)
    if completeness is not None:
        out.put(
            scope,
            MetricName.QUALITY_SCORE,
            quality_score(
                completeness,
                out.get(scope, MetricName.FAILURE_RATE),
                out.get(scope, MetricName.CONFIDENCE_MEAN),
            ),
        )
    capacity = max(throughput, peak_throughput)
    growth = arrivals - throughput
    out.put(scope, MetricName.CAPACITY_PER_HOUR, capacity)
    out.put(scope, MetricName.BACKLOG_GROWTH_PER_HOUR, growth)
    out.put(
        scope,
        MetricName.CAPACITY_HOURS_LEFT,
        capacity_hours_left(
            backlog=out.get(scope, MetricName.BACKLOG_SIZE) or 0.0,
            growth_per_hour=growth,
            capacity_per_hour=capacity,
            sla_seconds=options.freshness_sla_seconds,
        ),
    )
