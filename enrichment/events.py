"""Mutation events: validate them, append them to the queue, fold them into record_state."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, text

from enrichment.clock import Clock, DatabaseClock
from enrichment.errors import InvalidInput, UnknownSource
from enrichment.notifications import NOTIFY_CHANNEL
from enrichment.pipeline import registered_sources
from enrichment.sql import query
from enrichment.states import Action, Reason

# Only one folder at a time, so events apply in id order; others skip folding and claim.
FOLD_LOCK_KEY = 0x656E7269636802


class Event(BaseModel):
    """Something happened to records of a source in a workspace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=63)
    record_ids: tuple[str, ...] = Field(min_length=1)
    action: Action
    reason: Reason = Reason.ENTITY_CHANGED
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=500)
    payload: dict[str, Any] = Field(default_factory=dict)
    force: bool = Field(
        default=False, description="Redo every stage even where its input is unchanged."
    )

    @field_validator("record_ids", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        if isinstance(value, str | int):
            value = [value]
        if isinstance(value, list | tuple):
            keys = []
            for position, key in enumerate(value):
                if isinstance(key, bool) or not isinstance(key, str | int) or str(key) == "":
                    raise ValueError(
                        f"record id at position {position} is {key!r}, expected a "
                        "non-empty string or integer"
                    )
                keys.append(str(key))
            return tuple(keys)
        return value


def parse_event(raw: Mapping[str, Any], *, label: str = "event") -> Event:
    """Validate a raw event, raising :class:`InvalidInput` that names the bad field."""
    try:
        return Event.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "event"
        given = f" (got {first['input']!r})" if first["type"] != "missing" else ""
        raise InvalidInput(field, f"{first['msg']}{given}", record=label) from None


@dataclass(frozen=True)
class EnqueueResult:
    inserted: int
    duplicates: int


def enqueue(connection: Connection, events: Iterable[Event | Mapping[str, Any]]) -> EnqueueResult:
    """Append events. An event whose idempotency key was seen before is dropped (counted as a
    duplicate). Events for sources not registered are refused before anything is written."""
    parsed = [
        event if isinstance(event, Event) else parse_event(event, label=f"event {position}")
        for position, event in enumerate(events)
    ]
    known = registered_sources(connection)
    for position, event in enumerate(parsed):
        if event.source not in known:
            raise UnknownSource(event.source, sorted(known), field=f"events[{position}].source")
    if not parsed:
        return EnqueueResult(inserted=0, duplicates=0)
    rows = connection.execute(
        query("enqueue_events"),
        {"events": json.dumps([event.model_dump(mode="json") for event in parsed])},
    ).all()
    inserted = len(rows)
    if inserted:  # wake listening runners (delivered on commit, coalesced per transaction)
        connection.execute(
            text("SELECT pg_notify(:channel, 'enqueue')"), {"channel": NOTIFY_CHANNEL}
        )
    return EnqueueResult(inserted=inserted, duplicates=len(parsed) - inserted)


RECORDS_PER_EVENT = 10_000


def enqueue_records(
    connection: Connection,
    source: str,
    keys: Iterable[tuple[str, str]],
    reason: Reason,
    *,
    force: bool = True,
    action: Action = Action.UPDATE,
) -> int:
    """Events for (workspace, record key) pairs: one per workspace and 10,000 records. Returns
    how many records were queued."""
    by_workspace: dict[str, list[str]] = {}
    for workspace, key in keys:
        by_workspace.setdefault(workspace, []).append(key)
    events = [
        {
            "workspace_id": workspace,
            "source": source,
            "record_ids": ids[start : start + RECORDS_PER_EVENT],
            "action": action,
            "reason": reason,
            "force": force,
        }
        for workspace, ids in by_workspace.items()
        for start in range(0, len(ids), RECORDS_PER_EVENT)
    ]
    if events:
        enqueue(connection, events)
    return sum(len(ids) for ids in by_workspace.values())


@dataclass(frozen=True)
class FoldResult:
    events: int = 0
    rejected: int = 0
    requeued_records: int = 0
    deleted_records: int = 0
    deleted: tuple[tuple[str, str], ...] = ()  # (source, record key) of deleted records

    def __add__(self, other: FoldResult) -> FoldResult:
        return FoldResult(
            self.events + other.events,
            self.rejected + other.rejected,
            self.requeued_records + other.requeued_records,
            self.deleted_records + other.deleted_records,
            self.deleted + other.deleted,
        )


def fold(connection: Connection, *, clock: Clock | None = None, limit: int = 5000) -> FoldResult:
    """Fold up to ``limit`` unfolded events into record_state, in the caller's transaction.

    Returns an empty result without waiting when another process is folding right now.
    """
    clock = clock or DatabaseClock()
    locked = connection.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FOLD_LOCK_KEY}
    ).scalar_one()
    if not locked:
        return FoldResult()
    row = connection.execute(query("fold_events"), {"now": clock.now(), "limit": limit}).one()
    return FoldResult(
        events=row.events,
        rejected=row.rejected,
        requeued_records=row.requeued_records,
        deleted_records=row.deleted_records,
        deleted=tuple((source, key) for source, key in row.deleted_keys),
    )
