"""Demo: seed the demo notes (their triggers queue them), run the enrich cycle once, report."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment import capture, demo, migrate
from enrichment.database import get_engine
from enrichment.runner import Runner
from enrichment.settings import get_settings
from enrichment.sources import load_runner
from enrichment.status import queue_status
from flows.common import drain_steps, publish_run_report


@task(name="prepare-demo", cache_policy=NO_CACHE)
def prepare(records: int) -> Runner:
    """Schema, demo tables, sources and triggers; then the demo rows, which queue themselves."""
    engine = get_engine()
    migrate.upgrade(engine)
    with engine.begin() as connection:
        demo.create_tables(connection)
    config, runner = load_runner(get_settings(), engine)
    with engine.begin() as connection:
        capture.install(connection, config.source(demo.SOURCE))
        demo.seed(connection, records)
    return runner


@flow(
    name="demo",
    description="Seed the demo notes, run the enrich cycle once (context, chunk, embed), report.",
    log_prints=True,
)
def demo_flow(
    records: Annotated[
        int, Field(ge=1, le=1_000_000, title="Records", description="Demo notes to generate.")
    ] = 300,
    batch_size: Annotated[
        int, Field(ge=1, le=10_000, title="Batch size", description="Records per task run.")
    ] = 100,
) -> dict[str, Any]:
    logger = get_run_logger()
    runner = prepare(records)
    report = runner.drain(batch_size=batch_size, steps=drain_steps(runner))
    summary = publish_run_report(report, key="demo-run", title="Demo run")
    logger.info("demo cycle: %s", summary)
    with runner.engine.connect() as connection:
        status = queue_status(connection, source=demo.SOURCE)
    lines = ["| stage | completed | skipped | dead letters | backlog |", "|---|---|---|---|---|"]
    lines += [
        f"| {s.stage} | {s.completed} | {s.skipped} | {s.dead_letters} | {s.backlog} |"
        for s in status.stages
    ]
    create_markdown_artifact(
        key="demo-cycle", markdown="\n".join(lines), description="What the demo cycle did"
    )
    return summary
