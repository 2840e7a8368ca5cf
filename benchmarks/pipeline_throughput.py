"""Pipeline throughput and latency: context → chunk → embed with the packaged MiniLM model,
against raw ``SentenceTransformer.encode()`` of the same texts, in the same run.

One process, one model (loaded once and warmed up; the baselines and the pipeline share it):

1. **Raw encode**: ``model.encode(texts, batch_size=B, normalize_embeddings=True)``, one call
   per round, as the embedder calls it, on (a) the dataset's texts as they are (``summaries``
   only, empty ones included) and (b) exactly the chunks the pipeline embeds: the enriched
   texts, computed with the context stage's formatter and the chunk stage's chunker, and
   checked after the run against the chunk texts stored in the vector table.
2. **Pipeline**: the records go into a source table (id, workspace_id over W workspaces, title,
   body) with the capture triggers installed, one INSERT per round, so the triggers enqueue the
   events; that and the fold are timed apart, as set-up. Then ``Runner.drain`` is timed: claim
   → context → chunk → embed (same model, same B) → store vectors → complete, batch by batch.
   The stages are also timed from the inside (their ``run``, the model call, the vector
   writes), so the gap to raw encode can be attributed.

   The records are split into ``--rounds`` segments; each round loads one and runs (a), (b) and
   the drain on it, in alternating order, so load from other work on the machine falls on
   both sides alike. Besides wall time, the CPU seconds of this process and of the embedded
   PostgreSQL server (postmaster and its children, from /proc) are compared: less sensitive
   to other work than wall time.
3. **Latency**: a consumer thread runs the runner continuously (``drain``, then wait for a
   NOTIFY on ``enrichment_events`` from the capture triggers; ``--consumer poll`` sleeps
   ``--poll-interval`` instead), while the producer commits one INSERT or UPDATE (alternating)
   of the source table every 3600/rate seconds, for each rate in mutations per hour (1,000 and
   10,000 by default). A watcher thread polls the vector table every 20 ms for each mutated
   record's new chunk (by key and text hash). Latency = the database's ``clock_timestamp()``
   at the poll that first sees the vector minus the database's ``clock_timestamp()`` right
   after the producer's commit: one clock, no skew, 20 ms resolution.

    .venv/bin/python -m benchmarks.pipeline_throughput [--dataset summaries|readmes]
        [--limit N] [--rounds 8] [--encode-batch-size 16] [--runner-batch-size 500]
        [--workspaces 5] [--latency-rates 1000,10000] [--latency-seconds S]
        [--consumer listen|poll] [--skip-throughput] [--skip-latency] [--profile PATH]
        [--json PATH]

Data: ``../shared/data/package-summaries-20k.tsv`` and ``../shared/data/package-readmes.jsonl``
relative to the repository (``--summaries``, ``--readmes``). The latency part always mutates
short records (summaries): with ``--dataset summaries`` it reuses the throughput table (its
records are embedded already), otherwise it seeds a table of ``--latency-seed`` summaries first.

Like ``benchmarks.queue_throughput``, the benchmark uses a database of its own, created on the
server of DATABASE_URL when set and otherwise on the embedded server in ``.enrich/bench-pgdata``,
and drops it at the end. Results are collected, dated, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import random
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks.queue_throughput import (
    BENCH_PGDATA,
    REPO,
    BenchmarkError,
    admin_url,
    checkpoint,
    log,
    machine_facts,
    positive,
    server_facts,
)
from enrichment import capture, embedded, migrate, vectors
from enrichment.chunking import chunk_texts, model_tokenizer
from enrichment.config import EnrichConfig, SourceConfig, parse_config
from enrichment.database import engine_for, libpq_url
from enrichment.embedders.local import default_device, load_model, packaged_model_path
from enrichment.formatting import TextFormatter
from enrichment.pipeline import Pipeline, Pipelines
from enrichment.runner import BatchReport, Runner
from enrichment.settings import Settings, get_settings
from enrichment.sources import build_pipelines, sync

DATA = REPO.parent / "shared" / "data"
SCHEMA = "bench"
TARGET_RATIO = 0.90  # pipeline records/s at least 90 % of raw encode texts/s
TARGET_P95_SECONDS = 5.0
# What the enrich command and the flows claim per batch unless told otherwise.
RUNNER_BATCH_SIZE: int = Settings.model_fields["batch_size"].default
DEFAULT_SUMMARIES_LIMIT = 20_000  # the whole file; the default run takes about 9 minutes
LATENCY_SOURCE = "bench_latency"
WATCH_INTERVAL = 0.02  # seconds between the watcher's polls of the vector table
MIN_LATENCY_SECONDS = 60.0
ENTITY = {
    "summaries": ("python_package", "Python package", "summary"),
    "readmes": ("python_package", "Python package", "description"),
}


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    id: int
    workspace_id: str
    title: str
    body: str


def read_summaries(path: Path) -> list[tuple[str, str]]:
    """(name, summary) per line of the TSV (name, version, month, rank, summary); a header line
    is skipped, empty summaries are kept."""
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            fields = line.rstrip("\r\n").split("\t", 4)
            if number == 0 and fields[0] == "name":
                continue
            if not fields[0]:
                continue
            rows.append((fields[0], fields[4] if len(fields) > 4 else ""))
    return rows


def read_readmes(path: Path) -> list[tuple[str, str]]:
    """(name, body) per JSON line (name, version, summary, content_type, body)."""
    with path.open(encoding="utf-8") as lines:
        documents = [json.loads(line) for line in lines if line.strip()]
    return [(str(doc["name"]), str(doc.get("body") or "")) for doc in documents]


def make_records(
    pairs: Sequence[tuple[str, str]], workspaces: int, first_id: int = 1
) -> list[Record]:
    return [
        Record(first_id + i, f"ws-{i % workspaces}", title, body)
        for i, (title, body) in enumerate(pairs)
    ]


# --- configuration and source tables ---------------------------------------------------------


def source_config(
    name: str,
    dataset: str,
    *,
    device: str,
    encode_batch_size: int,
    max_tokens: int,
    overlap: int,
    backend: str = "torch",
) -> SourceConfig:
    entity_type, category, body_label = ENTITY[dataset]
    config = parse_config(
        {
            "sources": [
                {
                    "name": name,
                    "table": f"{SCHEMA}.{name}",
                    "columns": ["title", "body"],
                    "entity": {
                        "type": entity_type,
                        "category": category,
                        "attributes": {"title": "package", "body": body_label},
                    },
                    "stages": [
                        "context",
                        {
                            "chunk": {
                                "strategy": "recursive",
                                "max_tokens": max_tokens,
                                "overlap_tokens": overlap,
                            }
                        },
                        {
                            "embed": {
                                "embedding": {
                                    "provider": "local",
                                    "device": device,
                                    "batch_size": encode_batch_size,
                                    "backend": backend,
                                }
                            }
                        },
                    ],
                }
            ]
        },
        path=f"<benchmark {name}>",
    )
    return config.sources[0]


def create_table(engine: Engine, name: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        connection.execute(
            text(
                f"""
                CREATE TABLE {SCHEMA}.{name} (
                    id            bigint PRIMARY KEY,
                    workspace_id  text NOT NULL,
                    title         text,
                    body          text,
                    updated_at    timestamptz NOT NULL DEFAULT now()
                )
                """
            )
        )


def insert_records(engine: Engine, table: str, records: Sequence[Record]) -> None:
    """One INSERT statement: the statement-level triggers write one event per workspace."""
    rows = json.dumps([asdict(record) for record in records])
    with engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO {table} (id, workspace_id, title, body) "
                "SELECT id, workspace_id, title, body "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
                "AS r(id bigint, workspace_id text, title text, body text)"
            ),
            {"rows": rows},
        )


@dataclass
class Prepared:
    source: SourceConfig
    pipeline: Pipeline
    runner: Runner
    records: list[Record] = field(default_factory=list)


def prepare_source(engine: Engine, source: SourceConfig, runner_batch_size: int) -> Prepared:
    """Create the (empty) table, register the pipeline, install the capture triggers and
    create the vector table, so none of it happens while a clock runs."""
    create_table(engine, source.name)
    config = EnrichConfig(sources=[source])
    pipelines: Pipelines = build_pipelines(engine, config, get_settings())
    sync(engine, config, pipelines)
    with engine.begin() as connection:
        capture.install(connection, source)
    runner = Runner(engine, pipelines, batch_size=runner_batch_size, worker="bench-pipeline")
    pipeline = pipelines[source.name]
    embed_stage(pipeline).table  # noqa: B018 - creates the vector table
    return Prepared(source, pipeline, runner)


def embed_stage(pipeline: Pipeline) -> Any:
    return pipeline.spec("embed").stage


@dataclass
class Loaded:
    seconds: float
    fold_seconds: float
    events: int


def load(engine: Engine, prepared: Prepared, records: list[Record]) -> Loaded:
    """Insert the records in one statement, whose triggers enqueue the events (timed), fold
    them (timed), then ANALYZE and CHECKPOINT: set-up, not part of the drain's figures."""
    started = time.perf_counter()
    insert_records(engine, prepared.source.table, records)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    folded = prepared.runner.fold_events()
    fold_seconds = time.perf_counter() - started
    if folded.requeued_records != len(records):
        raise BenchmarkError(f"fold queued {folded.requeued_records} of {len(records)} records")
    with engine.connect() as connection:
        connection.execute(
            text(f"ANALYZE {prepared.source.table}, enrichment.record_state, enrichment.events")
        )
        connection.commit()
    checkpoint(engine)
    prepared.records.extend(records)
    return Loaded(seconds, fold_seconds, folded.events)


def chunk_plan(source: SourceConfig, records: Sequence[Record]) -> list[list[str]]:
    """The chunk texts the pipeline will embed, per record: the context stage's formatter and
    the chunk stage's chunker and tokenizer, as the pipeline runs them. Checked against the
    vector table after the run."""
    formatter = TextFormatter(source)
    enriched = [
        formatter.render({"title": r.title, "body": r.body}, {}, workspace_id=r.workspace_id)
        for r in records
    ]
    chunked = chunk_texts(enriched, source.stage("chunk").chunking, model_tokenizer())
    return [[chunk.text for chunk in chunks] for chunks in chunked]


# --- raw encode -------------------------------------------------------------------------------


@dataclass
class Timed:
    """Wall and CPU seconds of one measurement, summed over the rounds."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    server_cpu_seconds: float | None = 0.0
    items: int = 0
    rounds: list[float] = field(default_factory=list)

    def add(self, seconds: float, cpu: float, items: int, server: float | None) -> None:
        self.seconds += seconds
        self.cpu_seconds += cpu
        self.items += items
        self.rounds.append(seconds)
        if server is None or self.server_cpu_seconds is None:
            self.server_cpu_seconds = None
        else:
            self.server_cpu_seconds += server


class ServerCpu:
    """CPU seconds used so far by the benchmark's embedded PostgreSQL server: the postmaster,
    its live children (backends, autovacuum, checkpointer, ...) and the children it reaped.
    None where the server is not the embedded one (it may be on another machine)."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster
        self.tick = os.sysconf("SC_CLK_TCK") if postmaster else 100

    @staticmethod
    def _stat(pid: int | str) -> list[str] | None:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd (state) on

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        own = self._stat(self.postmaster)
        if own is None:
            return None
        ticks = sum(int(value) for value in own[11:15])  # utime, stime, cutime, cstime
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = self._stat(entry.name)
                if fields is not None and fields[1] == str(self.postmaster):
                    ticks += int(fields[11]) + int(fields[12])
        return ticks / self.tick


def encode(model: Any, texts: Sequence[str], batch_size: int) -> tuple[float, float]:
    """One ``encode`` call over all texts, made as the embedder makes it: (wall, CPU) s."""
    started, cpu_started = time.perf_counter(), time.process_time()
    model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=False,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    return time.perf_counter() - started, time.process_time() - cpu_started


def baseline(timed: Timed, texts: Sequence[str], label: str) -> dict[str, Any]:
    return {
        "label": label,
        "texts": len(texts),
        "empty_texts": sum(1 for t in texts if not t.strip()),
        "characters_mean": statistics.fmean(len(t) for t in texts) if texts else 0.0,
        "tokens_mean": statistics.fmean(model_tokenizer().count_batch(list(texts)))
        if texts
        else 0.0,
        "seconds": timed.seconds,
        "cpu_seconds": timed.cpu_seconds,
        "server_cpu_seconds": timed.server_cpu_seconds,
        "texts_per_second": len(texts) / timed.seconds,
        "round_seconds": timed.rounds,
    }


# --- the pipeline, timed from the inside ------------------------------------------------------


@dataclass
class Inside:
    """Seconds spent in the parts of the timed drains, measured by wrapping them."""

    run: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    encode_seconds: float = 0.0
    encode_cpu_seconds: float = 0.0
    encode_calls: int = 0
    encoded_texts: int = 0
    write_seconds: float = 0.0
    written_rows: int = 0
    persist_seconds: float = 0.0
    fold_seconds: float = 0.0
    reclaim_seconds: float = 0.0


def instrument(pipeline: Pipeline, runner: Runner) -> Inside:
    """Wrap each stage's ``run``, the embedder's ``embed``, the embed stage's ``write`` and the
    runner's ``fold_events``, ``reclaim_expired`` and ``_persist`` (instance attributes; a few
    perf_counter calls per batch). ``_persist`` and ``write`` may run on the runner's writer
    thread, overlapping the next batch's stages."""
    inside = Inside()

    def timed(add: Callable[[float], None], function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                add(time.perf_counter() - started)

        return wrapper

    def adder(name: str) -> Callable[[float], None]:
        def add(seconds: float) -> None:
            setattr(inside, name, getattr(inside, name) + seconds)

        return add

    for spec in pipeline.stages:

        def add_run(seconds: float, name: str = spec.name) -> None:
            inside.run[name] += seconds

        spec.stage.run = timed(add_run, spec.stage.run)  # type: ignore[method-assign]
    runner.fold_events = timed(adder("fold_seconds"), runner.fold_events)  # type: ignore[method-assign]
    runner.reclaim_expired = timed(adder("reclaim_seconds"), runner.reclaim_expired)  # type: ignore[method-assign]
    runner._persist = timed(adder("persist_seconds"), runner._persist)  # type: ignore[method-assign]
    stage = embed_stage(pipeline)
    embed, write = stage.embedder.embed, stage.write

    def timed_embed(texts: Sequence[str]) -> Any:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return embed(texts)
        finally:
            inside.encode_seconds += time.perf_counter() - started
            inside.encode_cpu_seconds += time.process_time() - cpu_started
            inside.encode_calls += 1
            inside.encoded_texts += len(texts)

    def timed_write(connection: Any, effects: Any) -> None:
        started = time.perf_counter()
        try:
            write(connection, effects)
        finally:
            inside.write_seconds += time.perf_counter() - started
            inside.written_rows += sum(len(rows) for rows in effects.values())

    stage.embedder.embed = timed_embed
    stage.write = timed_write
    return inside


def vector_table_name(engine: Engine) -> str:
    with engine.connect() as connection:
        table = vectors.active_table(connection)
    if table is None:
        raise BenchmarkError("no active vector table after the run")
    return table.qualified


def stored_chunks(engine: Engine, source: str, table: str | None = None) -> dict[str, list[str]]:
    """The chunk texts the pipeline stored, per record key, in chunk order, in ``table``
    (default: the active vector table)."""
    stored: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                f"SELECT record_key, chunk_text FROM {table or vector_table_name(engine)} "
                "WHERE source = :source ORDER BY record_key, chunk_index"
            ),
            {"source": source},
        )
        for key, chunk in rows:
            stored[key].append(chunk)
    return stored


def verify(
    engine: Engine, prepared: Prepared, plans: Sequence[list[str]], table: str | None = None
) -> None:
    """Every record COMPLETED at every stage, and its stored chunks (in ``table``, default the
    active vector table) are the planned ones (so the raw baseline encoded exactly what the
    pipeline embedded)."""
    source = prepared.source.name
    with engine.connect() as connection:
        statuses: dict[str, int] = dict(
            connection.execute(
                text(
                    "SELECT status, count(*) FROM enrichment.record_state "
                    "WHERE source = :source GROUP BY status"
                ),
                {"source": source},
            ).all()
        )
    expected = len(prepared.records) * len(prepared.pipeline.stages)
    if statuses.get("COMPLETED", 0) != expected:
        raise BenchmarkError(f"expected {expected} COMPLETED stage rows, got {statuses}")
    stored = stored_chunks(engine, source, table)
    for record, plan in zip(prepared.records, plans, strict=True):
        if stored.get(str(record.id), []) != plan:
            raise BenchmarkError(
                f"record {record.id}: stored chunks {stored.get(str(record.id))!r:.300} differ "
                f"from the planned {plan!r:.300}"
            )


def index_before_fill(engine: Engine, table: vectors.VectorTable) -> None:
    """Diagnostic (--index-during-fill): the HNSW index exists before the first vector, so
    every write maintains it (what a table that is already indexed costs per row)."""
    if not vectors.build_search_index(engine, table):
        raise BenchmarkError(f"could not build the HNSW index of {table.qualified}")
    log(f"built the HNSW index of the empty {table.qualified} (--index-during-fill)")


def since(server_cpu: ServerCpu, started: float | None) -> float | None:
    now = server_cpu.seconds()
    return None if now is None or started is None else now - started


def throughput(
    engine: Engine,
    model: Any,
    args: argparse.Namespace,
    records: list[Record],
    server_cpu: ServerCpu,
) -> tuple[dict[str, Any], Prepared]:
    """Rounds of: load a segment of the records; raw encode of its texts and of its chunks,
    and the pipeline's drain of it, in alternating order (so load from other work on the
    machine falls on both sides alike)."""
    source = source_config(
        args.dataset,
        args.dataset,
        device=args.device,
        encode_batch_size=args.encode_batch_size,
        max_tokens=args.max_tokens,
        overlap=args.overlap_tokens,
    )
    prepared = prepare_source(engine, source, args.runner_batch_size)
    if args.index_during_fill:
        index_before_fill(engine, embed_stage(prepared.pipeline).table)
    # The rounds are a measuring device, not waves of a real backfill: the drain of a whole
    # backlog builds the index once, at its end, so it is built once, after the last round,
    # and its time is counted as the pipeline's.
    build_search_indexes = prepared.runner.build_search_indexes
    prepared.runner.build_search_indexes = list  # type: ignore[method-assign]
    inside = instrument(prepared.pipeline, prepared.runner)
    profiler = cProfile.Profile() if args.profile else None
    rounds = min(args.rounds, len(records))
    segments = [records[i::rounds] for i in range(rounds)]
    segments = [sorted(segment, key=lambda r: r.id) for segment in segments]
    raw_texts, raw_chunks, drained = Timed(), Timed(), Timed()
    loads: list[Loaded] = []
    batches: list[BatchReport] = []
    plans: list[list[str]] = []
    load_averages: list[float] = []
    bs = args.encode_batch_size
    # Warm-up, not timed: the model's first calls at each text length are slower.
    warm = [
        c
        for plan in chunk_plan(source, random.Random(7).sample(records, min(256, len(records))))
        for c in plan
    ]
    encode(model, warm, bs)
    for index, segment in enumerate(segments):
        loads.append(load(engine, prepared, segment))
        plan = chunk_plan(source, segment)
        plans.extend(plan)
        chunks = [chunk for record_chunks in plan for chunk in record_chunks]
        steps = ["raw_chunks", "pipeline"]
        if args.dataset == "summaries":
            steps.insert(0, "raw_texts")
        if index % 2:
            steps.reverse()
        load_averages.append(os.getloadavg()[0])
        for step in steps:
            server_started = server_cpu.seconds()
            if step == "raw_texts":
                wall, cpu = encode(model, [r.body for r in segment], bs)
                raw_texts.add(wall, cpu, len(segment), since(server_cpu, server_started))
            elif step == "raw_chunks":
                wall, cpu = encode(model, chunks, bs)
                raw_chunks.add(wall, cpu, len(chunks), since(server_cpu, server_started))
            else:
                started, cpu_started = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.enable()
                report = prepared.runner.drain(sources=[source.name])
                if profiler is not None:
                    profiler.disable()
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                drained.add(wall, cpu, len(segment), since(server_cpu, server_started))
                summary = report.summary()
                if summary["dead_lettered"] or summary["failed"]:
                    raise BenchmarkError(f"the drain failed records: {summary}")
                if summary["claimed"] != 3 * len(segment):
                    raise BenchmarkError(f"the drain claimed {summary}, not 3 x {len(segment)}")
                batches.extend(report.batches)
        log(
            f"round {index + 1}/{rounds}: {len(segment):,} records, {len(chunks):,} chunks; raw "
            f"encode of the chunks {len(chunks) / raw_chunks.rounds[-1]:,.1f}/s, pipeline "
            f"{len(chunks) / drained.rounds[-1]:,.1f} chunks/s "
            f"({raw_chunks.rounds[-1] / drained.rounds[-1]:.0%}); load {load_averages[-1]:.2f}"
        )
    prepared.runner.build_search_indexes = build_search_indexes  # type: ignore[method-assign]
    server_started = server_cpu.seconds()
    started, cpu_started = time.perf_counter(), time.process_time()
    indexed = build_search_indexes()
    index_seconds = time.perf_counter() - started
    index_server = since(server_cpu, server_started)
    drained.seconds += index_seconds
    drained.cpu_seconds += time.process_time() - cpu_started
    if drained.server_cpu_seconds is not None:
        drained.server_cpu_seconds = (
            None if index_server is None else drained.server_cpu_seconds + index_server
        )
    log(f"HNSW index of {indexed or 'nothing'} built in {index_seconds:.1f}s")
    verify(engine, prepared, plans)
    if profiler is not None:
        profiler.dump_stats(args.profile)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        log(out.getvalue())

    all_chunks = [chunk for plan in plans for chunk in plan]
    baselines = {"raw_chunks": baseline(raw_chunks, all_chunks, "the pipeline's chunks")}
    if raw_texts.items:
        baselines["raw_texts"] = baseline(
            raw_texts, [r.body for r in prepared.records], "the dataset texts as they are"
        )
    per_stage = {
        name: {
            "batches": sum(1 for b in batches if b.stage == name),
            "batch_seconds": sum(b.seconds for b in batches if b.stage == name),
            "run_seconds": inside.run[name],
        }
        for name in prepared.pipeline.stage_names
    }
    pipeline: dict[str, Any] = {
        "records": len(records),
        "chunks": len(all_chunks),
        "records_without_chunks": sum(1 for plan in plans if not plan),
        "rounds": rounds,
        "seconds": drained.seconds,
        "cpu_seconds": drained.cpu_seconds,
        "server_cpu_seconds": drained.server_cpu_seconds,
        "records_per_second": len(records) / drained.seconds,
        "chunks_per_second": len(all_chunks) / drained.seconds,
        "round_seconds": drained.rounds,
        "index_build_seconds": index_seconds,
        "tables_indexed": indexed,
        # Same chunks on both sides: the ratio of rates is the ratio of times.
        "ratio_to_raw_chunks": raw_chunks.seconds / drained.seconds,
        "round_ratios": [
            raw / pipe for raw, pipe in zip(raw_chunks.rounds, drained.rounds, strict=True)
        ],
        "load_averages": [round(value, 2) for value in load_averages],
        "load_seconds": sum(loaded.seconds for loaded in loads),
        "fold_seconds": sum(loaded.fold_seconds for loaded in loads),
        "events": sum(loaded.events for loaded in loads),
        "per_stage": per_stage,
        "encode_seconds": inside.encode_seconds,
        "encode_cpu_seconds": inside.encode_cpu_seconds,
        "encode_calls": inside.encode_calls,
        "encoded_texts": inside.encoded_texts,
        "encode_vs_raw": inside.encode_seconds / raw_chunks.seconds,
        "write_seconds": inside.write_seconds,
        "written_rows": inside.written_rows,
        "persist_seconds": inside.persist_seconds,
        "fold_seconds_in_drain": inside.fold_seconds,
        "reclaim_seconds_in_drain": inside.reclaim_seconds,
        "profiled": profiler is not None,
    }
    if raw_texts.items:
        pipeline["ratio_to_raw_texts"] = raw_texts.seconds / drained.seconds
    # The same comparison in CPU seconds (this process, plus the database server's for the
    # pipeline): less sensitive to other work on the machine than wall time.
    if drained.server_cpu_seconds is not None:
        pipeline["cpu_ratio_to_raw_chunks"] = raw_chunks.cpu_seconds / (
            drained.cpu_seconds + drained.server_cpu_seconds
        )
    log(
        f"pipeline: {len(records):,} records, {len(all_chunks):,} chunks in "
        f"{drained.seconds:.1f}s = {pipeline['records_per_second']:,.1f} records/s; raw encode "
        f"of the chunks {raw_chunks.seconds:.1f}s; ratio {pipeline['ratio_to_raw_chunks']:.0%}"
    )
    return {"baselines": baselines, "pipeline": pipeline}, prepared


# --- latency ----------------------------------------------------------------------------------


class Consumer(threading.Thread):
    """Runs the runner continuously: drain, then wait for a NOTIFY (or sleep, in poll mode)."""

    def __init__(self, runner: Runner, source: str, url: str, mode: str, poll: float) -> None:
        super().__init__(name="bench-consumer", daemon=True)
        self.runner, self.source, self.url, self.mode, self.poll = runner, source, url, mode, poll
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error: str | None = None
        self.drains = 0
        self.wakeups = 0
        self.claimed = 0
        self.busy_seconds = 0.0

    def run(self) -> None:
        listener: psycopg.Connection[Any] | None = None
        try:
            if self.mode == "listen":
                listener = psycopg.connect(libpq_url(self.url), autocommit=True)
                listener.execute(f"LISTEN {capture.NOTIFY_CHANNEL}")
            self.ready.set()
            while not self.stop.is_set():
                started = time.perf_counter()
                report = self.runner.drain(sources=[self.source])
                self.busy_seconds += time.perf_counter() - started
                self.drains += 1
                self.claimed += report.total("claimed")
                if listener is None:
                    self.stop.wait(self.poll)
                    continue
                # Wake on the first notification (those that came during the drain are
                # already buffered); a slow fallback drain every 5 s covers retries.
                deadline = time.monotonic() + 5.0
                while not self.stop.is_set() and time.monotonic() < deadline:
                    if any(True for _ in listener.notifies(timeout=0.5, stop_after=1)):
                        self.wakeups += 1
                        for _ in listener.notifies(timeout=0.0):
                            pass
                        break
        except BaseException:
            self.error = traceback.format_exc()
            self.ready.set()
        finally:
            if listener is not None:
                listener.close()


@dataclass
class Mutation:
    key: str
    kind: str
    text_hash: str
    committed_at: datetime
    visible_at: datetime | None = None

    @property
    def latency(self) -> float | None:
        if self.visible_at is None:
            return None
        return (self.visible_at - self.committed_at).total_seconds()


class Watcher(threading.Thread):
    """Polls the vector table for each pending mutation's new chunk (by key and text hash) and
    stamps it with the database's clock_timestamp() of the poll that first sees it."""

    def __init__(self, url: str, table: str, source: str) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self.url, self.table, self.source = url, table, source
        self.pending: dict[str, Mutation] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: str | None = None
        self.polls = 0

    def add(self, mutation: Mutation) -> None:
        with self.lock:
            self.pending[mutation.key] = mutation

    def waiting(self) -> int:
        with self.lock:
            return len(self.pending)

    def run(self) -> None:
        try:
            with psycopg.connect(libpq_url(self.url), autocommit=True) as connection:
                query = (
                    f"SELECT record_key, text_hash, clock_timestamp() FROM {self.table} "
                    "WHERE source = %s AND chunk_index = 0 AND record_key = ANY(%s)"
                )
                while not self.stop.is_set():
                    with self.lock:
                        keys = list(self.pending)
                    if keys:
                        rows = connection.execute(query, [self.source, keys]).fetchall()
                        self.polls += 1
                        with self.lock:
                            for key, digest, seen in rows:
                                mutation = self.pending.get(key)
                                if mutation is not None and mutation.text_hash == digest:
                                    mutation.visible_at = seen
                                    del self.pending[key]
                    self.stop.wait(WATCH_INTERVAL)
        except BaseException:
            self.error = traceback.format_exc()


def expected_hash(source: SourceConfig, record: Record) -> str:
    """The text hash the vector of the record's (only) chunk will carry."""
    (plan,) = chunk_plan(source, [record])
    if len(plan) != 1:
        raise BenchmarkError(f"latency text of record {record.id} is {len(plan)} chunks")
    return vectors.text_hash(plan[0])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_run(
    url: str,
    prepared: Prepared,
    watcher: Watcher,
    consumer: Consumer,
    rate: float,
    seconds: float,
    texts: list[str],
    state: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """Commit one mutation every 3600/rate seconds for ``seconds``, then wait for the last."""
    source = prepared.source
    interval = 3600.0 / rate
    count = max(1, math.ceil(seconds / interval))
    mutations: list[Mutation] = []
    slips: list[float] = []
    load = os.getloadavg()[0]
    claimed_before, drains_before = consumer.claimed, consumer.drains
    wakeups_before, busy_before = consumer.wakeups, consumer.busy_seconds
    log(f"latency at {rate:,.0f} mutations/h: {count} mutations, one every {interval:.2f}s")
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        start = time.monotonic()
        for i in range(count):
            if consumer.error or watcher.error:
                break
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            slips.append(max(0.0, -delay))
            body = texts[state["next_text"] % len(texts)]
            state["next_text"] += 1
            targets: list[int] = state["update_targets"]
            if i % 2 == 0 and targets:  # updates and inserts alternate
                old = state["records"][targets.pop()]
                if old.body == body:
                    body = body + " (updated)"
                record = Record(old.id, old.workspace_id, old.title, body)
                digest = expected_hash(source, record)
                connection.execute(
                    f"UPDATE {source.table} SET body = %s, updated_at = now() WHERE id = %s",
                    [record.body, record.id],
                )
                kind = "update"
            else:
                record = Record(
                    state["next_id"],
                    f"ws-{state['next_id'] % state['workspaces']}",
                    f"bench-{state['next_id']}",
                    body,
                )
                state["next_id"] += 1
                digest = expected_hash(source, record)
                connection.execute(
                    f"INSERT INTO {source.table} (id, workspace_id, title, body) "
                    "VALUES (%s, %s, %s, %s)",
                    [record.id, record.workspace_id, record.title, record.body],
                )
                kind = "insert"
            row = connection.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            mutation = Mutation(str(record.id), kind, digest, row[0])
            state["records"][record.id] = record
            watcher.add(mutation)
            mutations.append(mutation)
    deadline = time.monotonic() + timeout
    while watcher.waiting() and time.monotonic() < deadline:
        if consumer.error or watcher.error:
            break
        time.sleep(0.05)
    if consumer.error:
        raise BenchmarkError("the consumer failed:\n" + consumer.error)
    if watcher.error:
        raise BenchmarkError("the watcher failed:\n" + watcher.error)
    latencies = [m.latency for m in mutations if m.latency is not None]
    span = (mutations[-1].committed_at - mutations[0].committed_at).total_seconds()
    result = {
        "rate_per_hour": rate,
        "interval_seconds": interval,
        "mutations": len(mutations),
        "inserts": sum(m.kind == "insert" for m in mutations),
        "updates": sum(m.kind == "update" for m in mutations),
        "seen": len(latencies),
        "missing": len(mutations) - len(latencies),
        "achieved_rate_per_hour": (len(mutations) - 1) / span * 3600 if span > 0 else None,
        "producer_slip_max_seconds": max(slips) if slips else 0.0,
        "p50_seconds": percentile(latencies, 0.50) if latencies else None,
        "p95_seconds": percentile(latencies, 0.95) if latencies else None,
        "max_seconds": max(latencies) if latencies else None,
        "min_seconds": min(latencies) if latencies else None,
        "mean_seconds": statistics.fmean(latencies) if latencies else None,
        "consumer_drains": consumer.drains - drains_before,
        "consumer_wakeups": consumer.wakeups - wakeups_before,
        "consumer_claims": consumer.claimed - claimed_before,
        "consumer_busy_seconds": consumer.busy_seconds - busy_before,
        "load_before": round(load, 2),
        "latencies": [round(value, 4) for value in latencies],
    }
    log(
        f"latency at {rate:,.0f}/h: {len(latencies)}/{len(mutations)} seen, p50 "
        f"{result['p50_seconds'] or float('nan'):.3f}s, p95 "
        f"{result['p95_seconds'] or float('nan'):.3f}s, max {result['max_seconds'] or 0:.3f}s"
    )
    return result


def latency(
    engine: Engine,
    url: str,
    args: argparse.Namespace,
    prepared: Prepared | None,
    summaries: list[tuple[str, str]],
) -> dict[str, Any]:
    rng = random.Random(20261121)
    if prepared is None or prepared.source.name != "summaries":
        seed = make_records(summaries[: args.latency_seed], args.workspaces)
        source = source_config(
            LATENCY_SOURCE,
            "summaries",
            device=args.device,
            encode_batch_size=args.encode_batch_size,
            max_tokens=args.max_tokens,
            overlap=args.overlap_tokens,
        )
        log(f"latency: seeding {len(seed):,} records into {source.table}")
        prepared = prepare_source(engine, source, args.runner_batch_size)
        load(engine, prepared, seed)
        prepared.runner.drain(sources=[source.name])
    used = {r.body for r in prepared.records}
    texts = [s for _, s in summaries if s.strip() and s not in used] or [
        s for _, s in summaries if s.strip()
    ]
    rng.shuffle(texts)
    targets = [r.id for r in prepared.records]
    rng.shuffle(targets)
    state: dict[str, Any] = {
        "workspaces": args.workspaces,
        "records": {r.id: r for r in prepared.records},
        "update_targets": targets,
        "next_id": max(r.id for r in prepared.records) + 1_000_000,
        "next_text": 0,
    }
    table = vector_table_name(engine)
    consumer = Consumer(
        prepared.runner, prepared.source.name, url, args.consumer, args.poll_interval
    )
    watcher = Watcher(url, table, prepared.source.name)
    consumer.start()
    watcher.start()
    consumer.ready.wait(30)
    runs = []
    try:
        for rate in args.latency_rates:
            seconds = args.latency_seconds
            if seconds is None:  # enough for --latency-samples samples, at least a minute
                seconds = max(MIN_LATENCY_SECONDS, args.latency_samples * 3600.0 / rate)
            runs.append(
                latency_run(
                    url,
                    prepared,
                    watcher,
                    consumer,
                    rate,
                    seconds,
                    texts,
                    state,
                    args.latency_timeout,
                )
            )
    finally:
        consumer.stop.set()
        watcher.stop.set()
        consumer.join(30)
        watcher.join(30)
    return {
        "source": prepared.source.name,
        "consumer": args.consumer,
        "poll_interval_seconds": args.poll_interval if args.consumer == "poll" else None,
        "watch_interval_seconds": WATCH_INTERVAL,
        "records_in_table": len(prepared.records),
        "runs": runs,
    }


# --- output -----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(document: dict[str, Any]) -> str:
    facts, params = document["machine"], document["parameters"]
    lines = [
        f"Pipeline throughput and latency, dataset {params['dataset']} ({facts['date']})",
        "",
        f"- machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable, "
        f"{facts['cpu_model']}), {facts['platform']}, Python {facts['python']}, torch "
        f"{facts['torch']} ({facts['torch_threads']} threads), device {params['device']}",
        f"- PostgreSQL {facts['postgresql_version']}, {facts['server']}; "
        + ", ".join(f"{k}={v}" for k, v in facts["postgresql_settings"].items()),
        f"- code: {facts['git']}",
        f"- load average (1 min): {facts['load_before']} before, {facts['load_after']} after",
        f"- model all-MiniLM-L6-v2 (packaged), encode batch size {params['encode_batch_size']}, "
        f"runner batch size {params['runner_batch_size']}, chunking recursive "
        f"{params['max_tokens']}/{params['overlap_tokens']} tokens"
        + (
            ", **HNSW index built before the fill** (diagnostic)"
            if params["index_during_fill"]
            else ""
        ),
    ]
    part = document.get("throughput")
    if part:
        pipe, base = part["pipeline"], part["baselines"]
        lines += [
            "",
            f"Throughput: {pipe['records']:,} records ({pipe['chunks']:,} chunks, "
            f"{pipe['records_without_chunks']} records without any) in "
            f"{params['workspaces']} workspaces; {pipe['rounds']} interleaved rounds, load "
            f"average at their starts {', '.join(str(v) for v in pipe['load_averages'])}",
            "",
            "| measurement | texts | tokens (mean) | seconds | texts/s | records/s | vs raw "
            "chunks | CPU s (process + server) | CPU: raw chunks / this |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def cpu(entry: dict[str, Any]) -> str:
            server = entry.get("server_cpu_seconds")
            return f"{entry['cpu_seconds']:.1f} + " + ("?" if server is None else f"{server:.1f}")

        raw_texts = base.get("raw_texts")
        if raw_texts:
            lines.append(
                f"| raw `encode()`, the dataset's texts as they are | {raw_texts['texts']:,} | "
                f"{raw_texts['tokens_mean']:.0f} | {raw_texts['seconds']:.1f} | "
                f"{raw_texts['texts_per_second']:,.1f} | | | {cpu(raw_texts)} | |"
            )
        raw = base["raw_chunks"]
        lines.append(
            f"| raw `encode()`, the pipeline's chunks (enriched text) | {raw['texts']:,} | "
            f"{raw['tokens_mean']:.0f} | {raw['seconds']:.1f} | {raw['texts_per_second']:,.1f} "
            f"| | 100% | {cpu(raw)} | 100% |"
        )
        cpu_ratio = pipe.get("cpu_ratio_to_raw_chunks")
        lines.append(
            f"| pipeline `drain()`: claim → context → chunk → embed → store → complete | "
            f"{pipe['chunks']:,} | {raw['tokens_mean']:.0f} | {pipe['seconds']:.1f} | "
            f"{pipe['chunks_per_second']:,.1f} | {pipe['records_per_second']:,.1f} | "
            f"**{pipe['ratio_to_raw_chunks']:.0%}** | {cpu(pipe)} | "
            f"{'-' if cpu_ratio is None else f'{cpu_ratio:.0%}'} |"
        )
        lines.append("")
        verdict = "meets" if pipe["ratio_to_raw_chunks"] >= TARGET_RATIO else "misses"
        ratio_texts = (
            f"; pipeline records/s vs raw encode of the dataset's texts: "
            f"{pipe['ratio_to_raw_texts']:.0%}"
            if "ratio_to_raw_texts" in pipe
            else ""
        )
        rounds = ", ".join(f"{ratio:.0%}" for ratio in pipe["round_ratios"])
        lines.append(
            "Pipeline chunks/s vs raw encode of the same chunks: "
            f"{pipe['ratio_to_raw_chunks']:.0%} ({verdict} the {TARGET_RATIO:.0%} target; "
            f"per round {rounds}, before the index build){ratio_texts}. The pipeline's time "
            f"includes building the HNSW index once after the fill: "
            f"{pipe['index_build_seconds']:.1f}s. Set-up, not in the figures: load "
            f"{pipe['load_seconds']:.2f}s ({pipe['rounds']} INSERTs, {pipe['events']} events "
            f"from the triggers), fold {pipe['fold_seconds']:.2f}s."
        )
        lines += ["", breakdown(pipe, raw)]
    part = document.get("latency")
    if part:
        consumer = part["consumer"] + (
            f" (sleep {part['poll_interval_seconds'] * 1000:.0f} ms when idle)"
            if part["poll_interval_seconds"]
            else " (LISTEN enrichment_events)"
        )
        lines += [
            "",
            f"Latency, committed mutation → vector visible: consumer {consumer}, "
            f"{part['records_in_table']:,} records in the table, watcher poll "
            f"{part['watch_interval_seconds'] * 1000:.0f} ms",
            "",
            "| rate (per hour) | achieved | mutations (ins/upd) | seen | p50 s | p95 s | max s "
            "| load |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in part["runs"]:
            lines.append(
                f"| {run['rate_per_hour']:,.0f} | {fmt(run['achieved_rate_per_hour'])} | "
                f"{run['mutations']} ({run['inserts']}/{run['updates']}) | {run['seen']} | "
                f"{fmt(run['p50_seconds'], 3)} | **{fmt(run['p95_seconds'], 3)}** | "
                f"{fmt(run['max_seconds'], 3)} | {run['load_before']} |"
            )
        lines.append("")
        lines.append(f"Target: p95 under {TARGET_P95_SECONDS:.0f} s at both rates.")
    return "\n".join(lines)


def breakdown(pipe: dict[str, Any], raw: dict[str, Any]) -> str:
    """Where the drain's time went: the drain's own thread (adds up to its wall time), then
    the persisting of outcomes, which the runner overlaps with the next batch's stages where
    it can (the last stage's write)."""
    total = pipe["seconds"]
    runs = {name: stage["run_seconds"] for name, stage in pipe["per_stage"].items()}
    path: list[tuple[str, float]] = [
        (
            f"model (`embed()`: {pipe['encode_calls']} calls, {pipe['encoded_texts']:,} texts)",
            pipe["encode_seconds"],
        ),
        (
            "embed stage `run`, the rest (read outputs and stored vectors, hashes, checks)",
            runs["embed"] - pipe["encode_seconds"],
        ),
        ("context stage `run` (one query, format the texts)", runs["context"]),
        ("chunk stage `run` (read outputs, tokenize, chunk)", runs["chunk"]),
        (
            "fold events, reclaim leases",
            pipe["fold_seconds_in_drain"] + pipe["reclaim_seconds_in_drain"],
        ),
        ("HNSW index build after the fill", pipe["index_build_seconds"]),
    ]
    rest = total - sum(seconds for _, seconds in path)
    path.append(("claims, commits, waiting for the previous batch's write, the rest", rest))
    lines = ["| where the drain's time went | seconds | share |", "|---|---:|---:|"]
    for label, seconds in path:
        lines.append(f"| {label} | {seconds:.2f} | {seconds / total:.1%} |")
    lines.append(f"| **drain (wall)** | {total:.2f} | 100% |")
    lines.append(
        f"| *persisting outcomes (`Runner._persist`: finish, lease or advance, vector write)* | "
        f"{pipe['persist_seconds']:.2f} | {pipe['persist_seconds'] / total:.1%} |"
    )
    lines.append(
        f"| *of which vector writes (COPY, upsert, HNSW index; {pipe['written_rows']:,} rows)* | "
        f"{pipe['write_seconds']:.2f} | {pipe['write_seconds'] / total:.1%} |"
    )
    lines.append("")
    lines.append(
        "Persisting the context and chunk stages (which leases the next stage) runs in the "
        "drain's thread, inside the 'claims, commits, waiting' row; the embed stage's (vector "
        "writes) runs on the runner's writer thread while the next batch runs. "
        f"The model inside the pipeline took {pipe['encode_seconds']:.1f}s for the chunks that "
        f"raw encode does in {raw['seconds']:.1f}s ({pipe['encode_vs_raw']:.0%}); the process "
        f"used {pipe['encode_cpu_seconds']:.1f}s of CPU meanwhile (raw: "
        f"{raw['cpu_seconds']:.1f}s)."
    )
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_rates(value: str) -> list[float]:
    try:
        rates = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 1000,10000, got {value!r}") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"expected positive rates, got {value!r}")
    return rates


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline_throughput",
        description="Pipeline (context → chunk → embed) throughput against raw encode, and "
        "mutation-to-vector latency with a running consumer.",
    )
    parser.add_argument("--dataset", choices=("summaries", "readmes"), default="summaries")
    parser.add_argument(
        "--limit",
        type=positive,
        help=f"records to load (default: {DEFAULT_SUMMARIES_LIMIT:,} summaries, every readme)",
    )
    parser.add_argument("--summaries", type=Path, default=DATA / "package-summaries-20k.tsv")
    parser.add_argument("--readmes", type=Path, default=DATA / "package-readmes.jsonl")
    parser.add_argument("--encode-batch-size", type=positive, default=16)
    parser.add_argument(
        "--runner-batch-size",
        type=positive,
        default=RUNNER_BATCH_SIZE,
        help=f"records per claimed batch (default: the runner's, {RUNNER_BATCH_SIZE})",
    )
    parser.add_argument("--workspaces", type=positive, default=5)
    parser.add_argument(
        "--rounds",
        type=positive,
        default=8,
        help="segments of the records, each loaded, raw-encoded and drained in turn",
    )
    parser.add_argument("--max-tokens", type=positive, default=254, help="chunk size")
    parser.add_argument("--overlap-tokens", type=int, default=32, help="chunk overlap")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument(
        "--latency-rates", type=parse_rates, default=[1000.0, 10000.0], help="mutations per hour"
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help="producer time per rate (default: enough for --latency-samples, at least 60 s)",
    )
    parser.add_argument("--latency-samples", type=positive, default=30)
    parser.add_argument(
        "--latency-timeout", type=float, default=60.0, help="wait for the last vectors"
    )
    parser.add_argument(
        "--latency-seed",
        type=positive,
        default=500,
        help="records of the latency table when the throughput part does not provide them",
    )
    parser.add_argument("--consumer", choices=("listen", "poll"), default="listen")
    parser.add_argument(
        "--poll-interval", type=float, default=0.075, help="idle sleep of --consumer poll"
    )
    parser.add_argument(
        "--index-during-fill",
        action="store_true",
        help="diagnostic: build the HNSW index on the empty table, so every write maintains it",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--profile", type=Path, metavar="PATH", help="cProfile the timed drain into PATH"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.limit is None:
        args.limit = DEFAULT_SUMMARIES_LIMIT if args.dataset == "summaries" else 1_000_000
    if args.overlap_tokens >= args.max_tokens:
        parser.error("--overlap-tokens must be less than --max-tokens")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    args.device = args.device or default_device()
    facts: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine_facts())
    facts.update(
        cpu_model=cpu_model(), torch=torch.__version__, torch_threads=torch.get_num_threads()
    )
    facts["load_before"] = round(os.getloadavg()[0], 2)

    summaries = read_summaries(args.summaries)
    if args.dataset == "summaries":
        records = make_records(summaries[: args.limit], args.workspaces)
    else:
        records = make_records(read_readmes(args.readmes)[: args.limit], args.workspaces)

    started = time.perf_counter()
    model = load_model(packaged_model_path(), args.device)
    model.encode([body for _, body in summaries[:64]], batch_size=args.encode_batch_size)
    facts["model_load_seconds"] = round(time.perf_counter() - started, 2)

    admin, facts["server"] = admin_url()
    embedded_server = not get_settings().database_url
    server_cpu = ServerCpu(
        embedded.status(BENCH_PGDATA, "postgres").pid if embedded_server else None
    )
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    document: dict[str, Any] = {"benchmark": "pipeline_throughput", "machine": facts}
    document["parameters"] = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in vars(args).items()
        if key not in ("json",)
    }
    try:
        migrate.upgrade(engine)
        facts.update(server_facts(engine))
        log(
            f"database {name} on {facts['server']}, PostgreSQL {facts['postgresql_version']}; "
            f"{len(records):,} {args.dataset} records, device {args.device}"
        )
        prepared = None
        if not args.skip_throughput:
            document["throughput"], prepared = throughput(engine, model, args, records, server_cpu)
        if not args.skip_latency:
            document["latency"] = latency(engine, url, args, prepared, summaries)
    finally:
        engine.dispose()
        embedded.drop_database(admin, name)
    facts["load_after"] = round(os.getloadavg()[0], 2)
    print(markdown(document))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
