"""Checking an exported model against PyTorch: probe texts, tolerances, the refusal.

After an export, the probe texts are embedded by PyTorch (sentence-transformers) and by the
exported model; every probe's cosine must be within the backend's tolerance, else the export is
discarded. Every process that opens a cached export checks it again against the PyTorch
vectors stored with it, so a runtime that computes differently on another machine refuses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from enrichment.errors import EnrichmentError

PROBE_BATCH_SIZE: Final = 8  # small, so the probes are padded against each other

# Largest accepted 1 - cosine between a probe's vector and PyTorch's, per backend. float32
# ONNX reproduces PyTorch to about 1e-7 (1e-4 is the bar for "the same vectors"); int8 weights
# move vectors by about 0.01 on average, 0.026 for the worst probe (the empty text).
TOLERANCE: Final[dict[str, float]] = {"onnx": 1e-4, "onnx-int8": 0.05}

# Texts whose vectors must match PyTorch's: short and long (truncated at max_seq_length),
# empty, non-Latin scripts, emoji, code, markup, numbers, odd whitespace.
PROBE_TEXTS: Final = (
    "",
    "pgvector",
    "hello world",
    "A fast HTTP client library for Python with async support.",
    "Python package — package: aiosmtpd — summary: aiosmtpd - asyncio based SMTP server",
    "Support communication — customer segment: Enterprise — message content: I'm frustrated "
    "with the onboarding flow and want a refund.",
    "Библиотека для работы с PostgreSQL из Python",  # noqa: RUF001
    "高性能的数据库连接池和查询构建器",
    "مكتبة لمعالجة النصوص العربية",
    "🚀 Blazing fast ✨ zero-copy JSON parser 🦀",
    "Café, naïve, résumé and Ångström: accents everywhere",
    "def embed(texts: list[str]) -> np.ndarray:\n    return model.encode(texts)",
    "https://example.com/docs/install?version=2.1&lang=en#quick-start",
    "Version 3.14.159 released 2026-11-21, fixes CVE-2026-12345 (0xDEADBEEF)",
    "   leading and trailing spaces\n\n\twith blank lines and\ttabs   ",
    "CamelCaseIdentifier SCREAMING_SNAKE_CASE kebab-case-name",
    "# Installation\n\n- `pip install enrich`\n- *optional*: **CUDA**\n\n> Note: offline only.",
    "Order 1042 was delayed: the carrier lost the parcel in transit, customer wants a "
    "replacement shipped express.",
    " ".join(
        f"Paragraph {number}: the pipeline claims a batch of records, enriches them in stages "
        "and stores their vectors in pgvector, so search always reads complete records."
        for number in range(12)
    ),
    "spam spam spam spam spam spam spam spam spam spam spam spam spam spam spam spam",
)


class ModelVerificationFailed(EnrichmentError):
    """The exported model does not reproduce PyTorch's vectors: it is not served. Raised from
    a stage, it stops the run (the records are not at fault and are not failed)."""

    def __init__(self, message: str, *, directory: Path | None = None) -> None:
        super().__init__(message)
        self.directory = directory


@dataclass(frozen=True)
class Verification:
    """How close the exported model's probe vectors are to PyTorch's."""

    probes: int
    min_cosine: float
    mean_cosine: float
    tolerance: float
    worst_text: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verification:
        return cls(
            probes=int(data["probes"]),
            min_cosine=float(data["min_cosine"]),
            mean_cosine=float(data["mean_cosine"]),
            tolerance=float(data["tolerance"]),
            worst_text=str(data["worst_text"]),
        )

    @property
    def passed(self) -> bool:
        return 1.0 - self.min_cosine <= self.tolerance

    def describe(self) -> str:
        return (
            f"{self.probes} probe texts, cosine to PyTorch min {self.min_cosine:.6f} "
            f"(1 - cosine {1.0 - self.min_cosine:.1e}, tolerance {self.tolerance:.0e}), "
            f"mean {self.mean_cosine:.6f}, worst {self.worst_text[:60]!r}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "min_cosine": self.min_cosine,
            "mean_cosine": self.mean_cosine,
            "tolerance": self.tolerance,
            "worst_text": self.worst_text,
        }


def verify(
    vectors: NDArray[np.float32],
    reference: NDArray[np.float32],
    texts: Sequence[str],
    *,
    tolerance: float,
) -> Verification:
    """Compare unit vectors row by row with the reference (PyTorch's) vectors."""
    if vectors.shape != reference.shape:
        return Verification(len(texts), -1.0, -1.0, tolerance, f"shape {vectors.shape}")
    cosines = np.einsum("ij,ij->i", vectors.astype(np.float64), reference.astype(np.float64))
    cosines = np.where(np.isfinite(cosines), cosines, -1.0)
    worst = int(np.argmin(cosines))
    return Verification(
        probes=len(texts),
        min_cosine=float(cosines[worst]),
        mean_cosine=float(cosines.mean()),
        tolerance=tolerance,
        worst_text=texts[worst],
    )
