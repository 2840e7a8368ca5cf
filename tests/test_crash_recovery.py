"""A worker killed mid-batch loses nothing: its leases expire and another worker finishes.

Real processes and real time (a 2 s lease), because the point is a process that dies with
uncommitted work in its hands.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
from sqlalchemy import text

from enrichment.pipeline import Pipeline, StageSpec
from enrichment.retry import RetryPolicy
from enrichment.runner import Runner
from tests.helpers import (
    BLOCKING_BATCH,
    FakeStage,
    attempts,
    blocking_worker,
    scalar,
    send,
    states,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SOURCE = "crashy"
STAGE = "work"
RECORDS = 50
LEASE_SECONDS = 2.0


def test_batch_of_a_killed_worker_is_reclaimed_and_completed_by_another(db, database_url, tmp_path):
    stage = FakeStage(STAGE)
    spec = StageSpec(stage, retry=RetryPolicy(delays=(0,), jitter=0), lease_seconds=LEASE_SECONDS)
    survivor = Runner(db, [Pipeline(SOURCE, (spec,))], worker="survivor")
    survivor.register()
    keys = [f"k{i:03d}" for i in range(RECORDS)]
    send(db, SOURCE, keys, "CREATE")
    survivor.fold_events()

    signal_file = tmp_path / "claimed"
    context = multiprocessing.get_context("spawn")
    doomed = context.Process(
        target=blocking_worker,
        args=(database_url, SOURCE, STAGE, LEASE_SECONDS, str(signal_file)),
    )
    doomed.start()
    try:
        wait_for(
            lambda: signal_file.exists() or not doomed.is_alive(),
            timeout=60,
            what="the worker to claim its batch",
        )
        assert signal_file.exists(), f"the worker died first (exit code {doomed.exitcode})"
        os.kill(doomed.pid, signal.SIGKILL)
    finally:
        if doomed.is_alive() and not signal_file.exists():
            doomed.kill()
        doomed.join(timeout=30)
    assert doomed.exitcode == -signal.SIGKILL
    lost = set(signal_file.read_text().split())
    assert len(lost) == BLOCKING_BATCH

    rows = states(db, SOURCE)
    assert {key for (key, _), row in rows.items() if row["status"] == "IN_PROGRESS"} == lost
    assert {rows[(key, STAGE)]["lease_owner"].split("/")[0] for key in lost} == {"doomed"}

    # The leases run out on the database's clock; wait just past the last one.
    remaining = scalar(
        db,
        "SELECT extract(epoch FROM max(lease_expires_at) - statement_timestamp()) "
        "FROM enrichment.record_state WHERE status = 'IN_PROGRESS'",
    )
    time.sleep(max(0.0, float(remaining)) + 0.05)

    report = survivor.drain()

    assert report.reclaimed == len(lost)
    rows = states(db, SOURCE)
    assert len(rows) == RECORDS
    assert {row["status"] for row in rows.values()} == {"COMPLETED"}
    assert sorted(stage.seen) == sorted(keys)  # every record, once each, by the survivor
    log = attempts(db)
    assert len(log) == RECORDS + len(lost)
    for key in keys:
        history = [
            (a["attempt"], a["outcome"], a["error_type"]) for a in log if a["record_key"] == key
        ]
        if key in lost:
            assert history == [(1, "FAILED", "LeaseExpired"), (2, "COMPLETED", None)]
        else:
            assert history == [(1, "COMPLETED", None)]
    with db.connect() as connection:
        workers = connection.execute(
            text(
                "SELECT DISTINCT split_part(worker, '/', 1) FROM enrichment.attempts "
                "WHERE error_type = 'LeaseExpired'"
            )
        ).scalars()
        assert set(workers) == {"doomed"}
