"""Search latency per mode and recall of the HNSW search against exact search, on 100,000
384-dimensional vectors spread over 20 workspaces of very different sizes.

Data. The real texts are the package summaries of ``../shared/data/package-summaries-20k.tsv``
(``--summaries``): the last ``--queries`` non-empty ones are held out as queries (a summary is
what someone looking for such a package types), the others are stored, as the pipeline's
default enriched text (``Python package — package: NAME — summary: SUMMARY``), and embedded
with the packaged all-MiniLM-L6-v2 (the embeddings are cached in ``.enrich/bench-cache``, keyed
by model version and texts). The 19,027 non-empty summaries less 500 queries make 18,527 real
vectors; the 100,000 rows store each text 5 or 6 times (``--rows``): the first copy with its
real vector, the others with that vector moved to a cosine of 0.85-0.95 from it (random per
row, in a random direction), so the vector space keeps the real texts' topic structure
(clusters, near neighbours) instead of the uniform spread of random vectors, which is both
unrealistic and kinder to HNSW than near-duplicates are. Copies land in random workspaces:
tenants that hold similar records, which is what makes isolation matter. Embedding 100,000
distinct texts would take about 10 minutes of the 2 cores and there are not as many real ones.

Workspaces. 20 sizes in geometric progression (ratio 0.72), from 28 % of the rows (28,047)
down to 0.05 % (54 rows); rows are assigned at random, so each workspace's rows are
spread over the whole table, as they are when tenants write at the same time. Two sources,
four categories and a year of update times give the filters something to do.

Storage. The vector table is created by ``vectors.ensure_table`` (lexical column and GIN index,
row-level security, grants: production DDL), filled with ``vectors.write_chunks`` (binary
COPY), then indexed with ``vectors.build_search_index`` (HNSW, m 16, ef_construction 64, then
VACUUM (ANALYZE)), as a drain does.

Measured. ``Searcher.search`` as an application calls it (a pooled connection, the search role,
row-level security, the settings statement, the query), with the query vector computed
beforehand: the model's time for one query is measured on its own and reported beside it.
Per workspace class (the largest, the smallest, a random one per query) and mode, ``--rounds``
queries, the modes interleaved query by query after a warm-up. Recall@10: for the largest and
the smallest workspace, the vector search's ten records against exact nearest neighbours
computed with numpy over that workspace's vectors; for the smallest, and the smallest holding at
least 1 % of the rows, also with the planner forced onto the HNSW index (an iterative scan
through a workspace of 0.05 % of the rows stops at hnsw.max_scan_tuples and falls back to an
exact scan; one through 1.5 % finds its rows itself).

    .venv/bin/python -m benchmarks.search_latency [--rows 100000] [--workspaces 20]
        [--queries 500] [--rounds 300] [--ef-search 100] [--json PATH]

Like the other benchmarks it uses a database of its own on the embedded server in
``.enrich/bench-pgdata`` (or on DATABASE_URL's server), dropped at the end. Run it under
``flock /tmp/enrich-bench.lock``; results are collected, dated, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks.pipeline_throughput import DATA, cpu_model, read_summaries
from benchmarks.queue_throughput import (
    REPO,
    admin_url,
    log,
    machine_facts,
    positive,
    server_facts,
)
from enrichment import embedded, migrate, vectors
from enrichment.database import engine_for
from enrichment.embedders.local import SentenceTransformerEmbedder
from enrichment.search import Searcher, SearchFilters, SearchMode, SearchOptions, SearchQuery
from enrichment.vectors import ChunkRow

CACHE = REPO / ".enrich" / "bench-cache"
TARGETS = {"vector_p95_ms": 10.0, "hybrid_p95_ms": 25.0, "recall_at_10": 0.95}
CATEGORIES = ("Web", "Data", "DevOps", "Science")
SOURCES = ("packages", "releases")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- data -------------------------------------------------------------------------------------


def enriched(name: str, summary: str) -> str:
    return f"Python package — package: {name} — summary: {summary}"


def embed_cached(model: SentenceTransformerEmbedder, texts: list[str], label: str) -> np.ndarray:
    """Embeddings of ``texts`` (one model call per 64), computed once per model version."""
    digest = hashlib.sha256("\n".join([model.model_version, *texts]).encode()).hexdigest()[:16]
    path = CACHE / f"{label}-{digest}.npy"
    if path.exists():
        log(f"embeddings of {len(texts):,} {label} from {path.relative_to(REPO)}")
        return np.load(path)
    log(f"embedding {len(texts):,} {label} with {model.model_version} (cached afterwards)")
    started = time.perf_counter()
    result = np.empty((len(texts), model.dimensions), dtype=np.float32)
    for start in range(0, len(texts), 1024):
        batch = model.embed(texts[start : start + 1024])
        result[start : start + len(batch)] = np.stack([np.asarray(v) for v in batch])
    log(f"  {time.perf_counter() - started:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, result)
    return result


def derived(rng: np.random.Generator, vector: np.ndarray) -> np.ndarray:
    """A unit vector at a cosine of 0.85-0.95 (uniform) from ``vector``."""
    cosine = rng.uniform(0.85, 0.95)
    noise = rng.standard_normal(vector.shape[0]).astype(np.float32)
    noise -= noise.dot(vector) * vector  # orthogonal to the vector
    noise /= np.linalg.norm(noise)
    return (cosine * vector + np.sqrt(1 - cosine**2) * noise).astype(np.float32)


def workspace_sizes(rows: int, count: int, ratio: float) -> list[int]:
    weights = [ratio**i for i in range(count)]
    sizes = [max(1, int(rows * w / sum(weights))) for w in weights]
    sizes[0] += rows - sum(sizes)
    return sizes


@dataclass
class Dataset:
    texts: list[str]  # per row
    vectors: np.ndarray  # per row
    workspaces: list[str]  # per row
    sizes: dict[str, int]
    queries: list[str]
    query_vectors: np.ndarray


def build_dataset(args: argparse.Namespace, model: SentenceTransformerEmbedder) -> Dataset:
    summaries = [(n, s) for n, s in read_summaries(args.summaries) if s.strip()]
    held_out = summaries[-args.queries :]
    stored = summaries[: -args.queries]
    originals = [enriched(n, s) for n, s in stored]
    base = embed_cached(model, originals, "summaries")
    queries = [s for _, s in held_out]
    query_vectors = embed_cached(model, queries, "queries")

    rng = np.random.default_rng(args.seed)
    copies = -(-args.rows // len(originals))
    rows = [(i, c) for c in range(copies) for i in range(len(originals))][: args.rows]
    vectors_ = np.empty((len(rows), base.shape[1]), dtype=np.float32)
    for row, (i, copy) in enumerate(rows):
        vectors_[row] = base[i] if copy == 0 else derived(rng, base[i])
    sizes = workspace_sizes(len(rows), args.workspaces, args.ratio)
    names = [f"ws{i:02d}" for i in range(args.workspaces)]
    labels = [name for name, size in zip(names, sizes, strict=True) for _ in range(size)]
    rng.shuffle(labels)  # interleaved in the heap, as concurrent tenants write
    return Dataset(
        texts=[originals[i] for i, _ in rows],
        vectors=vectors_,
        workspaces=labels,
        sizes=dict(zip(names, sizes, strict=True)),
        queries=queries,
        query_vectors=query_vectors,
    )


def store(engine: Engine, model: SentenceTransformerEmbedder, data: Dataset, args: Any) -> dict:
    """Create, fill and index the vector table; returns the timings."""
    rng = random.Random(args.seed)
    with engine.begin() as connection:
        table = vectors.ensure_table(
            connection,
            model_name=model.model_name,
            model_version=model.model_version,
            dimensions=model.dimensions,
        )
        for source in SOURCES:
            connection.execute(
                text("INSERT INTO enrichment.sources (name, stages) VALUES (:s, '{embed}')"),
                {"s": source},
            )
    started = time.perf_counter()
    for start in range(0, len(data.texts), 5000):
        batch = []
        for row in range(start, min(start + 5000, len(data.texts))):
            batch.append(
                ChunkRow(
                    source=SOURCES[0] if rng.random() < 0.8 else SOURCES[1],
                    record_key=f"r{row}",
                    chunk_index=0,
                    workspace_id=data.workspaces[row],
                    chunk_text=data.texts[row],
                    entity_type="python_package",
                    semantic_category=CATEGORIES[row % len(CATEGORIES)],
                    related_entity_types=(),
                    metadata={"row": row},
                    text_hash=vectors.text_hash(data.texts[row]),
                    embedding=data.vectors[row],
                    source_updated_at=T0 + timedelta(minutes=rng.randrange(525_600)),
                )
            )
        by_source: dict[str, list[ChunkRow]] = {}
        for chunk in batch:
            by_source.setdefault(chunk.source, []).append(chunk)
        with engine.begin() as connection:
            for source, chunks in by_source.items():
                vectors.write_chunks(
                    connection, table, source, chunks, {c.record_key: 1 for c in chunks}
                )
    fill = time.perf_counter() - started
    log(f"stored {len(data.texts):,} rows in {fill:.0f} s; building the HNSW index")
    started = time.perf_counter()
    vectors.build_search_index(engine, table, memory=args.index_memory)
    index = time.perf_counter() - started
    with engine.connect() as connection:
        size = connection.execute(
            text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table.qualified}
        ).scalar_one()
        connection.execute(text("CHECKPOINT"))
        connection.commit()
    log(f"HNSW index and VACUUM (ANALYZE) in {index:.0f} s")
    return {"fill_seconds": round(fill, 1), "index_seconds": round(index, 1), "bytes": size}


# --- measurements -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


CLASSES = ("largest", "smallest", "any")


def latency(searcher: Searcher, data: Dataset, args: Any) -> list[dict[str, Any]]:
    names = list(data.sizes)
    largest, smallest = names[0], names[-1]
    rng = random.Random(args.seed + 1)
    plan = []
    for n in range(args.rounds + args.warmup):
        q = n % len(data.queries)
        for cls in CLASSES:
            workspace = {"largest": largest, "smallest": smallest}.get(cls) or rng.choice(names)
            for mode in SearchMode:
                plan.append((n < args.warmup, cls, mode, q, workspace, None))
            if cls == "largest":  # a filtered search of the largest workspace
                for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
                    plan.append(
                        (
                            n < args.warmup,
                            "largest, category filter",
                            mode,
                            q,
                            workspace,
                            SearchFilters(categories=(CATEGORIES[n % 4],)),
                        )
                    )
    timings: dict[tuple[str, str], list[float]] = {}
    exact: dict[tuple[str, str], int] = {}
    empty: dict[tuple[str, str], int] = {}
    load = []
    for step, (warmup, cls, mode, q, workspace, filters) in enumerate(plan):
        if step % 500 == 0:
            load.append(round(os.getloadavg()[0], 2))
        query = SearchQuery(
            text=data.queries[q],
            workspace=workspace,
            mode=mode,
            k=10,
            filters=filters or SearchFilters(),
        )
        started = time.perf_counter()
        response = searcher.search(query, vector=data.query_vectors[q])
        seconds = time.perf_counter() - started
        if warmup:
            continue
        key = (cls, mode.value)
        timings.setdefault(key, []).append(seconds)
        exact[key] = exact.get(key, 0) + response.exact
        empty[key] = empty.get(key, 0) + (not response.results)
    rows = []
    for (cls, mode), values in timings.items():
        rows.append(
            {
                "workspaces": cls,
                "mode": mode,
                **summary(values),
                "exact_scans": exact[(cls, mode)],
                "empty_results": empty[(cls, mode)],
            }
        )
    log(f"latency: load {min(load)}-{max(load)}")
    return rows


def recall(searcher: Searcher, forced: Searcher, data: Dataset, args: Any) -> list[dict[str, Any]]:
    names = list(data.sizes)
    labels = np.asarray(data.workspaces)
    rows = []
    total = len(data.workspaces)
    small = next(n for n in reversed(names) if data.sizes[n] >= 0.01 * total)
    for workspace, label, who in (
        (names[0], "largest", searcher),
        (names[-1], "smallest", searcher),
        (names[-1], "smallest, HNSW forced", forced),
        (small, "smallest of at least 1 %, HNSW forced", forced),
    ):
        members = np.flatnonzero(labels == workspace)
        block = data.vectors[members]
        scores, fallbacks = [], 0
        for q in range(min(args.recall_queries, len(data.queries))):
            vector = data.query_vectors[q]
            truth = {f"r{members[i]}" for i in np.argsort(-(block @ vector))[:10]}
            query = SearchQuery(text=data.queries[q], workspace=workspace, mode="vector", k=10)
            response = who.search(query, vector=vector)
            fallbacks += response.exact
            found = {r.record_key for r in response.results}
            scores.append(len(found & truth) / min(10, len(members)))
        plan = who.explain(
            SearchQuery(text=data.queries[0], workspace=workspace, mode="vector", k=10),
            vector=data.query_vectors[0],
        )
        rows.append(
            {
                "workspace": f"{workspace} ({label})",
                "rows": len(members),
                "queries": len(scores),
                "recall_at_10": round(statistics.fmean(scores), 4),
                "min": round(min(scores), 2),
                "exact_scans": fallbacks,
                "plan": "HNSW index scan" if "_hnsw" in plan else "exact (no HNSW)",
            }
        )
    return rows


def query_embedding(model: SentenceTransformerEmbedder, data: Dataset, n: int) -> dict:
    model.embed(data.queries[:5])
    values = []
    for text_ in data.queries[:n]:
        started = time.perf_counter()
        model.embed([text_])
        values.append(time.perf_counter() - started)
    return summary(values)


# --- report -----------------------------------------------------------------------------------


def markdown(document: dict[str, Any]) -> str:
    facts = document["machine"]
    lines = [
        f"Search latency, {facts['date']}: {document['data']['rows']:,} vectors, "
        f"{len(document['data']['workspaces'])} workspaces; {facts['cpu_count']} CPUs "
        f"({facts['cpu_model']}), PostgreSQL {facts['postgresql_version']} "
        f"(shared_buffers {facts['postgresql_settings']['shared_buffers']}), git {facts['git']}; "
        f"load {facts['load_before']} before, {facts['load_after']} after",
        "",
        "| workspaces | mode | n | p50 ms | p95 ms | p99 ms | mean ms | exact scans |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in document["latency"]:
        lines.append(
            f"| {row['workspaces']} | {row['mode']} | {row['n']} | {row['p50_ms']} | "
            f"{row['p95_ms']} | {row['p99_ms']} | {row['mean_ms']} | {row['exact_scans']} |"
        )
    e = document["query_embedding"]
    lines += [
        "",
        f"Query embedding (one text, {facts['device']}): p50 {e['p50_ms']} ms, "
        f"p95 {e['p95_ms']} ms (not included above).",
        "",
        "| recall@10 vs exact | rows | queries | recall@10 | min | plan | exact scans |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in document["recall"]:
        lines.append(
            f"| {row['workspace']} | {row['rows']:,} | {row['queries']} | "
            f"{row['recall_at_10']} | {row['min']} | {row['plan']} | {row['exact_scans']} |"
        )
    s = document["storage"]
    lines += [
        "",
        f"Fill {s['fill_seconds']} s, HNSW index + VACUUM (ANALYZE) {s['index_seconds']} s, "
        f"table with indexes {s['bytes'] / 2**20:.0f} MiB. Workspace sizes: "
        + ", ".join(str(n) for n in document["data"]["workspaces"].values()),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search_latency",
        description="Search latency per mode and HNSW recall@10 on 100,000 vectors.",
    )
    parser.add_argument("--summaries", type=Path, default=DATA / "package-summaries-20k.tsv")
    parser.add_argument("--rows", type=positive, default=100_000)
    parser.add_argument("--workspaces", type=positive, default=20)
    parser.add_argument("--ratio", type=float, default=0.72, help="size of workspace i+1 / i")
    parser.add_argument("--queries", type=positive, default=500, help="held-out query texts")
    parser.add_argument("--rounds", type=positive, default=300, help="queries per row measured")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--recall-queries", type=positive, default=200)
    parser.add_argument("--ef-search", type=positive, default=SearchOptions().ef_search)
    parser.add_argument("--min-candidates", type=positive, default=SearchOptions().min_candidates)
    parser.add_argument("--exact-below", type=int, default=SearchOptions().exact_below)
    parser.add_argument("--index-memory", default="1GB", help="maintenance_work_mem of the build")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model = SentenceTransformerEmbedder(device="cpu")
    facts: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine_facts(), cpu_model=cpu_model(), device=model.device)
    facts["load_before"] = round(os.getloadavg()[0], 2)
    data = build_dataset(args, model)

    admin, facts["server"] = admin_url()
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    forced_url = make_url(url).update_query_dict(
        {"options": "-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off"}
    )
    forced_engine = engine_for(forced_url.render_as_string(hide_password=False))
    options = SearchOptions(
        ef_search=args.ef_search, min_candidates=args.min_candidates, exact_below=args.exact_below
    )
    document: dict[str, Any] = {
        "benchmark": "search_latency",
        "machine": facts,
        "parameters": {k: str(v) for k, v in vars(args).items() if k != "json"},
        "targets": TARGETS,
        "data": {"rows": len(data.texts), "workspaces": data.sizes},
    }
    try:
        migrate.upgrade(engine)
        facts.update(server_facts(engine))
        document["storage"] = store(engine, model, data, args)
        searcher = Searcher(engine, model, options=options)
        # The planner may only take the index, and the searcher may not choose exact itself.
        forced = Searcher(forced_engine, model, options=replace(options, exact_below=0))
        document["query_embedding"] = query_embedding(model, data, 100)
        log("latency")
        document["latency"] = latency(searcher, data, args)
        log("recall")
        document["recall"] = recall(searcher, forced, data, args)
    finally:
        forced_engine.dispose()
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
