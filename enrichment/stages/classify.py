"""classify: a label from the configured label set, with a confidence in 0..1, for each
record's text (local: calibrated embedding similarity; llm: a chat model's JSON answer).

Below ``min_confidence`` the label is still recorded (and written back), but the record's
later stages are SKIPPED with the reason and the record comes back for a re-check after
``recheck_after`` (see enrichment/rechecks.py): a low confidence is neither acted on nor final.
A failed attempt (an answer outside the label set, malformed JSON, an unreachable endpoint)
records nothing: its outputs and written-back columns are NULL until an attempt succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from enrichment.classification import Choice, Classifier, Question
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome
from enrichment.stages.gate import Gate
from enrichment.stages.inputs import input_hash, stage_outputs, text_of
from enrichment.writeback import WriteBack


class ClassifyStage:
    name = "classify"

    def __init__(
        self,
        engine: Engine,
        source: str,
        classifier: Classifier,
        *,
        text_stage: str = "context",
        gate: Gate | None = None,
        write_back: WriteBack | None = None,
    ) -> None:
        self.engine = engine
        self.source = source
        self.classifier = classifier
        self.text_stage = text_stage
        self.gate = gate
        self.write_back = write_back

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        keys = [record.record_key for record in records]
        upstream = stage_outputs(self.engine, self.source, [self.text_stage], keys)
        outcomes: dict[str, StageOutcome] = {}
        texts: dict[str, str] = {}
        for key in keys:
            found = text_of(key, upstream[self.text_stage].get(key), self.text_stage, "classify")
            if isinstance(found, str):
                texts[key] = found
            else:
                outcomes[key] = found
        asked = list(texts)
        answers = self.classifier.classify([Question(texts[key]) for key in asked])
        version = self.classifier.version
        for key, answer in zip(asked, answers, strict=True):
            if not isinstance(answer, Choice):
                outcomes[key] = Failed(
                    answer.error_type, f"record {key!r}: {answer.message}", answer.retryable
                )
                continue
            output = {
                "label": answer.option,
                "confidence": round(answer.confidence, 4),
                "alternatives": answer.alternatives,
                "backend": self.classifier.backend,
                "model": self.classifier.model,
                "version": version,
            }
            digest = input_hash(version, texts[key])
            effects = self.write_back.values(output) if self.write_back else None
            if self.gate is None:
                outcomes[key] = Completed(output=output, input_hash=digest, effects=effects)
            else:
                outcomes[key] = self.gate.outcome(
                    output, digest, effects, f"label {answer.option!r}"
                )
        return outcomes

    def write(self, connection: Connection, effects: Mapping[str, Any]) -> None:
        if self.write_back is not None:
            rows = {key: value for key, value in effects.items() if value is not None}
            self.write_back.write(connection, rows)

    def forget(self, connection: Connection, keys: Sequence[str]) -> None:
        if self.write_back is not None:
            self.write_back.clear(connection, keys)
