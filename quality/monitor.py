"""One monitor run: snapshot the metrics, move the alerts on, tell the channels.

The steps are separate functions so the monitor flow can run each as a task. Configuration
comes from the ``monitoring:`` section of the configuration file, overridden key by key by the
Prefect Variable ``enrich_monitoring`` (a JSON object of the same shape), so thresholds change
without a redeploy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.variables import Variable
from pydantic import ValidationError
from sqlalchemy import Engine

from enrichment.clock import Clock
from enrichment.config import ConfigError, EnrichConfig, load_config_if_present
from quality import alerts
from quality.alerts import AlertChange
from quality.channels import (
    Channel,
    Delivery,
    LogChannel,
    Notification,
    build_channels,
    deliver,
    emit_alert_event,
    events_available,
)
from quality.config import MonitoringConfig
from quality.metrics import MetricName, MetricOptions, Metrics, Scope
from quality.snapshots import prune_snapshots, take_snapshot

VARIABLE = "enrich_monitoring"

log = logging.getLogger(__name__)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(
    config: MonitoringConfig, overrides: Mapping[str, Any] | None, *, label: str
) -> MonitoringConfig:
    """``config`` with ``overrides`` merged over it key by key, validated again; a mistake is
    a ConfigError naming ``label`` and the key path (``rules.completeness.critical``)."""
    if not overrides:
        return config
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            label, [("(top level)", "expected a JSON object like the monitoring: section")]
        )
    merged = _deep_merge(config.model_dump(mode="json"), overrides)
    try:
        return MonitoringConfig.model_validate(merged)
    except ValidationError as err:
        problems = [
            (".".join(str(part) for part in error["loc"]) or "(top level)", error["msg"])
            for error in err.errors()
        ]
        raise ConfigError(label, problems) from None


def variable_overrides(name: str = VARIABLE) -> dict[str, Any] | None:
    """The Prefect Variable ``name`` (a JSON object), or None when it is not set."""
    value = Variable.get(name, default=None)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(
            f"Prefect Variable {name!r}",
            [("(top level)", f"expected a JSON object, got {type(value).__name__}")],
        )
    return value


def load_monitoring_config(
    path: Path | None, overrides: Mapping[str, Any] | None = None, *, label: str = VARIABLE
) -> tuple[MonitoringConfig, EnrichConfig | None]:
    """The monitoring configuration of the file at ``path`` (defaults when there is no file),
    with ``overrides`` applied. Also returns the whole file's configuration, if any."""
    enrich_config = load_config_if_present(path) if path is not None else None
    base = enrich_config.monitoring if enrich_config is not None else MonitoringConfig()
    return apply_overrides(base, overrides, label=f"Prefect Variable {label!r}"), enrich_config


# --- the steps --------------------------------------------------------------------------------


def snapshot(
    engine: Engine, config: MonitoringConfig, options: MetricOptions, *, clock: Clock | None = None
) -> tuple[Metrics, int]:
    """Compute and store a snapshot; drop snapshots past the retention. Returns the metrics and
    how many old rows were pruned."""
    metrics = take_snapshot(engine, options, clock=clock)
    with engine.begin() as connection:
        pruned = prune_snapshots(
            connection, older_than=metrics.taken_at - timedelta(days=config.retention_days)
        )
    return metrics, pruned


def evaluate_alerts(
    engine: Engine,
    metrics: Metrics,
    config: MonitoringConfig,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> list[AlertChange]:
    """Move the alert state on (committed before anyone is told), log every change and emit
    its Prefect event."""
    logger = logger or log
    with engine.begin() as connection:
        changes = alerts.evaluate(connection, metrics, alerts.rules_from_config(config))
    for line in alerts.describe(changes):
        logger.warning("alert %s", line)
    if config.channels.prefect_events and events_available():
        for change in changes:
            emit_alert_event(change)
    return changes


def notify(
    engine: Engine,
    config: MonitoringConfig,
    *,
    channels: Sequence[Channel] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> list[Delivery]:
    """Tell the channels what they do not know yet (starts, escalations, resolutions, and
    earlier notifications no channel took), and remember what they were told."""
    channels = build_channels(config.channels) if channels is None else channels
    with engine.connect() as connection:
        pending = alerts.unsettled(connection)
    if not pending:
        return []
    deliveries = deliver(
        [Notification.of(item) for item in pending],
        channels,
        log_channel=LogChannel(logger) if logger is not None else None,
    )
    with engine.begin() as connection:
        now = connection.exec_driver_sql("SELECT statement_timestamp()").scalar_one()
        for delivery in deliveries:
            alerts.record_delivery(
                connection,
                delivery.notification.alert,
                at=now,
                error=None if delivery.delivered else delivery.error_text(),
            )
    return deliveries


@dataclass
class MonitorResult:
    metrics: Metrics
    changes: list[AlertChange] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    pruned: int = 0

    @property
    def failed_deliveries(self) -> list[Delivery]:
        return [delivery for delivery in self.deliveries if delivery.errors]

    def summary(self) -> dict[str, Any]:
        return {
            "taken_at": self.metrics.taken_at.isoformat(),
            "values": len(self.metrics),
            "alert_changes": [
                {
                    "transition": str(c.transition),
                    "rule": c.alert.rule,
                    "scope": c.alert.scope.label,
                }
                for c in self.changes
            ],
            "notified": sum(1 for d in self.deliveries if d.delivered),
            "delivery_errors": [str(e) for d in self.deliveries for e in d.errors],
            "pruned_rows": self.pruned,
        }


# --- the summary table ------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, MetricName, str], ...] = (
    ("records", MetricName.RECORDS, "{:,.0f}"),
    ("complete %", MetricName.COMPLETENESS_RATE, "{:.1f}"),
    ("quality", MetricName.QUALITY_SCORE, "{:.0f}"),
    ("backlog", MetricName.BACKLOG_SIZE, "{:,.0f}"),
    ("oldest", MetricName.OLDEST_PENDING_AGE_SECONDS, "{:.0f}s"),
    ("records/h", MetricName.THROUGHPUT_PER_HOUR, "{:,.0f}"),
    ("failure %", MetricName.FAILURE_RATE, "{:.1f}"),
    ("dead", MetricName.DEAD_LETTERS, "{:,.0f}"),
    ("fresh %", MetricName.FRESHNESS_SLA_RATE, "{:.1f}"),
    ("p95 change→enriched", MetricName.MUTATION_LATENCY_P95_SECONDS, "{:.1f}s"),
    ("high conf. %", MetricName.HIGH_CONFIDENCE_RATE, "{:.1f}"),
    ("capacity left", MetricName.CAPACITY_HOURS_LEFT, "{:.1f}h"),
)


def markdown_summary(metrics: Metrics, firing: Sequence[alerts.Alert]) -> str:
    """A markdown table per source (and all sources), then the alerts firing now."""
    scopes = [Scope(), *metrics.scopes("source")]
    header = "| scope | " + " | ".join(title for title, _, _ in _COLUMNS) + " |"
    lines = [
        f"Metrics at {metrics.taken_at.isoformat(timespec='seconds')} "
        f"(window {metrics.options.window_seconds / 60:g} min, "
        f"freshness SLA {metrics.options.freshness_sla_seconds / 60:g} min)",
        "",
        header,
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    for scope in scopes:
        cells = []
        for _, name, fmt in _COLUMNS:
            value = metrics.value(name, scope)
            cells.append("-" if value is None else fmt.format(value))
        lines.append(f"| {scope.label} | " + " | ".join(cells) + " |")
    lines += ["", f"**Alerts firing: {len(firing)}**", ""]
    if firing:
        lines += ["| severity | rule | scope | message | since |", "|---|---|---|---|---|"]
        lines += [
            f"| {a.severity} | {a.rule} | {a.scope.label} | {a.message} | "
            f"{a.first_seen.isoformat(timespec='minutes')} |"
            for a in firing
        ]
    return "\n".join(lines) + "\n"
