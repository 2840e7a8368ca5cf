"""Seeding speed of the fulfilment demo domain: ``enrichment.fulfilment.seed`` at scale (one
million exceptions by default), as rows per second over all five tables.

    flock /tmp/enrich-bench.lock .venv/bin/python -m benchmarks.fulfilment_seed \
        [--records 1000000] [--workspaces 4] [--seed 7] [--repeat 1] [--generate-only]
        [--json PATH]

Each run seeds a dedicated ``enrich_bench_<pid>_<random>`` database (created on the server of
DATABASE_URL when set, otherwise on the embedded server in ``.enrich/bench-pgdata``, and
dropped at the end) through the public ``seed()``: one transaction that installs the schema,
generates the rows on a background thread and COPYs them chunk by chunk, adds the foreign keys
back (validating them) and analyzes the tables. The seconds of the whole call are the figure;
the statements issued through SQLAlchemy (schema, clearing, foreign keys, ANALYZE) are timed
apart, so the rest is generating and COPY. ``--generate-only`` times the generator alone, in
this process, with no database: how much of the load is Python.

Recorded with the figures: machine, PostgreSQL settings, git revision, the 1-minute load
average before and after each run, CPU seconds of this process and of the embedded server, and
the tables' sizes. Results are collected, dated, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from benchmarks.queue_throughput import (
    BENCH_PGDATA,
    BenchmarkError,
    admin_url,
    checkpoint,
    log,
    machine_facts,
    positive,
    server_facts,
)
from enrichment import embedded, fulfilment, migrate
from enrichment.database import engine_for
from enrichment.fulfilment.generator import Generator
from enrichment.settings import get_settings

TABLES = ("customers", "orders", "exceptions", "messages", "exception_truth")
TARGET_SECONDS = 300.0  # one million exceptions in a few minutes on 2 cores


def server_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU seconds of the embedded server so far: the postmaster, its reaped children and its
    live ones (backends, checkpointer, WAL writer). None for a server elsewhere."""
    if postmaster is None:
        return None

    def stat(pid: int | str) -> list[str] | None:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return raw[raw.rindex(")") + 2 :].split()

    own = stat(postmaster)
    if own is None:
        return None
    ticks = sum(int(value) for value in own[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat(entry.name)
            if fields is not None and fields[1] == str(postmaster):
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def postmaster_pid(url: str) -> int | None:
    """The embedded server's process, whose CPU time is counted; None for DATABASE_URL."""
    if get_settings().database_url:
        return None
    return embedded.status(BENCH_PGDATA, make_url(url).database or "postgres").pid


def time_statements(engine: Engine) -> dict[str, float]:
    """Seconds per kind of statement issued through SQLAlchemy during seed()."""
    spent: dict[str, float] = defaultdict(float)

    def kind(statement: str) -> str:
        words = statement.split()
        if statement.startswith("ALTER TABLE") and "ADD CONSTRAINT" in statement:
            return "add foreign keys (validate)"
        if words[:1] == ["ANALYZE"]:
            return "analyze"
        if words[:1] in (["TRUNCATE"], ["DELETE"]):
            return "clear"
        return "schema and other statements"

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.pop("bench_started", None)
        if started is not None:
            spent[kind(statement.strip())] += time.perf_counter() - started

    return spent


def table_facts(engine: Engine) -> dict[str, dict[str, int]]:
    facts = {}
    with engine.connect() as connection:
        for name in TABLES:
            rows = connection.execute(text(f"SELECT count(*) FROM fulfilment.{name}")).scalar_one()
            size = connection.execute(
                text(f"SELECT pg_total_relation_size('fulfilment.{name}')")
            ).scalar_one()
            facts[name] = {"rows": rows, "bytes": size}
    return facts


def run_seed(engine: Engine, url: str, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    checkpoint(engine)
    spent = time_statements(engine)
    pid = postmaster_pid(url)
    load_before = os.getloadavg()
    server_before = server_cpu_seconds(pid)
    cpu_before = time.process_time()
    started = time.perf_counter()
    summary = fulfilment.seed(
        engine, records=args.records, workspaces=args.workspaces, seed=args.seed
    )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    server_after = server_cpu_seconds(pid)
    load_after = os.getloadavg()
    tables = table_facts(engine)
    rows = sum(table["rows"] for table in tables.values())
    if tables["exceptions"]["rows"] != args.records:
        raise BenchmarkError(f"seeded {tables['exceptions']['rows']} of {args.records} exceptions")
    timed = dict(spent)
    timed["generate and COPY (the rest)"] = seconds - sum(spent.values())
    return {
        "repeat": repeat,
        "seconds": seconds,
        "rows": rows,
        "rows_per_second": rows / seconds,
        "exceptions_per_second": args.records / seconds,
        "process_cpu_seconds": cpu,
        "server_cpu_seconds": None
        if server_before is None or server_after is None
        else server_after - server_before,
        "load_before": load_before,
        "load_after": load_after,
        "tables": tables,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "phases": timed,
        "summary": summary.render(),
    }


def run_generate_only(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    started, cpu_before = time.perf_counter(), time.process_time()
    generator = Generator(
        records=args.records, workspaces=args.workspaces, seed=args.seed, now=datetime.now(UTC)
    )
    rows = sum(len(batch) for _, batch in generator.batches())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": rows,
        "rows_per_second": rows / seconds,
        "process_cpu_seconds": time.process_time() - cpu_before,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def markdown(facts: dict[str, Any], runs: list[dict[str, Any]], generated: Any, args: Any) -> str:
    lines = [
        f"Fulfilment seed: {args.records:,} exceptions, {args.workspaces} workspaces, "
        f"seed {args.seed} ({facts['date']})",
        "",
        f"- machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), "
        f"{facts['platform']}, Python {facts['python']}",
        f"- PostgreSQL {facts['postgresql_version']}, {facts['server']}; "
        + ", ".join(f"{k}={v}" for k, v in facts["postgresql_settings"].items()),
        f"- code: {facts['git']}",
        "",
        "| run | seconds | rows | rows/s | exceptions/s | CPU s (process + server) "
        "| load before → after |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        server = run["server_cpu_seconds"]
        cpu = f"{run['process_cpu_seconds']:.0f} + {server:.0f}" if server is not None else "-"
        lines.append(
            f"| {run['repeat']} | {run['seconds']:.1f} | {run['rows']:,} | "
            f"{run['rows_per_second']:,.0f} | {run['exceptions_per_second']:,.0f} | {cpu} | "
            f"{run['load_before'][0]:.2f} → {run['load_after'][0]:.2f} |"
        )
    last = runs[-1]
    lines += ["", f"Peak memory of the process (max RSS): {last['max_rss_mib']:,.0f} MiB."]
    lines += ["", "| table | rows | size |", "|---|---:|---:|"]
    for name, table in last["tables"].items():
        lines.append(f"| {name} | {table['rows']:,} | {table['bytes'] / 2**20:,.0f} MiB |")
    lines += ["", "| phase (last run) | seconds | share |", "|---|---:|---:|"]
    for name, seconds in sorted(last["phases"].items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {seconds:.1f} | {seconds / last['seconds']:.0%} |")
    if generated is not None:
        lines += [
            "",
            f"Generator alone (no database): {generated['rows']:,} rows in "
            f"{generated['seconds']:.1f} s = {generated['rows_per_second']:,.0f} rows/s "
            f"(load {generated['load_before'][0]:.2f} → {generated['load_after'][0]:.2f}).",
        ]
    lines += [
        "",
        f"Target: {args.records:,} exceptions within {TARGET_SECONDS / 60:.0f} minutes on 2 cores.",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=positive, default=1_000_000)
    parser.add_argument("--workspaces", type=positive, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=positive, default=1)
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="also time the generator alone, with no database (before the seeding runs)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url, where = admin_url()
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(url, name)
    bench_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(bench_url)
    try:
        migrate.upgrade(engine)
        facts = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "server": where,
            **machine_facts(),
            **server_facts(engine),
        }
        generated = None
        if args.generate_only:
            log(f"generating {args.records:,} exceptions without a database ...")
            generated = run_generate_only(args)
            log(f"  {generated['seconds']:.1f}s, {generated['rows_per_second']:,.0f} rows/s")
        runs = []
        for repeat in range(1, args.repeat + 1):
            log(f"seeding {args.records:,} exceptions, run {repeat} of {args.repeat} ...")
            runs.append(run_seed(engine, bench_url, args, repeat))
            log(f"  {runs[-1]['seconds']:.1f}s, {runs[-1]['rows_per_second']:,.0f} rows/s")
        log(runs[-1]["summary"])
        print(markdown(facts, runs, generated, args))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {"facts": facts, "args": vars(args) | {"json": str(args.json)}}
            payload |= {"runs": runs, "generate_only": generated}
            args.json.write_text(json.dumps(payload, indent=2, default=str))
    finally:
        engine.dispose()
        embedded.drop_database(url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
