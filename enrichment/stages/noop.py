"""A stage that does nothing but complete: for queue benchmarks and smoke tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from enrichment.stages.base import ClaimedRecord, Completed, StageOutcome


class NoopStage:
    def __init__(self, name: str = "noop") -> None:
        self.name = name

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        return {record.record_key: Completed() for record in records}
