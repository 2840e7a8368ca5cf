"""Seeding: generate the demo data and COPY it into the ``fulfilment`` tables, in one
transaction that replaces whatever they held.

Replacing, not appending: ids start at 1 every time, so the same seed always gives the same
rows. When something other than this module has triggers on the tables (the change-capture
triggers of a configured source), the old rows are removed with DELETE, so those triggers see
them go; otherwise with TRUNCATE, and the new rows are written frozen (COPY FREEZE: no later
vacuum of a million fresh rows). Foreign keys are dropped for the load and added back after it,
which checks every reference in one pass per key instead of one lookup per row.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine, text

from enrichment.errors import InvalidInput
from enrichment.fulfilment.generator import Generator, Tally
from enrichment.fulfilment.playbook import PII_KINDS, TYPE_NAMES
from enrichment.fulfilment.schema import (
    FOREIGN_KEYS,
    LOAD_ORDER,
    LOADED,
    SCHEMA,
    TOUCH_TRIGGER,
    add_foreign_key,
    install_schema,
    table,
)
from enrichment.fulfilment.summary import SeedSummary, by_size, ordered_counts

MAX_WORKSPACES = 100
_AHEAD = 8  # batches generated ahead of the COPY (two chunks)

_OTHER_TRIGGERS = f"""
SELECT count(*) FROM pg_trigger AS t
JOIN pg_class AS c ON c.oid = t.tgrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = '{SCHEMA}' AND NOT t.tgisinternal AND t.tgname <> '{TOUCH_TRIGGER}'
"""


def _check(records: Any, workspaces: Any, seed: Any, now: Any) -> None:
    for name, value in (("records", records), ("workspaces", workspaces), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(name, f"expected a whole number, got {value!r}")
    if records < 1:
        raise InvalidInput("records", f"expected at least 1 exception, got {records}")
    if not 1 <= workspaces <= MAX_WORKSPACES:
        raise InvalidInput(
            "workspaces", f"expected 1 to {MAX_WORKSPACES} workspaces, got {workspaces}"
        )
    if workspaces > records:
        raise InvalidInput(
            "workspaces",
            f"every workspace gets at least one exception: {workspaces} workspaces need at "
            f"least {workspaces} records, got {records}",
        )
    if now is not None and (not isinstance(now, datetime) or now.utcoffset() is None):
        raise InvalidInput("now", f"expected a timezone-aware datetime, got {now!r}")


def _clear(connection: Connection) -> bool:
    """Remove every row; True when the tables were truncated (so COPY FREEZE may be used)."""
    if connection.execute(text(_OTHER_TRIGGERS)).scalar_one():
        for name in reversed(LOAD_ORDER):  # children first
            connection.execute(text(f"DELETE FROM {table(name)}"))
        return False
    connection.execute(text("TRUNCATE " + ", ".join(table(name) for name in LOAD_ORDER)))
    return True


def _copy(
    cursor: psycopg.Cursor[Any], name: str, rows: Iterable[Sequence[Any]], *, freeze: bool
) -> None:
    columns = ", ".join(LOADED[name])
    options = " (FREEZE)" if freeze else ""
    with cursor.copy(f"COPY {table(name)} ({columns}) FROM STDIN{options}") as copy:
        for row in rows:
            copy.write_row(row)


_DONE = object()


class _Producer(threading.Thread):
    """Generates the batches on its own thread, a few ahead, so that generating the next one
    overlaps with the server storing the last one (the driver releases the GIL while it
    waits on the server)."""

    def __init__(self, generator: Generator) -> None:
        super().__init__(name="fulfilment-generator", daemon=True)
        self.generator = generator
        self.batches: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD)
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            for batch in self.generator.batches():
                if not self._put(batch):
                    return
            self._put(_DONE)
        except BaseException as err:  # handed to the loading thread, which raises it
            self._put(err)

    def _put(self, item: Any) -> bool:
        while not self.stopped.is_set():
            try:
                self.batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        while True:
            item = self.batches.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _load(connection: Connection, generator: Generator, *, freeze: bool) -> None:
    """COPY every batch, in the order the generator gives them (parents first)."""
    driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
    producer = _Producer(generator)
    producer.start()
    try:
        with driver.cursor() as cursor:
            for name, rows in producer:
                _copy(cursor, name, rows, freeze=freeze)
    finally:
        producer.stopped.set()
        producer.join()


def summary_of(tally: Tally, *, seed: int, anchor: datetime, seconds: float) -> SeedSummary:
    return SeedSummary(
        workspaces=by_size({workspace: dict(c) for workspace, c in tally.workspaces.items()}),
        exception_types=ordered_counts(dict(tally.types), TYPE_NAMES),
        phrasing=ordered_counts(dict(tally.phrasing), ("explicit", "implied", "ambiguous")),
        recommended_actions=ordered_counts(dict(tally.actions)),
        planted_pii=ordered_counts(dict(tally.pii), PII_KINDS),
        sla_breaches=tally.sla_breaches,
        first_reported_at=tally.first_reported,
        last_reported_at=tally.last_reported,
        seed=seed,
        anchor=anchor,
        seconds=seconds,
    )


def seed(
    engine: Engine,
    *,
    records: int = 1000,
    workspaces: int = 4,
    seed: int = 7,
    now: datetime | None = None,
) -> SeedSummary:
    """Replace the fulfilment data with ``records`` generated exceptions (and their orders,
    customers, messages and truth) over ``workspaces`` workspaces of very different sizes.

    The same ``records``, ``workspaces``, ``seed`` and ``now`` give the same rows. ``now``
    (default: the database clock) is the moment every time is drawn back from, so the data
    looks recent. One transaction, holding the tables locked: readers wait and then see the new
    data, never a mix; a failure leaves the old data as it was.
    """
    _check(records, workspaces, seed, now)
    started = time.perf_counter()
    with engine.begin() as connection:
        install_schema(connection)
        anchor: datetime = now or connection.execute(text("SELECT now()")).scalar_one()
        truncated = _clear(connection)
        for owner, constraint, *_ in FOREIGN_KEYS:
            connection.execute(text(f"ALTER TABLE {table(owner)} DROP CONSTRAINT {constraint}"))
        generator = Generator(records=records, workspaces=workspaces, seed=seed, now=anchor)
        _load(connection, generator, freeze=truncated)
        for _, constraint, *_ in FOREIGN_KEYS:
            add_foreign_key(connection, constraint)
        for name in LOAD_ORDER:  # fresh statistics for the pipeline's first queries
            connection.execute(text(f"ANALYZE {table(name)}"))
    return summary_of(
        generator.tally, seed=seed, anchor=anchor, seconds=time.perf_counter() - started
    )
