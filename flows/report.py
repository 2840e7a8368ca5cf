"""The daily quality report: gather, write to the reports directory, publish as a Prefect
artifact, e-mail when SMTP is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment.config import EnrichConfig
from enrichment.database import get_engine
from enrichment.settings import get_settings
from quality.config import EmailChannelConfig, MonitoringConfig
from quality.email import mail_config, send_report
from quality.monitor import load_monitoring_config, variable_overrides
from quality.report import (
    QualityReport,
    RenderedReport,
    ReportOptions,
    build_report,
    report_directory,
    write_report,
)

ARTIFACT_KEY = "quality-report"


@task(name="load-monitoring-configuration", cache_policy=NO_CACHE)
def configuration() -> tuple[MonitoringConfig, EnrichConfig | None]:
    """Thresholds and channels as the monitor flow applies them: the configuration file's,
    overridden by the Prefect Variable enrich_monitoring."""
    return load_monitoring_config(get_settings().config_path, variable_overrides())


@task(name="build-quality-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def gather(days: int, monitoring: MonitoringConfig, config: EnrichConfig | None) -> QualityReport:
    options = ReportOptions.configured(get_settings(), config, monitoring=monitoring, days=days)
    return build_report(get_engine(), options)


@task(name="write-quality-report", cache_policy=NO_CACHE)
def write(report: QualityReport, output_dir: str | None) -> tuple[Path, RenderedReport]:
    return write_report(report, report_directory(output_dir))


@task(name="email-quality-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[30, 120])
def email(
    rendered: RenderedReport,
    to: list[str] | None,
    smtp_block: str | None,
    channel: EmailChannelConfig | None,
) -> list[str]:
    config = mail_config(to=to, block=smtp_block, channel=channel)
    if config is None:
        return []
    send_report(rendered, config)
    return list(config.to)


@flow(
    name="quality-report",
    description=(
        "Daily quality report: headline metrics, 7-day trends, failures, dead letters, "
        "confidence, Great Expectations checks and the capacity projection; written to the "
        "reports directory, published as an artifact and e-mailed when SMTP is configured."
    ),
    log_prints=True,
)
def quality_report_flow(
    days: Annotated[
        int, Field(ge=1, le=90, title="Days", description="Days of trends and failures.")
    ] = 7,
    to: Annotated[
        list[str] | None,
        Field(
            title="Recipients",
            description="E-mail addresses; default ENRICH_REPORT_TO or the configuration file.",
        ),
    ] = None,
    smtp_block: Annotated[
        str | None,
        Field(
            title="SMTP block",
            description="Name of an EmailServerCredentials block; default ENRICH_SMTP_* settings.",
        ),
    ] = None,
    send_email: Annotated[
        bool, Field(title="Send e-mail", description="False: write and publish only.")
    ] = True,
    output_dir: Annotated[
        str | None,
        Field(title="Output directory", description="Default ENRICH_REPORT_DIR or ./reports."),
    ] = None,
) -> dict[str, Any]:
    logger = get_run_logger()
    monitoring, config = configuration()
    report = gather(days, monitoring, config)
    path, rendered = write(report, output_dir)
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=rendered.markdown, description=report.subject
    )
    recipients = email(rendered, to, smtp_block, monitoring.channels.email) if send_email else []
    if recipients:
        logger.info("quality report e-mailed to %s", ", ".join(recipients))
    elif send_email:
        logger.info("no SMTP server configured: the report was not e-mailed")
    logger.info("%s; written to %s", report.subject, path)
    return {
        "status": report.status,
        "subject": report.subject,
        "path": str(path),
        "emailed_to": recipients,
        "failed_checks": report.failed_checks,
    }
