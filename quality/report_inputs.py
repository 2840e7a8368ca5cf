"""What the quality report reads from the monitoring side, in one place.

Two things: the current metric values (``quality.metrics.compute_metrics``, judged against the
alert rules of ``quality.alerts``) and their trends, from the snapshots the monitor flow
stores in ``enrichment.metric_snapshots``. The report never computes a metric itself, so its
figures are the ones the alerts and dashboards see. A database without snapshots (fresh, or
without the monitoring migration) gives no trends, and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from quality.alerts import Rule
from quality.metrics import CONFIDENCE_BUCKETS, MetricName, Metrics, Scope

# The headline figures, in report order: (metric, label, unit).
HEADLINES: tuple[tuple[str, str, str], ...] = (
    (MetricName.COMPLETENESS_RATE, "Completeness", "%"),
    (MetricName.QUALITY_SCORE, "Quality score", "/100"),
    (MetricName.BACKLOG_SIZE, "Backlog", "rows"),
    (MetricName.OLDEST_PENDING_AGE_SECONDS, "Oldest pending", "s"),
    (MetricName.FAILURE_RATE, "Failure rate", "%"),
    (MetricName.DEAD_LETTERS, "Dead letters", "rows"),
    (MetricName.FRESHNESS_SLA_RATE, "Freshness SLA", "%"),
    (MetricName.HIGH_CONFIDENCE_RATE, "High confidence", "%"),
    (MetricName.THROUGHPUT_PER_HOUR, "Throughput", "records/h"),
    (MetricName.STAGE_LATENCY_P95_SECONDS, "Stage latency p95", "s"),
    (MetricName.MUTATION_LATENCY_P95_SECONDS, "Change-to-enriched p95", "s"),
    (MetricName.OVER_RETRY_LIMIT, "Over retry limit", "rows"),
    (MetricName.STUCK_IN_PROGRESS, "Stuck past lease", "rows"),
)

# The trend charts: chart -> the metrics it draws, each (metric, label).
TRENDS: dict[str, tuple[tuple[str, str], ...]] = {
    "completeness": ((MetricName.COMPLETENESS_RATE, "completeness %"),),
    "backlog": ((MetricName.BACKLOG_SIZE, "backlog rows"),),
    "failure_rate": ((MetricName.FAILURE_RATE, "failure rate %"),),
    "latency": (
        (MetricName.STAGE_LATENCY_P50_SECONDS, "stage p50"),
        (MetricName.STAGE_LATENCY_P95_SECONDS, "stage p95"),
        (MetricName.MUTATION_LATENCY_P95_SECONDS, "change-to-enriched p95"),
    ),
}

# Capacity projection: the metrics of the "all" scope it is made of.
CAPACITY = (
    MetricName.BACKLOG_SIZE,
    MetricName.THROUGHPUT_PER_HOUR,
    MetricName.ARRIVAL_RATE_PER_HOUR,
    MetricName.CAPACITY_PER_HOUR,
    MetricName.BACKLOG_GROWTH_PER_HOUR,
    MetricName.CAPACITY_HOURS_LEFT,
)


@dataclass(frozen=True)
class Headline:
    metric: str
    label: str
    unit: str
    value: float | None
    status: str
    """ok, warning or critical against the alert rule of the metric; ``no rule`` without one,
    ``no data`` when the metric has no value (a rate without a denominator)."""
    threshold: str | None


@dataclass(frozen=True)
class Point:
    taken_at: datetime
    value: float


def headlines(metrics: Metrics, rules: Sequence[Rule]) -> list[Headline]:
    """The headline figures for everything (the rolled-up scope), each judged by the rules of
    its metric (the worst severity wins)."""
    out = []
    for metric, label, unit in HEADLINES:
        value = metrics.value(metric)
        own = [rule for rule in rules if rule.metric == metric]
        threshold = "; ".join(_describe(rule) for rule in own) or None
        if value is None:
            status = "no data"
        elif not own:
            status = "no rule"
        else:
            verdicts = [rule.judge(value) for rule in own]
            severities = {str(verdict[0]) for verdict in verdicts if verdict is not None}
            status = next((s for s in ("critical", "warning") if s in severities), "ok")
        out.append(Headline(metric, label, unit, value, status, threshold))
    return out


def _describe(rule: Rule) -> str:
    sign = "<" if rule.comparison == "below" else ">"
    parts = [
        f"{severity} {sign} {threshold:g}"
        for severity, threshold in (("warning", rule.warning), ("critical", rule.critical))
        if threshold is not None
    ]
    return ", ".join(parts)


def confidence_histogram(metrics: Metrics) -> list[int]:
    """Rows per confidence bucket of width 0.1 (all AI stages together); empty without any."""
    counts = [metrics.value(name) for name in CONFIDENCE_BUCKETS]
    if all(count is None for count in counts):
        return []
    return [int(count or 0) for count in counts]


def confidence_by_stage(metrics: Metrics) -> list[tuple[Scope, float, float | None, float | None]]:
    """(scope, scored rows, mean confidence, high-confidence rate %) per source and stage."""
    out = []
    for metric in metrics.named(MetricName.CONFIDENCE_COUNT):
        scope = metric.scope
        if scope.grain != "source_stage":
            continue
        out.append(
            (
                scope,
                metric.value,
                metrics.value(MetricName.CONFIDENCE_MEAN, scope),
                metrics.value(MetricName.HIGH_CONFIDENCE_RATE, scope),
            )
        )
    return out


def capacity(metrics: Metrics) -> dict[str, float | None]:
    return {name: metrics.value(name) for name in CAPACITY}


def snapshot_table_exists(connection: Connection) -> bool:
    return bool(
        connection.execute(
            text("SELECT to_regclass('enrichment.metric_snapshots') IS NOT NULL")
        ).scalar_one()
    )


def trends(
    connection: Connection, names: Iterable[str], *, since: datetime
) -> dict[str, list[Point]]:
    """The rolled-up series (workspace, source and stage all NULL) of ``names`` since
    ``since``, oldest first; empty when there are no snapshots (or no snapshot table).
    Index: metric_snapshots_name_taken_idx (name, taken_at)."""
    wanted = sorted(set(names))
    series: dict[str, list[Point]] = {name: [] for name in wanted}
    if not snapshot_table_exists(connection):
        return series
    rows = connection.execute(
        text(
            """
            SELECT s.name, s.taken_at, s.value
            FROM enrichment.metric_snapshots AS s
            WHERE s.name = ANY(CAST(:names AS text[]))
              AND s.taken_at >= :since
              AND s.workspace_id IS NULL AND s.source IS NULL AND s.stage IS NULL
            ORDER BY s.name, s.taken_at
            """
        ),
        {"names": wanted, "since": since},
    )
    for row in rows:
        series[row.name].append(Point(row.taken_at, float(row.value)))
    return series
