"""The report by e-mail through a real SMTP server on 127.0.0.1 (aiosmtpd): what arrives is
parsed back (subject, HTML, inline images, plain part). Settings resolution without a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect_email import EmailServerCredentials
from sqlalchemy import Engine

from quality.config import EmailChannelConfig
from quality.email import MailSettings, ReportDeliveryError, mail_config, send_report
from quality.report import RenderedReport, build_report, render_report
from tests.helpers import AlwaysFails, FakeStage
from tests.quality_data import classify, enrich, store_history
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow

SENDER = "enrich@example.org"
TEAM = ["data-team@example.org", "oncall@example.org"]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def no_mail_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ENRICH_SMTP_BLOCK",
        "ENRICH_SMTP_HOST",
        "ENRICH_SMTP_PORT",
        "ENRICH_SMTP_SECURITY",
        "ENRICH_SMTP_USER",
        "ENRICH_SMTP_USERNAME",
        "ENRICH_SMTP_FROM",
        "ENRICH_SMTP_SENDER",
        "ENRICH_REPORT_TO",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def rendered(db: Engine) -> RenderedReport:
    keys = [f"t{i}" for i in range(6)]
    enrich(db, keys, FakeStage("context"), classify(dict.fromkeys(keys, 0.9)))
    enrich(db, ["x1"], AlwaysFails("context", "Timeout"), source="notes")
    store_history(db, days=[5, 3, 1, 0])
    return render_report(build_report(db))


def _local(sink: SmtpSink) -> MailSettings:
    return MailSettings(host=sink.host, port=sink.port, security="none", sender=SENDER, to=TEAM)


def test_report_email_arrives_with_html_inline_charts_and_a_plain_part(
    rendered: RenderedReport, smtp: SmtpSink, no_mail_env: None
) -> None:
    config = mail_config(settings=_local(smtp))
    assert config is not None

    send_report(rendered, config)

    ((recipients, message),) = smtp.received()
    assert recipients == TEAM
    assert message["Subject"] == rendered.subject
    assert message["From"] == SENDER
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and "ENRICHMENT QUALITY REPORT" in plain.get_content()
    assert html is not None and "Integrity checks" in html.get_content()
    related = next(p for p in message.iter_parts() if p.get_content_type() == "multipart/related")
    images = {
        part["Content-ID"].strip("<>"): part.get_content()
        for part in related.iter_parts()
        if part.get_content_type() == "image/png"
    }
    referenced = {chart.cid for chart in rendered.charts}
    assert set(images) == referenced and len(referenced) == 5
    assert all(f"cid:{cid}" in html.get_content() for cid in referenced)
    assert all(png.startswith(b"\x89PNG") for png in images.values())


def test_report_is_sent_through_an_email_server_credentials_block(
    rendered: RenderedReport, smtp: SmtpSink, no_mail_env: None, prefect_api: str
) -> None:
    EmailServerCredentials(smtp_server=smtp.host, smtp_type="INSECURE", smtp_port=smtp.port).save(
        "report-smtp"
    )
    config = mail_config(block="report-smtp", settings=MailSettings(sender=SENDER, to=TEAM))
    assert config is not None
    send_report(rendered, config)

    ((recipients, message),) = smtp.received()
    assert recipients == TEAM and message["Subject"] == rendered.subject


def test_without_a_server_the_report_is_not_emailed(no_mail_env: None) -> None:
    assert mail_config(to=TEAM) is None


def test_a_server_without_recipients_is_an_error_naming_the_setting(no_mail_env: None) -> None:
    with pytest.raises(ReportDeliveryError, match="ENRICH_REPORT_TO"):
        mail_config(settings=MailSettings(host="127.0.0.1", sender=SENDER))


def test_mail_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, no_mail_env: None
) -> None:
    monkeypatch.setenv("ENRICH_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("ENRICH_SMTP_PORT", "2525")
    monkeypatch.setenv("ENRICH_SMTP_FROM", SENDER)
    monkeypatch.setenv("ENRICH_REPORT_TO", " data-team@example.org, oncall@example.org ")

    config = mail_config()

    assert config is not None
    assert (config.host, config.port, config.security, config.sender, config.to) == (
        "smtp.example.org",
        2525,
        "starttls",
        SENDER,
        TEAM,
    )


def test_recipients_given_by_the_caller_win(
    monkeypatch: pytest.MonkeyPatch, no_mail_env: None
) -> None:
    monkeypatch.setenv("ENRICH_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("ENRICH_SMTP_FROM", SENDER)
    monkeypatch.setenv("ENRICH_REPORT_TO", "someone@example.org")

    config = mail_config(to=["me@example.org"])

    assert config is not None and config.to == ["me@example.org"]


def test_the_alert_email_channel_serves_when_nothing_else_is_configured(
    no_mail_env: None,
) -> None:
    channel = EmailChannelConfig(host="smtp.example.org", sender=SENDER, to=TEAM)

    config = mail_config(channel=channel)

    assert config is not None and (config.host, config.to) == ("smtp.example.org", TEAM)
