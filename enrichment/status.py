"""What the queue looks like right now, per source and stage (``enrich status``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from enrichment.clock import Clock, DatabaseClock
from enrichment.sql import query


@dataclass(frozen=True)
class StageStatus:
    source: str
    stage: str
    stage_index: int
    pending: int
    waiting: int
    in_progress: int
    completed: int
    skipped: int
    retrying: int
    dead_letters: int
    oldest_pending_since: datetime | None

    @property
    def backlog(self) -> int:
        """Records this stage can work on: due, running or scheduled for a retry. Records
        ``waiting`` on an earlier stage count in that stage's backlog, not here."""
        return self.pending + self.in_progress + self.retrying

    @property
    def total(self) -> int:
        return self.backlog + self.waiting + self.completed + self.skipped + self.dead_letters


@dataclass(frozen=True)
class QueueStatus:
    stages: list[StageStatus]
    unfolded_events: int
    oldest_unfolded_since: datetime | None
    rejected_events: int
    as_of: datetime

    def age_seconds(self, since: datetime | None) -> float | None:
        return None if since is None else max(0.0, (self.as_of - since).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for machines (``enrich status --json``)."""
        return {
            "as_of": self.as_of.isoformat(),
            "events": {
                "unfolded": self.unfolded_events,
                "oldest_unfolded_age_seconds": self.age_seconds(self.oldest_unfolded_since),
                "rejected": self.rejected_events,
            },
            "stages": [
                {
                    **{k: v for k, v in asdict(stage).items() if k != "oldest_pending_since"},
                    "backlog": stage.backlog,
                    "oldest_pending_age_seconds": self.age_seconds(stage.oldest_pending_since),
                }
                for stage in self.stages
            ],
        }


def queue_status(
    connection: Connection, *, source: str | None = None, clock: Clock | None = None
) -> QueueStatus:
    now = (clock or DatabaseClock()).now() or datetime.now(UTC)
    stages = [
        StageStatus(
            source=row.source,
            stage=row.stage,
            stage_index=row.stage_index,
            pending=row.pending,
            waiting=row.waiting,
            in_progress=row.in_progress,
            completed=row.completed,
            skipped=row.skipped,
            retrying=row.retrying,
            dead_letters=row.dead_letters,
            oldest_pending_since=row.oldest_pending_since,
        )
        for row in connection.execute(query("status_counts"), {"source": source})
    ]
    events = connection.execute(query("unfolded_events")).one()
    return QueueStatus(
        stages=stages,
        unfolded_events=events.unfolded,
        oldest_unfolded_since=events.oldest_unfolded,
        rejected_events=events.rejected,
        as_of=now,
    )
