"""The enrich flow: drain the queue for a time budget, batch by batch and stage by stage, and
wake on new events (LISTEN/NOTIFY) instead of waiting for the next schedule tick."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from enrichment.database import database_url, libpq_url
from enrichment.notifications import EventListener
from flows.common import StageName, drain_steps, load_pipelines, publish_run_report

DEFAULT_TIME_BUDGET = 55.0  # just under the one-minute schedule, so runs do not overlap


@flow(
    name="enrich",
    description=(
        "Drain the enrichment queue for a time budget: fold events, reclaim expired leases, "
        "then every stage batch by batch; while idle, wake on new events within the budget."
    ),
    log_prints=True,
)
def enrich_flow(
    source: Annotated[
        str | None, Field(title="Source", description="Only this source (default: all).")
    ] = None,
    workspace: Annotated[
        str | None, Field(title="Workspace", description="Only this workspace (default: all).")
    ] = None,
    stages: Annotated[
        list[StageName] | None,
        Field(title="Stages", description="Only these stages (default: every stage, in order)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        Field(ge=1, le=100_000, title="Batch size", description="Records per batch (task run)."),
    ] = None,
    time_budget_seconds: Annotated[
        float,
        Field(gt=0, le=86_400, title="Time budget (s)", description="Stop claiming after this."),
    ] = DEFAULT_TIME_BUDGET,
    max_records: Annotated[
        int | None,
        Field(ge=1, title="Max records", description="Stop after claiming this many."),
    ] = None,
    wait_for_events: Annotated[
        bool,
        Field(
            title="Wait for events",
            description="When the queue is empty, wait for new events until the budget ends.",
        ),
    ] = True,
) -> dict[str, float]:
    logger = get_run_logger()
    _, runner = load_pipelines()
    sources = [source] if source else None
    with EventListener(libpq_url(database_url())) as listener:
        report = runner.drain(
            sources=sources,
            stages=stages,
            workspace=workspace,
            batch_size=batch_size,
            time_budget=time_budget_seconds,
            max_records=max_records,
            steps=drain_steps(runner),
            wait_for_events=listener.wait if wait_for_events else None,
        )
    summary = publish_run_report(report, key="enrich-run", title="Enrich run")
    logger.info("enrich run: %s", _short(summary))
    return summary


def _short(summary: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in summary.items() if value)
