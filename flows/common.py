"""The Prefect units of work shared by the flows: load the configured pipelines, fold events,
reclaim leases, run one batch, build indexes, and publish what a run did.

A batch of records is one task run; records are never tasks. Tasks retry (exponential backoff
with jitter) only on transient infrastructure errors such as a lost database connection:
a record that fails is state in the database, not a failed task. Every task has side effects,
so none is cached.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff

from enrichment.config import EnrichConfig
from enrichment.database import get_engine, is_transient
from enrichment.events import FoldResult
from enrichment.runner import BatchReport, DrainSteps, Runner, RunReport
from enrichment.settings import get_settings
from enrichment.sources import load_runner

# The stage kinds a pipeline can declare, offered as a choice in the Prefect UI form.
StageName = Literal["redact", "context", "classify", "resolve", "summarize", "chunk", "embed"]


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's retry condition: retry lost connections and timeouts, nothing else."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


RETRIES = 4
RETRY_DELAYS = exponential_backoff(backoff_factor=2)  # 2, 4, 8, 16 s, each ±50 %
RETRY_JITTER = 0.5


@task(
    name="load-pipelines",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def load_pipelines() -> tuple[EnrichConfig, Runner]:
    """Read the configuration, build the pipelines (models load here) and register them."""
    settings = get_settings()
    return load_runner(settings, get_engine(settings))


@task(
    name="fold-events",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def fold_events(runner: Runner) -> FoldResult:
    return runner.fold_events()


@task(
    name="reclaim-expired-leases",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def reclaim_expired(runner: Runner) -> int:
    return runner.reclaim_expired()


@task(
    name="enrich-batch",
    task_run_name="{source}/{stage}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def run_batch(
    runner: Runner, source: str, stage: str, limit: int, workspace: str | None
) -> BatchReport:
    """Claim up to ``limit`` records of one stage, run the stage, persist every outcome."""
    return runner.run_batch(source, stage, batch_size=limit, workspace=workspace)


@task(
    name="build-search-indexes",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def build_search_indexes(runner: Runner) -> list[str]:
    return runner.build_search_indexes()


def drain_steps(runner: Runner) -> DrainSteps:
    """The runner's drain loop, with each unit of work a task run of this flow."""
    return DrainSteps(
        fold_events=lambda: fold_events(runner),
        reclaim_expired=lambda: reclaim_expired(runner),
        execute=lambda source, stage, limit, workspace: run_batch(
            runner, source, stage, limit, workspace
        ),
        build_search_indexes=lambda: build_search_indexes(runner),
    )


def publish_run_report(report: RunReport, *, key: str, title: str) -> dict[str, float]:
    """A table of what the run did per source and stage, and a one-line markdown summary."""
    summary = report.summary()
    rows = report.by_stage()
    create_table_artifact(
        key=key,
        table=rows or [{"source": "-", "stage": "-", "claimed": 0}],
        description=f"{title}: per source and stage",
    )
    create_markdown_artifact(
        key=f"{key}-summary",
        markdown=run_report_markdown(title, summary),
        description=title,
    )
    return summary


def run_report_markdown(title: str, summary: dict[str, float]) -> str:
    shown = (
        "claimed",
        "completed",
        "skipped",
        "failed",
        "dead_lettered",
        "unchanged",
        "events_folded",
        "leases_reclaimed",
        "seconds",
    )
    header = "| " + " | ".join(name.replace("_", " ") for name in shown) + " |"
    values = "| " + " | ".join(f"{summary.get(name, 0):g}" for name in shown) + " |"
    return f"### {title}\n\n{header}\n|{'---:|' * len(shown)}\n{values}\n"
