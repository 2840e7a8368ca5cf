"""`enrich report`, run in-process against the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from enrichment import cli
from enrichment.settings import get_settings
from tests.helpers import FakeStage
from tests.quality_data import enrich
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow


@pytest.fixture
def report_cli(
    db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(tmp_path / "no-config.yaml"))
    for name in ("ENRICH_SMTP_BLOCK", "ENRICH_SMTP_HOST", "ENRICH_REPORT_TO", "ENRICH_REPORT_DIR"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    enrich(db, ["t1"], FakeStage("context"))
    yield CliRunner()
    get_settings.cache_clear()


def _invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli.app, ["report", *args], catch_exceptions=False)


def test_enrich_report_writes_the_report_and_prints_its_path(
    report_cli: CliRunner, tmp_path: Path
) -> None:
    result = _invoke(report_cli, "--no-email", "--output", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").glob("quality-report-*.html")
    assert f"written to {written}" in result.output
    assert "[enrich] Quality report" in result.output


def test_enrich_report_to_without_smtp_says_it_was_not_emailed(
    report_cli: CliRunner, tmp_path: Path
) -> None:
    result = _invoke(report_cli, "--to", "someone@example.org", "--output", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert "not e-mailed" in result.output
    assert len(list(tmp_path.glob("quality-report-*.html"))) == 1


def test_enrich_report_emails_the_given_recipient(
    report_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpSink() as sink:
        monkeypatch.setenv("ENRICH_SMTP_HOST", sink.host)
        monkeypatch.setenv("ENRICH_SMTP_PORT", str(sink.port))
        monkeypatch.setenv("ENRICH_SMTP_SECURITY", "none")
        monkeypatch.setenv("ENRICH_SMTP_FROM", "enrich@example.org")
        result = _invoke(report_cli, "--to", "someone@example.org", "--output", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert "e-mailed to someone@example.org" in result.output
    ((recipients, message),) = sink.received()
    assert recipients == ["someone@example.org"]
    assert message["Subject"].startswith("[enrich] Quality report")
