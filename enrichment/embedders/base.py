"""The embedder interface: texts in, one vector or one error per text out.

Per-text errors (a vector of the wrong dimension, NaN) come back beside the vectors, so one bad
text never fails its batch. A provider that cannot be reached at all raises
:class:`EmbeddingUnavailable` after its own retries, and the whole batch is retried later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EmbeddingError:
    """Why one text got no vector. ``retryable=False`` errors are dead-lettered at once."""

    error_type: str
    message: str
    retryable: bool = False


class EmbeddingUnavailable(Exception):
    """The provider could not embed the batch (after retries): rate limits, 5xx, timeouts."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str:
        """Recorded with every vector; a different version means a re-embed."""
        ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[Vector | EmbeddingError]:
        """One result per text, in order: a float32 vector or the reason there is none."""
        ...


def check_vector(vector: object, *, model: str, dimensions: int) -> Vector | EmbeddingError:
    """A vector is usable when it has the table's dimension and only finite numbers."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dimensions:
        actual = array.shape[0] if array.ndim == 1 else f"shape {array.shape}"
        return EmbeddingError(
            "DimensionMismatch",
            f"model {model!r} returned a vector of dimension {actual}, expected {dimensions}",
        )
    if not np.isfinite(array).all():
        return EmbeddingError(
            "NonFiniteVector", f"model {model!r} returned a vector containing NaN or infinity"
        )
    return array
