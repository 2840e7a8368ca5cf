"""Re-checks: a record a confidence gate held back comes back for another attempt.

A stage that gates (classify below its ``min_confidence``) returns ``Skipped(...,
skip_remaining=True, recheck=Recheck(after, max))``; the runner records the gate in
``enrichment.rechecks`` in the transaction that finishes the record. This module brings the
due ones back: one ``UPDATE`` event per workspace (reason ``reprocess``, not forced), so the
record runs again from its first stage, stages whose input is unchanged are not redone, and the
gating stage decides afresh. A record gated again for the same input counts towards the gate's
``max_rechecks``; after that many re-checks it stays gated and is listed by
:func:`gated_records` with no re-check due, never silently final.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from enrichment.clock import Clock
from enrichment.events import enqueue_records
from enrichment.queue import GatedRecord, Queue
from enrichment.states import Reason


def requeue_due_rechecks(
    connection: Connection,
    clock: Clock | None = None,
    *,
    source: str | None = None,
    workspace: str | None = None,
    limit: int = 10_000,
) -> int:
    """Re-queue up to ``limit`` records whose re-check is due (optionally of one source or
    workspace), in the caller's transaction; returns how many were re-queued.

    Safe to call from many workers at once (a due re-check is taken by one caller only) and
    as often as wanted: nothing is re-queued before it is due. Records that completed, failed
    or were re-queued since their gate are not re-queued (their row is dropped or kept with
    its count).
    """
    due = Queue(connection, clock).take_due_rechecks(
        source=source, workspace=workspace, limit=limit
    )
    # A record gated by two stages is taken twice; one event brings it back.
    pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for recheck in due:
        pairs[recheck.source].add((recheck.workspace_id, recheck.record_key))
    return sum(
        enqueue_records(connection, name, sorted(keys), Reason.REPROCESS, force=False)
        for name, keys in sorted(pairs.items())
    )


def gated_records(
    connection: Connection,
    *,
    source: str | None = None,
    workspace: str | None = None,
    limit: int = 100,
) -> list[GatedRecord]:
    """Records a gate holds back now: due re-checks first, then the final ones."""
    return Queue(connection).gated_records(source=source, workspace=workspace, limit=limit)
