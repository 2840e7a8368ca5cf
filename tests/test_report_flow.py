"""The daily report flow under a real, temporary Prefect API: it writes the report, publishes
it as a markdown artifact and e-mails it when SMTP is configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from sqlalchemy import Engine

from enrichment.settings import get_settings
from flows.report import ARTIFACT_KEY, quality_report_flow
from tests.helpers import FakeStage
from tests.quality_data import enrich
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow

MAIL_VARIABLES = (
    "ENRICH_SMTP_BLOCK",
    "ENRICH_SMTP_HOST",
    "ENRICH_SMTP_PORT",
    "ENRICH_SMTP_SECURITY",
    "ENRICH_SMTP_USER",
    "ENRICH_SMTP_FROM",
    "ENRICH_REPORT_TO",
    "ENRICH_REPORT_DIR",
)


@pytest.fixture
def report_database(
    db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(tmp_path / "no-config.yaml"))
    for name in MAIL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    enrich(db, ["t1", "t2"], FakeStage("context"))
    yield db
    get_settings.cache_clear()


def _artifact_markdown() -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,  # the newest: other tests publish the same key
            limit=1,
        )
    assert isinstance(artifact.data, str)
    return artifact.data


def test_report_flow_writes_the_report_and_publishes_an_artifact(
    prefect_api: str, report_database: Engine, tmp_path: Path
) -> None:
    result = quality_report_flow(output_dir=str(tmp_path / "out"))

    path = Path(result["path"])
    assert path.parent == tmp_path / "out" and path.exists()
    assert result["emailed_to"] == []
    markdown = _artifact_markdown()
    assert "# Enrichment quality report" in markdown
    assert "| No record incomplete for more than 24 h | passed |" in markdown
    assert str(path) in markdown


def test_report_flow_emails_the_report_when_smtp_is_configured(
    prefect_api: str,
    report_database: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with SmtpSink() as sink:
        monkeypatch.setenv("ENRICH_SMTP_HOST", sink.host)
        monkeypatch.setenv("ENRICH_SMTP_PORT", str(sink.port))
        monkeypatch.setenv("ENRICH_SMTP_SECURITY", "none")
        monkeypatch.setenv("ENRICH_SMTP_FROM", "enrich@example.org")

        result = quality_report_flow(to=["data-team@example.org"], output_dir=str(tmp_path))

    ((recipients, message),) = sink.received()
    assert recipients == ["data-team@example.org"] == result["emailed_to"]
    assert message["Subject"] == result["subject"]
