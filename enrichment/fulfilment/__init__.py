"""The demo domain shipped with the project: fulfilment exceptions of several merchants (orders
with carriers, warehouses and SLAs; customers; support messages full of personal data) in the
PostgreSQL schema ``fulfilment``, generated from a seed, with the ground truth kept apart for
evaluation. See docs/fulfilment-demo.md.

    from enrichment.fulfilment import seed, describe, truth
    summary = seed(engine, records=1000, workspaces=4, seed=7)
    print(summary.render())
"""

from __future__ import annotations

from enrichment.fulfilment.loading import seed
from enrichment.fulfilment.playbook import (
    EXCEPTION_TYPES,
    PII_KINDS,
    PLAYBOOK,
    TYPE_NAMES,
    Action,
    ExceptionType,
    recommended_action,
)
from enrichment.fulfilment.schema import SCHEMA, install_schema
from enrichment.fulfilment.summary import (
    SeedSummary,
    Truth,
    WorkspaceSummary,
    describe,
    truth,
    truth_records,
)

__all__ = [
    "EXCEPTION_TYPES",
    "PII_KINDS",
    "PLAYBOOK",
    "SCHEMA",
    "TYPE_NAMES",
    "Action",
    "ExceptionType",
    "SeedSummary",
    "Truth",
    "WorkspaceSummary",
    "describe",
    "install_schema",
    "recommended_action",
    "seed",
    "truth",
    "truth_records",
]
