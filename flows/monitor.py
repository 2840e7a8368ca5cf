"""Monitor: snapshot the metrics, move the alerts on, notify, publish a summary. Every 5
minutes as a deployment (entrypoint ``flows/monitor.py:monitor_flow``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, tags, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment.config import EnrichConfig
from enrichment.database import get_engine
from enrichment.settings import get_settings
from quality import alerts, monitor
from quality.alerts import AlertChange
from quality.channels import Delivery
from quality.config import MonitoringConfig, metric_options
from quality.metrics import MetricOptions, Metrics

TAGS = ("enrichment", "monitoring")


@task(name="load-monitoring-config", cache_policy=NO_CACHE)
def load_configuration(
    config_path: str | None, overrides: dict[str, Any] | None
) -> tuple[MonitoringConfig, EnrichConfig | None]:
    """The file's monitoring section (defaults without a file), then the Prefect Variable
    ``enrich_monitoring``, then this run's ``overrides`` (the parameters)."""
    path = Path(config_path) if config_path else get_settings().config_path
    config, enrich_config = monitor.load_monitoring_config(path, monitor.variable_overrides())
    config = monitor.apply_overrides(config, overrides, label="flow parameters")
    return config, enrich_config


@task(name="snapshot-metrics", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def snapshot_metrics(config: MonitoringConfig, options: MetricOptions) -> tuple[Metrics, int]:
    return monitor.snapshot(get_engine(), config, options)


@task(name="evaluate-alerts", cache_policy=NO_CACHE)
def evaluate_alerts(metrics: Metrics, config: MonitoringConfig) -> list[AlertChange]:
    return monitor.evaluate_alerts(get_engine(), metrics, config, logger=get_run_logger())


@task(name="notify", cache_policy=NO_CACHE)
def notify(config: MonitoringConfig) -> list[Delivery]:
    return monitor.notify(get_engine(), config, logger=get_run_logger())


@flow(
    name="monitor",
    description=(
        "Compute the enrichment metrics (completeness, backlog, latency, failures, quality, "
        "freshness, capacity) per workspace, source and stage; store them as a snapshot; "
        "raise or resolve threshold alerts and notify the configured channels."
    ),
)
def monitor_flow(
    window_minutes: Annotated[
        float | None,
        Field(
            gt=0,
            title="Window (minutes)",
            description="Window of rates and latencies; default from the configuration (60).",
        ),
    ] = None,
    freshness_sla_minutes: Annotated[
        float | None,
        Field(gt=0, title="Freshness SLA (minutes)", description="Default: configuration (60)."),
    ] = None,
    notify_channels: Annotated[
        bool,
        Field(title="Notify", description="Send notifications (the log and events always)."),
    ] = True,
    config_path: Annotated[
        str | None,
        Field(title="Configuration file", description="Default: ENRICH_CONFIG (enrich.yaml)."),
    ] = None,
    overrides: Annotated[
        dict[str, Any] | None,
        Field(
            title="Overrides",
            description="Keys of the monitoring section for this run, e.g. "
            '{"rules": {"backlog": {"critical": 5000}}}.',
        ),
    ] = None,
) -> dict[str, Any]:
    with tags(*TAGS):
        settings = get_settings()
        run_overrides = dict(overrides or {})  # the window and SLA parameters win over it
        if window_minutes is not None:
            run_overrides["window_minutes"] = window_minutes
        if freshness_sla_minutes is not None:
            run_overrides["freshness_sla_minutes"] = freshness_sla_minutes
        config, enrich_config = load_configuration(config_path, run_overrides)
        options = metric_options(config, enrich_config, settings.retry_delays)
        metrics, pruned = snapshot_metrics(config, options)
        changes = evaluate_alerts(metrics, config)
        deliveries = notify(config) if notify_channels else []
        with get_engine().connect() as connection:
            firing = alerts.firing(connection)
        create_markdown_artifact(
            key="enrichment-monitor",
            markdown=monitor.markdown_summary(metrics, firing),
            description="Enrichment metrics and the alerts firing",
        )
        result = monitor.MonitorResult(metrics, changes, deliveries, pruned)
        summary = result.summary()
        summary["firing"] = len(firing)
        if result.failed_deliveries:
            # The state is committed; failing the run makes the lost notification visible.
            raise RuntimeError(
                "alert notifications failed: " + "; ".join(summary["delivery_errors"])
            )
        return summary


if __name__ == "__main__":
    monitor_flow()
