"""Demo: seed a small source, queue every record, run the enrich cycle once, show the result."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment import demo, migrate
from enrichment.database import get_engine
from enrichment.events import enqueue
from enrichment.runner import Runner
from enrichment.states import Action
from enrichment.status import queue_status
from flows.enrich import run_cycle


@task(name="seed-demo-data", cache_policy=NO_CACHE)
def seed(records: int) -> int:
    engine = get_engine()
    migrate.upgrade(engine)
    runner = Runner(engine, [demo.pipeline(engine)])
    runner.register()
    with engine.begin() as connection:
        keys = demo.seed_notes(connection, records)
        result = enqueue(
            connection,
            [
                {
                    "workspace_id": ws,
                    "source": demo.SOURCE,
                    "record_ids": ids,
                    "action": Action.CREATE,
                }
                for ws, ids in keys.items()
                if ids
            ],
        )
    return result.inserted


@flow(
    name="demo",
    description="Seed the demo notes, queue them, run the enrich cycle once and report.",
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
    seed(records)
    engine = get_engine()
    runner = Runner(engine, [demo.pipeline(engine)], batch_size=batch_size)
    report = run_cycle(runner, batch_size=batch_size)
    summary = report.summary()
    logger.info("demo cycle: %s", summary)
    with engine.connect() as connection:
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
