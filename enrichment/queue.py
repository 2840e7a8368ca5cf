"""The record-state work queue: a thin, typed layer over the named queries in sql/queries.sql.

Every method runs in the caller's connection and transaction; the runner decides what goes
into one transaction. Methods that change leased rows are fenced by the lease owner token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from enrichment.clock import Clock, DatabaseClock
from enrichment.sql import query
from enrichment.stages.base import ClaimedRecord, Completed, Recheck, Skipped
from enrichment.states import Status

MAX_ERROR_MESSAGE = 2000


@dataclass(frozen=True)
class Failure:
    """A failed attempt to persist: ``delay`` seconds to the retry, or None for a dead letter."""

    error_type: str
    message: str
    delay: float | None


@dataclass(frozen=True)
class ExpiredLease:
    source: str
    stage: str
    record_key: str
    attempts: int
    lease_owner: str


@dataclass(frozen=True)
class GatedRecord:
    """A record a confidence gate skipped, and its re-check (None: no re-check left)."""

    source: str
    stage: str
    record_key: str
    workspace_id: str
    reason: str
    rechecks: int
    max_rechecks: int
    due_at: datetime | None
    gated_at: datetime
    requeued_at: datetime | None


@dataclass(frozen=True)
class DueRecheck:
    source: str
    stage: str
    record_key: str
    workspace_id: str


@dataclass(frozen=True)
class DeadLetter:
    source: str
    stage: str
    record_key: str
    workspace_id: str
    attempts: int
    error_type: str | None
    error_message: str | None
    failed_at: datetime | None


def _text(value: str) -> str:
    """Diagnostic text (errors, skip reasons) as PostgreSQL text can hold it: no NUL bytes."""
    return value.replace("\x00", "\\x00")


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, default=str, allow_nan=False)


def _claimed(source: str, stage: str, rows: Iterable[Any]) -> list[ClaimedRecord]:
    return [
        ClaimedRecord(
            source=source,
            stage=stage,
            record_key=row.record_key,
            workspace_id=row.workspace_id,
            attempt=row.attempts,
            previous_input_hash=row.input_hash,
            requested_at=row.requested_at,
        )
        for row in rows
    ]


class Queue:
    def __init__(self, connection: Connection, clock: Clock | None = None) -> None:
        self.connection = connection
        self.clock = clock or DatabaseClock()

    def claim(
        self,
        source: str,
        stage: str,
        *,
        owner: str,
        limit: int,
        lease_seconds: float,
        workspace: str | None = None,
    ) -> list[ClaimedRecord]:
        """Lease up to ``limit`` due records of one stage. Each claim counts as an attempt."""
        rows = self.connection.execute(
            query("claim"),
            {
                "now": self.clock.now(),
                "source": source,
                "stage": stage,
                "workspace": workspace,
                "limit": limit,
                "owner": owner,
                "lease_seconds": lease_seconds,
            },
        )
        return _claimed(source, stage, rows)

    def finish(
        self, source: str, stage: str, *, owner: str, outcomes: Mapping[str, Completed | Skipped]
    ) -> set[str]:
        """Persist COMPLETED/SKIPPED outcomes; returns the keys whose lease was still held."""
        if not outcomes:
            return set()
        keys = sorted(outcomes)  # one lock order for every writer: fewer deadlocks
        values = [outcomes[key] for key in keys]
        rows = self.connection.execute(
            query("finish"),
            {
                "now": self.clock.now(),
                "source": source,
                "stage": stage,
                "owner": owner,
                "keys": keys,
                "statuses": [
                    Status.COMPLETED if isinstance(v, Completed) else Status.SKIPPED for v in values
                ],
                "outputs": [_json(v.output) for v in values],
                "input_hashes": [
                    v.input_hash if isinstance(v, Completed) else None for v in values
                ],
                "reasons": [_text(v.reason) if isinstance(v, Skipped) else None for v in values],
            },
        )
        return {row.record_key for row in rows}

    def fail(
        self, source: str, stage: str, *, owner: str, failures: Mapping[str, Failure]
    ) -> tuple[set[str], set[str]]:
        """Persist FAILED outcomes; returns (keys failed, of which dead-lettered)."""
        if not failures:
            return set(), set()
        keys = sorted(failures)
        values = [failures[key] for key in keys]
        rows = self.connection.execute(
            query("fail"),
            {
                "now": self.clock.now(),
                "source": source,
                "stage": stage,
                "owner": owner,
                "keys": keys,
                "error_types": [_text(v.error_type) for v in values],
                "messages": [_text(v.message)[:MAX_ERROR_MESSAGE] for v in values],
                "delays": [v.delay for v in values],
            },
        ).all()
        return {row.record_key for row in rows}, {
            row.record_key for row in rows if row.dead_lettered
        }

    def advance(self, source: str, next_stage: str, keys: Sequence[str]) -> int:
        """Make ``next_stage`` due for records that just finished the stage before it."""
        if not keys:
            return 0
        result = self.connection.execute(
            query("advance"),
            {
                "now": self.clock.now(),
                "source": source,
                "next_stage": next_stage,
                "keys": list(keys),
            },
        )
        return result.rowcount

    def lease_next(
        self,
        source: str,
        next_stage: str,
        keys: Sequence[str],
        *,
        owner: str,
        lease_seconds: float,
    ) -> list[ClaimedRecord]:
        """``advance`` and ``claim`` at once: lease ``next_stage`` of records that just finished
        the stage before it to ``owner``, who runs it next. Each lease counts as an attempt."""
        if not keys:
            return []
        rows = self.connection.execute(
            query("lease_next"),
            {
                "now": self.clock.now(),
                "source": source,
                "next_stage": next_stage,
                "keys": sorted(keys),
                "owner": owner,
                "lease_seconds": lease_seconds,
            },
        )
        return _claimed(source, next_stage, rows)

    def restore_later_stages(self, source: str, stage_index: int, keys: Sequence[str]) -> int:
        """Later stages that completed for the same input are COMPLETED again, and the first
        remaining stage of each record becomes due."""
        if not keys:
            return 0
        params = {"now": self.clock.now(), "source": source, "keys": sorted(keys)}
        restored = self.connection.execute(
            query("restore_later_stages"), {**params, "stage_index": stage_index}
        ).rowcount
        self.connection.execute(query("unblock"), params)
        return restored

    def skip_later_stages(self, source: str, stage_index: int, reasons: Mapping[str, str]) -> int:
        if not reasons:
            return 0
        result = self.connection.execute(
            query("skip_later_stages"),
            {
                "now": self.clock.now(),
                "source": source,
                "stage_index": stage_index,
                "keys": list(reasons),
                "reasons": list(reasons.values()),
            },
        )
        return result.rowcount

    def expired_leases(self, limit: int, *, sources: Sequence[str]) -> list[ExpiredLease]:
        """Expired leases of ``sources``, locked until the end of the transaction."""
        rows = self.connection.execute(
            query("expired_leases"),
            {"now": self.clock.now(), "limit": limit, "sources": list(sources)},
        )
        return [
            ExpiredLease(row.source, row.stage, row.record_key, row.attempts, row.lease_owner)
            for row in rows
        ]

    def outputs(self, source: str, stage: str, keys: Sequence[str]) -> dict[str, Any]:
        """COMPLETED outputs of ``stage`` for ``keys``; records without one are left out."""
        rows = self.connection.execute(
            query("stage_outputs"), {"source": source, "stage": stage, "keys": list(keys)}
        )
        return {row.record_key: row.output for row in rows}

    def dead_letters(
        self,
        *,
        source: str | None = None,
        stage: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        rows = self.connection.execute(
            query("dead_letters"),
            {"source": source, "stage": stage, "error_type": error_type, "limit": limit},
        )
        return [
            DeadLetter(
                source=row.source,
                stage=row.stage,
                record_key=row.record_key,
                workspace_id=row.workspace_id,
                attempts=row.attempts,
                error_type=row.last_error_type,
                error_message=row.last_error_message,
                failed_at=row.finished_at,
            )
            for row in rows
        ]

    def retry_dead_letters(
        self, *, source: str | None = None, stage: str | None = None, error_type: str | None = None
    ) -> int:
        """Requeue dead letters matching every given filter for a fresh set of attempts."""
        result = self.connection.execute(
            query("retry_dead_letters"),
            {"now": self.clock.now(), "source": source, "stage": stage, "error_type": error_type},
        )
        return len(result.all())

    def schedule_rechecks(
        self, source: str, stage: str, gated: Mapping[str, tuple[str, str, Recheck]]
    ) -> int:
        """Record gated records (key -> workspace, reason, re-check) and when they come back;
        in the transaction that finishes them."""
        if not gated:
            return 0
        keys = sorted(gated)
        values = [gated[key] for key in keys]
        result = self.connection.execute(
            query("schedule_rechecks"),
            {
                "now": self.clock.now(),
                "source": source,
                "stage": stage,
                "keys": keys,
                "workspaces": [workspace for workspace, _, _ in values],
                "reasons": [_text(reason) for _, reason, _ in values],
                "input_hashes": [recheck.input_hash for _, _, recheck in values],
                "after_seconds": [recheck.after_seconds for _, _, recheck in values],
                "max_rechecks": [recheck.max_rechecks for _, _, recheck in values],
            },
        )
        return result.rowcount

    def take_due_rechecks(
        self, *, source: str | None = None, workspace: str | None = None, limit: int = 10_000
    ) -> list[DueRecheck]:
        """Due re-checks of records still gated, counted as re-checked and no longer due; the
        caller re-queues them in the same transaction."""
        rows = self.connection.execute(
            query("take_due_rechecks"),
            {"now": self.clock.now(), "source": source, "workspace": workspace, "limit": limit},
        )
        return [DueRecheck(r.source, r.stage, r.record_key, r.workspace_id) for r in rows]

    def gated_records(
        self, *, source: str | None = None, workspace: str | None = None, limit: int = 100
    ) -> list[GatedRecord]:
        """Records a gate holds back now, next re-check first (final ones last)."""
        rows = self.connection.execute(
            query("gated_records"),
            {"source": source, "workspace": workspace, "limit": limit},
        )
        return [
            GatedRecord(
                source=row.source,
                stage=row.stage,
                record_key=row.record_key,
                workspace_id=row.workspace_id,
                reason=row.reason,
                rechecks=row.rechecks,
                max_rechecks=row.max_rechecks,
                due_at=row.due_at,
                gated_at=row.gated_at,
                requeued_at=row.requeued_at,
            )
            for row in rows
        ]
