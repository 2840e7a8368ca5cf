"""One retry policy for every call to an OpenAI-compatible server (embeddings and chat), so
every endpoint behaves alike:

* 429, 408 and 5xx responses, timeouts and connection errors are retried with exponential
  backoff and full jitter; ``retry-after-ms`` / ``Retry-After`` replace the backoff for that
  wait, and a wait longer than the cap ends the call at once;
* any other 4xx is permanent.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

import openai

RETRYABLE_STATUSES = frozenset({408, 429})

T = TypeVar("T")


class Unavailable(Protocol):
    """Builds the caller's own error for a call that cannot succeed."""

    def __call__(self, message: str, *, retryable: bool) -> Exception: ...


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, else ``Retry-After`` (seconds or date).

    None when there is no usable header. A date in the past means 0.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def backoff_seconds(retry: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Wait before retry ``retry`` (1, 2, ...): uniform in 0..min(cap, base * 2**(retry-1))."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** (retry - 1)))


def call_with_retries(
    request: Callable[[], T],
    *,
    model: str,
    max_retries: int,
    timeout_seconds: float,
    backoff_cap_seconds: float,
    backoff: Callable[[int], float],
    sleep: Callable[[float], None],
    unavailable: Unavailable,
) -> T:
    """``request()``, retried as the module says; ``unavailable`` builds the error raised when
    it cannot succeed (permanent status, attempts used up, a wait longer than the cap)."""
    attempts = max_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return request()
        except openai.APIStatusError as error:
            status = error.status_code
            if not (status in RETRYABLE_STATUSES or status >= 500):
                raise unavailable(
                    f"model {model!r}: HTTP {status} is not retryable: {error.message}",
                    retryable=False,
                ) from error
            last_error = f"HTTP {status}"
            requested = retry_after_seconds(error.response.headers, now=datetime.now(UTC))
            cause: Exception = error
        except openai.APITimeoutError as error:
            last_error = f"timeout after {timeout_seconds}s"
            requested = None
            cause = error
        except openai.APIConnectionError as error:
            last_error = f"connection error ({error.message})"
            requested = None
            cause = error
        if attempt == attempts:
            raise unavailable(
                f"model {model!r}: gave up after {attempts} attempts; last error: {last_error}",
                retryable=True,
            ) from cause
        if requested is not None and requested > backoff_cap_seconds:
            raise unavailable(
                f"model {model!r}: {last_error} asks to wait {requested:g}s, more than "
                f"backoff_cap_seconds={backoff_cap_seconds:g}, after {attempt} attempts",
                retryable=True,
            ) from cause
        sleep(requested if requested is not None else backoff(attempt))
    raise AssertionError("unreachable: the loop returns or raises")
