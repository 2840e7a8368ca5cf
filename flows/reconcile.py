"""The reconcile flow (hourly): make the derived data agree with the truth again, and report
what needs a decision."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment import reconciliation
from enrichment.config import SourceConfig
from enrichment.reconciliation import ReconcileReport
from enrichment.runner import Runner
from flows.common import (
    RETRIES,
    RETRY_DELAYS,
    RETRY_JITTER,
    build_search_indexes,
    load_pipelines,
    reclaim_expired,
    retry_if_transient,
)


@task(
    name="reconcile",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def reconcile(
    runner: Runner, sources: list[SourceConfig], freshness_sla_seconds: float
) -> ReconcileReport:
    runner.fold_events()
    with runner.engine.begin() as connection:
        return reconciliation.reconcile(
            connection, sources, freshness_sla_seconds=freshness_sla_seconds, clock=runner.clock
        )


def _markdown(summary: dict[str, Any], reclaimed: int, indexed: list[str]) -> str:
    lines = [
        "### Reconcile run",
        "",
        "| check | fixed |",
        "|---|---:|",
        f"| expired leases reclaimed | {reclaimed} |",
        f"| orphan vectors deleted | {summary['orphan_vectors_deleted']} |",
        f"| records gone from their source: deleted | {summary['vanished_records_deleted']} |",
        f"| completed without vectors: re-queued | {summary['missing_vectors_requeued']} |",
        f"| stale against the freshness SLA: re-queued | {summary['stale_records_requeued']} |",
        f"| search indexes built | {len(indexed)} |",
    ]
    tables = summary["other_model_tables"]
    if tables:
        lines += [
            "",
            "Vector tables of other model versions (activate or drop them: a decision):",
            "",
            "| table | model version | state | rows | records |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {t['name']} | {t['model_version']} | {t['state']} | {t['rows']} | {t['records']} |"
            for t in tables
        ]
    return "\n".join(lines) + "\n"


@flow(
    name="reconcile",
    description=(
        "Reclaim expired leases, delete orphan vectors, queue deletes for vanished records, "
        "re-queue records without vectors or stale against the freshness SLA, build missing "
        "search indexes; report vector tables of other model versions."
    ),
    log_prints=True,
)
def reconcile_flow(
    source: Annotated[
        str | None, Field(title="Source", description="Only this source (default: all).")
    ] = None,
    freshness_sla_seconds: Annotated[
        float,
        Field(
            gt=0,
            title="Freshness SLA (s)",
            description="A source change older than this and not enriched is stale.",
        ),
    ] = 3600.0,
) -> dict[str, Any]:
    logger = get_run_logger()
    config, runner = load_pipelines()
    sources = config.selected(source)
    reclaimed = reclaim_expired(runner)
    report = reconcile(runner, sources, freshness_sla_seconds)
    indexed = build_search_indexes(runner)
    summary = report.summary() | {"leases_reclaimed": reclaimed, "indexes_built": len(indexed)}
    create_markdown_artifact(
        key="reconcile-run",
        markdown=_markdown(summary, reclaimed, indexed),
        description="What the reconcile run fixed and what needs a decision",
    )
    logger.info("reconcile: %s", summary)
    return summary
