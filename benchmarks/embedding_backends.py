"""Embedding backends of the local provider: torch, onnx and onnx-int8, raw and end to end,
on the same texts in the same run, and what int8 costs in retrieval quality.

One process, one database, one source table per backend (``bench.<dataset>_<backend>``, the
same records in each) with the capture triggers, stages ``context → chunk → embed`` (the embed
stage on that backend; each backend fills its own vector table, as its vectors have their own
model version). Measured, per backend:

1. **Raw encode** of exactly the chunks the pipeline embeds (the enriched, chunked texts,
   computed with the context stage's formatter and the chunk stage's chunker, and checked after
   the run against the chunk texts stored in each vector table): torch is
   ``SentenceTransformer.encode(batch_size=B, normalize_embeddings=True)`` on the model object
   the torch pipeline uses; onnx and onnx-int8 are ``OnnxEncoder.encode(batch_size=B)`` on the
   encoder their pipelines use (tokenizer → onnxruntime → mean pooling → L2 normalisation).
2. **Pipeline**: ``Runner.drain()`` of the source: claim → context → chunk → embed → store
   vectors → complete; loading the rows and folding their events is set-up, not timed. The
   vector tables are filled without their HNSW index, which is built once after the last
   round and counted in the pipeline's time (as ``benchmarks.pipeline_throughput`` does).

The records are split into ``--rounds`` segments; each round loads one into every backend's
table, then runs the six measurements (3 raw, 3 pipelines) in an order rotated by one step each
round, so load from other work on the machine falls on every measurement alike. The 1-minute
load average is recorded at the start of every round.

**Quality**: the raw runs' vectors of all chunks are kept. Reported: the cosine of each
backend's vectors to torch's (min, mean) over every chunk; the probe-set verification of the
exports; and, with at least ``--recall-queries`` chunks, **recall@10 of onnx-int8's (and
onnx's) nearest neighbours against torch's**: for 1,000 query chunks drawn at random (seed 7),
the 10 nearest other chunks among all of them by exact cosine, |found ∩ torch's| / 10, averaged.
Without torch in ``--backends``, onnx's vectors (torch's to 1e-7) are the reference: that is
how the recall over 20,000 texts is measured without paying for torch twice.

**Decision** printed at the end (the issue's rule): ``onnx`` may be the default when its vectors
match torch's within 1e-4 cosine on the probe set and its pipeline is faster end to end than
torch's pipeline; the target is the onnx pipeline at 1.7x raw torch encode or more; int8 is
offered when its recall@10 is 0.95 or more.

    .venv/bin/python -m benchmarks.embedding_backends [--dataset summaries|readmes]
        [--limit N] [--rounds 6] [--encode-batch-size 16] [--runner-batch-size 256]
        [--backends torch,onnx,onnx-int8] [--recall-queries 1000] [--json PATH]
    .venv/bin/python -m benchmarks.embedding_backends --cuda-sweep 32,64,128,256,512

``--cuda-sweep`` measures raw torch encode on the GPU at each batch size instead (summaries,
the pipeline's enriched texts; no database). Data and database as in
``benchmarks.pipeline_throughput``; results are collected in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from benchmarks.pipeline_throughput import (
    DATA,
    DEFAULT_SUMMARIES_LIMIT,
    Inside,
    Prepared,
    Record,
    ServerCpu,
    Timed,
    chunk_plan,
    cpu_model,
    embed_stage,
    instrument,
    load,
    make_records,
    prepare_source,
    read_readmes,
    read_summaries,
    since,
    source_config,
    verify,
)
from benchmarks.queue_throughput import (
    BENCH_PGDATA,
    BenchmarkError,
    admin_url,
    log,
    machine_facts,
    parse_sizes,
    positive,
    server_facts,
)
from enrichment import embedded, migrate, vectors
from enrichment.chunking import model_tokenizer
from enrichment.database import engine_for
from enrichment.embedders.local import load_model, packaged_model_path
from enrichment.embedders.local_onnx import OnnxEmbedder
from enrichment.settings import get_settings

BACKENDS = ("torch", "onnx", "onnx-int8")
TARGET_ONNX_PIPELINE_VS_RAW_TORCH = 1.7
TARGET_INT8_RECALL = 0.95
SAME_VECTORS = 1e-4  # 1 - cosine on the probe set for "the same vectors"
RECALL_K = 10
RECALL_SEED = 7

Encode = Callable[[Sequence[str]], NDArray[np.float32]]


# --- the backends ------------------------------------------------------------------------------


@dataclass
class Backend:
    """One backend: its source and runner, its raw encoder and everything measured."""

    name: str
    prepared: Prepared
    raw: Encode
    inside: Inside
    export: dict[str, Any] = field(default_factory=dict)
    raw_timed: Timed = field(default_factory=Timed)
    drained: Timed = field(default_factory=Timed)
    raw_vectors: list[NDArray[np.float32]] = field(default_factory=list)
    index_seconds: float = 0.0

    @property
    def source(self) -> str:
        return self.prepared.source.name


def raw_encoder(name: str, embedder: Any, batch_size: int) -> Encode:
    """The backend's model alone, called as its embedder calls it."""
    if name == "torch":
        model = load_model(packaged_model_path(), embedder.device)

        def encode_torch(texts: Sequence[str]) -> NDArray[np.float32]:
            return np.asarray(
                model.encode(
                    list(texts),
                    batch_size=batch_size,
                    show_progress_bar=False,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                ),
                dtype=np.float32,
            )

        return encode_torch
    assert isinstance(embedder, OnnxEmbedder)
    encoder = embedder.encoder()

    def encode_onnx(texts: Sequence[str]) -> NDArray[np.float32]:
        return encoder.encode(texts, batch_size=batch_size)

    return encode_onnx


def prepare_backend(engine: Engine, name: str, args: argparse.Namespace) -> Backend:
    source = source_config(
        f"{args.dataset}_{name.replace('-', '_')}",
        args.dataset,
        device="cpu",
        encode_batch_size=args.encode_batch_size,
        max_tokens=args.max_tokens,
        overlap=args.overlap_tokens,
        backend=name,
    )
    prepared = prepare_source(engine, source, args.runner_batch_size)
    # The index is built once after the last round (below), timed as the pipeline's.
    prepared.runner.build_search_indexes = list  # type: ignore[method-assign]
    embedder = embed_stage(prepared.pipeline).embedder
    export: dict[str, Any] = {"model_version": embedder.model_version}
    if isinstance(embedder, OnnxEmbedder):
        export["exported_in_this_run"] = not embedder.export_directory.is_dir()
        started = time.perf_counter()
        exported = embedder.export()
        export.update(
            seconds_to_ready=time.perf_counter() - started,
            directory=str(exported.directory),
            size_bytes=exported.model_file.stat().st_size,
            exported_at=exported.manifest["created_at"],
            probe_at_export=exported.verification.to_json(),
            probe_here=embedder.verification.to_json(),
        )
    inside = instrument(prepared.pipeline, prepared.runner)
    return Backend(
        name, prepared, raw_encoder(name, embedder, args.encode_batch_size), inside, export
    )


# --- the run -------------------------------------------------------------------------------------


def run_rounds(
    engine: Engine,
    backends: list[Backend],
    records: list[Record],
    args: argparse.Namespace,
    server_cpu: ServerCpu,
) -> tuple[list[list[str]], list[float]]:
    source = backends[0].prepared.source
    rounds = min(args.rounds, len(records))
    segments = [sorted(records[i::rounds], key=lambda r: r.id) for i in range(rounds)]
    sample = random.Random(RECALL_SEED).sample(records, min(256, len(records)))
    warm = [chunk for plan in chunk_plan(source, sample) for chunk in plan]
    for backend in backends:  # warm-up, not timed: first calls at each length are slower
        backend.raw(warm)
    steps = [(backend, kind) for kind in ("raw", "pipeline") for backend in backends]
    plans: list[list[str]] = []
    load_averages: list[float] = []
    for index, segment in enumerate(segments):
        for backend in backends:
            load(engine, backend.prepared, segment)
        plan = chunk_plan(source, segment)
        plans.extend(plan)
        chunks = [chunk for record_chunks in plan for chunk in record_chunks]
        load_averages.append(round(os.getloadavg()[0], 2))
        shift = index % len(steps)
        for backend, kind in steps[shift:] + steps[:shift]:
            server_started = server_cpu.seconds()
            started, cpu_started = time.perf_counter(), time.process_time()
            if kind == "raw":
                backend.raw_vectors.append(backend.raw(chunks))
            else:
                report = backend.prepared.runner.drain(sources=[backend.source])
                summary = report.summary()
                if summary["dead_lettered"] or summary["failed"]:
                    raise BenchmarkError(f"{backend.name}: the drain failed records: {summary}")
                if summary["claimed"] != 3 * len(segment):
                    raise BenchmarkError(f"{backend.name}: the drain claimed {summary}")
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            timed = backend.raw_timed if kind == "raw" else backend.drained
            timed.add(wall, cpu, len(chunks), since(server_cpu, server_started))
        torch_like = backends[0]
        log(
            f"round {index + 1}/{rounds}: {len(segment):,} records, {len(chunks):,} chunks, "
            f"load {load_averages[-1]}; chunks/s "
            + ", ".join(
                f"{b.name} raw {len(chunks) / b.raw_timed.rounds[-1]:,.1f} "
                f"pipeline {len(chunks) / b.drained.rounds[-1]:,.1f}"
                for b in backends
            )
            + f" (first: {torch_like.name})"
        )
    for backend in backends:
        table = embed_stage(backend.prepared.pipeline).table
        server_started = server_cpu.seconds()
        started, cpu_started = time.perf_counter(), time.process_time()
        if not vectors.build_search_index(engine, table):
            raise BenchmarkError(f"could not build the HNSW index of {table.qualified}")
        backend.index_seconds = time.perf_counter() - started
        backend.drained.seconds += backend.index_seconds
        backend.drained.cpu_seconds += time.process_time() - cpu_started
        index_server = since(server_cpu, server_started)
        if backend.drained.server_cpu_seconds is not None:
            backend.drained.server_cpu_seconds = (
                None if index_server is None else backend.drained.server_cpu_seconds + index_server
            )
        check_stored(engine, backend, plans)
    return plans, load_averages


def check_stored(engine: Engine, backend: Backend, plans: Sequence[list[str]]) -> None:
    """Every record COMPLETED at every stage, and its stored chunks are the planned ones (so
    raw encode embedded exactly what the pipeline did)."""
    table = embed_stage(backend.prepared.pipeline).table
    try:
        verify(engine, backend.prepared, plans, table.qualified)
    except BenchmarkError as error:
        raise BenchmarkError(f"{backend.name}: {error}") from None


# --- quality -------------------------------------------------------------------------------------


def cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> dict[str, float]:
    values = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))
    return {
        "min": float(values.min()),
        "mean": float(values.mean()),
        "p01": float(np.quantile(values, 0.01)),
    }


def nearest(corpus: NDArray[np.float32], queries: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """For each query row of the corpus, its k most similar other rows (exact cosine)."""
    found = []
    for start in range(0, len(queries), 250):
        block = queries[start : start + 250]
        similarity = corpus[block] @ corpus.T
        similarity[np.arange(len(block)), block] = -np.inf
        top = np.argpartition(-similarity, k, axis=1)[:, :k]
        found.append(top)
    return np.concatenate(found)


def recall_at_k(
    reference: NDArray[np.float32],
    other: NDArray[np.float32],
    queries: NDArray[np.int64],
    k: int,
) -> float:
    """Mean |other's k nearest ∩ reference's k nearest| / k over the queries."""
    expected, found = nearest(reference, queries, k), nearest(other, queries, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(expected, found, strict=True)]))


def quality(backends: list[Backend], args: argparse.Namespace) -> dict[str, Any]:
    by_name = {b.name: np.concatenate(b.raw_vectors) for b in backends}
    result: dict[str, Any] = {"texts": len(next(iter(by_name.values())))}
    # torch's vectors are the reference; without torch in the run, onnx's (the same to 1e-7).
    reference_name = "torch" if "torch" in by_name else "onnx"
    reference = by_name.get(reference_name)
    if reference is None:
        return result
    result["reference"] = reference_name
    count = len(reference)
    queries = np.array(
        sorted(random.Random(RECALL_SEED).sample(range(count), min(args.recall_queries, count)))
    )
    for name, found in by_name.items():
        if name == reference_name:
            continue
        entry: dict[str, Any] = {"cosine_to_reference": cosines(found, reference)}
        if count > RECALL_K * 2:
            entry["recall_at_10_vs_reference"] = recall_at_k(reference, found, queries, RECALL_K)
            if name == "onnx-int8" and reference_name != "onnx" and "onnx" in by_name:
                entry["recall_at_10_vs_onnx"] = recall_at_k(
                    by_name["onnx"], found, queries, RECALL_K
                )
        result[name] = entry
    result["queries"] = len(queries)
    result["k"] = RECALL_K
    return result


# --- report ------------------------------------------------------------------------------------


def summarise(backends: list[Backend], plans: Sequence[list[str]]) -> dict[str, Any]:
    chunks = [chunk for plan in plans for chunk in plan]
    raw_torch = next((b for b in backends if b.name == "torch"), None)
    out: dict[str, Any] = {
        "records": len(plans),
        "chunks": len(chunks),
        "tokens_mean": float(np.mean(model_tokenizer().count_batch(chunks))) if chunks else 0.0,
    }
    for backend in backends:
        raw, drained = backend.raw_timed, backend.drained
        entry: dict[str, Any] = {
            "raw_seconds": raw.seconds,
            "raw_cpu_seconds": raw.cpu_seconds,
            "raw_chunks_per_second": len(chunks) / raw.seconds,
            "raw_round_seconds": raw.rounds,
            "pipeline_seconds": drained.seconds,
            "pipeline_cpu_seconds": drained.cpu_seconds,
            "pipeline_server_cpu_seconds": drained.server_cpu_seconds,
            "pipeline_chunks_per_second": len(chunks) / drained.seconds,
            "pipeline_records_per_second": len(plans) / drained.seconds,
            "pipeline_round_seconds": drained.rounds,
            "index_build_seconds": backend.index_seconds,
            "model_in_pipeline_seconds": backend.inside.encode_seconds,
            "vector_write_seconds": backend.inside.write_seconds,
            "pipeline_vs_own_raw": raw.seconds / drained.seconds,
            **backend.export,
        }
        if raw_torch is not None:
            torch_raw = raw_torch.raw_timed
            entry["raw_vs_raw_torch"] = torch_raw.seconds / raw.seconds
            entry["pipeline_vs_raw_torch"] = torch_raw.seconds / drained.seconds
            entry["pipeline_vs_raw_torch_rounds"] = [
                t / p for t, p in zip(torch_raw.rounds, drained.rounds, strict=True)
            ]
            entry["pipeline_vs_pipeline_torch"] = raw_torch.drained.seconds / drained.seconds
        out[backend.name] = entry
    return out


def decide(document: dict[str, Any]) -> dict[str, Any]:
    """The issue's rule for the default, and whether int8 is offered."""
    figures, found = document["throughput"], document["quality"]
    verdict: dict[str, Any] = {}
    onnx = figures.get("onnx")
    if onnx is not None and "torch" in figures:
        probe = 1.0 - onnx["probe_here"]["min_cosine"]
        verdict["onnx_probe_1_minus_cosine"] = probe
        verdict["onnx_same_vectors"] = probe <= SAME_VECTORS
        verdict["onnx_pipeline_faster_than_torch_pipeline"] = (
            onnx["pipeline_vs_pipeline_torch"] > 1.0
        )
        verdict["onnx_default"] = (
            verdict["onnx_same_vectors"] and verdict["onnx_pipeline_faster_than_torch_pipeline"]
        )
        verdict["onnx_meets_target"] = (
            onnx["pipeline_vs_raw_torch"] >= TARGET_ONNX_PIPELINE_VS_RAW_TORCH
        )
    int8 = found.get("onnx-int8")
    if int8 is not None and "recall_at_10_vs_reference" in int8:
        verdict["int8_recall_at_10"] = int8["recall_at_10_vs_reference"]
        verdict["int8_offered"] = int8["recall_at_10_vs_reference"] >= TARGET_INT8_RECALL
    return verdict


def markdown(document: dict[str, Any]) -> str:
    facts, figures = document["machine"], document["throughput"]
    lines = [
        f"Embedding backends, {document['parameters']['dataset']}: {facts['date']}, "
        f"{facts.get('cpus_usable')} CPUs ({facts.get('cpu_model')}), "
        f"load {facts['load_before']} before and {facts.get('load_after')} after, "
        f"at the round starts {document['load_averages']}; "
        f"code {facts.get('git')}",
        "",
        f"{figures['records']:,} records → {figures['chunks']:,} chunks "
        f"({figures['tokens_mean']:.0f} tokens mean), encode batch size "
        f"{document['parameters']['encode_batch_size']}, {document['parameters']['rounds']} "
        "rounds, measurements interleaved",
        "",
        "| measurement | seconds | chunks/s | records/s | vs raw torch | CPU s (process + db) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    backends = [name for name in BACKENDS if name in figures]
    for name in backends:
        entry = figures[name]
        vs = entry.get("raw_vs_raw_torch")
        lines.append(
            f"| raw encode, {name} | {entry['raw_seconds']:.1f} | "
            f"{entry['raw_chunks_per_second']:,.1f} | | "
            f"{'-' if vs is None else f'{vs:.2f}x'} | {entry['raw_cpu_seconds']:.1f} |"
        )
    for name in backends:
        entry = figures[name]
        vs = entry.get("pipeline_vs_raw_torch")
        server = entry["pipeline_server_cpu_seconds"]
        lines.append(
            f"| pipeline `drain()`, {name} | {entry['pipeline_seconds']:.1f} | "
            f"{entry['pipeline_chunks_per_second']:,.1f} | "
            f"{entry['pipeline_records_per_second']:,.1f} | "
            f"{'-' if vs is None else f'**{vs:.2f}x**'} | {entry['pipeline_cpu_seconds']:.1f} + "
            f"{'?' if server is None else f'{server:.1f}'} |"
        )
    lines.append("")
    for name in backends:
        entry = figures[name]
        rounds = entry.get("pipeline_vs_raw_torch_rounds")
        extra = (
            f"; per round vs raw torch {', '.join(f'{r:.2f}x' for r in rounds)}" if rounds else ""
        )
        lines.append(
            f"- {name}: pipeline {entry['pipeline_vs_own_raw']:.0%} of its own raw encode; model "
            f"inside the pipeline {entry['model_in_pipeline_seconds']:.1f}s, vector writes "
            f"{entry['vector_write_seconds']:.1f}s, HNSW build {entry['index_build_seconds']:.1f}s"
            f"{extra}"
        )
        if "probe_here" in entry:
            lines.append(
                f"  export {entry['size_bytes'] / 1e6:.0f} MB; probe set vs torch: 1 - min cosine "
                f"{1 - entry['probe_at_export']['min_cosine']:.1e} at export, "
                f"{1 - entry['probe_here']['min_cosine']:.1e} here; ready in "
                f"{entry['seconds_to_ready']:.1f}s ("
                + (
                    "exported, verified, loaded and verified again"
                    if entry["exported_in_this_run"]
                    else "from the cache: loaded and verified"
                )
                + ")"
            )
    found = document["quality"]
    lines.append("")
    reference_name = found.get("reference", "torch")
    for name in ("onnx", "onnx-int8"):
        if name not in found:
            continue
        entry = found[name]
        cos = entry["cosine_to_reference"]
        recall = ""
        if "recall_at_10_vs_reference" in entry:
            recall = (
                f"; recall@10 of its neighbours vs {reference_name}'s on {found['queries']:,} "
                f"queries over {found['texts']:,} chunks: "
                f"**{entry['recall_at_10_vs_reference']:.3f}**"
            )
            if "recall_at_10_vs_onnx" in entry:
                recall += f" (vs onnx's: {entry['recall_at_10_vs_onnx']:.3f})"
        lines.append(
            f"- {name} vs {reference_name} over all {found['texts']:,} chunks: cosine min "
            f"{cos['min']:.6f}, 1st percentile {cos['p01']:.6f}, mean {cos['mean']:.6f}{recall}"
        )
    verdict = document.get("decision") or {}
    if "onnx_default" in verdict:
        lines += [
            "",
            f"Decision: onnx probe 1 - cosine {verdict['onnx_probe_1_minus_cosine']:.1e} "
            f"(≤ {SAME_VECTORS:.0e}: {verdict['onnx_same_vectors']}), onnx pipeline faster than "
            f"torch's: {verdict['onnx_pipeline_faster_than_torch_pipeline']} → onnx as default: "
            f"**{verdict['onnx_default']}**; target onnx pipeline ≥ "
            f"{TARGET_ONNX_PIPELINE_VS_RAW_TORCH}x raw torch: {verdict['onnx_meets_target']}.",
        ]
    if "int8_offered" in verdict:
        lines.append(
            f"onnx-int8 recall@10 {verdict['int8_recall_at_10']:.3f} against the "
            f"{TARGET_INT8_RECALL} target: offered: **{verdict['int8_offered']}**."
        )
    return "\n".join(lines)


# --- CUDA sweep ---------------------------------------------------------------------------------


def cuda_sweep(args: argparse.Namespace, facts: dict[str, Any]) -> dict[str, Any]:
    """Raw torch encode on the GPU at each batch size, on the pipeline's enriched texts."""
    import torch

    if not torch.cuda.is_available():
        raise BenchmarkError("--cuda-sweep needs a GPU that torch can see (torch.cuda)")
    records = make_records(read_summaries(args.summaries)[: args.limit], args.workspaces)
    source = source_config(
        "sweep",
        "summaries",
        device="cuda",
        encode_batch_size=args.encode_batch_size,
        max_tokens=args.max_tokens,
        overlap=args.overlap_tokens,
    )
    chunks = [chunk for plan in chunk_plan(source, records) for chunk in plan]
    model = load_model(packaged_model_path(), "cuda")
    facts["gpu"] = torch.cuda.get_device_name(0)
    runs = []
    for batch_size in args.cuda_sweep:
        model.encode(chunks[: batch_size * 4], batch_size=batch_size)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        model.encode(chunks, batch_size=batch_size, normalize_embeddings=True)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        runs.append(
            {
                "batch_size": batch_size,
                "seconds": seconds,
                "texts_per_second": len(chunks) / seconds,
            }
        )
        log(f"cuda batch {batch_size}: {len(chunks) / seconds:,.0f} texts/s")
    return {"texts": len(chunks), "runs": runs}


# --- main ---------------------------------------------------------------------------------------


def parse_backends(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(BACKENDS)}, got {value!r}")
    return [name for name in BACKENDS if name in names]  # torch first: the reference


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.embedding_backends",
        description="torch, onnx and onnx-int8: raw encode and the pipeline on the same texts, "
        "and int8's recall@10 against torch's neighbours.",
    )
    parser.add_argument("--dataset", choices=("summaries", "readmes"), default="summaries")
    parser.add_argument("--limit", type=positive, help="records (default: all)")
    parser.add_argument("--summaries", type=Path, default=DATA / "package-summaries-20k.tsv")
    parser.add_argument("--readmes", type=Path, default=DATA / "package-readmes.jsonl")
    parser.add_argument("--backends", type=parse_backends, default=list(BACKENDS))
    parser.add_argument("--encode-batch-size", type=positive, default=16)
    parser.add_argument("--runner-batch-size", type=positive, default=256)
    parser.add_argument("--workspaces", type=positive, default=5)
    parser.add_argument("--rounds", type=positive, default=6)
    parser.add_argument("--max-tokens", type=positive, default=254, help="chunk size")
    parser.add_argument("--overlap-tokens", type=int, default=32, help="chunk overlap")
    parser.add_argument("--recall-queries", type=positive, default=1000)
    parser.add_argument(
        "--cuda-sweep",
        type=parse_sizes,
        metavar="SIZES",
        help="instead: raw torch encode on the GPU at these batch sizes (e.g. 32,64,128,256,512)",
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
    import onnxruntime
    import torch

    facts: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine_facts())
    facts.update(
        cpu_model=cpu_model(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        onnxruntime=onnxruntime.__version__,
        load_before=round(os.getloadavg()[0], 2),
    )
    document: dict[str, Any] = {"benchmark": "embedding_backends", "machine": facts}
    document["parameters"] = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in vars(args).items()
        if key != "json"
    }
    if args.cuda_sweep:
        document["cuda_sweep"] = cuda_sweep(args, facts)
        print(json.dumps(document, indent=2, default=str))
        return 0

    if args.dataset == "summaries":
        records = make_records(read_summaries(args.summaries)[: args.limit], args.workspaces)
    else:
        records = make_records(read_readmes(args.readmes)[: args.limit], args.workspaces)

    admin, facts["server"] = admin_url()
    embedded_server = not get_settings().database_url
    server_cpu = ServerCpu(
        embedded.status(BENCH_PGDATA, "postgres").pid if embedded_server else None
    )
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    try:
        migrate.upgrade(engine)
        facts.update(server_facts(engine))
        log(
            f"database {name}; {len(records):,} {args.dataset} records; backends "
            f"{', '.join(args.backends)}"
        )
        backends = [prepare_backend(engine, b, args) for b in args.backends]
        plans, document["load_averages"] = run_rounds(engine, backends, records, args, server_cpu)
        document["throughput"] = summarise(backends, plans)
        document["quality"] = quality(backends, args)
        document["decision"] = decide(document)
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
    sys.exit(main())
