"""Redaction: precision and recall per detector, and records per second of the redact stage.

1. **Quality**, on two sets:
   - the hand-written corpus of the tests (``tests/redaction_corpus.py``): every positive must
     be redacted and every negative left alone, so this shows the tests hold, nothing more;
   - a generated set (``benchmarks/pii_samples.py``, seeded): values drawn at random from the
     formats each kind is written in, inside support sentences full of order ids, dates,
     amounts and tracking numbers, plus negatives (random references of 6-20 digits, near
     misses of each kind, versions, hashes, times).

   Scored by span, per kind K: **recall** = personal values of kind K entirely covered by a
   finding of kind K / values of kind K; **precision** = findings of kind K that overlap a
   value of kind K / findings of kind K. A finding anywhere in a negative, or on the ordinary
   numbers around a positive, is a false positive. **Leaked** counts values not entirely
   covered by any finding (of any kind): what would reach storage.

2. **Speed**:
   - the redactor alone: ``Redactor.redact_values`` over generated support records (a subject,
     a body of 2-6 sentences, a customer with an e-mail and a phone), single thread;
   - the stages, in a database of their own: N such records in a source table with a related
     customers table; a pipeline ``redact → context`` (privacy ``redact``) drained by
     ``Runner.drain`` at the given batch size, timed per stage from the runner's batch reports
     (claim, run, write outcomes), against ``context`` alone on the same rows with privacy
     ``none`` (reads and renders without redaction) as the baseline.

    .venv/bin/python -m benchmarks.redaction [--seed 7] [--per-kind 1000] [--per-negative 1000]
        [--records 20000] [--batch-size 500] [--repeat 3] [--skip-stage] [--json PATH]

Like the other benchmarks it uses a database of its own (on DATABASE_URL's server when set,
otherwise the embedded server in ``.enrich/bench-pgdata``) and drops it at the end. Run it under
``flock /tmp/enrich-bench.lock``; results go, dated, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks import pii_samples
from benchmarks.queue_throughput import admin_url, log, machine_facts, server_facts
from enrichment import embedded, migrate
from enrichment.config import parse_config
from enrichment.database import engine_for
from enrichment.pii import KINDS
from enrichment.redaction import Redactor
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, reembed, sync
from tests.redaction_corpus import NEGATIVES, POSITIVES

# --- quality ---------------------------------------------------------------------------------


def corpus_samples() -> list[pii_samples.Sample]:
    """The tests' corpus as scored samples: each positive value located in its text."""
    samples = []
    for detector, examples in POSITIVES.items():
        for example in examples:
            spans = []
            for value in example.values:
                start = example.text.index(value)
                spans.append((start, start + len(value), example.kind))
            samples.append(pii_samples.Sample(example.text, tuple(spans), detector, example.field))
    for category, texts in NEGATIVES.items():
        samples += [pii_samples.Sample(t, (), f"negative: {category}") for t in texts]
    return samples


def score(redactor: Redactor, samples: Sequence[pii_samples.Sample]) -> dict[str, Any]:
    gold: Counter[str] = Counter()
    found: Counter[str] = Counter()
    findings: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    leaked: Counter[str] = Counter()
    negatives: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # category: [texts, flagged]
    false_positives: list[str] = []
    for sample in samples:
        hits = redactor.find(sample.text, field=sample.field)
        for start, end, kind in sample.spans:
            gold[kind] += 1
            if any(h.kind == kind and h.start <= start and h.end >= end for h in hits):
                found[kind] += 1
            covered = _covered(hits, start, end)
            if not covered:
                leaked[kind] += 1
        for hit in hits:
            findings[hit.kind] += 1
            if any(
                kind == hit.kind and hit.start < end and hit.end > start
                for start, end, kind in sample.spans
            ):
                correct[hit.kind] += 1
            elif len(false_positives) < 40:
                false_positives.append(
                    f"{hit.kind}: {sample.text[hit.start : hit.end]!r} in {sample.text!r}"
                )
        if not sample.spans:
            negatives[sample.category][0] += 1
            negatives[sample.category][1] += bool(hits)
    per_kind = {}
    for kind in (*KINDS,):
        per_kind[kind] = {
            "values": gold[kind],
            "recall": _ratio(found[kind], gold[kind]),
            "findings": findings[kind],
            "precision": _ratio(correct[kind], findings[kind]),
            "leaked": leaked[kind],
        }
    return {
        "per_kind": per_kind,
        "negatives": {
            category: {"texts": texts, "flagged": flagged, "rate": _ratio(flagged, texts)}
            for category, (texts, flagged) in negatives.items()
        },
        "false_positive_examples": false_positives,
    }


def bare_digit_rates(redactor: Redactor, seed: int, per_length: int) -> dict[int, float]:
    """Share of random digit runs of each card length, with no word in front, that some
    detector takes: the floor of Luhn plus issuer prefixes on numbers nobody labelled."""
    rng = random.Random(seed)
    rates = {}
    for length in range(13, 20):
        flagged = 0
        for _ in range(per_length):
            digits = str(rng.randint(1, 9)) + "".join(
                rng.choice("0123456789") for _ in range(length - 1)
            )
            flagged += bool(redactor.find(f"Then {digits} came back."))
        rates[length] = flagged / per_length
    return rates


def _covered(hits: Sequence[Any], start: int, end: int) -> bool:
    position = start
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.start <= position < hit.end:
            position = hit.end
    return position >= end


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# --- speed -----------------------------------------------------------------------------------

_SUBJECTS = ("Where is my order?", "Damaged item", "Refund request", "Address change")


def support_records(seed: int, count: int) -> list[dict[str, Any]]:
    """Support messages like the demo's: 2-6 sentences, about one in three with personal data."""
    rng = random.Random(seed)
    records = []
    for index in range(count):
        sentences = []
        for _ in range(rng.randint(2, 6)):
            if rng.random() < 0.12:
                sentences.append(pii_samples.positive(rng, rng.choice(pii_samples.KINDS)).text)
            else:
                sentences.append(pii_samples.negative(rng, "ordinary sentence").text)
        first, last = rng.choice(pii_samples._FIRST), rng.choice(pii_samples._LAST)
        records.append(
            {
                "id": index + 1,
                "workspace_id": f"ws{index % 5}",
                "subject": rng.choice(_SUBJECTS),
                "body": " ".join(sentences),
                "customer": {
                    "name": f"{first.title()} {last.title()}",
                    "email": pii_samples.email(rng),
                    "phone": pii_samples.phone(rng)[0],
                },
            }
        )
    return records


def redactor_speed(records: Sequence[dict[str, Any]], repeat: int) -> dict[str, Any]:
    redactor = Redactor()
    characters = sum(
        len(r["subject"]) + len(r["body"]) + len(json.dumps(r["customer"])) for r in records
    )
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for record in records:
            redactor.redact_values(record["subject"], field="subject")
            redactor.redact_values(record["body"], field="body")
            redactor.redact_values(record["customer"], field="customer")
        runs.append(time.perf_counter() - started)
    best, median = min(runs), statistics.median(runs)
    return {
        "records": len(records),
        "mean_chars": round(characters / len(records)),
        "records_per_second_median": len(records) / median,
        "records_per_second_best": len(records) / best,
        "mb_per_second_median": characters / median / 1e6,
    }


def _source(privacy: str, stages: list[Any], batch: int) -> dict[str, Any]:
    return {
        "name": f"bench_{privacy}",
        "table": "public.bench_messages",
        "columns": ["subject", "body"],
        "entity": {"type": "support_message", "category": "Support message"},
        "related": [
            {
                "name": "customer",
                "table": "public.bench_customers",
                "join": {"local": "customer_id", "remote": "id"},
                "fields": ["name", "email", "phone"],
            }
        ],
        "privacy": privacy,
        "stages": [{**s, "batch_size": batch} if isinstance(s, dict) else s for s in stages],
    }


def load_rows(engine: Engine, records: Sequence[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.bench_messages, public.bench_customers; "
                "CREATE TABLE public.bench_customers (id int PRIMARY KEY, name text, email text, "
                "phone text); CREATE TABLE public.bench_messages (id int PRIMARY KEY, "
                "workspace_id text, customer_id int, subject text, body text, "
                "updated_at timestamptz DEFAULT now())"
            )
        )
        connection.execute(
            text("INSERT INTO public.bench_customers VALUES (:id, :name, :email, :phone)"),
            [{"id": r["id"], **r["customer"]} for r in records],
        )
        connection.execute(
            text(
                "INSERT INTO public.bench_messages (id, workspace_id, customer_id, subject, body) "
                "VALUES (:id, :workspace_id, :id, :subject, :body)"
            ),
            [{k: r[k] for k in ("id", "workspace_id", "subject", "body")} for r in records],
        )
        connection.execute(text("ANALYZE public.bench_messages, public.bench_customers"))


def stage_run(engine: Engine, privacy: str, batch: int) -> dict[str, float]:
    """Queue every row for a fresh source, drain it, and return seconds per stage."""
    stages: list[Any] = ["redact", "context"] if privacy == "redact" else ["context"]
    config = parse_config({"sources": [_source(privacy, stages, batch)]})
    with engine.begin() as connection:
        connection.execute(
            text(
                "TRUNCATE enrichment.attempts, enrichment.record_state, enrichment.events, "
                "enrichment.sources"
            )
        )
    pipelines = build_pipelines(engine, config, Settings(retry_delays=(), retry_jitter=0.0))
    sync(engine, config, pipelines)
    with engine.begin() as connection:
        queued = reembed(connection, config.sources[0])
    runner = Runner(engine, pipelines, batch_size=batch)
    runner.fold_events()
    with engine.begin() as connection:
        connection.execute(text("ANALYZE enrichment.record_state"))
    report = runner.drain()
    if report.total("completed") != queued * len(stages):
        raise RuntimeError(f"{privacy}: {report.summary()} for {queued} records")
    seconds: dict[str, float] = defaultdict(float)
    for batch_report in report.batches:
        seconds[batch_report.stage] += batch_report.seconds
    return {stage: queued / value for stage, value in seconds.items()}


def stage_speed(
    engine: Engine, records: Sequence[dict[str, Any]], batch: int, repeat: int
) -> dict[str, Any]:
    load_rows(engine, records)
    runs: dict[str, list[float]] = defaultdict(list)
    for attempt in range(repeat):
        for privacy in ("redact", "none") if attempt % 2 == 0 else ("none", "redact"):
            load = os.getloadavg()[0]
            for stage, rate in stage_run(engine, privacy, batch).items():
                runs[f"{stage} ({privacy})"].append(rate)
            log(f"run {attempt + 1}/{repeat} privacy={privacy} load={load:.2f}")
    return {
        name: {
            "records_per_second_median": statistics.median(rates),
            "records_per_second_best": max(rates),
            "runs": rates,
        }
        for name, rates in runs.items()
    }


# --- report ----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def quality_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| kind | values | recall | findings | precision | leaked |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, row in result["per_kind"].items():
        lines.append(
            f"| {kind} | {row['values']} | {_pct(row['recall'])} | {row['findings']} | "
            f"{_pct(row['precision'])} | {row['leaked']} |"
        )
    lines += ["", "| negatives | texts | flagged | rate |", "|---|---:|---:|---:|"]
    for category, row in result["negatives"].items():
        lines.append(f"| {category} | {row['texts']} | {row['flagged']} | {_pct(row['rate'])} |")
    return lines


def markdown(document: dict[str, Any]) -> str:
    facts = document["machine"]
    lines = [
        f"Date: {facts['date']}; git {facts.get('git')}; {facts['cpu_count']} CPUs, "
        f"{facts['platform']}, Python {facts['python']}; load average before "
        f"{facts['load_before']}, after {facts.get('load_after')}.",
        "",
        f"### Generated set (seed {document['parameters']['seed']})",
        "",
        *quality_table(document["generated"]),
        "",
        "Random digit runs with no word in front, taken for personal data, by length: "
        + ", ".join(f"{n}: {_pct(rate)}" for n, rate in document["bare_digits"].items()),
        "",
        "### Hand-written corpus (the tests)",
        "",
        *quality_table(document["corpus"]),
        "",
        "### Speed",
        "",
        "| what | records/s (median) | records/s (best) |",
        "|---|---:|---:|",
    ]
    speed = document["redactor"]
    lines.append(
        f"| redactor alone ({speed['records']} records, {speed['mean_chars']} chars each) | "
        f"{speed['records_per_second_median']:,.0f} | {speed['records_per_second_best']:,.0f} |"
    )
    for name, row in document.get("stages", {}).items():
        lines.append(
            f"| stage {name} | {row['records_per_second_median']:,.0f} | "
            f"{row['records_per_second_best']:,.0f} |"
        )
    if document["generated"]["false_positive_examples"]:
        lines += ["", "False positives (generated set, first ones):", ""]
        lines += [f"- {example}" for example in document["generated"]["false_positive_examples"]]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-kind", type=int, default=1000)
    parser.add_argument("--per-negative", type=int, default=1000)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-stage", action="store_true")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    facts: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    facts.update(machine_facts())
    facts["load_before"] = round(os.getloadavg()[0], 2)
    document: dict[str, Any] = {"benchmark": "redaction", "machine": facts}
    document["parameters"] = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
    }
    redactor = Redactor()
    document["generated"] = score(
        redactor, pii_samples.samples(args.seed, args.per_kind, args.per_negative)
    )
    document["corpus"] = score(redactor, corpus_samples())
    document["bare_digits"] = bare_digit_rates(redactor, args.seed, args.per_negative * 10)
    records = support_records(args.seed, args.records)
    document["redactor"] = redactor_speed(records, args.repeat)
    log(f"redactor: {document['redactor']['records_per_second_median']:,.0f} records/s")
    if not args.skip_stage:
        admin, facts["server"] = admin_url()
        name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        embedded.ensure_database(admin, name)
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        engine = engine_for(url)
        try:
            migrate.upgrade(engine)
            facts.update(server_facts(engine))
            document["stages"] = stage_speed(engine, records, args.batch_size, args.repeat)
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
