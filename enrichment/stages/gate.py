"""The confidence gate of the AI stages: a result below the stage's ``min_confidence`` is
recorded, but the record's later stages are skipped and it comes back for a re-check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enrichment.stages.base import Completed, Recheck, Skipped

DAY = 86_400.0


@dataclass(frozen=True)
class Gate:
    """Below ``min_confidence``: skip the later stages, re-check after ``recheck_after``
    seconds, at most ``max_rechecks`` times for the same input."""

    min_confidence: float
    recheck_after: float = DAY
    max_rechecks: int = 3

    def reason(self, what: str, confidence: float) -> str:
        then = (
            f"re-checked after {self.recheck_after / 3600:g} h"
            if self.max_rechecks
            else "not re-checked"
        )
        return (
            f"low confidence: {what} has confidence {confidence:.4f}, below min_confidence "
            f"{self.min_confidence:g}; {then}"
        )

    def outcome(
        self, output: Mapping[str, Any], digest: str, effects: Any, what: str
    ) -> Completed | Skipped:
        confidence = float(output["confidence"])
        if confidence >= self.min_confidence:
            return Completed(output=output, input_hash=digest, effects=effects)
        return Skipped(
            self.reason(what, confidence),
            skip_remaining=True,
            output={**output, "gated": True},
            effects=effects,
            recheck=Recheck(self.recheck_after, self.max_rechecks, digest),
        )
