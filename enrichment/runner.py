"""The runner: fold events, reclaim expired leases, then claim → run stage → persist, batch by
batch. Each batch's outcomes are written in one transaction; a clean run leaves nothing
IN_PROGRESS."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, Engine

from enrichment import vectors
from enrichment.clock import Clock, DatabaseClock
from enrichment.database import in_transaction
from enrichment.errors import EnrichmentError, UnknownStage
from enrichment.events import FoldResult, fold
from enrichment.pipeline import Pipeline, Pipelines, StageSpec, register
from enrichment.queue import Failure, Queue
from enrichment.stages.base import (
    AnnouncingStage,
    ClaimedRecord,
    Completed,
    Failed,
    ForgettingStage,
    Recheck,
    Skipped,
    StageOutcome,
    WritingStage,
)

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What one claim → run → persist cycle did."""

    source: str
    stage: str
    claimed: int = 0
    completed: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0
    lost_leases: int = 0
    unchanged: int = 0
    seconds: float = 0.0


_COUNTS = ("claimed", "completed", "skipped", "failed", "dead_lettered", "lost_leases", "unchanged")


@dataclass
class RunReport:
    """What a drain did, in total and per batch."""

    batches: list[BatchReport] = field(default_factory=list)
    folded: FoldResult = field(default_factory=FoldResult)
    reclaimed: int = 0
    indexed: list[str] = field(default_factory=list)
    wakeups: int = 0
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(batch, name) for batch in self.batches)

    def by_stage(self) -> list[dict[str, str | int | float]]:
        """One row per (source, stage) worked on, in the order first seen."""
        rows: dict[tuple[str, str], dict[str, str | int | float]] = {}
        for batch in self.batches:
            empty: dict[str, str | int | float] = {
                "source": batch.source,
                "stage": batch.stage,
                "batches": 0,
                "seconds": 0.0,
            }
            empty.update({name: 0 for name in _COUNTS})
            row = rows.setdefault((batch.source, batch.stage), empty)
            row["batches"] = int(row["batches"]) + 1
            row["seconds"] = round(float(row["seconds"]) + batch.seconds, 3)
            for name in _COUNTS:
                row[name] = int(row[name]) + getattr(batch, name)
        return list(rows.values())

    def summary(self) -> dict[str, float]:
        summary: dict[str, float] = {name: self.total(name) for name in _COUNTS}
        summary.update(
            events_folded=self.folded.events,
            events_rejected=self.folded.rejected,
            leases_reclaimed=self.reclaimed,
            tables_indexed=len(self.indexed),
            wakeups=self.wakeups,
            seconds=round(self.seconds, 3),
        )
        return summary


class BatchExecutor(Protocol):
    """Runs one whole batch: (source, stage, limit, workspace) -> what it did."""

    def __call__(
        self, source: str, stage: str, limit: int, workspace: str | None
    ) -> BatchReport: ...


@dataclass(frozen=True)
class DrainSteps:
    """The units of work of a drain, when something other than the runner runs them."""

    fold_events: Callable[[], FoldResult]
    reclaim_expired: Callable[[], int]
    execute: BatchExecutor
    build_search_indexes: Callable[[], list[str]]


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# A \u0000 escape in JSON text (not preceded by an odd number of backslashes).
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _check_outcome(record: ClaimedRecord, outcome: object, stage: str) -> StageOutcome:
    """Turn a stage's contract violations into per-record failures that name the record."""
    if isinstance(outcome, Failed):
        return outcome
    if not isinstance(outcome, Completed | Skipped):
        return Failed(
            "InvalidOutcome",
            f"stage {stage!r} returned {type(outcome).__name__} for record {record.record_key!r}, "
            "expected Completed, Skipped or Failed",
            retryable=False,
        )
    try:
        dumped = json.dumps(outcome.output, default=str, allow_nan=False)
    except (TypeError, ValueError) as err:
        return Failed(
            "InvalidOutput",
            f"stage {stage!r} produced an output for record {record.record_key!r} that is not "
            f"JSON: {err}",
            retryable=False,
        )
    if _JSON_NUL.search(dumped):  # jsonb rejects it, which would fail the whole batch's write
        return Failed(
            "InvalidOutput",
            f"stage {stage!r} produced an output for record {record.record_key!r} with a NUL "
            "character (\\u0000), which PostgreSQL cannot store",
            retryable=False,
        )
    return outcome


@dataclass(frozen=True)
class _RanBatch:
    """A claimed batch and its stage's outcomes, not yet written."""

    pipeline: Pipeline
    spec: StageSpec
    owner: str
    claimed: list[ClaimedRecord]
    outcomes: dict[str, StageOutcome]
    started: float


@dataclass(frozen=True)
class _Chain:
    """Lease up to ``limit`` records of the next stage, ``spec``, to the batch's owner while
    persisting the batch, instead of making them due for any worker to claim."""

    spec: StageSpec
    limit: int


def _same_input(outcome: Completed | Skipped, previous_input_hash: str | None) -> bool:
    """The stage saw exactly the input of its last completion (so its output is the same)."""
    return (
        isinstance(outcome, Completed)
        and outcome.input_hash is not None
        and outcome.input_hash == previous_input_hash
    )


class Runner:
    """Runs pipelines against the queue. Many runners, in many processes on many machines, can
    work on the same database at once: claims never overlap and leases fence late writers."""

    def __init__(
        self,
        engine: Engine,
        pipelines: Pipelines | Iterable[Pipeline],
        *,
        clock: Clock | None = None,
        worker: str | None = None,
        batch_size: int = 500,
        fold_limit: int = 5000,
        index_memory: str = "256MB",
    ) -> None:
        self.engine = engine
        self.pipelines = pipelines if isinstance(pipelines, Pipelines) else Pipelines(pipelines)
        self.clock = clock or DatabaseClock()
        self.worker = worker or default_worker_name()
        self.batch_size = batch_size
        self.fold_limit = fold_limit
        self.index_memory = index_memory

    def register(self) -> None:
        """Declare every pipeline's source and stage order in the database."""
        with self.engine.begin() as connection:
            for pipeline in self.pipelines.values():
                register(connection, pipeline)

    def fold_events(self) -> FoldResult:
        """Fold all waiting events into record_state (or none, if another worker is folding)."""
        total = FoldResult()
        while True:
            result = in_transaction(self.engine, self._fold_and_forget)
            total += result
            if result.events < self.fold_limit:
                return total

    def _fold_and_forget(self, connection: Connection) -> FoldResult:
        """Fold, and delete the vectors of deleted records in the same transaction."""
        result = fold(connection, clock=self.clock, limit=self.fold_limit)
        by_source: dict[str, list[str]] = defaultdict(list)
        for source, key in result.deleted:
            by_source[source].append(key)
        for source, keys in by_source.items():
            vectors.delete_records(connection, source, keys)
        return result

    def build_search_indexes(self) -> list[str]:
        """Build the HNSW index of vector tables that were filled without one (a backfill
        that has finished); returns the tables indexed by this call."""
        with self.engine.connect() as connection:
            missing = vectors.tables_without_search_index(connection)
        return [
            table.name
            for table in missing
            if vectors.build_search_index(self.engine, table, memory=self.index_memory)
        ]

    def reclaim_expired(self, limit: int = 10_000) -> int:
        """Fail leases that expired (their holder died or stalled) so they are retried on the
        stage's schedule; the lost attempt stays counted and is logged as ``LeaseExpired``."""
        with self.engine.begin() as connection:
            queue = Queue(connection, self.clock)
            # Leases of sources or stages this runner does not run are left to their workers.
            expired = [
                lease
                for lease in queue.expired_leases(limit, sources=list(self.pipelines))
                if lease.stage in self.pipelines[lease.source].stage_names
            ]
            groups: dict[tuple[str, str, str], dict[str, Failure]] = defaultdict(dict)
            for lease in expired:
                spec = self.pipelines[lease.source].spec(lease.stage)
                groups[(lease.source, lease.stage, lease.lease_owner)][lease.record_key] = Failure(
                    "LeaseExpired",
                    f"lease of {lease.lease_owner} expired before stage {lease.stage!r} finished "
                    f"(attempt {lease.attempts})",
                    spec.retry.next_delay(lease.attempts, retryable=True),
                )
            reclaimed = 0
            for (source, stage, owner), failures in groups.items():
                failed, _ = queue.fail(source, stage, owner=owner, failures=failures)
                reclaimed += len(failed)
        if reclaimed:
            log.warning("reclaimed %d expired leases", reclaimed)
        return reclaimed

    def run_batch(
        self,
        source: str,
        stage: str,
        *,
        batch_size: int | None = None,
        workspace: str | None = None,
    ) -> BatchReport:
        """Claim one batch of ``stage``, run it, persist every outcome in one transaction."""
        ran = self._claim_and_run(source, stage, batch_size or self.batch_size, workspace)
        return self._persist_batch(ran)

    def _claim_and_run(
        self, source: str, stage: str, limit: int, workspace: str | None
    ) -> _RanBatch:
        started = time.perf_counter()
        pipeline = self.pipelines[source]
        spec = pipeline.spec(stage)
        owner = f"{self.worker}/{uuid.uuid4().hex[:12]}"
        with self.engine.begin() as connection:
            claimed = Queue(connection, self.clock).claim(
                source,
                stage,
                owner=owner,
                limit=limit,
                lease_seconds=spec.lease_seconds,
                workspace=workspace,
            )
        return self._run_leased(pipeline, spec, owner, claimed, started)

    def _run_leased(
        self,
        pipeline: Pipeline,
        spec: StageSpec,
        owner: str,
        leased: list[ClaimedRecord],
        started: float | None = None,
    ) -> _RanBatch:
        """Run ``spec``'s stage on records leased to ``owner`` (``started``: when the batch's
        time began, if before now)."""
        started = time.perf_counter() if started is None else started
        outcomes = self._run_stage(spec, leased) if leased else {}
        return _RanBatch(pipeline, spec, owner, leased, outcomes, started)

    def _persist_batch(self, ran: _RanBatch) -> BatchReport:
        return self._persist_and_lease(ran, None)[0]

    def _persist_and_lease(
        self, ran: _RanBatch, chain: _Chain | None
    ) -> tuple[BatchReport, list[ClaimedRecord]]:
        """Persist a batch; with ``chain``, also lease its next stage to the same owner."""
        report = BatchReport(source=ran.pipeline.source, stage=ran.spec.name)
        report.claimed = len(ran.claimed)
        leased: list[ClaimedRecord] = []
        if ran.claimed:
            finished, leased = in_transaction(
                self.engine,
                lambda c: self._persist(
                    c, ran.pipeline, ran.spec, ran.owner, ran.claimed, ran.outcomes, report, chain
                ),
            )
            if finished and isinstance(ran.spec.stage, AnnouncingStage):
                self._announce(ran.spec, finished)
        report.seconds = time.perf_counter() - ran.started
        return report, leased

    @staticmethod
    def _announce(spec: StageSpec, finished: Mapping[str, Completed | Skipped]) -> None:
        """After the commit: the outcomes stand whatever happens to the announcement."""
        assert isinstance(spec.stage, AnnouncingStage)
        try:
            spec.stage.announce(finished)
        except Exception:
            log.exception("stage %r could not announce %d outcomes", spec.name, len(finished))

    def _run_stage(
        self, spec: StageSpec, claimed: Sequence[ClaimedRecord]
    ) -> dict[str, StageOutcome]:
        try:
            returned: Mapping[str, object] = spec.stage.run(claimed)
        except EnrichmentError:
            raise  # the configuration is wrong: stop the run, the records are not at fault
        except Exception as err:  # a whole-batch failure is a retryable failure of each record
            log.exception("stage %r failed for a batch of %d records", spec.name, len(claimed))
            failure = Failed(type(err).__name__, str(err) or repr(err), retryable=True)
            return {record.record_key: failure for record in claimed}
        outcomes: dict[str, StageOutcome] = {}
        for record in claimed:
            if record.record_key in returned:
                outcome = _check_outcome(record, returned[record.record_key], spec.name)
            else:
                outcome = Failed(
                    "MissingOutcome",
                    f"stage {spec.name!r} returned no outcome for record {record.record_key!r}",
                )
            outcomes[record.record_key] = outcome
        return outcomes

    def _persist(
        self,
        connection: Connection,
        pipeline: Pipeline,
        spec: StageSpec,
        owner: str,
        claimed: Sequence[ClaimedRecord],
        outcomes: Mapping[str, StageOutcome],
        report: BatchReport,
        chain: _Chain | None = None,
    ) -> tuple[dict[str, Completed | Skipped], list[ClaimedRecord]]:
        """Write a batch's outcomes; returns those written (the lease was still held) and the
        next stage's records leased to ``owner`` (with ``chain``)."""
        queue = Queue(connection, self.clock)
        attempts = {record.record_key: record.attempt for record in claimed}
        done = {k: o for k, o in outcomes.items() if isinstance(o, Completed | Skipped)}
        failures = {
            key: Failure(
                outcome.error_type,
                outcome.message,
                spec.retry.next_delay(attempts[key], retryable=outcome.retryable),
            )
            for key, outcome in outcomes.items()
            if isinstance(outcome, Failed)
        }
        finished = queue.finish(pipeline.source, spec.name, owner=owner, outcomes=done)
        if isinstance(spec.stage, WritingStage):
            effects = {k: o.effects for k in finished if isinstance(o := done[k], Completed)}
            # A gate's own result (a low-confidence label) is written like a completion's.
            effects.update(
                (k, o.effects)
                for k in finished
                if isinstance(o := done[k], Skipped) and o.effects is not None
            )
            if effects:
                spec.stage.write(connection, effects)
        failed, dead = queue.fail(pipeline.source, spec.name, owner=owner, failures=failures)
        gated = {
            key: outcome.reason
            for key, outcome in done.items()
            if isinstance(outcome, Skipped) and outcome.skip_remaining and key in finished
        }
        index = pipeline.index(spec.name)
        queue.skip_later_stages(pipeline.source, index, gated)
        # Written results must not outlive a failure (this stage's and what later stages built
        # on it) or a gate (later stages'): NULL, never a stale or default value.
        for position, later in enumerate(pipeline.stages):
            forgotten = (failed if position >= index else set()) | (
                gated.keys() if position > index else set()
            )
            if forgotten and isinstance(later.stage, ForgettingStage):
                later.stage.forget(connection, sorted(forgotten))
        workspaces = {record.record_key: record.workspace_id for record in claimed}
        rechecks: dict[str, tuple[str, str, Recheck]] = {}
        for key in gated:
            outcome = done[key]
            if isinstance(outcome, Skipped) and outcome.recheck is not None:
                rechecks[key] = (workspaces[key], outcome.reason, outcome.recheck)
        queue.schedule_rechecks(pipeline.source, spec.name, rechecks)
        previous = {record.record_key: record.previous_input_hash for record in claimed}
        unchanged = [key for key in finished if _same_input(done[key], previous[key])]
        report.unchanged = len(unchanged)
        queue.restore_later_stages(pipeline.source, index, unchanged)
        next_stage = pipeline.next_stage(spec.name)
        leased: list[ClaimedRecord] = []
        if next_stage is not None:
            moving = set(gated) | set(unchanged)
            ready = sorted(k for k in finished if k not in moving)
            if chain is not None and chain.spec.name == next_stage:
                leased = queue.lease_next(
                    pipeline.source,
                    next_stage,
                    ready[: chain.limit],
                    owner=owner,
                    lease_seconds=chain.spec.lease_seconds,
                )
                ready = ready[chain.limit :]
            queue.advance(pipeline.source, next_stage, ready)

        report.completed = sum(isinstance(done[k], Completed) for k in finished)
        report.skipped = len(finished) - report.completed
        report.failed = len(failed)
        report.dead_lettered = len(dead)
        report.lost_leases = len(claimed) - len(finished) - len(failed)
        for key in sorted(dead):
            log.warning(
                "dead letter: source=%s stage=%s record=%s error=%s",
                pipeline.source,
                spec.name,
                key,
                failures[key].error_type,
            )
        if report.lost_leases:
            log.warning(
                "%d records of %s/%s were reclaimed by another worker before this one finished",
                report.lost_leases,
                pipeline.source,
                spec.name,
            )
        return {key: done[key] for key in finished}, leased

    def plan(
        self, sources: Iterable[str] | None = None, stages: Iterable[str] | None = None
    ) -> list[tuple[str, str]]:
        """(source, stage) pairs to work on, in pipeline order; a stage that no selected
        pipeline has is a typo and is refused."""
        selected = self.pipelines.select(sources)
        wanted = list(stages) if stages is not None else None
        known = sorted({name for pipeline in selected for name in pipeline.stage_names})
        for stage in wanted or []:
            if stage not in known:
                raise UnknownStage(stage, ", ".join(p.source for p in selected), known)
        return [
            (pipeline.source, spec.name)
            for pipeline in selected
            for spec in pipeline.stages
            if wanted is None or spec.name in wanted
        ]

    def drain(
        self,
        *,
        sources: Iterable[str] | None = None,
        stages: Iterable[str] | None = None,
        workspace: str | None = None,
        batch_size: int | None = None,
        time_budget: float | None = None,
        max_records: int | None = None,
        steps: DrainSteps | None = None,
        wait_for_events: Callable[[float], bool] | None = None,
    ) -> RunReport:
        """Work until nothing is due (or the time budget or record limit is reached): fold
        events, reclaim expired leases, then each stage in order, batch by batch.

        By default a claimed batch goes on through the following stages of the plan under the
        same lease owner (each stage's leases taken as the stage before is persisted), and the
        last stage's outcomes are written while the next batch runs. ``steps``
        replaces the housekeeping calls and runs each batch whole (claim, run, persist) through
        its ``execute``: an orchestrator's units of work, with their own retries and logs.
        With ``wait_for_events`` and a time budget, an idle runner waits for new events
        (``wait_for_events(seconds)`` returns whether any arrived) until the budget is spent.
        """
        started = time.perf_counter()
        deadline = None if time_budget is None else started + time_budget
        plan = self.plan(sources, stages)
        size = batch_size or self.batch_size
        report = RunReport()
        claimed = 0

        def out_of_budget() -> bool:
            over_time = deadline is not None and time.perf_counter() >= deadline
            over_count = max_records is not None and claimed >= max_records
            return over_time or over_count

        def limit() -> int:
            return size if max_records is None else min(size, max_records - claimed)

        planned = set(plan)

        def next_in_plan(ran: _RanBatch) -> _Chain | None:
            """The stage a batch goes on to: the next of its pipeline, when the plan has it
            and the budget allows; otherwise its records are made due for a later claim."""
            stage = ran.pipeline.next_stage(ran.spec.name)
            if stage is None or (ran.pipeline.source, stage) not in planned or out_of_budget():
                return None
            return _Chain(ran.pipeline.spec(stage), limit())

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrich-persist") as writer:
            while not out_of_budget():
                report.folded += steps.fold_events() if steps else self.fold_events()
                report.reclaimed += steps.reclaim_expired() if steps else self.reclaim_expired()
                progressed = False
                for source, stage in plan:
                    if steps is not None:
                        while not out_of_budget():
                            batch_limit = limit()
                            batch = steps.execute(source, stage, batch_limit, workspace)
                            claimed += batch.claimed
                            if not batch.claimed:
                                break
                            progressed = True
                            report.batches.append(batch)
                            if batch.claimed < batch_limit:
                                break
                        continue
                    # A claimed batch goes on through the following stages of the plan, each
                    # lease taken in the transaction that persists the stage before. The last
                    # stage's outcomes are written (database work) while the next batch runs
                    # (model work): one write in flight, in order, done before the next stage.
                    writing: Future[BatchReport] | None = None
                    while not out_of_budget():
                        batch_limit = limit()
                        ran = self._claim_and_run(source, stage, batch_limit, workspace)
                        claimed += len(ran.claimed)
                        full = len(ran.claimed) == batch_limit
                        progressed = progressed or bool(ran.claimed)
                        while ran.claimed and (chain := next_in_plan(ran)) is not None:
                            batch, leased = self._persist_and_lease(ran, chain)
                            report.batches.append(batch)
                            claimed += len(leased)
                            ran = self._run_leased(ran.pipeline, chain.spec, ran.owner, leased)
                        if writing is not None:
                            report.batches.append(writing.result())
                            writing = None
                        if ran.claimed:
                            writing = writer.submit(self._persist_batch, ran)
                        if not full:
                            break
                    if writing is not None:
                        report.batches.append(writing.result())
                if progressed:
                    continue
                # Nothing left to do: a backfill has finished, index what it filled.
                report.indexed += (
                    steps.build_search_indexes() if steps else self.build_search_indexes()
                )
                if wait_for_events is None or deadline is None or out_of_budget():
                    break
                if not wait_for_events(deadline - time.perf_counter()):
                    break
                report.wakeups += 1
        report.seconds = time.perf_counter() - started
        return report
