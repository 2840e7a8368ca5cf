"""The vocabulary of the queue: stage statuses, event actions and reasons."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Status of one stage of one record. A dead letter is FAILED with no attempt scheduled."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class Action(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class Reason(StrEnum):
    """Why an event was raised; kept with the event for tracing and metrics."""

    ENTITY_CHANGED = "entity_changed"
    RELATED_CHANGED = "related_changed"
    SCHEMA_CHANGED = "schema_changed"
    INTEGRATION_SYNC = "integration_sync"
    MANUAL_REEMBED = "manual_reembed"
    REPROCESS = "reprocess"
