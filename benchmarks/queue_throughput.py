"""Queue throughput with a no-op stage: claim + run + complete, in records per second.

One run: N records are enqueued as CREATE events and folded into record_state (the fold is
timed on its own), then W worker processes, each with its own engine and Runner, wait at a
barrier and drain the same queue with ``Runner.drain`` at one batch size. The time runs from
the barrier to the moment the last worker finds nothing due. Afterwards the run checks that
every record is COMPLETED exactly once, at attempt 1, with one logged attempt each.

Every run starts from a freshly re-queued set (TRUNCATE, enqueue, fold, ANALYZE, CHECKPOINT),
and each configuration is repeated; the repeats are interleaved across configurations so a
burst of load on the machine does not land on one configuration only.

    .venv/bin/python -m benchmarks.queue_throughput [--records 50000] [--repeat 3]
        [--batch-sizes 100,500,1000] [--workers 1,2] [--json PATH] [--breakdown]

The benchmark uses a database of its own (``enrich_bench_<pid>_<random>``), created on the
server of DATABASE_URL when that is set (the role needs CREATEDB) and otherwise on an embedded
server in ``.enrich/bench-pgdata`` (left running, like the test server); the database is
dropped at the end. Results are collected, dated, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import queue as queue_module
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from enrichment import embedded, migrate
from enrichment.database import engine_for, libpq_url
from enrichment.events import Event, enqueue
from enrichment.pipeline import Pipeline, StageSpec
from enrichment.runner import Runner
from enrichment.settings import get_settings
from enrichment.sql import queries
from enrichment.stages.noop import NoopStage
from enrichment.states import Action

REPO = Path(__file__).resolve().parent.parent
BENCH_PGDATA = REPO / ".enrich" / "bench-pgdata"
SOURCE = "bench"
STAGE = "noop"
WORKSPACE = "bench"
TABLES = ("attempts", "record_state", "events")
TARGET_RECORDS_PER_SECOND = 10_000  # on 2 cores
BARRIER_TIMEOUT = 120.0  # seconds for every worker to start, import and connect
FIRST_BATCHES = 10  # a worker's first batches, timed apart from the rest (see worker_main)


def bench_pipeline() -> Pipeline:
    return Pipeline(SOURCE, (StageSpec(NoopStage(STAGE)),))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- database ---------------------------------------------------------------------------------


def admin_url() -> tuple[str, str]:
    """A libpq URL of a database to create the benchmark database from, and where it is."""
    configured = get_settings().database_url
    if configured:
        parsed = make_url(configured)
        return libpq_url(configured), f"DATABASE_URL ({parsed.host or 'local socket'})"
    url = embedded.start(BENCH_PGDATA, "postgres")
    return url, f"embedded ({BENCH_PGDATA.relative_to(REPO)})"


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("TRUNCATE " + ", ".join(f"enrichment.{t}" for t in TABLES) + " RESTART IDENTITY")
        )


def make_events(records: int, per_event: int) -> list[Event]:
    keys = [f"rec-{i:08d}" for i in range(records)]
    return [
        Event(
            workspace_id=WORKSPACE,
            source=SOURCE,
            record_ids=tuple(keys[i : i + per_event]),
            action=Action.CREATE,
        )
        for i in range(0, records, per_event)
    ]


def checkpoint(engine: Engine) -> None:
    """Start each run with a clean WAL position; skipped where the role may not CHECKPOINT."""
    with contextlib.suppress(Exception), engine.connect() as connection:
        connection.execute(text("CHECKPOINT"))
        connection.commit()


@dataclass
class Prepared:
    enqueue_seconds: float
    fold_seconds: float
    events: int
    records: int


def prepare(engine: Engine, events: Sequence[Event], records: int) -> Prepared:
    """TRUNCATE, enqueue, fold (timed), ANALYZE and CHECKPOINT: a freshly re-queued set."""
    reset(engine)
    started = time.perf_counter()
    with engine.begin() as connection:
        enqueued = enqueue(connection, events)
    enqueue_seconds = time.perf_counter() - started
    runner = Runner(engine, [bench_pipeline()], worker="bench-fold")
    started = time.perf_counter()
    folded = runner.fold_events()
    fold_seconds = time.perf_counter() - started
    if enqueued.inserted != len(events) or folded.events != len(events):
        raise BenchmarkError(
            f"enqueued {enqueued.inserted} and folded {folded.events} of {len(events)} events"
        )
    if folded.requeued_records != records:
        raise BenchmarkError(f"fold queued {folded.requeued_records} of {records} records")
    # Plans as autovacuum's statistics would give them, and no checkpoint owed from the setup.
    with engine.connect() as connection:
        connection.execute(text("ANALYZE enrichment.record_state, enrichment.events"))
        connection.commit()
    checkpoint(engine)
    return Prepared(enqueue_seconds, fold_seconds, len(events), records)


def verify(engine: Engine, records: int) -> None:
    """Every record COMPLETED exactly once, at attempt 1, with exactly one logged attempt."""
    with engine.connect() as connection:
        state = connection.execute(
            text(
                """
                SELECT count(*) AS total,
                       count(DISTINCT record_key) AS keys,
                       count(*) FILTER (WHERE status = 'COMPLETED' AND attempts = 1
                                          AND lease_owner IS NULL
                                          AND next_attempt_at IS NULL) AS completed_once
                FROM enrichment.record_state
                WHERE source = :source AND stage = :stage
                """
            ),
            {"source": SOURCE, "stage": STAGE},
        ).one()
        logged = connection.execute(
            text(
                """
                SELECT count(*) AS total,
                       count(DISTINCT record_key) AS keys,
                       count(*) FILTER (WHERE outcome = 'COMPLETED' AND attempt = 1) AS completed
                FROM enrichment.attempts
                WHERE source = :source AND stage = :stage
                """
            ),
            {"source": SOURCE, "stage": STAGE},
        ).one()
    expected = (records, records, records)
    if tuple(state) != expected or tuple(logged) != expected:
        raise BenchmarkError(
            f"expected {records} records COMPLETED once at attempt 1; record_state "
            f"(rows, keys, completed once) = {tuple(state)}, attempts (rows, keys, completed at "
            f"attempt 1) = {tuple(logged)}"
        )


def server_facts(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar_one()
        settings = {
            name: connection.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("shared_buffers", "synchronous_commit", "fsync", "max_wal_size")
        }
    return {"postgresql_version": version, "postgresql_settings": settings}


# --- where the time goes (--breakdown) --------------------------------------------------------


@dataclass
class Timings:
    """Seconds spent, per worker, in each named query, COMMIT and the pool's pre-ping."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def instrument(engine: Engine) -> Timings:
    """Time every statement by query name, every COMMIT (to the connection's check-in) and
    every pool pre-ping. The hooks cost a few microseconds a statement."""
    timings = Timings()
    names = {str(q.compile(dialect=engine.dialect)): name for name, q in queries().items()}

    def statement_name(statement: str) -> str:
        name = names.get(statement)
        if name is not None:
            return name
        if "pg_try_advisory_xact_lock" in statement:
            return "fold lock (advisory)"
        words = statement.split()
        return " ".join(words[:2]) if words else "?"

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.pop("bench_started", None)
        if started is not None:
            timings.add(statement_name(statement), time.perf_counter() - started)

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        conn.info["bench_commit"] = time.perf_counter()

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        started = record.info.pop("bench_commit", None)
        if started is not None:
            timings.add("COMMIT", time.perf_counter() - started)

    ping: Callable[[Any], bool] = engine.dialect.do_ping

    def timed_ping(dbapi_connection: Any) -> bool:
        started = time.perf_counter()
        try:
            return ping(dbapi_connection)
        finally:
            timings.add("pool pre-ping", time.perf_counter() - started)

    engine.dialect.do_ping = timed_ping  # type: ignore[method-assign]
    return timings


# --- workers ----------------------------------------------------------------------------------


def worker_main(
    index: int,
    url: str,
    batch_size: int,
    barrier: Barrier,
    results: multiprocessing.Queue[dict[str, Any]],
    breakdown: bool,
) -> None:
    """One worker process: its own engine and Runner; drain from the barrier until empty."""
    engine: Engine | None = None
    try:
        engine = engine_for(url)
        timings = instrument(engine) if breakdown else None
        runner = Runner(
            engine, [bench_pipeline()], worker=f"bench-{index}-{os.getpid()}", batch_size=batch_size
        )
        with engine.connect() as connection:  # connect before the clock starts
            connection.execute(text("SELECT 1"))
        if timings is not None:
            timings.clear()
        barrier.wait(timeout=BARRIER_TIMEOUT)
        started = time.perf_counter()
        cpu_started = time.process_time()
        report = runner.drain(sources=[SOURCE])
        finished = time.perf_counter()
        cpu = time.process_time() - cpu_started
        batch_ms = [batch.seconds * 1000 for batch in report.batches]
        results.put(
            {
                "index": index,
                "pid": os.getpid(),
                "started": started,
                "finished": finished,
                "cpu_seconds": cpu,
                "claimed": report.total("claimed"),
                "completed": report.total("completed"),
                "failed": report.total("failed"),
                "lost_leases": report.total("lost_leases"),
                "batches": len(report.batches),
                # A new connection plans its first statements afresh (custom plans) until
                # psycopg prepares them and the server settles on a generic plan: compare.
                "first_batches_ms_median": statistics.median(batch_ms[:FIRST_BATCHES])
                if batch_ms
                else None,
                "later_batches_ms_median": statistics.median(batch_ms[FIRST_BATCHES:])
                if batch_ms[FIRST_BATCHES:]
                else None,
                "timings": dict(timings.seconds) if timings is not None else None,
                "calls": dict(timings.calls) if timings is not None else None,
            }
        )
    except BaseException:
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"index": index, "error": traceback.format_exc()})
    finally:
        if engine is not None:
            engine.dispose()


class BenchmarkError(RuntimeError):
    pass


def run_workers(
    url: str, batch_size: int, workers: int, breakdown: bool, timeout: float
) -> list[dict[str, Any]]:
    """Start ``workers`` processes together, wait for all of them, return their reports."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    processes = [
        context.Process(
            target=worker_main,
            args=(index, url, batch_size, barrier, results, breakdown),
            name=f"bench-worker-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(reports) < workers:
            try:
                reports.append(results.get(timeout=1.0))
            except queue_module.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise BenchmarkError(
                        f"worker {dead[0].name} exited with code {dead[0].exitcode}"
                    ) from None
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"workers did not finish within {timeout:.0f}s") from None
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    errors = [report["error"] for report in reports if "error" in report]
    if errors:
        raise BenchmarkError("a worker failed:\n" + errors[0])
    return sorted(reports, key=lambda report: report["index"])


# --- runs -------------------------------------------------------------------------------------


@dataclass
class Run:
    batch_size: int
    workers: int
    repeat: int
    seconds: float
    records_per_second: float
    enqueue_seconds: float
    fold_seconds: float
    load_before: float
    per_worker: list[dict[str, Any]]


def run_once(
    engine: Engine,
    url: str,
    events: Sequence[Event],
    records: int,
    batch_size: int,
    workers: int,
    repeat: int,
    breakdown: bool,
    timeout: float,
) -> Run:
    prepared = prepare(engine, events, records)
    load_before = os.getloadavg()[0]
    reports = run_workers(url, batch_size, workers, breakdown, timeout)
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    claimed = sum(r["claimed"] for r in reports)
    completed = sum(r["completed"] for r in reports)
    if claimed != records or completed != records:
        raise BenchmarkError(f"workers claimed {claimed} and completed {completed} of {records}")
    verify(engine, records)
    return Run(
        batch_size=batch_size,
        workers=workers,
        repeat=repeat,
        seconds=seconds,
        records_per_second=records / seconds,
        enqueue_seconds=prepared.enqueue_seconds,
        fold_seconds=prepared.fold_seconds,
        load_before=load_before,
        per_worker=reports,
    )


def summarise(runs: list[Run], configs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    rows = []
    for batch_size, workers in configs:
        mine = [r for r in runs if (r.batch_size, r.workers) == (batch_size, workers)]
        rates = [r.records_per_second for r in mine]
        rows.append(
            {
                "batch_size": batch_size,
                "workers": workers,
                "median": statistics.median(rates),
                "best": max(rates),
                "worst": min(rates),
                "seconds_median": statistics.median(r.seconds for r in mine),
                "spread": (max(rates) - min(rates)) / statistics.median(rates),
            }
        )
    return rows


def breakdown_table(runs: list[Run], configs: list[tuple[int, int]]) -> str:
    """Share of worker wall time per named query, COMMIT, pre-ping and the rest (Python,
    driver, pool), then the workers' own CPU time as a share of their wall time."""
    totals: dict[str, float] = defaultdict(float)
    per_config: dict[tuple[int, int], dict[str, float]] = {}
    cpu: dict[tuple[int, int], float] = {}
    for config in configs:
        reports = [
            report
            for run in runs
            if (run.batch_size, run.workers) == config
            for report in run.per_worker
        ]
        wall = sum(report["finished"] - report["started"] for report in reports)
        spent: dict[str, float] = defaultdict(float)
        for report in reports:
            for name, seconds in (report["timings"] or {}).items():
                spent[name] += seconds
        shares = {name: seconds / wall for name, seconds in spent.items()}
        shares["other (Python, driver, pool)"] = max(0.0, 1.0 - sum(spent.values()) / wall)
        per_config[config] = shares
        cpu[config] = sum(report["cpu_seconds"] for report in reports) / wall
        for name, share in shares.items():
            totals[name] += share
    ordered = sorted(totals, key=lambda name: -totals[name])
    header = "| share of worker time | " + " | ".join(f"{b} x {w}" for b, w in configs) + " |"
    lines = [header, "|---|" + "---:|" * len(configs)]
    for name in ordered:
        cells = " | ".join(f"{per_config[c].get(name, 0.0):.1%}" for c in configs)
        lines.append(f"| {name} | {cells} |")
    cells = " | ".join(f"{cpu[c]:.1%}" for c in configs)
    lines.append(f"| *worker process CPU (of its wall time)* | {cells} |")
    for key, label in (
        ("first_batches_ms_median", f"*ms per batch, a worker's first {FIRST_BATCHES}*"),
        ("later_batches_ms_median", "*ms per batch, later ones*"),
    ):
        values = []
        for config in configs:
            found = [
                report[key]
                for run in runs
                if (run.batch_size, run.workers) == config
                for report in run.per_worker
                if report[key] is not None
            ]
            values.append(f"{statistics.median(found):.1f}" if found else "-")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine_facts() -> dict[str, Any]:
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "git": git_revision(),
    }


def markdown(
    rows: list[dict[str, Any]], facts: dict[str, Any], fold: dict[str, Any], args: Any
) -> str:
    lines = [
        f"Queue throughput, no-op stage: {args.records:,} records, "
        f"{args.records_per_event} record(s) per event, {args.repeat} runs per configuration "
        f"({facts['date']})",
        "",
        f"- machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), "
        f"{facts['platform']}, Python {facts['python']}",
        f"- PostgreSQL {facts['postgresql_version']}, {facts['server']}; "
        + ", ".join(f"{k}={v}" for k, v in facts["postgresql_settings"].items()),
        f"- code: {facts['git']}",
        f"- load average (1 min): {facts['load_before']} before, "
        f"{facts['load_during_runs'][0]}-{facts['load_during_runs'][1]} at the start of runs, "
        f"{facts['load_after']} after",
        f"- fold: {fold['events']:,} events into {fold['records']:,} records, median "
        f"{fold['seconds_median']:.2f}s (best {fold['seconds_best']:.2f}s), "
        f"{fold['records_per_second_median']:,.0f} records/s; enqueue (not measured, setup) "
        f"median {fold['enqueue_seconds_median']:.2f}s",
        "",
        "| batch size | workers | records/s (median) | records/s (best) | worst | spread |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['batch_size']} | {row['workers']} | {row['median']:,.0f} | "
            f"{row['best']:,.0f} | {row['worst']:,.0f} | {row['spread']:.0%} |"
        )
    lines.append("")
    lines.append(
        f"Target: at least {TARGET_RECORDS_PER_SECOND:,} records/s on 2 cores. "
        "Spread is (best - worst) / median."
    )
    return "\n".join(lines)


def parse_sizes(value: str) -> list[int]:
    try:
        sizes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 100,500, got {value!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {value!r}")
    return sizes


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.queue_throughput",
        description="Queue throughput with a no-op stage (claim + run + complete), in records/s.",
    )
    parser.add_argument("--records", type=positive, default=50_000, help="records per run")
    parser.add_argument("--repeat", type=positive, default=3, help="runs per configuration")
    parser.add_argument(
        "--batch-sizes", type=parse_sizes, default=[100, 500, 1000], help="e.g. 100,500,1000"
    )
    parser.add_argument("--workers", type=parse_sizes, default=[1, 2], help="e.g. 1,2")
    parser.add_argument(
        "--records-per-event", type=positive, default=1, help="record ids per enqueued event"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time each named query, COMMIT and pre-ping in the workers, and print the shares",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds allowed for one run's workers"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configs = [(b, w) for b in args.batch_sizes for w in args.workers]
    facts: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine_facts())
    facts["load_before"] = round(os.getloadavg()[0], 2)

    admin, facts["server"] = admin_url()
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    runs: list[Run] = []
    try:
        migrate.upgrade(engine)
        facts.update(server_facts(engine))
        Runner(engine, [bench_pipeline()]).register()
        events = make_events(args.records, args.records_per_event)
        log(
            f"database {name} on {facts['server']}, PostgreSQL {facts['postgresql_version']}; "
            f"{len(configs)} configurations x {args.repeat} runs of {args.records:,} records"
        )
        for repeat in range(args.repeat):
            for batch_size, workers in configs:
                run = run_once(
                    engine,
                    url,
                    events,
                    args.records,
                    batch_size,
                    workers,
                    repeat,
                    args.breakdown,
                    args.timeout,
                )
                runs.append(run)
                log(
                    f"run {repeat + 1}/{args.repeat} batch {batch_size}, {workers} worker(s): "
                    f"{run.records_per_second:,.0f} records/s ({run.seconds:.2f}s; fold "
                    f"{run.fold_seconds:.2f}s; load {run.load_before:.2f})"
                )
    finally:
        engine.dispose()
        embedded.drop_database(admin, name)
    facts["load_after"] = round(os.getloadavg()[0], 2)
    facts["load_during_runs"] = [
        round(min(r.load_before for r in runs), 2),
        round(max(r.load_before for r in runs), 2),
    ]

    rows = summarise(runs, configs)
    folds = [r.fold_seconds for r in runs]
    fold = {
        "events": len(events),
        "records": args.records,
        "seconds_median": statistics.median(folds),
        "seconds_best": min(folds),
        "records_per_second_median": args.records / statistics.median(folds),
        "enqueue_seconds_median": statistics.median(r.enqueue_seconds for r in runs),
    }
    print(markdown(rows, facts, fold, args))
    if args.breakdown:
        print()
        print(breakdown_table(runs, configs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": "queue_throughput",
            "machine": facts,
            "parameters": {
                "records": args.records,
                "repeat": args.repeat,
                "batch_sizes": args.batch_sizes,
                "workers": args.workers,
                "records_per_event": args.records_per_event,
                "breakdown": args.breakdown,
            },
            "target_records_per_second": TARGET_RECORDS_PER_SECOND,
            "fold": fold,
            "results": rows,
            "runs": [asdict(run) for run in runs],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
