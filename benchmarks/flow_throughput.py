"""The enrich flow against the library runner on the same data, and mutation-to-vector latency
with the flow running as its deployment runs it.

1. **Start overhead**: an enrich flow run with nothing to do (no wait for events), against
   ``Runner.drain()`` with nothing to do; the first flow run (which loads the model) is
   reported apart.
2. **Throughput**: the summaries (context → chunk → embed with the packaged model) in
   ``--rounds`` segments; each round loads a segment twice over (two copies of the records
   under different keys) and runs the library's ``drain()`` on one copy and ``enrich_flow`` on
   the other, in alternating order. Target: the flow reaches 90 % of the library.
3. **Latency**: ``enrich_flow(time_budget_seconds=55, wait_for_events=True)`` run back to back
   in a thread, as the one-minute schedule runs it, while a producer commits one INSERT or
   UPDATE every 3600/rate seconds; the watcher of ``benchmarks.pipeline_throughput`` sees each
   new vector. Target: p95 under 5 s.

The Prefect API is a temporary local server (``prefect_test_harness``), the database one of
its own on the embedded server (``.enrich/bench-pgdata``), dropped at the end.

    .venv/bin/python -m benchmarks.flow_throughput [--limit 4000] [--rounds 4]
        [--latency-rates 1000,10000] [--latency-seconds 120] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from benchmarks.pipeline_throughput import (
    DATA,
    Consumer,
    Prepared,
    Record,
    Watcher,
    latency_run,
    load,
    make_records,
    parse_rates,
    prepare_source,
    read_summaries,
    source_config,
    vector_table_name,
)
from benchmarks.queue_throughput import (
    BenchmarkError,
    admin_url,
    log,
    machine_facts,
    positive,
    server_facts,
)
from enrichment import embedded, migrate
from enrichment.database import engine_for
from enrichment.embedders.local import default_device
from enrichment.settings import get_settings

TARGET_RATIO = 0.90


class FlowConsumer(Consumer):
    """The enrich flow as its deployment runs it: one run after another, each with a 55 s
    budget, waking on NOTIFY while idle."""

    def run(self) -> None:
        from flows.enrich import enrich_flow

        try:
            self.ready.set()
            while not self.stop.is_set():
                started = time.perf_counter()
                summary = enrich_flow(
                    source=self.source, time_budget_seconds=self.poll, wait_for_events=True
                )
                self.busy_seconds += time.perf_counter() - started
                self.drains += 1
                self.claimed += int(summary["claimed"])
                self.wakeups += int(summary.get("wakeups", 0))
        except BaseException:
            self.error = traceback.format_exc()
            self.ready.set()


def write_config(path: Path, sources: list[Any]) -> None:
    data = {"sources": [source.model_dump(mode="json", exclude_none=True) for source in sources]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def overhead(prepared: Prepared, flow: Any, repeats: int) -> dict[str, Any]:
    name = prepared.source.name
    started = time.perf_counter()
    flow(source=name, wait_for_events=False, time_budget_seconds=30)
    first = time.perf_counter() - started
    flows, library = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        flow(source=name, wait_for_events=False, time_budget_seconds=30)
        flows.append(time.perf_counter() - started)
        started = time.perf_counter()
        prepared.runner.drain(sources=[name])
        library.append(time.perf_counter() - started)
    result = {
        "first_flow_run_seconds": first,
        "flow_run_seconds_median": statistics.median(flows),
        "library_drain_seconds_median": statistics.median(library),
        "overhead_seconds": statistics.median(flows) - statistics.median(library),
    }
    log(f"start overhead: {result}")
    return result


def throughput(
    engine: Any, library: Prepared, flowed: Prepared, flow: Any, records: list[Record], rounds: int
) -> dict[str, Any]:
    segments = [records[i::rounds] for i in range(rounds)]
    library_seconds, flow_seconds, count = 0.0, 0.0, 0
    per_round = []
    for index, segment in enumerate(segments):
        load(engine, library, segment)
        load(engine, flowed, segment)
        order = ["library", "flow"] if index % 2 == 0 else ["flow", "library"]
        times = {}
        for step in order:
            started = time.perf_counter()
            if step == "library":
                report = library.runner.drain(sources=[library.source.name])
                claimed = report.total("claimed")
            else:
                summary = flow(
                    source=flowed.source.name, wait_for_events=False, time_budget_seconds=3600
                )
                claimed = int(summary["claimed"])
            times[step] = time.perf_counter() - started
            if claimed != 3 * len(segment):
                raise BenchmarkError(f"{step} claimed {claimed}, not 3 x {len(segment)}")
        library_seconds += times["library"]
        flow_seconds += times["flow"]
        count += len(segment)
        per_round.append(times["library"] / times["flow"])
        log(
            f"round {index + 1}/{rounds}: {len(segment)} records; library "
            f"{len(segment) / times['library']:.1f}/s, flow {len(segment) / times['flow']:.1f}/s "
            f"({per_round[-1]:.0%}); load {os.getloadavg()[0]:.2f}"
        )
    return {
        "records": count,
        "library_seconds": library_seconds,
        "flow_seconds": flow_seconds,
        "library_records_per_second": count / library_seconds,
        "flow_records_per_second": count / flow_seconds,
        "ratio": library_seconds / flow_seconds,
        "round_ratios": per_round,
    }


def latency(
    url: str, prepared: Prepared, args: argparse.Namespace, texts: list[str]
) -> list[dict[str, Any]]:
    state: dict[str, Any] = {
        "workspaces": args.workspaces,
        "records": {r.id: r for r in prepared.records},
        "update_targets": [r.id for r in prepared.records],
        "next_id": max(r.id for r in prepared.records) + 1_000_000,
        "next_text": 0,
    }
    consumer = FlowConsumer(prepared.runner, prepared.source.name, url, "listen", 55.0)
    watcher = Watcher(url, vector_table_name_for(prepared), prepared.source.name)
    consumer.start()
    watcher.start()
    consumer.ready.wait(60)
    time.sleep(5)  # let the first flow run start and go idle
    runs = []
    try:
        for rate in args.latency_rates:
            runs.append(
                latency_run(
                    url,
                    prepared,
                    watcher,
                    consumer,
                    rate,
                    args.latency_seconds,
                    texts,
                    state,
                    60.0,
                )
            )
    finally:
        consumer.stop.set()
        watcher.stop.set()
        consumer.join(90)
        watcher.join(30)
    return runs


def vector_table_name_for(prepared: Prepared) -> str:
    return vector_table_name(prepared.runner.engine)


def markdown(document: dict[str, Any]) -> str:
    facts = document["machine"]
    lines = [
        f"Enrich flow vs library runner ({facts['date']}); {facts['cpu_count']} CPUs, "
        f"load {facts['load_before']} before, {facts['load_after']} after",
        "",
    ]
    over = document["overhead"]
    lines += [
        f"- start overhead: a flow run with nothing to do takes "
        f"{over['flow_run_seconds_median']:.2f} s (library drain "
        f"{over['library_drain_seconds_median']:.3f} s); the first run, which loads the model, "
        f"{over['first_flow_run_seconds']:.2f} s",
    ]
    put = document["throughput"]
    verdict = "meets" if put["ratio"] >= TARGET_RATIO else "misses"
    lines += [
        f"- throughput on {put['records']:,} summaries: library "
        f"{put['library_records_per_second']:.1f} records/s, flow "
        f"{put['flow_records_per_second']:.1f} records/s = **{put['ratio']:.0%}** ({verdict} "
        f"the {TARGET_RATIO:.0%} target; per round "
        + ", ".join(f"{r:.0%}" for r in put["round_ratios"])
        + ")",
    ]
    for run in document.get("latency", []):
        lines.append(
            f"- latency at {run['rate_per_hour']:,.0f} mutations/h with the enrich flow running: "
            f"{run['seen']}/{run['mutations']} seen, p50 {run['p50_seconds']:.3f} s, p95 "
            f"{run['p95_seconds']:.3f} s, max {run['max_seconds']:.3f} s"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summaries", type=Path, default=DATA / "package-summaries-20k.tsv")
    parser.add_argument("--limit", type=positive, default=4000)
    parser.add_argument("--rounds", type=positive, default=4)
    parser.add_argument("--workspaces", type=positive, default=5)
    parser.add_argument("--runner-batch-size", type=positive, default=256)
    parser.add_argument("--overhead-repeats", type=positive, default=5)
    parser.add_argument("--latency-rates", type=parse_rates, default=[1000.0, 10000.0])
    parser.add_argument("--latency-seconds", type=float, default=120.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from flows.enrich import enrich_flow

    facts: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine_facts())
    facts["load_before"] = round(os.getloadavg()[0], 2)
    summaries = read_summaries(args.summaries)
    pairs = summaries[: args.limit]
    admin, facts["server"] = admin_url()
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    document: dict[str, Any] = {"benchmark": "flow_throughput", "machine": facts}
    document["parameters"] = {k: str(v) for k, v in vars(args).items()}
    config_dir = Path(tempfile.mkdtemp(prefix="flowbench-"))
    try:
        migrate.upgrade(engine)
        facts.update(server_facts(engine))
        device = default_device()
        sources = [
            source_config(
                label, "summaries", device=device, encode_batch_size=16, max_tokens=254, overlap=32
            )
            for label in ("library_copy", "flow_copy")
        ]
        library = prepare_source(engine, sources[0], args.runner_batch_size)
        flowed = prepare_source(engine, sources[1], args.runner_batch_size)
        write_config(config_dir / "enrich.yaml", sources)
        os.environ["DATABASE_URL"] = url
        os.environ["ENRICH_CONFIG"] = str(config_dir / "enrich.yaml")
        os.environ["ENRICH_BATCH_SIZE"] = str(args.runner_batch_size)
        get_settings.cache_clear()
        with prefect_test_harness(server_startup_timeout=120):
            document["overhead"] = overhead(flowed, enrich_flow, args.overhead_repeats)
            records = make_records(pairs, args.workspaces)
            document["throughput"] = throughput(
                engine, library, flowed, enrich_flow, records, args.rounds
            )
            if not args.skip_latency:
                used = {body for _, body in pairs}
                texts = [s for _, s in summaries if s.strip() and s not in used]
                document["latency"] = latency(url, flowed, args, texts)
    finally:
        engine.dispose()
        embedded.drop_database(admin, name)
    facts["load_after"] = round(os.getloadavg()[0], 2)
    print(markdown(document))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
