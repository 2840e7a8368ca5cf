"""A small demo source (notes in a few workspaces) and a two-stage pipeline over it, so a
fresh clone can see the queue work end to end: `make demo`."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine, text

from enrichment.pipeline import Pipeline, StageSpec
from enrichment.queue import Queue
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome

SOURCE = "demo_notes"
SCHEMA = "enrichment_demo"
WORKSPACES = ("acme", "globex", "initech")
_WORDS = [
    "order",
    "shipment",
    "carrier",
    "delay",
    "warehouse",
    "customer",
    "refund",
    "address",
    "label",
    "pallet",
    "invoice",
    "tracking",
    "customs",
    "damaged",
    "stock",
    "priority",
    "express",
    "return",
    "sla",
    "exception",
]


def create_table(connection: Connection) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    connection.execute(
        text(
            f"""
            CREATE TABLE IF NOT EXISTS {SCHEMA}.notes (
                id            bigint PRIMARY KEY,
                workspace_id  text NOT NULL,
                body          text,
                updated_at    timestamptz NOT NULL DEFAULT now()
            )
            """
        )
    )


def seed_notes(connection: Connection, count: int, *, seed: int = 7) -> dict[str, list[str]]:
    """Replace the demo notes with ``count`` generated ones; returns record keys by workspace.
    One note in fifty has an empty body, to show how bad input is reported."""
    rng = random.Random(seed)
    create_table(connection)
    connection.execute(text(f"TRUNCATE {SCHEMA}.notes"))
    rows = []
    keys: dict[str, list[str]] = {workspace: [] for workspace in WORKSPACES}
    for note_id in range(1, count + 1):
        workspace = WORKSPACES[note_id % len(WORKSPACES)]
        words = rng.choices(_WORDS, k=rng.randint(3, 60))
        body = "" if note_id % 50 == 0 else " ".join(words).capitalize() + "."
        rows.append({"id": note_id, "workspace_id": workspace, "body": body})
        keys[workspace].append(str(note_id))
    if rows:
        connection.execute(
            text(
                f"INSERT INTO {SCHEMA}.notes (id, workspace_id, body)"
                " VALUES (:id, :workspace_id, :body)"
            ),
            rows,
        )
    return keys


class MeasureStage:
    """Counts words and characters of each note: one query per batch."""

    name = "measure"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        with self.engine.connect() as connection:
            bodies = {
                str(row.id): row.body
                for row in connection.execute(
                    text(f"SELECT id, body FROM {SCHEMA}.notes WHERE id = ANY(:ids)"),
                    {"ids": [int(record.record_key) for record in records]},
                )
            }
        outcomes: dict[str, StageOutcome] = {}
        for record in records:
            body = bodies.get(record.record_key)
            if body is None:
                outcomes[record.record_key] = Failed(
                    "RecordNotFound", f"note {record.record_key} no longer exists", retryable=False
                )
            elif not body.strip():
                outcomes[record.record_key] = Failed(
                    "EmptyText",
                    f"note {record.record_key}: field 'body' is empty, expected text",
                    retryable=False,
                )
            else:
                outcomes[record.record_key] = Completed(
                    output={"words": len(body.split()), "characters": len(body)},
                    input_hash=hashlib.sha256(body.encode()).hexdigest(),
                )
        return outcomes


class LengthLabelStage:
    """Labels each note short, medium or long from the measure stage's output."""

    name = "label_length"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        with self.engine.connect() as connection:
            measured = Queue(connection).outputs(
                SOURCE, MeasureStage.name, [record.record_key for record in records]
            )
        outcomes: dict[str, StageOutcome] = {}
        for record in records:
            words = measured.get(record.record_key, {}).get("words")
            if words is None:
                outcomes[record.record_key] = Failed(
                    "MissingInput", f"note {record.record_key}: no 'measure' output to label"
                )
                continue
            label = "short" if words < 15 else "medium" if words < 40 else "long"
            outcomes[record.record_key] = Completed(output={"label": label})
        return outcomes


def pipeline(engine: Engine) -> Pipeline:
    return Pipeline(SOURCE, (StageSpec(MeasureStage(engine)), StageSpec(LengthLabelStage(engine))))
