"""Demo: seed the fulfilment demo data (its capture triggers queue it), run every stage of the
shipped configuration once, and report what came of it."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from enrichment.database import get_engine
from enrichment.fulfilment.demo import PreparedDemo
from enrichment.fulfilment.demo import prepare as prepare_demo
from enrichment.fulfilment.outcome import outcome
from enrichment.settings import get_settings
from flows.common import drain_steps, publish_run_report


@task(name="prepare-demo", cache_policy=NO_CACHE)
def prepare(records: int, workspaces: int, seed: int) -> PreparedDemo:
    prepared = prepare_demo(
        get_engine(), get_settings(), records=records, workspaces=workspaces, seed_value=seed
    )
    get_run_logger().info(
        "seeded %s exceptions in %s workspaces (%.1f s)",
        f"{records:,}",
        len(prepared.seeded.workspaces),
        prepared.seeded.seconds or 0.0,
    )
    return prepared


@flow(
    name="demo",
    description=(
        "Seed the fulfilment demo data and run the shipped pipeline once: redact, context, "
        "classify, resolve, summarize, chunk, embed; report the outcome against the ground truth."
    ),
    log_prints=True,
)
def demo_flow(
    records: Annotated[
        int,
        Field(ge=1, le=1_000_000, title="Records", description="Fulfilment exceptions to seed."),
    ] = 1000,
    workspaces: Annotated[
        int, Field(ge=1, le=100, title="Workspaces", description="Merchants they belong to.")
    ] = 4,
    seed: Annotated[
        int, Field(title="Seed", description="The same seed gives the same exceptions.")
    ] = 7,
    batch_size: Annotated[
        int, Field(ge=1, le=10_000, title="Batch size", description="Records per task run.")
    ] = 64,
) -> dict[str, Any]:
    logger = get_run_logger()
    prepared = prepare(records, workspaces, seed)
    runner = prepared.runner
    report = runner.drain(batch_size=batch_size, steps=drain_steps(runner))
    summary = publish_run_report(report, key="demo-run", title="Demo run")
    logger.info("demo cycle: %s", summary)
    with runner.engine.connect() as connection:
        result = outcome(connection, gate=prepared.gate)
    create_markdown_artifact(
        key="demo-outcome", markdown=result.render(), description="What the demo made of the data"
    )
    return {**summary, "outcome": result.to_json()}
