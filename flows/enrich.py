"""The enrich cycle as Prefect tasks: fold events and reclaim leases, then each stage batch by
batch. A batch is one task run; records are never tasks."""

from __future__ import annotations

import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from enrichment.events import FoldResult
from enrichment.runner import BatchReport, Runner, RunReport


@task(name="fold-events", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 10, 30])
def fold_events(runner: Runner) -> FoldResult:
    return runner.fold_events()


@task(
    name="reclaim-expired-leases", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 10, 30]
)
def reclaim_expired(runner: Runner) -> int:
    return runner.reclaim_expired()


@task(name="run-batch", cache_policy=NO_CACHE, task_run_name="{source}/{stage}")
def run_batch(runner: Runner, source: str, stage: str, batch_size: int) -> BatchReport:
    return runner.run_batch(source, stage, batch_size=batch_size)


def run_cycle(runner: Runner, *, batch_size: int, max_batches: int = 10_000) -> RunReport:
    """One pass over every pipeline: fold, reclaim, then drain stages in order."""
    started = time.perf_counter()
    report = RunReport()
    report.folded = fold_events(runner)
    report.reclaimed = reclaim_expired(runner)
    for pipeline in runner.pipelines.values():
        for spec in pipeline.stages:
            for _ in range(max_batches):
                batch = run_batch(runner, pipeline.source, spec.name, batch_size)
                if batch.claimed:
                    report.batches.append(batch)
                if batch.claimed < batch_size:
                    break
    report.seconds = time.perf_counter() - started
    return report
