"""When a failed stage is tried again, and when it becomes a dead letter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from enrichment.settings import DEFAULT_RETRY_DELAYS


@dataclass(frozen=True)
class RetryPolicy:
    """Retry ``n`` happens ``delays[n-1]`` seconds (± ``jitter``) after attempt ``n`` failed.

    The number of delays is the number of retries: the default 1 min, 5 min, 15 min, 1 h, 4 h
    allows five retries, so a record is dead-lettered after its sixth failed attempt.
    """

    delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.delays):
            raise ValueError(f"retry delays must be >= 0, got {self.delays}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"retry jitter must be within 0..1, got {self.jitter}")

    @property
    def max_retries(self) -> int:
        return len(self.delays)

    def next_delay(self, attempts: int, *, retryable: bool) -> float | None:
        """Seconds until the next attempt after ``attempts`` tries, or None for a dead letter."""
        if not retryable or attempts > len(self.delays):
            return None
        base = self.delays[attempts - 1]
        return base * (1.0 + self.rng.uniform(-self.jitter, self.jitter))
