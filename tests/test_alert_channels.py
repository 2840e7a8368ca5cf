"""Alert channels delivering for real: e-mail to a local SMTP server (aiosmtpd), a webhook to
a local HTTP server through apprise, the log. (Prefect blocks and events: test_monitor_flow.)"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from quality.alerts import Alert, Severity, Transition
from quality.channels import (
    AppriseChannel,
    ChannelError,
    EmailChannel,
    LogChannel,
    Notification,
    build_channels,
    deliver,
)
from quality.config import ChannelsConfig, EmailChannelConfig
from quality.metrics import Scope
from tests.monitoring_data import NOW
from tests.smtp_sink import SmtpSink
from tests.webhook_sink import WebhookSink


def alert(*, severity: Severity = Severity.CRITICAL, status: str = "firing") -> Alert:
    return Alert(
        id=1,
        rule="completeness",
        metric="completeness_rate",
        scope=Scope(source="notes"),
        severity=severity,
        status=status,
        comparison="below",
        value=62.5,
        threshold=70.0,
        message="completeness_rate is 62.5, below the critical threshold 70",
        first_seen=NOW,
        last_seen=NOW + timedelta(minutes=5),
        resolved_at=NOW + timedelta(minutes=5) if status == "resolved" else None,
        notified_at=None,
        notified_status=None,
        notified_severity=None,
        notify_error=None,
    )


STARTED = Notification(Transition.STARTED, alert())


def email_config(sink: SmtpSink, **extra: object) -> EmailChannelConfig:
    return EmailChannelConfig.model_validate(
        {
            "host": sink.host,
            "port": sink.port,
            "security": "none",
            "sender": "enrich@example.org",
            "to": ["data-team@example.org", "oncall@example.org"],
            **extra,
        }
    )


def test_email_reaches_the_smtp_server_with_subject_text_and_html() -> None:
    with SmtpSink() as sink:
        EmailChannel(email_config(sink)).send(STARTED)

    ((recipients, message),) = sink.received()
    assert recipients == ["data-team@example.org", "oncall@example.org"]
    assert message["Subject"] == (
        "[enrich] CRITICAL completeness (source=notes): "
        "completeness_rate is 62.5, below the critical threshold 70"
    )
    assert message["From"] == "enrich@example.org"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert "Scope: source=notes" in plain.get_content()
    assert "Threshold: below 70" in plain.get_content()
    assert "<th align='left'>Value</th><td>62.5</td>" in html.get_content()


def test_a_resolution_email_says_resolved() -> None:
    with SmtpSink() as sink:
        EmailChannel(email_config(sink)).send(
            Notification(Transition.RESOLVED, alert(status="resolved"))
        )

    ((_, message),) = sink.received()
    assert message["Subject"].startswith("[enrich] RESOLVED completeness (source=notes)")
    assert "Resolved:" in message.get_body(preferencelist=("plain",)).get_content()


def test_the_notifications_of_one_delivery_share_one_smtp_connection() -> None:
    with SmtpSink() as sink:
        deliveries = deliver(
            [STARTED, Notification(Transition.RESOLVED, alert(status="resolved"))],
            [EmailChannel(email_config(sink))],
        )

    assert [d.delivered_to for d in deliveries] == [["email"], ["email"]]
    assert len(sink.received()) == 2
    assert sink.connections == 1


def test_email_login_needs_the_password_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENRICH_SMTP_PASSWORD", raising=False)
    with SmtpSink() as sink:
        channel = EmailChannel(email_config(sink, username="enrich"))
        with pytest.raises(ChannelError, match="ENRICH_SMTP_PASSWORD"):
            channel.send(STARTED)
    assert sink.received() == []


def test_an_unreachable_smtp_server_is_a_channel_error() -> None:
    with SmtpSink() as sink:
        config = email_config(sink)
    # The server has stopped: nothing listens on its port now.
    with pytest.raises(ChannelError, match=r"^email: SMTP via 127\.0\.0\.1 failed"):
        EmailChannel(config).send(STARTED)


def test_a_webhook_receives_the_notification_as_json() -> None:
    with WebhookSink() as sink:
        AppriseChannel(f"json://127.0.0.1:{sink.port}/hooks/enrich").send(STARTED)

    (request,) = sink.requests
    assert (request.method, request.path) == ("POST", "/hooks/enrich")
    payload = request.json()
    assert payload["title"] == STARTED.subject
    assert "Metric: completeness_rate" in payload["message"]
    assert payload["type"] == "failure"


def test_a_failing_webhook_is_a_channel_error() -> None:
    with WebhookSink(status=500) as sink:
        channel = AppriseChannel(f"json://127.0.0.1:{sink.port}/hook")
        with pytest.raises(ChannelError, match=r"^apprise:json: delivery failed"):
            channel.send(STARTED)


def test_an_apprise_url_it_does_not_understand_is_refused() -> None:
    with pytest.raises(ChannelError, match="not a URL apprise understands"):
        AppriseChannel("nonsense://somewhere")


def test_the_log_always_gets_every_notification(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="quality.channels"):
        deliveries = deliver([STARTED], [])

    assert [d.delivered_to for d in deliveries] == [["log"]]
    assert [r.getMessage() for r in caplog.records] == [f"alert started: {STARTED.subject}"]


def test_one_failing_channel_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    with WebhookSink() as good, WebhookSink(status=500) as bad:
        channels = [
            AppriseChannel(f"json://127.0.0.1:{bad.port}/hook"),
            AppriseChannel(f"json://127.0.0.1:{good.port}/hook"),
        ]
        with caplog.at_level(logging.INFO, logger="quality.channels"):
            (delivery,) = deliver([STARTED], channels, log_channel=LogChannel())

    assert len(good.requests) == 1
    assert delivery.delivered
    assert [error.channel for error in delivery.errors] == ["apprise:json"]
    assert "alert notification not delivered" in caplog.text


def test_configured_channels_are_built_in_order() -> None:
    config = ChannelsConfig.model_validate(
        {
            "email": {"host": "smtp.example.org", "sender": "a@example.org", "to": ["b@x.org"]},
            "apprise_urls": ["json://127.0.0.1:9/hook"],
            "notification_blocks": ["slack-webhook/data-team"],
        }
    )

    assert [channel.name for channel in build_channels(config)] == [
        "email",
        "apprise:json",
        "block:slack-webhook/data-team",
    ]
