"""The embedded PostgreSQL: started once, shared by concurrent processes, stopped on request."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import psycopg
import pytest

from enrichment import embedded
from enrichment.database import database_url
from enrichment.settings import Settings

pytestmark = pytest.mark.slow


def _start_and_report(pgdata: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    url = embedded.start(Path(pgdata), "enrich")
    with psycopg.connect(url) as connection:
        pid = connection.execute("SELECT pg_backend_pid()").fetchone()
        version = connection.execute(
            "SELECT setting FROM pg_settings WHERE name = 'server_version_num'"
        ).fetchone()
    queue.put((url, pid is not None, version[0] if version else None))


@pytest.fixture
def pgdata(tmp_path: Path):
    directory = tmp_path / "pgdata"
    yield directory
    embedded.stop(directory)


def test_concurrent_processes_share_one_server(pgdata: Path) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_start_and_report, args=(str(pgdata), results)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    reports = [results.get(timeout=5) for _ in workers]

    assert len({url for url, _, _ in reports}) == 1
    assert all(connected for _, connected, _ in reports)
    assert int(reports[0][2]) >= 180000  # PostgreSQL 18
    state = embedded.status(pgdata, "enrich")
    assert state.running and state.pid is not None


def test_server_has_pgvector_and_survives_its_starter(pgdata: Path) -> None:
    url = embedded.start(pgdata, "enrich")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        distance = connection.execute("SELECT '[1,0]'::vector <=> '[0,1]'::vector").fetchone()
    assert distance == (1.0,)
    assert embedded.start(pgdata, "enrich") == url  # reused, not restarted


def test_stop_stops_and_status_reports_it(pgdata: Path) -> None:
    embedded.start(pgdata, "enrich")
    assert embedded.stop(pgdata) is True
    assert embedded.status(pgdata, "enrich").running is False
    assert embedded.stop(pgdata) is False


def test_database_url_setting_starts_nothing(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://u@db.invalid/x", pgdata_dir=tmp_path / "pg")
    assert database_url(settings) == "postgresql://u@db.invalid/x"
    assert not (tmp_path / "pg").exists()
