"""Transactions that lose a deadlock to a concurrent worker are rerun, not failed."""

from __future__ import annotations

import threading

from sqlalchemy import Connection, Engine, text

from enrichment.database import in_transaction


def test_deadlocked_transaction_is_rerun_and_both_writers_succeed(db: Engine) -> None:
    with db.begin() as connection:
        connection.execute(
            text("INSERT INTO enrichment.sources (name, stages) VALUES ('a', '{x}'), ('b', '{x}')")
        )
    both_locked_first = threading.Barrier(2, timeout=10)
    runs = {"a": 0, "b": 0}

    def writer(first: str, second: str) -> None:
        def work(connection: Connection) -> None:
            runs[first] += 1
            update = "UPDATE enrichment.sources SET updated_at = now() WHERE name = :name"
            connection.execute(text(update), {"name": first})
            if runs[first] == 1:
                both_locked_first.wait()  # each holds one row and now wants the other's
            connection.execute(text(update), {"name": second})

        in_transaction(db, work)

    threads = [
        threading.Thread(target=writer, args=("a", "b")),
        threading.Thread(target=writer, args=("b", "a")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(runs.values()) == [1, 2]  # exactly one lost the deadlock and ran again
