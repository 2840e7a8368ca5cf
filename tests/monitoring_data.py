"""Hand-built queue states for the monitoring tests: record_state and attempts rows written
directly, at times relative to a fixed moment, so every metric has a known answer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from enrichment.clock import FrozenClock

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(seconds_ago: float | None) -> datetime | None:
    return None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago)


def clock() -> FrozenClock:
    return FrozenClock(NOW)


@dataclass
class States:
    """Writes rows; stage order comes from the sources registered with :meth:`source`."""

    engine: Engine
    stages: dict[str, list[str]] = field(default_factory=dict)

    def source(self, name: str, stages: Sequence[str]) -> States:
        with self.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO enrichment.sources (name, stages) VALUES (:n, :s)"),
                {"n": name, "s": list(stages)},
            )
        self.stages[name] = list(stages)
        return self

    def row(
        self,
        source: str,
        key: str,
        stage: str,
        status: str,
        *,
        workspace: str = "ws1",
        requested: float = 600,
        finished: float | None = None,
        attempts: int = 1,
        due: float | None = None,
        lease_expires: float | None = None,
        output: dict[str, Any] | None = None,
        deleted: bool = False,
        error_type: str | None = None,
    ) -> None:
        """One stage row; times are seconds before NOW (``lease_expires`` negative: later).
        A PENDING/FAILED row with ``due`` set is waiting to be claimed at that time."""
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    """
                    INSERT INTO enrichment.record_state
                        (source, record_key, stage, stage_index, workspace_id, status, attempts,
                         next_attempt_at, lease_owner, lease_expires_at, output, last_error_type,
                         requested_at, started_at, finished_at, deleted_at)
                    VALUES (:source, :key, :stage, :index, :workspace, :status, :attempts,
                            :due, :owner, :lease, CAST(:output AS jsonb), :error_type,
                            :requested, :started, :finished, :deleted)
                    """
                ),
                {
                    "source": source,
                    "key": key,
                    "stage": stage,
                    "index": self.stages[source].index(stage),
                    "workspace": workspace,
                    "status": status,
                    "attempts": attempts,
                    "due": at(due),
                    "owner": "worker" if status == "IN_PROGRESS" else None,
                    "lease": at(lease_expires),
                    "output": None if output is None else json.dumps(output),
                    "error_type": error_type,
                    "requested": at(requested),
                    "started": at(finished + 1) if finished is not None else None,
                    "finished": at(finished),
                    "deleted": NOW if deleted else None,
                },
            )

    def record(
        self,
        source: str,
        key: str,
        statuses: Sequence[str],
        *,
        workspace: str = "ws1",
        requested: float = 600,
        finished: float | None = 300,
        outputs: dict[str, dict[str, Any]] | None = None,
        deleted: bool = False,
    ) -> None:
        """A record with one status per stage, in stage order. Finished stages finish at
        ``finished`` (seconds ago); a PENDING stage right after finished ones is due, later
        ones wait (as the queue keeps them)."""
        blocked = False
        for stage, status in zip(self.stages[source], statuses, strict=True):
            done = status in ("COMPLETED", "SKIPPED")
            due = 0.0 if status == "PENDING" and not blocked else None
            blocked = blocked or not done
            self.row(
                source,
                key,
                stage,
                status,
                workspace=workspace,
                requested=requested,
                finished=finished if done or status == "FAILED" else None,
                attempts=1 if done else 0,
                due=due,
                output=(outputs or {}).get(stage) if done else None,
                deleted=deleted,
            )

    def attempt(
        self,
        source: str,
        key: str,
        stage: str,
        outcome: str,
        *,
        finished: float,
        duration: float,
        number: int = 1,
        workspace: str = "ws1",
        error_type: str | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    """
                    INSERT INTO enrichment.attempts
                        (source, stage, record_key, workspace_id, attempt, outcome, error_type,
                         started_at, finished_at)
                    VALUES (:source, :stage, :key, :workspace, :number, :outcome, :error_type,
                            :started, :finished)
                    """
                ),
                {
                    "source": source,
                    "stage": stage,
                    "key": key,
                    "workspace": workspace,
                    "number": number,
                    "outcome": outcome,
                    "error_type": error_type,
                    "started": at(finished + duration),
                    "finished": at(finished),
                },
            )

    def snapshot_value(
        self,
        name: str,
        value: float,
        *,
        seconds_ago: float,
        workspace: str | None = None,
        source: str | None = None,
        stage: str | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO enrichment.metric_snapshots "
                    "(taken_at, workspace_id, source, stage, name, value) "
                    "VALUES (:t, :w, :s, :g, :n, :v)"
                ),
                {
                    "t": at(seconds_ago),
                    "w": workspace,
                    "s": source,
                    "g": stage,
                    "n": name,
                    "v": value,
                },
            )
