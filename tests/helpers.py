"""Shared helpers for the queue tests: fake stages, event senders and row readers.

The stages here are the inputs of the code under test (they say what each record's outcome
is); the queue, the runner and the database are always real.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, RowMapping, text

from enrichment.clock import Clock
from enrichment.events import EnqueueResult, FoldResult, enqueue, fold
from enrichment.pipeline import Pipeline, StageSpec
from enrichment.retry import RetryPolicy
from enrichment.runner import Runner
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome

WORKSPACE = "ws1"

OutcomeFor = StageOutcome | Callable[[ClaimedRecord], object]

OMIT = object()  # a FakeStage outcome: return nothing at all for this record


class FakeStage:
    """Returns a scripted outcome per record key (``Completed`` for keys not scripted).

    ``before_return`` runs after the batch is claimed and before outcomes are returned: the
    place to simulate what happens elsewhere while a worker holds its leases.
    """

    def __init__(
        self,
        name: str,
        outcomes: Mapping[str, object] | None = None,
        *,
        default: OutcomeFor | None = None,
        before_return: Callable[[Sequence[ClaimedRecord]], None] | None = None,
    ) -> None:
        self.name = name
        self.outcomes = dict(outcomes or {})
        self.default = default
        self.before_return = before_return
        self.batches: list[list[ClaimedRecord]] = []

    @property
    def seen(self) -> list[str]:
        return [record.record_key for batch in self.batches for record in batch]

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, object]:
        self.batches.append(list(records))
        if self.before_return is not None:
            self.before_return(records)
        result: dict[str, object] = {}
        for record in records:
            outcome = self.outcomes.get(record.record_key, self.default)
            if outcome is None:
                outcome = Completed(output={"stage": self.name, "key": record.record_key})
            elif callable(outcome):
                outcome = outcome(record)
            if outcome is OMIT:
                continue
            result[record.record_key] = outcome
        return result


class AlwaysFails(FakeStage):
    """Every attempt of every record fails with a retryable ``error_type``."""

    def __init__(self, name: str, error_type: str = "Flaky", *, retryable: bool = True) -> None:
        super().__init__(
            name,
            default=lambda record: Failed(
                error_type, f"attempt {record.attempt} of {record.record_key}", retryable
            ),
        )


class RaisingStage(FakeStage):
    """The whole batch call raises."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name)
        self.error = error

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, object]:
        self.batches.append(list(records))
        raise self.error


def pipeline(
    source: str,
    *stages: FakeStage,
    retry: RetryPolicy | None = None,
    lease_seconds: float = 300.0,
) -> Pipeline:
    return Pipeline(
        source,
        tuple(
            StageSpec(stage, retry=retry or RetryPolicy(), lease_seconds=lease_seconds)
            for stage in stages
        ),
    )


def runner(
    engine: Engine,
    *pipelines: Pipeline,
    clock: Clock | None = None,
    worker: str = "worker-a",
    batch_size: int = 500,
) -> Runner:
    """A runner whose pipelines are registered in the database."""
    result = Runner(engine, pipelines, clock=clock, worker=worker, batch_size=batch_size)
    result.register()
    return result


def send(
    engine: Engine,
    source: str,
    keys: Iterable[str],
    action: str = "UPDATE",
    *,
    workspace: str = WORKSPACE,
    idempotency_key: str | None = None,
) -> EnqueueResult:
    event: dict[str, Any] = {
        "workspace_id": workspace,
        "source": source,
        "record_ids": list(keys),
        "action": action,
    }
    if idempotency_key is not None:
        event["idempotency_key"] = idempotency_key
    with engine.begin() as connection:
        return enqueue(connection, [event])


def fold_now(engine: Engine, clock: Clock | None = None) -> FoldResult:
    with engine.begin() as connection:
        return fold(connection, clock=clock)


def states(engine: Engine, source: str | None = None) -> dict[tuple[str, str], RowMapping]:
    """record_state rows by (record_key, stage)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT * FROM enrichment.record_state "
                "WHERE CAST(:source AS text) IS NULL OR source = CAST(:source AS text) "
                "ORDER BY source, record_key, stage_index"
            ),
            {"source": source},
        ).mappings()
        return {(row["record_key"], row["stage"]): row for row in rows}


def state(engine: Engine, source: str, key: str, stage: str) -> RowMapping:
    return states(engine, source)[(key, stage)]


def attempts(engine: Engine, key: str | None = None) -> list[RowMapping]:
    """attempts rows in the order they were written."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT * FROM enrichment.attempts "
                    "WHERE CAST(:key AS text) IS NULL OR record_key = CAST(:key AS text) "
                    "ORDER BY id"
                ),
                {"key": key},
            ).mappings()
        )


def scalar(engine: Engine, sql: str, **params: object) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# --- Worker processes (started with multiprocessing 'spawn'; must be importable) -------------


class RecordingStage:
    """Inserts the keys of every batch it processes into public.processed, with the worker."""

    def __init__(self, engine: Engine, name: str, worker: str) -> None:
        self.engine = engine
        self.name = name
        self.worker = worker

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO public.processed (key, worker) "
                    "SELECT unnest(CAST(:keys AS text[])), :worker"
                ),
                {"keys": [record.record_key for record in records], "worker": self.worker},
            )
        return {record.record_key: Completed() for record in records}


def concurrent_worker(url: str, source: str, stage: str, worker: str, start: Any) -> None:
    """Drain ``source`` with a RecordingStage, starting when every worker is ready
    (``start`` is a multiprocessing Barrier shared by the workers)."""
    from enrichment.database import engine_for

    engine = engine_for(url)
    stage_impl = RecordingStage(engine, stage, worker)
    runner = Runner(
        engine, [Pipeline(source, (StageSpec(stage_impl),))], worker=worker, batch_size=50
    )
    with engine.connect():  # open a pooled connection before the race starts
        pass
    start.wait(timeout=60)
    runner.drain()
    engine.dispose()


BLOCKING_BATCH = 20  # records blocking_worker claims


class BlockingStage:
    """Writes the claimed keys to ``signal`` and then never returns (until killed)."""

    def __init__(self, name: str, signal: Path) -> None:
        self.name = name
        self.signal = signal

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        partial = self.signal.with_suffix(".tmp")
        partial.write_text("\n".join(record.record_key for record in records))
        partial.rename(self.signal)
        while True:
            time.sleep(3600)


def blocking_worker(url: str, source: str, stage: str, lease_seconds: float, signal: str) -> None:
    """Claim one batch of ``stage`` with a short lease and hang inside the stage."""
    from enrichment.database import engine_for

    stage_impl = BlockingStage(stage, Path(signal))
    spec = StageSpec(stage_impl, lease_seconds=lease_seconds)
    runner = Runner(
        engine_for(url), [Pipeline(source, (spec,))], worker="doomed", batch_size=BLOCKING_BATCH
    )
    runner.run_batch(source, stage)
