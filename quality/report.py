"""The daily quality report: headline metrics with their status, trends of the last days as
charts, top failure reasons, dead letters, the confidence distribution, the Great Expectations
results and the capacity projection.

``build_report`` gathers it (aggregates in the database, the expectations through Great
Expectations); ``render_report`` turns it into HTML (charts inline), plain text and markdown
with the Jinja2 templates in ``quality/templates``; ``write_report`` puts it in a directory.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import Connection, Engine, TextClause, text

from enrichment.config import EnrichConfig
from enrichment.queue import DeadLetter, Queue
from enrichment.settings import Settings
from enrichment.sql import parse
from quality import report_inputs
from quality.alerts import Rule, default_rules, rules_from_config
from quality.charts import ThresholdLine, confidence_chart, trend_chart
from quality.config import MonitoringConfig, metric_options
from quality.expectations import IntegrityLimits, Outcome, QualityValidation, validate
from quality.metrics import MetricName, MetricOptions, Metrics, compute_metrics
from quality.report_inputs import Headline, Point


@dataclass(frozen=True)
class ReportOptions:
    """What the report covers and what it holds the data to."""

    days: int = 7
    failure_reasons: int = 10
    dead_letter_examples: int = 10
    metric_options: MetricOptions = field(default_factory=MetricOptions)
    rules: tuple[Rule, ...] = field(default_factory=lambda: tuple(default_rules()))
    limits: IntegrityLimits = field(default_factory=IntegrityLimits)

    @classmethod
    def configured(
        cls,
        settings: Settings,
        config: EnrichConfig | None = None,
        *,
        monitoring: MonitoringConfig | None = None,
        days: int = 7,
    ) -> ReportOptions:
        """Thresholds, metric settings and retry limits as the monitor applies them: the
        ``monitoring`` section given (the file's with the Prefect Variable's overrides, in the
        flow), else the file's, else the defaults; the stages' ``retry_delays``."""
        monitoring = monitoring or (config.monitoring if config else MonitoringConfig())
        return cls(
            days=days,
            metric_options=metric_options(monitoring, config, settings.retry_delays),
            rules=tuple(rules_from_config(monitoring)),
            limits=IntegrityLimits.configured(settings, config, monitoring),
        )


@dataclass(frozen=True)
class FailureReason:
    source: str
    stage: str
    error_type: str
    failures: int
    records: int
    dead_lettered: int
    last_seen: datetime
    latest_message: str | None


@dataclass(frozen=True)
class DeadLetterGroup:
    source: str
    stage: str
    error_type: str
    dead_letters: int
    oldest: datetime | None
    newest: datetime | None


@dataclass(frozen=True)
class StageConfidence:
    source: str
    stage: str
    scored: int
    mean: float | None
    high_rate: float | None


@dataclass(frozen=True)
class Capacity:
    """Seed 004's capacity planning: when, at the current trend, the backlog outgrows
    throughput (see quality.metrics.capacity_hours_left)."""

    backlog: float | None
    throughput_per_hour: float | None
    arrival_rate_per_hour: float | None
    capacity_per_hour: float | None
    growth_per_hour: float | None
    hours_left: float | None
    sla_seconds: float
    at: datetime

    @property
    def verdict(self) -> str:
        if self.capacity_per_hour is None or self.capacity_per_hour <= 0:
            return "No throughput observed yet: there is no trend to project."
        if self.hours_left == 0:
            return (
                "Capacity exceeded: the backlog already holds more than the pipeline clears "
                "within one freshness SLA. Add workers."
            )
        if self.hours_left is None:
            return "Within capacity: the backlog is not growing."
        when = self.at + timedelta(hours=self.hours_left)
        return (
            "At the current trend the backlog outgrows throughput in "
            f"{_duration(self.hours_left * 3600)} (around {when:%Y-%m-%d %H:%M} UTC)."
        )


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    png: bytes

    @property
    def cid(self) -> str:
        return f"chart-{self.name}@pg-enrich"

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class QualityReport:
    generated_at: datetime
    since: datetime
    days: int
    database: str
    headlines: list[Headline]
    has_history: bool
    charts: list[Chart]
    failures: list[FailureReason]
    dead_letter_groups: list[DeadLetterGroup]
    dead_letters: list[DeadLetter]
    confidence: list[int]
    confidence_stages: list[StageConfidence]
    expectations: QualityValidation
    capacity: Capacity

    @property
    def dead_letter_total(self) -> int:
        return sum(group.dead_letters for group in self.dead_letter_groups)

    @property
    def failed_checks(self) -> list[str]:
        return [
            r.title
            for r in self.expectations.results
            if r.outcome in (Outcome.FAILED, Outcome.ERROR)
        ]

    @property
    def status(self) -> str:
        """critical when a metric is critical or a check failed; warning when a metric is;
        ok otherwise."""
        statuses = {headline.status for headline in self.headlines}
        if "critical" in statuses or self.failed_checks:
            return "critical"
        return "warning" if "warning" in statuses else "ok"

    @property
    def subject(self) -> str:
        parts = []
        if self.failed_checks:
            count = len(self.failed_checks)
            parts.append(f"{count} check{'s' if count > 1 else ''} failed")
        for headline in self.headlines:
            if headline.status in ("critical", "warning"):
                parts.append(
                    f"{headline.label.lower()} {format_value(headline.value, headline.unit)}"
                )
        detail = ": " + ", ".join(parts) if parts else ""
        return (
            f"[enrich] Quality report {self.generated_at:%Y-%m-%d}: {self.status.upper()}{detail}"
        )

    def chart(self, name: str) -> Chart | None:
        return next((chart for chart in self.charts if chart.name == name), None)


# --- gathering ----------------------------------------------------------------------------------


@cache
def _queries() -> dict[str, TextClause]:
    raw = files("quality").joinpath("report.sql").read_text(encoding="utf-8")
    return {name: text(body) for name, body in parse(raw).items()}


def _failure_reasons(connection: Connection, since: datetime, limit: int) -> list[FailureReason]:
    rows = connection.execute(_queries()["failure_reasons"], {"since": since, "limit": limit})
    return [
        FailureReason(
            source=row.source,
            stage=row.stage,
            error_type=row.error_type,
            failures=row.failures,
            records=row.records,
            dead_lettered=row.dead_lettered,
            last_seen=row.last_seen,
            latest_message=row.latest_message,
        )
        for row in rows
    ]


def _dead_letter_groups(connection: Connection) -> list[DeadLetterGroup]:
    return [
        DeadLetterGroup(
            row.source, row.stage, row.error_type, row.dead_letters, row.oldest, row.newest
        )
        for row in connection.execute(_queries()["dead_letter_groups"])
    ]


# Chart -> title, unit, log scale.
_CHARTS: dict[str, tuple[str, str, bool]] = {
    "completeness": ("Completeness", "%", False),
    "backlog": ("Backlog", "rows", False),
    "failure_rate": ("Failure rate", "%", False),
    "latency": ("Latency", "seconds", True),
}


def _trend_charts(
    series: dict[str, list[Point]],
    rules: Sequence[Rule],
    since: datetime,
    until: datetime,
) -> list[Chart]:
    charts = []
    for name, lines in report_inputs.TRENDS.items():
        title, unit, log_scale = _CHARTS[name]
        thresholds = [
            ThresholdLine(severity, value)
            for metric, _ in lines
            for rule in rules
            if rule.metric == metric and rule.grain in ("all", "source")
            for severity, value in (("warning", rule.warning), ("critical", rule.critical))
            if value is not None
        ]
        png = trend_chart(
            f"{title}, last {(until - since).days} days",
            unit,
            {label: series.get(metric, []) for metric, label in lines},
            since=since,
            until=until,
            thresholds=thresholds,
            log_scale=log_scale,
        )
        if png is not None:
            charts.append(Chart(name, title, png))
    return charts


def _capacity(metrics: Metrics, options: MetricOptions) -> Capacity:
    values = report_inputs.capacity(metrics)
    return Capacity(
        backlog=values[MetricName.BACKLOG_SIZE],
        throughput_per_hour=values[MetricName.THROUGHPUT_PER_HOUR],
        arrival_rate_per_hour=values[MetricName.ARRIVAL_RATE_PER_HOUR],
        capacity_per_hour=values[MetricName.CAPACITY_PER_HOUR],
        growth_per_hour=values[MetricName.BACKLOG_GROWTH_PER_HOUR],
        hours_left=values[MetricName.CAPACITY_HOURS_LEFT],
        sla_seconds=options.freshness_sla_seconds,
        at=metrics.taken_at.astimezone(UTC),
    )


def build_report(engine: Engine, options: ReportOptions | None = None) -> QualityReport:
    """Gather the report. Every figure is an aggregate computed in the database; the
    expectations run through Great Expectations on the same database."""
    options = options or ReportOptions()
    with engine.connect() as connection:
        # One snapshot of the data for every section.
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            metrics = compute_metrics(connection, options.metric_options)
            now = metrics.taken_at.astimezone(UTC)
            since = now - timedelta(days=options.days)
            names = [metric for lines in report_inputs.TRENDS.values() for metric, _ in lines]
            series = report_inputs.trends(connection, names, since=since)
            failures = _failure_reasons(connection, since, options.failure_reasons)
            groups = _dead_letter_groups(connection)
            examples = Queue(connection).dead_letters(limit=options.dead_letter_examples)
    expectations = validate(engine.url.render_as_string(hide_password=False), options.limits)
    histogram = report_inputs.confidence_histogram(metrics)
    charts = _trend_charts(series, options.rules, since, now)
    confidence_png = confidence_chart(histogram)
    if confidence_png is not None:
        charts.append(Chart("confidence", "Confidence distribution", confidence_png))
    return QualityReport(
        generated_at=now,
        since=since,
        days=options.days,
        database=engine.url.render_as_string(hide_password=True),
        headlines=report_inputs.headlines(metrics, options.rules),
        has_history=any(series.values()),
        charts=charts,
        failures=failures,
        dead_letter_groups=groups,
        dead_letters=examples,
        confidence=histogram,
        confidence_stages=[
            StageConfidence(scope.source or "", scope.stage or "", int(count), mean, rate)
            for scope, count, mean, rate in report_inputs.confidence_by_stage(metrics)
        ],
        expectations=expectations,
        capacity=_capacity(metrics, options.metric_options),
    )


# --- rendering ----------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def format_value(value: float | None, unit: str = "") -> str:
    """A figure as the report shows it: 93.1 %, 1,234 rows, 4.2 min, 120.5/h, —."""
    if value is None:
        return "—"
    if unit == "%":
        return f"{value:.1f} %"
    if unit in ("s", "seconds"):
        return _duration(value)
    if unit == "/100":
        return f"{value:.1f}"
    if unit.endswith("/h"):
        return f"{value:,.1f}/h"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def _shorten(value: str | None, width: int = 160) -> str:
    if not value:
        return ""
    flat = re.sub(r"\s+", " ", value).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("quality", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["value"] = format_value
    environment.filters["when"] = _when
    environment.filters["duration"] = _duration
    environment.filters["shorten"] = _shorten
    return environment


@dataclass(frozen=True)
class RenderedReport:
    subject: str
    html: str
    """Charts referenced by Content-ID (``cid:``): the HTML part of the e-mail."""
    html_file: str
    """Charts inline as data URIs: one self-contained file."""
    text: str
    markdown: str
    charts: list[Chart]


def _render(template: str, report: QualityReport, **extra: Any) -> str:
    return _environment().get_template(template).render(report=report, Outcome=Outcome, **extra)


def render_report(report: QualityReport, *, report_path: str | None = None) -> RenderedReport:
    """The report as e-mail HTML, a standalone HTML file, plain text and markdown.
    ``report_path`` (where the file is written) is named in the markdown."""
    html = partial(_render, "report.html.j2", report)
    return RenderedReport(
        subject=report.subject,
        html=html(chart_src=lambda chart: f"cid:{chart.cid}"),
        html_file=html(chart_src=lambda chart: chart.data_uri),
        text=_render("report.txt.j2", report),
        markdown=_render("report.md.j2", report, report_path=report_path),
        charts=report.charts,
    )


def report_directory(output_dir: str | Path | None = None) -> Path:
    """Where reports are written: ``output_dir``, else ``ENRICH_REPORT_DIR``, else
    ``./reports``."""
    chosen = output_dir or os.environ.get("ENRICH_REPORT_DIR") or "reports"
    return Path(chosen).expanduser()


def report_stem(report: QualityReport) -> str:
    return f"quality-report-{report.generated_at:%Y%m%dT%H%M%SZ}"


def write_report(report: QualityReport, directory: Path) -> tuple[Path, RenderedReport]:
    """Write ``quality-report-<time>.html`` (self-contained) and ``.txt`` into ``directory``
    (created if needed); returns the HTML file's path and the rendering."""
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / f"{report_stem(report)}.html"
    rendered = render_report(report, report_path=str(html_path))
    html_path.write_text(rendered.html_file, encoding="utf-8")
    html_path.with_suffix(".txt").write_text(rendered.text, encoding="utf-8")
    return html_path, rendered


__all__ = [
    "Capacity",
    "Chart",
    "DeadLetterGroup",
    "FailureReason",
    "QualityReport",
    "RenderedReport",
    "ReportOptions",
    "build_report",
    "format_value",
    "render_report",
    "report_directory",
    "write_report",
]
