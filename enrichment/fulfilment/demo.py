"""Setting up the fulfilment demo (what the demo flow and `make demo` run): the schema, the
shipped configuration's sources with their change-capture triggers, then the seeded rows, which
queue themselves the way production rows do."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from enrichment import capture, migrate
from enrichment.config import ClassifyStageConfig
from enrichment.fulfilment.loading import seed
from enrichment.fulfilment.outcome import SOURCE
from enrichment.fulfilment.schema import install_schema
from enrichment.fulfilment.summary import SeedSummary
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import load_runner


@dataclass(frozen=True)
class PreparedDemo:
    runner: Runner
    seeded: SeedSummary
    gate: float | None
    """The classify stage's ``min_confidence``: None when the configuration has no gate."""


def prepare(
    engine: Engine, settings: Settings, *, records: int, workspaces: int, seed_value: int
) -> PreparedDemo:
    """Schema, sources and triggers first; then the demo rows. ``workspaces`` is capped at
    ``records`` (a workspace holds at least one exception)."""
    migrate.upgrade(engine)
    with engine.begin() as connection:
        install_schema(connection)
    config, runner = load_runner(settings, engine)
    source = config.source(SOURCE)
    with engine.begin() as connection:
        capture.install(connection, source)
    seeded = seed(engine, records=records, workspaces=min(workspaces, records), seed=seed_value)
    classify = source.stage("classify")
    gate = classify.min_confidence if isinstance(classify, ClassifyStageConfig) else None
    return PreparedDemo(runner, seeded, gate)
