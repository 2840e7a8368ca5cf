"""Where the queue gets the time from.

Production uses the database's clock (``None`` here), so leases and retry times agree across
machines. Tests pass a :class:`FrozenClock` and move it by hand instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime | None:
        """The current time, or None to use the database's clock."""
        ...


class DatabaseClock:
    def now(self) -> datetime | None:
        return None


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now
