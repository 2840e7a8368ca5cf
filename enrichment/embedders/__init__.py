"""Embedding providers, one module each, behind the :class:`Embedder` interface."""

from enrichment.embedders.base import (
    Embedder,
    EmbeddingError,
    EmbeddingUnavailable,
    Vector,
    check_vector,
)

__all__ = ["Embedder", "EmbeddingError", "EmbeddingUnavailable", "Vector", "check_vector"]
