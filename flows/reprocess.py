"""The reprocess flow (seed 002, every 4 hours): queue what would otherwise stay incomplete,
then work it within a time budget."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment.config import SourceConfig
from enrichment.reprocessing import ReprocessReport, queue_reprocessing
from enrichment.runner import Runner
from flows.common import (
    RETRIES,
    RETRY_DELAYS,
    RETRY_JITTER,
    drain_steps,
    load_pipelines,
    publish_run_report,
    retry_if_transient,
    run_report_markdown,
)


@task(
    name="find-reprocessing",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def find_reprocessing(
    runner: Runner, sources: list[SourceConfig], workspace: str | None
) -> ReprocessReport:
    runner.fold_events()
    with runner.engine.begin() as connection:
        return queue_reprocessing(connection, sources, workspace=workspace, clock=runner.clock)


@flow(
    name="reprocess",
    description=(
        "Queue what would stay incomplete (failed records whose backoff elapsed, records the "
        "queue never saw, low-confidence results due for a re-check) and work it within a "
        "time budget; dead letters are counted."
    ),
    log_prints=True,
)
def reprocess_flow(
    source: Annotated[
        str | None, Field(title="Source", description="Only this source (default: all).")
    ] = None,
    workspace: Annotated[
        str | None, Field(title="Workspace", description="Only this workspace (default: all).")
    ] = None,
    time_budget_seconds: Annotated[
        float, Field(gt=0, le=86_400, title="Time budget (s)", description="Work this long.")
    ] = 1800.0,
    batch_size: Annotated[
        int | None, Field(ge=1, le=100_000, title="Batch size", description="Records per batch.")
    ] = None,
) -> dict[str, float]:
    logger = get_run_logger()
    config, runner = load_pipelines()
    sources = config.selected(source)  # an unknown source fails the run, the known ones named
    found = find_reprocessing(runner, sources, workspace)
    create_markdown_artifact(
        key="reprocess-found",
        markdown=run_report_markdown("Reprocessing queued", dict(found.summary())),
        description="What the reprocess run found and queued",
    )
    report = runner.drain(
        sources=[source] if source else None,
        workspace=workspace,
        batch_size=batch_size,
        time_budget=time_budget_seconds,
        steps=drain_steps(runner),
    )
    summary = publish_run_report(report, key="reprocess-run", title="Reprocess run")
    summary.update(found.summary())
    logger.info("reprocess: %s", summary)
    return summary
