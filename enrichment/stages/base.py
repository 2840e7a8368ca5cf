"""The stage interface: a batch of claimed records in, one outcome per record out.

Outcomes are values, not exceptions, so one bad record never fails its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class ClaimedRecord:
    """One record leased to this worker for one stage."""

    source: str
    stage: str
    record_key: str
    workspace_id: str
    attempt: int
    previous_input_hash: str | None
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class Completed:
    """Done. ``input_hash`` identifies what the stage read: when a record comes back with the
    same input, its later stages keep their results. ``effects`` is what the stage writes
    outside record_state (vectors); the runner hands it to ``WritingStage.write`` in the same
    transaction as the outcome, and only while the lease is still held."""

    output: Mapping[str, Any] | None = None
    input_hash: str | None = None
    effects: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Recheck:
    """Bring a gated record back after ``after_seconds``: a low confidence is not final.

    A record gated again with the same ``input_hash`` counts towards ``max_rechecks``; after
    that many re-checks it stays gated (visibly, in ``enrichment.rechecks``). A different input
    starts the count afresh.
    """

    after_seconds: float
    max_rechecks: int
    input_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to do for this record at this stage.

    ``skip_remaining`` also skips the record's later stages (with the same reason), for gates
    such as a confidence below the stage's minimum; ``recheck`` schedules such a record to come
    back. ``effects`` are handed to ``WritingStage.write`` like a completion's.
    """

    reason: str
    skip_remaining: bool = False
    output: Mapping[str, Any] | None = None
    effects: Any = field(default=None, compare=False, repr=False)
    recheck: Recheck | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed. Permanent failures (``retryable=False``) are dead-lettered at once."""

    error_type: str
    message: str
    retryable: bool = True
    details: Mapping[str, Any] = field(default_factory=dict)


StageOutcome = Completed | Skipped | Failed


@runtime_checkable
class Stage(Protocol):
    """A step of a pipeline. ``run`` gets a whole batch so it can make one model call and one
    database round trip per batch; it returns an outcome for every record key it was given."""

    name: str

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]: ...


@runtime_checkable
class WritingStage(Stage, Protocol):
    """A stage whose results live outside record_state (vector tables)."""

    def write(self, connection: Connection, effects: Mapping[str, Any]) -> None:
        """Persist the effects of completed records (by key), inside the outcome's
        transaction, so the state and the data commit together or not at all."""
        ...


@runtime_checkable
class ForgettingStage(Stage, Protocol):
    """A stage whose written results must not outlive a failure: what ``write`` put outside
    record_state is cleared when the record's attempt fails or an earlier stage's gate skips
    it, so nobody reads a stale or default value as a result."""

    def forget(self, connection: Connection, keys: Sequence[str]) -> None:
        """Clear the written results of ``keys``, inside the outcome's transaction."""
        ...


@runtime_checkable
class AnnouncingStage(Stage, Protocol):
    """A stage that tells the world about its results once they are committed."""

    def announce(self, finished: Mapping[str, Completed | Skipped]) -> None:
        """Called after the transaction that recorded ``finished`` committed. Best effort:
        an error here is logged, the recorded outcomes stand."""
        ...
