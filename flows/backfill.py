"""The backfill flow (ad hoc): re-queue a source, a workspace or some records (a new model
version re-queues itself when its configuration is loaded) and work them, with progress."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment import backfill
from enrichment.config import SourceConfig
from enrichment.runner import BatchReport, DrainSteps, Runner
from flows.common import (
    RETRIES,
    RETRY_DELAYS,
    RETRY_JITTER,
    drain_steps,
    load_pipelines,
    publish_run_report,
    retry_if_transient,
)


@task(
    name="queue-backfill",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def queue_backfill(
    runner: Runner,
    source: SourceConfig,
    workspace: str | None,
    ids: list[str] | None,
    force: bool,
) -> int:
    return backfill.queue(runner, source, workspace=workspace, ids=ids, force=force)


@task(name="activate-vector-table", cache_policy=NO_CACHE)
def activate_building_table(runner: Runner, source: str) -> str | None:
    return backfill.activate_filled_table(runner, source)


def _with_progress(steps: DrainSteps, last_stage: str, total: int, artifact: UUID) -> DrainSteps:
    done = 0

    def execute(source: str, stage: str, limit: int, workspace: str | None) -> BatchReport:
        nonlocal done
        batch = steps.execute(source, stage, limit, workspace)
        if stage == last_stage and total:
            done += batch.completed + batch.skipped + batch.dead_lettered
            update_progress_artifact(artifact, progress=min(100.0, 100.0 * done / total))
        return batch

    return DrainSteps(
        fold_events=steps.fold_events,
        reclaim_expired=steps.reclaim_expired,
        execute=execute,
        build_search_indexes=steps.build_search_indexes,
    )


@flow(
    name="backfill",
    description=(
        "Re-queue a source (or a workspace, or some records) and work it with a progress "
        "artifact; after a model change, optionally switch searches to the new vector table."
    ),
    log_prints=True,
)
def backfill_flow(
    source: Annotated[str, Field(title="Source", description="The source to backfill.")],
    workspace: Annotated[
        str | None, Field(title="Workspace", description="Only this workspace (default: all).")
    ] = None,
    ids: Annotated[
        list[str] | None, Field(title="Record ids", description="Only these records.")
    ] = None,
    force: Annotated[
        bool,
        Field(title="Force", description="Redo every stage even when the input is unchanged."),
    ] = True,
    activate: Annotated[
        bool,
        Field(
            title="Activate when done",
            description="Switch searches to a new model's vector table once it is filled.",
        ),
    ] = False,
    batch_size: Annotated[
        int | None, Field(ge=1, le=100_000, title="Batch size", description="Records per batch.")
    ] = None,
    time_budget_seconds: Annotated[
        float, Field(gt=0, le=7 * 86_400, title="Time budget (s)", description="Work this long.")
    ] = 6 * 3600.0,
) -> dict[str, Any]:
    logger = get_run_logger()
    config, runner = load_pipelines()
    selected = config.source(source)
    total = queue_backfill(runner, selected, workspace, ids, force)
    artifact = create_progress_artifact(
        progress=0.0, key="backfill-progress", description=f"Backfill of {source}"
    )
    assert isinstance(artifact, UUID)  # a synchronous flow gets the id, not a coroutine
    last_stage = runner.pipelines[source].stage_names[-1]
    report = runner.drain(
        sources=[source],
        workspace=workspace,
        batch_size=batch_size,
        time_budget=time_budget_seconds,
        steps=_with_progress(drain_steps(runner), last_stage, total, artifact),
    )
    if not total:  # nothing to redo: done; otherwise the batches moved it as far as it got
        update_progress_artifact(artifact, progress=100.0)
    summary: dict[str, Any] = dict(
        publish_run_report(report, key="backfill-run", title=f"Backfill of {source}")
    )
    summary["queued"] = total
    if activate:
        summary["activated"] = activate_building_table(runner, source)
    logger.info("backfill: %s", summary)
    return summary
