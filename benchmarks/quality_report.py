"""The quality report's cost on a large schema: the Great Expectations suites and the report.

The data is built directly in SQL: ``--records`` records of one source with three stages
(context with a text of about 300 characters, classify with a confidence, embed), all complete
except 2 % still pending for two days and 0.1 % with an e-mail address in their text, and one
384-dimension vector table with a chunk (text and vector) per record. What is timed, ``--repeat``
times (median and best reported):

- each rule's query on its own, as Great Expectations runs it (its rows; GE also runs a count);
- ``quality.expectations.validate`` (every suite through Great Expectations);
- ``quality.report.build_report`` (metrics, trends, failures, dead letters and the suites).

    flock /tmp/enrich-bench.lock .venv/bin/python -m benchmarks.quality_report \
        [--records 200000] [--repeat 3] [--json PATH]

It uses a database of its own (``enrich_bench_<pid>_<random>``) on the server of DATABASE_URL
or on the embedded server in ``.enrich/bench-pgdata``, dropped at the end. Results are in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks.queue_throughput import (
    admin_url,
    checkpoint,
    log,
    machine_facts,
    positive,
    server_facts,
)
from enrichment import embedded, migrate, vectors
from enrichment.database import engine_for
from quality.expectations import IntegrityLimits, validate
from quality.expectations.rules import (
    RECORD_STATE,
    STORED_TEXT,
    VECTORS,
    registered_tables,
    rules,
    stored_text_asset,
    vectors_asset,
)
from quality.report import build_report

DIMENSIONS = 384
_TEXT = (
    "Customer {i} writes that the parcel has not arrived and the tracking page has not changed "
    "for three days; the order was placed for an event on Friday and the team has been waiting "
    "for an answer since Monday. Please call back, the chat is too slow for this."
)


def build(engine: Engine, records: int) -> None:
    """Records, their stage rows, and one vector per record, all in SQL."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO enrichment.sources (name, stages) "
                "VALUES ('bench', ARRAY['context', 'classify', 'embed'])"
            )
        )
        connection.execute(
            text(
                """
                INSERT INTO enrichment.record_state
                    (source, record_key, stage, stage_index, workspace_id, status, attempts,
                     next_attempt_at, input_hash, output, requested_at, started_at, finished_at)
                SELECT 'bench', 'r' || i, st.stage, st.idx, 'ws' || (i % 10),
                       CASE WHEN i % 50 = 0 AND st.idx > 0 THEN 'PENDING' ELSE 'COMPLETED' END,
                       CASE WHEN i % 50 = 0 AND st.idx > 0 THEN 0 ELSE 1 END,
                       CASE WHEN i % 50 = 0 AND st.idx = 1 THEN now() END,
                       md5(i::text || st.stage),
                       CASE
                           WHEN i % 50 = 0 AND st.idx > 0 THEN NULL
                           WHEN st.stage = 'context' THEN jsonb_build_object(
                               'text', replace(:text, '{i}', i::text)
                                       || CASE WHEN i % 1000 = 7
                                               THEN ' Reach me at user' || i || '@example.com.'
                                               ELSE '' END,
                               'workspace_id', 'ws' || (i % 10),
                               'metadata', jsonb_build_object('channel', 'email', 'tier', 'Pro'))
                           WHEN st.stage = 'classify' THEN jsonb_build_object(
                               'label', 'delivery', 'confidence', round(random()::numeric, 3))
                           ELSE jsonb_build_object('chunks', 1, 'reused', 0)
                       END,
                       now() - CASE WHEN i % 50 = 0 THEN interval '2 days'
                                    ELSE interval '3 hours' END,
                       now() - interval '2 hours',
                       CASE WHEN i % 50 = 0 AND st.idx > 0 THEN NULL
                            ELSE now() - interval '2 hours' END
                FROM generate_series(1, :n) AS i
                CROSS JOIN (VALUES ('context', 0), ('classify', 1), ('embed', 2))
                     AS st(stage, idx)
                """
            ),
            {"n": records, "text": _TEXT},
        )
        table = vectors.ensure_table(
            connection, model_name="bench", model_version="bench@384", dimensions=DIMENSIONS
        )
        connection.execute(
            text(
                f"""
                INSERT INTO {table.qualified}
                    (source, record_key, chunk_index, workspace_id, chunk_text, entity_type,
                     text_hash, model_name, model_version, embedding)
                SELECT 'bench', 'r' || i, 0, 'ws' || (i % 10), replace(:text, '{{i}}', i::text),
                       'ticket', md5(i::text), 'bench', 'bench@384',
                       CAST(ARRAY(SELECT random() FROM generate_series(1, {DIMENSIONS})
                                  WHERE i > 0) AS vector)
                FROM generate_series(1, :n) AS i
                WHERE i % 50 <> 0
                """
            ),
            {"n": records, "text": _TEXT},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    checkpoint(engine)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def rule_queries(engine: Engine) -> dict[str, str]:
    """Each rule's query with its asset in place of {batch}, as Great Expectations runs it."""
    with engine.connect() as connection:
        tables = registered_tables(connection)
    assets = {
        RECORD_STATE: "SELECT * FROM enrichment.record_state",
        VECTORS: vectors_asset(tables),
        STORED_TEXT: stored_text_asset(tables),
    }
    return {
        rule.name: rule.sql.replace("{batch}", f"({assets[rule.suite]}) AS subselect")
        for rule in rules(IntegrityLimits())
    }


def measure(engine: Engine, url: str, repeat: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for name, sql in rule_queries(engine).items():

        def run(sql: str = sql) -> None:
            with engine.connect() as connection:
                connection.execute(text(sql)).fetchmany(200)

        results[f"rule {name}"] = timed(run, repeat)
        log(f"rule {name}: {min(results[f'rule {name}']):.2f} s")
    results["validate (all suites)"] = timed(lambda: validate(url), repeat)
    log(f"validate: {min(results['validate (all suites)']):.2f} s")
    results["build_report"] = timed(lambda: build_report(engine), repeat)
    log(f"build_report: {min(results['build_report']):.2f} s")
    return results


def markdown(facts: dict[str, Any], results: dict[str, list[float]]) -> str:
    lines = [
        f"{facts['date']}, {facts['records']:,} records (3 stage rows each, one vector of "
        f"{DIMENSIONS} dimensions each), {facts['cpu_count']} CPUs, PostgreSQL "
        f"{facts['postgresql_version']}, load average before: {facts['load_before']}, after: "
        f"{facts['load_after']}, git {facts['git']}",
        "",
        "| step | median s | best s |",
        "|---|---:|---:|",
    ]
    for name, seconds in results.items():
        lines.append(f"| {name} | {statistics.median(seconds):.2f} | {min(seconds):.2f} |")
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality_report")
    parser.add_argument("--records", type=positive, default=200_000)
    parser.add_argument("--repeat", type=positive, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)

    base, where = admin_url()
    name = f"enrich_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    embedded.ensure_database(base, name)
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = engine_for(url)
    try:
        migrate.upgrade(engine)
        log(f"building {args.records:,} records in {name} on {where}")
        started = time.perf_counter()
        build(engine, args.records)
        log(f"built in {time.perf_counter() - started:.1f} s")
        facts: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "records": args.records,
            "load_before": load_average(),
            **machine_facts(),
            **server_facts(engine),
        }
        results = measure(engine, url, args.repeat)
        facts["load_after"] = load_average()
        print(markdown(facts, results))
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"facts": facts, "results": results}, indent=2))
        return 0
    finally:
        engine.dispose()
        embedded.drop_database(base, name)


if __name__ == "__main__":
    sys.exit(main())
