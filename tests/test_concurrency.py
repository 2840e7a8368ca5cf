"""Several worker processes drain one queue at once: every record is processed exactly once."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import text

from enrichment.pipeline import Pipeline, StageSpec
from enrichment.runner import Runner
from tests.helpers import FakeStage, concurrent_worker, scalar, send

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SOURCE = "bulk"
STAGE = "record"
RECORDS = 10_000
WORKERS = 4


@pytest.fixture
def processed(db):
    """public.processed(key, worker): what the workers' stage saw."""
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.processed"))
        connection.execute(text("CREATE TABLE public.processed (key text NOT NULL, worker text)"))
    yield db
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.processed"))


def test_concurrent_workers_process_every_record_exactly_once(processed, database_url):
    db = processed
    setup = Runner(db, [Pipeline(SOURCE, (StageSpec(FakeStage(STAGE)),))])
    setup.register()
    keys = [f"r{i:05d}" for i in range(RECORDS)]
    for start in range(0, RECORDS, 2_000):
        send(db, SOURCE, keys[start : start + 2_000], "CREATE")
    assert setup.fold_events().requeued_records == RECORDS

    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(WORKERS)  # every worker connected before any claims
    workers = [
        context.Process(
            target=concurrent_worker,
            args=(database_url, SOURCE, STAGE, f"worker-{n}", ready),
            name=f"worker-{n}",
        )
        for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    assert [worker.exitcode for worker in workers] == [0] * WORKERS

    assert scalar(db, "SELECT count(*) FROM public.processed") == RECORDS
    assert scalar(db, "SELECT count(DISTINCT key) FROM public.processed") == RECORDS
    assert scalar(db, "SELECT count(DISTINCT worker) FROM public.processed") > 1  # shared
    with db.connect() as connection:
        statuses = dict(
            connection.execute(
                text("SELECT status, count(*) FROM enrichment.record_state GROUP BY status")
            ).all()
        )
    assert statuses == {"COMPLETED": RECORDS}
    assert scalar(db, "SELECT count(*) FROM enrichment.attempts") == RECORDS
    assert scalar(db, "SELECT count(DISTINCT record_key) FROM enrichment.attempts") == RECORDS
    assert (
        scalar(
            db,
            "SELECT count(*) FROM enrichment.attempts WHERE attempt = 1 AND outcome = 'COMPLETED'",
        )
        == RECORDS
    )
