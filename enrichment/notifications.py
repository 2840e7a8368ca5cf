"""Wake-ups for runners: the capture triggers and ``enqueue`` send a NOTIFY on one channel when
events are written, so a waiting runner starts within milliseconds of the commit instead of at
its next poll. A notification is only a hint: the events table is the truth, and a runner that
missed one still finds the events at its next fold."""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Self

import psycopg

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "enrichment_events"


class EventListener:
    """A dedicated autocommit connection that LISTENs on the events channel. Notifications
    that arrive while the runner works are kept by the server and end the next wait at once."""

    def __init__(self, libpq_url: str, channel: str = NOTIFY_CHANNEL) -> None:
        self._url = libpq_url
        self._channel = channel
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def __enter__(self) -> Self:
        self._connect()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._url, autocommit=True)
            self._connection.execute(f'LISTEN "{self._channel}"')
        return self._connection

    def wait(self, timeout: float) -> bool:
        """Block until a notification arrives (True) or ``timeout`` seconds pass (False).
        Notifications queued since the last wait are drained and count as one. A lost
        connection is reopened and reported as a wake-up, since events may have been missed."""
        if timeout <= 0:
            return False
        try:
            connection = self._connect()
            woke = any(True for _ in connection.notifies(timeout=timeout, stop_after=1))
            if woke:  # drain what is already queued: one fold handles all of it
                for _ in connection.notifies(timeout=0.0):
                    pass
            return woke
        except psycopg.OperationalError as error:
            log.warning("lost the LISTEN connection (%s); reconnecting", error)
            self.close()
            time.sleep(min(timeout, 1.0))
            return True

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
