"""AI stages on the local backends: classification quality and records/s per stage.

1. **Quality on the held-out set**: the fulfilment demo's classifier (enrich.yaml:
   its labels, its temperature fitted on deployments/fulfilment-calibration.jsonl) on
   tests/data/exceptions_eval.jsonl (300 hand-written descriptions, 60 per type):
   accuracy, macro-F1, expected calibration error, accuracy above and below the gate
   (min_confidence), the reliability bins.
2. **The demo pipeline**: ``--records`` generated fulfilment exceptions (enrichment.fulfilment,
   seed 7), under a temporary Prefect API (the resolution events go there), through redact →
   context → classify → resolve → summarize → chunk → embed, one stage at a time
   (``Runner.drain(stages=[stage])``), so each stage's wall time is its own: claim, read the
   earlier outputs, run, write the outcomes and the written-back columns. The model is loaded,
   the calibration fitted and the events client started before the clock starts (that one-off
   cost is reported apart). Then the labels and actions are compared with the generator's
   ground truth.

    .venv/bin/python -m benchmarks.ai_stages [--records 500] [--batch-size 64]
        [--workspaces 4] [--json PATH]

Run it under ``flock /tmp/enrich-bench.lock``. Like the other benchmarks it uses a database of
its own (DATABASE_URL's server, else the embedded one in ``.enrich/bench-pgdata``), dropped at
the end, and records the load averages before and after: the figures are only comparable at a
similar load. Results are collected in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect.events import emit_event
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks.queue_throughput import REPO, admin_url, machine_facts
from enrichment import capture, embedded, migrate
from enrichment.calibration import expected_calibration_error, reliability
from enrichment.classification import Choice, EmbeddingClassifier, Question
from enrichment.config import ClassifyStageConfig, EnrichConfig, load_config
from enrichment.database import engine_for
from enrichment.fulfilment import seed, truth_records
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, reembed, sync

DEMO = REPO / "enrich.yaml"
EVALUATION = REPO / "tests" / "data" / "exceptions_eval.jsonl"
STAGES = ("redact", "context", "classify", "resolve", "summarize", "chunk", "embed")


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def macro_f1(labels: Sequence[str], predicted: Sequence[str]) -> float:
    scores = []
    for label in sorted(set(labels)):
        pairs = list(zip(predicted, labels, strict=True))
        tp = sum(p == label and t == label for p, t in pairs)
        fp = sum(p == label and t != label for p, t in pairs)
        fn = sum(p != label and t == label for p, t in pairs)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def quality(
    labels: Sequence[str], predicted: Sequence[str], confidence: Sequence[float], gate: float
) -> dict[str, Any]:
    correct = np.array([p == t for p, t in zip(predicted, labels, strict=True)])
    conf = np.asarray(confidence)
    high = conf >= gate
    return {
        "items": len(labels),
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(macro_f1(labels, predicted), 4),
        "ece": round(expected_calibration_error(conf.tolist(), correct.tolist()), 4),
        "gate": gate,
        "above_gate_share": round(float(high.mean()), 4),
        "accuracy_above_gate": round(float(correct[high].mean()), 4) if high.any() else None,
        "accuracy_below_gate": round(float(correct[~high].mean()), 4) if (~high).any() else None,
        "reliability": [
            {
                "bin": f"{b.low:.1f}-{b.high:.1f}",
                "n": b.count,
                "confidence": round(b.confidence, 3),
                "accuracy": round(b.accuracy, 3),
            }
            for b in reliability(conf.tolist(), correct.tolist())
        ],
    }


def classifier_of(config: EnrichConfig, engine: Engine | None) -> tuple[EmbeddingClassifier, float]:
    from enrichment.ai_stages import build_classify
    from enrichment.stages.classify import ClassifyStage

    source = config.sources[0]
    stage_config = source.stage("classify")
    assert isinstance(stage_config, ClassifyStageConfig)
    stage = build_classify(engine, source, stage_config)  # type: ignore[arg-type]
    assert isinstance(stage, ClassifyStage)
    assert isinstance(stage.classifier, EmbeddingClassifier)
    return stage.classifier, stage_config.min_confidence or 0.0


def held_out(config: EnrichConfig) -> dict[str, Any]:
    classifier, gate = classifier_of(config, None)
    started = time.perf_counter()
    temperature = classifier.temperature  # loads the model, embeds prototypes, fits
    fitted = time.perf_counter() - started
    items = [json.loads(line) for line in EVALUATION.read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    answers = classifier.classify([Question(item["text"]) for item in items])
    seconds = time.perf_counter() - started
    choices = [a for a in answers if isinstance(a, Choice)]
    assert len(choices) == len(items)
    result = quality(
        [item["label"] for item in items],
        [c.option for c in choices],
        [c.confidence for c in choices],
        gate,
    )
    result.update(
        temperature=round(temperature, 5),
        none_similarity=classifier.none_similarity,
        fit_seconds=round(fitted, 2),
        classify_per_second=round(len(items) / seconds, 1),
    )
    return result


def pipeline_run(
    engine: Engine, config: EnrichConfig, records: int, workspaces: int, batch_size: int
) -> dict[str, Any]:
    summary = seed(engine, records=records, workspaces=workspaces, seed=7)
    log(f"seeded {records} exceptions in {summary.seconds:.1f}s")
    source = config.sources[0]
    pipelines = build_pipelines(engine, config, Settings())
    sync(engine, config, pipelines)
    pipeline = pipelines[source.name]
    started = time.perf_counter()
    for spec in pipeline.stages:  # model loads and calibration fits: once per process
        classifier = getattr(spec.stage, "classifier", None)
        if isinstance(classifier, EmbeddingClassifier):
            classifier.temperature  # noqa: B018 - loads, embeds the prototypes, fits
        summarizer = getattr(spec.stage, "summarizer", None)
        for embedder in (
            getattr(summarizer, "embedder", None),
            getattr(spec.stage, "embedder", None),
        ):
            if embedder is not None:
                embedder.embed(["warm-up"])
    # The first event starts the events client; a production worker has it running already.
    emit_event(event="enrichment.benchmark.warm-up", resource={"prefect.resource.id": "bench"})
    warm_up = time.perf_counter() - started
    with engine.begin() as connection:
        capture.install(connection, source)
        reembed(connection, source)
    runner = Runner(engine, pipelines, batch_size=batch_size)
    runner.fold_events()
    stages: dict[str, dict[str, Any]] = {}
    missing = [stage for stage in pipeline.stage_names if stage not in STAGES]
    if missing:
        raise SystemExit(
            f"the demo configuration has stages this benchmark does not time: {missing}"
        )
    for stage in (name for name in STAGES if name in pipeline.stage_names):
        started = time.perf_counter()
        report = runner.drain(stages=[stage])
        seconds = time.perf_counter() - started
        claimed = report.total("claimed")
        stages[stage] = {
            "records": claimed,
            "completed": report.total("completed"),
            "skipped": report.total("skipped"),
            "failed": report.total("failed"),
            "seconds": round(seconds, 2),
            "records_per_second": round(claimed / seconds, 1) if seconds else None,
        }
        log(f"{stage}: {claimed} records in {seconds:.1f}s")
        if not claimed:
            raise SystemExit(f"stage {stage} had nothing to do: the benchmark measures nothing")
    with engine.connect() as connection:
        truths = truth_records(connection)
        rows = connection.execute(
            text(
                "SELECT id, ai_label, ai_confidence, ai_action FROM fulfilment.exceptions "
                "ORDER BY id"
            )
        ).all()
        capture.uninstall(connection, source)
        connection.commit()
    _, gate = classifier_of(config, engine)
    labels = quality(
        [truths[r.id].exception_type for r in rows],
        [r.ai_label or "" for r in rows],
        [r.ai_confidence or 0.0 for r in rows],
        gate,
    )
    resolved = [r for r in rows if r.ai_action is not None]
    right_label = [r for r in resolved if r.ai_label == truths[r.id].exception_type]
    actions = {
        "resolved": len(resolved),
        "action_accuracy": round(
            sum(r.ai_action == truths[r.id].recommended_action for r in resolved)
            / max(len(resolved), 1),
            4,
        ),
        "action_accuracy_when_label_right": round(
            sum(r.ai_action == truths[r.id].recommended_action for r in right_label)
            / max(len(right_label), 1),
            4,
        ),
    }
    return {
        "records": records,
        "warm_up_seconds": round(warm_up, 2),
        "stages": stages,
        "labels": labels,
        "actions": actions,
    }


def markdown(result: dict[str, Any]) -> str:
    held = result["held_out"]
    lines = [
        f"AI stages, {result['date']} (git {result['machine']['git']}, "
        f"{result['machine']['cpus_usable']} CPUs; load average "
        f"{result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after)",
        "",
        "| classification (local) | items | accuracy | macro-F1 | ECE | "
        f"≥ {held['gate']} | accuracy ≥ / < gate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, q in (("held-out set", held), ("demo data", result["pipeline"]["labels"])):
        lines.append(
            f"| {name} | {q['items']} | {q['accuracy']:.3f} | {q['macro_f1']:.3f} | "
            f"{q['ece']:.3f} | {q['above_gate_share']:.0%} | "
            f"{q['accuracy_above_gate']} / {q['accuracy_below_gate']} |"
        )
    lines += ["", "| stage | records | seconds | records/s |", "|---|---|---|---|"]
    for stage, s in result["pipeline"]["stages"].items():
        lines.append(f"| {stage} | {s['records']} | {s['seconds']} | {s['records_per_second']} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--workspaces", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    load_before = os.getloadavg()
    config = load_config(DEMO)
    log("classifier on the held-out set")
    result: dict[str, Any] = {
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "machine": machine_facts(),
        "load_before": load_before,
        "held_out": held_out(config),
    }
    admin, where = admin_url()
    name = f"enrich_bench_ai_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    try:
        migrate.upgrade(engine)
        log(f"demo pipeline on {args.records} exceptions ({where})")
        # A temporary Prefect API receives the resolution events, as a server would.
        with prefect_test_harness(server_startup_timeout=120):
            result["pipeline"] = pipeline_run(
                engine, config, args.records, args.workspaces, args.batch_size
            )
    finally:
        engine.dispose()
        embedded.drop_database(admin, name)
    result["load_after"] = os.getloadavg()
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
