"""The quality report against the real database: with data, with an empty database, and with
no snapshot history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from enrichment.retry import RetryPolicy
from quality.alerts import default_rules
from quality.expectations import Outcome
from quality.metrics import Metric as MetricValue
from quality.metrics import MetricName, MetricOptions, Metrics, Scope
from quality.report import Capacity, build_report, render_report, write_report
from quality.report_inputs import headlines, trends
from tests.helpers import AlwaysFails, FakeStage
from tests.quality_data import (
    classify,
    enrich,
    store_history,
    store_vectors,
    vector_table,
)

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


def _data(engine: Engine) -> None:
    """Ten classified records with vectors, four of which fail their last stage for good."""
    keys = [f"t{i}" for i in range(10)]
    confidences = {key: 0.95 if index % 3 else 0.35 for index, key in enumerate(keys)}
    enrich(engine, keys[:6], FakeStage("context"), classify(confidences))
    enrich(
        engine,
        keys[6:],
        FakeStage("context"),
        classify(confidences),
        AlwaysFails("embed", "RateLimited"),
        source="notes",
        retry=RetryPolicy(delays=(), jitter=0),
    )
    table = vector_table(engine)
    store_vectors(engine, table, [(key, "ws1", f"note {key}", [0.1, 0.2, 0.3]) for key in keys[:6]])


def test_report_renders_on_an_empty_database(db: Engine, tmp_path: Path) -> None:
    report = build_report(db)
    path, rendered = write_report(report, tmp_path / "reports")

    assert not report.has_history and report.charts == []
    assert report.failures == [] and report.dead_letter_total == 0
    assert all(
        r.outcome in (Outcome.PASSED, Outcome.NOT_APPLICABLE) for r in report.expectations.results
    )
    assert {h.status for h in report.headlines if h.metric == MetricName.COMPLETENESS_RATE} == {
        "no data"
    }
    assert path.exists() and path.with_suffix(".txt").exists()
    assert "No history yet" in rendered.html_file and "No history yet" in rendered.text
    assert "No failed attempt" in rendered.text
    assert "<img" not in rendered.html


def test_report_with_data_has_failures_dead_letters_confidence_and_checks(
    db: Engine,
) -> None:
    _data(db)

    report = build_report(db)

    (reason,) = report.failures
    assert (reason.source, reason.stage, reason.error_type) == ("notes", "embed", "RateLimited")
    assert (reason.failures, reason.records, reason.dead_lettered) == (4, 4, 4)
    assert report.dead_letter_total == 4
    assert {d.record_key for d in report.dead_letters} == {"t6", "t7", "t8", "t9"}
    # 10 scored records: t0, t3, t6 and t9 at 0.35, the others at 0.95.
    assert report.confidence[3] == 4 and report.confidence[9] == 6 and sum(report.confidence) == 10
    assert report.expectations.result("high_confidence_rate").outcome is Outcome.FAILED
    assert report.chart("confidence") is not None
    status = {h.metric: h.status for h in report.headlines}
    assert status[MetricName.DEAD_LETTERS] == "warning"  # default rule: warning above 0
    assert report.status == "critical"  # a check failed
    assert "1 check failed" in report.subject


def test_report_draws_trends_from_the_snapshot_history(db: Engine) -> None:
    _data(db)
    store_history(db, days=[6, 4, 2, 0])

    report = build_report(db)
    rendered = render_report(report)

    assert report.has_history
    assert [c.name for c in report.charts] == [
        "completeness",
        "backlog",
        "failure_rate",
        "latency",
        "confidence",
    ]
    assert all(chart.png.startswith(PNG) for chart in report.charts)
    for chart in report.charts:
        assert f'src="cid:{chart.cid}"' in rendered.html
        assert chart.data_uri in rendered.html_file
    assert "cid:" not in rendered.html_file


def test_trends_are_empty_without_the_snapshot_table(db: Engine) -> None:
    with db.connect() as connection, connection.begin() as transaction:
        connection.execute(text("DROP TABLE enrichment.metric_snapshots"))
        series = trends(
            connection, [MetricName.BACKLOG_SIZE], since=datetime(2026, 1, 1, tzinfo=UTC)
        )
        transaction.rollback()

    assert series == {MetricName.BACKLOG_SIZE: []}


def test_headline_status_follows_the_alert_rules() -> None:
    def completeness(value: float) -> str:
        metrics = Metrics(
            taken_at=datetime(2026, 1, 1, tzinfo=UTC),
            options=MetricOptions(),
            values=(MetricValue(Scope(), MetricName.COMPLETENESS_RATE, value),),
        )
        (headline,) = [
            h for h in headlines(metrics, default_rules()) if h.metric == "completeness_rate"
        ]
        return headline.status

    assert [completeness(v) for v in (90.0, 80.0, 60.0)] == ["ok", "warning", "critical"]


@pytest.mark.parametrize(
    ("capacity", "hours_left", "verdict"),
    [
        (None, None, "No throughput observed yet"),
        (100.0, 0.0, "Capacity exceeded"),
        (100.0, None, "not growing"),
        (100.0, 30.0, "in 1.2 d (around 2026-01-02 06:00 UTC)"),
    ],
)
def test_capacity_verdict(capacity: float | None, hours_left: float | None, verdict: str) -> None:
    projection = Capacity(
        backlog=10,
        throughput_per_hour=50,
        arrival_rate_per_hour=60,
        capacity_per_hour=capacity,
        growth_per_hour=10,
        hours_left=hours_left,
        sla_seconds=3600,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    assert verdict in projection.verdict
