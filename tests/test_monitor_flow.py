"""The monitor flow under a real, temporary Prefect API: snapshot, alerts, notifications by
e-mail (local SMTP server) and webhook (local HTTP server), Prefect events, Prefect blocks and
Variables as configuration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
from prefect.events.worker import EventsWorker
from prefect.variables import Variable
from prefect_email import EmailServerCredentials
from sqlalchemy import Engine, text

from enrichment.settings import get_settings
from enrichment.stages.base import Failed
from quality.alerts import Transition
from quality.channels import EmailChannel, Notification, NotificationBlockChannel
from quality.config import EmailChannelConfig
from tests.helpers import FakeStage, pipeline, runner, send
from tests.smtp_sink import SmtpSink
from tests.test_alert_channels import STARTED
from tests.webhook_sink import WebhookSink

pytestmark = pytest.mark.slow

CONFIG = """
sources:
  - name: notes
    table: public.notes
    columns: [body]
    entity: {{type: note, category: Notes}}
    stages: [context, embed]
monitoring:
  rules:
    quality: {{enabled: false}}
    failure_rate: {{enabled: false}}
  channels:
    email: {{host: 127.0.0.1, port: {smtp_port}, security: none,
             sender: enrich@example.org, to: [data-team@example.org]}}
    apprise_urls: ["json://127.0.0.1:{webhook_port}/alerts"]
"""


@pytest.fixture(scope="module")
def harness(prefect_api: str) -> None:
    """The session's temporary Prefect API (tests/conftest.py)."""


@pytest.fixture
def sinks() -> Iterator[tuple[SmtpSink, WebhookSink]]:
    with SmtpSink() as smtp, WebhookSink() as webhook:
        yield smtp, webhook


@pytest.fixture
def monitored(
    db: Engine,
    database_url: str,
    sinks: tuple[SmtpSink, WebhookSink],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    harness: None,
) -> Iterator[Engine]:
    smtp, webhook = sinks
    config = tmp_path / "enrich.yaml"
    config.write_text(CONFIG.format(smtp_port=smtp.port, webhook_port=webhook.port))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(config))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def queue_with_a_dead_letter(engine: Engine) -> Any:
    """notes: 4 records through stages a and b; record 2 fails a for good. Completeness 75 %
    (warning), one dead letter (warning)."""
    work = runner(
        engine,
        pipeline(
            "notes",
            FakeStage("a", {"2": Failed("BadInput", "field 'body'", False)}),
            FakeStage("b"),
        ),
    )
    send(engine, "notes", ["1", "2", "3", "4"])
    work.drain()
    return work


def subjects(smtp: SmtpSink) -> list[str]:
    return sorted(message["Subject"] for _, message in smtp.received())


def test_the_monitor_flow_stores_a_snapshot_and_notifies_each_change_once(
    monitored: Engine, sinks: tuple[SmtpSink, WebhookSink]
) -> None:
    from flows.monitor import monitor_flow

    smtp, webhook = sinks
    work = queue_with_a_dead_letter(monitored)

    first = monitor_flow()

    assert first["firing"] == 2
    assert sorted((c["transition"], c["rule"]) for c in first["alert_changes"]) == [
        ("started", "completeness"),
        ("started", "dead_letters"),
    ]
    assert subjects(smtp) == [
        "[enrich] WARNING completeness (source=notes): "
        "completeness_rate is 75, below the warning threshold 85",
        "[enrich] WARNING dead_letters (source=notes): "
        "dead_letters is 1, above the warning threshold 0",
    ]
    assert len(webhook.requests) == 2
    with monitored.connect() as connection:
        stored = (
            connection.execute(
                text(
                    "SELECT value FROM enrichment.metric_snapshots "
                    "WHERE name = 'completeness_rate' AND source = 'notes' "
                    "AND workspace_id IS NULL AND stage IS NULL"
                )
            )
            .scalars()
            .all()
        )
    assert stored == [75.0]

    again = monitor_flow()

    assert again["alert_changes"] == [] and again["notified"] == 0
    assert len(smtp.received()) == 2 and len(webhook.requests) == 2

    with monitored.begin() as connection:
        connection.execute(
            text(
                "UPDATE enrichment.record_state SET status = 'PENDING', "
                "attempts = 0, next_attempt_at = now() WHERE status = 'FAILED'"
            )
        )
    work.pipelines["notes"].stages[0].stage.outcomes.clear()
    work.drain()
    resolved = monitor_flow()

    assert sorted((c["transition"], c["rule"]) for c in resolved["alert_changes"]) == [
        ("resolved", "completeness"),
        ("resolved", "dead_letters"),
    ]
    assert [s for s in subjects(smtp) if "RESOLVED" in s] == [
        "[enrich] RESOLVED completeness (source=notes): completeness_rate is 100, "
        "within bounds again",
        "[enrich] RESOLVED dead_letters (source=notes): dead_letters is 0, within bounds again",
    ]
    with monitored.connect() as connection:
        counts = connection.execute(
            text("SELECT count(DISTINCT taken_at) FROM enrichment.metric_snapshots")
        ).scalar_one()
    assert counts == 3


def test_the_monitor_flow_publishes_a_markdown_summary(monitored: Engine) -> None:
    from flows.monitor import monitor_flow

    queue_with_a_dead_letter(monitored)

    state = monitor_flow(notify_channels=False, return_state=True)

    with get_client(sync_client=True) as client:  # this run's, not an earlier test's
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["enrichment-monitor"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert artifact.type == "markdown"
    assert "| source=notes | 4 | 75.0 |" in str(artifact.data)
    assert "| warning | completeness | source=notes |" in str(artifact.data)


def test_the_window_and_sla_parameters_win_over_the_overrides_parameter(
    monitored: Engine,
) -> None:
    from flows.monitor import monitor_flow

    state = monitor_flow(
        notify_channels=False,
        window_minutes=15,
        overrides={"window_minutes": 30, "freshness_sla_minutes": 45},
        return_state=True,
    )

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["enrichment-monitor"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert "(window 15 min, freshness SLA 45 min)" in str(artifact.data)


def test_every_alert_state_change_is_a_prefect_event(monitored: Engine) -> None:
    from flows.monitor import monitor_flow

    queue_with_a_dead_letter(monitored)
    since = datetime.now(UTC)  # earlier tests' runs sent the same events: only this run's count

    monitor_flow(notify_channels=False, overrides={"rules": {"dead_letters": {"enabled": False}}})

    EventsWorker.drain_all()
    events = wait_for_events("enrich.alert.started", since=since)
    started = [e for e in events if e.resource.get("enrich.rule") == "completeness"]
    assert started, [e.event for e in events]
    assert "dead_letters" not in {e.resource.get("enrich.rule") for e in events}  # disabled
    event = started[0]
    assert event.resource.id == "enrich.alert.completeness.source-notes"
    assert event.resource.get("enrich.severity") == "warning"
    assert event.resource.get("enrich.source") == "notes"
    assert event.payload["value"] == 75.0 and event.payload["threshold"] == 85.0


def wait_for_events(name: str, *, since: datetime, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[name]), occurred=EventOccurredFilter(since=since)
                ),
                limit=50,
            )
        if page.events or time.monotonic() > deadline:
            return list(page.events)
        time.sleep(0.5)


def test_a_prefect_variable_changes_thresholds_without_a_redeploy(monitored: Engine) -> None:
    from flows.monitor import monitor_flow

    queue_with_a_dead_letter(monitored)
    Variable.set(
        "enrich_monitoring",
        {
            "rules": {
                "completeness": {"warning": 70, "critical": 50},
                "dead_letters": {"warning": 5},
            }
        },
        overwrite=True,
    )
    try:
        result = monitor_flow(notify_channels=False)
    finally:
        Variable.unset("enrich_monitoring")

    assert result["alert_changes"] == []


def test_email_through_an_email_server_credentials_block(harness: None) -> None:
    with SmtpSink() as sink:
        EmailServerCredentials(
            smtp_server="127.0.0.1", smtp_type="INSECURE", smtp_port=sink.port
        ).save("enrich-test-smtp", overwrite=True)
        channel = EmailChannel(
            EmailChannelConfig(
                block="enrich-test-smtp", sender="enrich@example.org", to=["ops@example.org"]
            )
        )
        channel.send(STARTED)

    ((recipients, message),) = sink.received()
    assert recipients == ["ops@example.org"]
    assert message["Subject"] == STARTED.subject


def test_a_webhook_through_a_prefect_notification_block(harness: None) -> None:
    with WebhookSink() as sink:
        CustomWebhookNotificationBlock(
            name="enrich",
            url=f"{sink.url}/prefect-hook",
            json_data={"text": "{{subject}}", "details": "{{body}}"},
        ).save("enrich-test-hook", overwrite=True)
        NotificationBlockChannel("custom-webhook/enrich-test-hook").send(
            Notification(Transition.ESCALATED, STARTED.alert)
        )

    (request,) = sink.requests
    assert request.path == "/prefect-hook"
    assert request.json()["text"] == STARTED.subject
    assert "Severity: critical" in request.json()["details"]
    assert "escalated" in request.json()["details"]  # the transition sent, not STARTED's
