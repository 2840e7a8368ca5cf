"""resolve: for a classified record, the recommended action from the playbook's actions for
its label (local: calibrated embedding similarity; llm: a chat model's JSON answer), recorded
with its confidence and announced as a Prefect event once it is committed. Executing the
action is left to whoever listens for the event (a Prefect automation, a person).

Records only get here when classify completed: a label below classify's ``min_confidence``
skipped this stage. A label the playbook has no action for is SKIPPED with that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from enrichment.classification import Choice, Classifier, Question
from enrichment.stages.base import ClaimedRecord, Completed, Failed, Skipped, StageOutcome
from enrichment.stages.gate import Gate
from enrichment.stages.inputs import input_hash, stage_outputs, text_of
from enrichment.writeback import WriteBack

log = logging.getLogger(__name__)

EVENT = "enrichment.resolution.recommended"

Emit = Callable[..., object]


@dataclass(frozen=True)
class PlaybookEntry:
    """An action and the labels it applies to (empty: every label)."""

    action: str
    labels: tuple[str, ...] = ()

    def applies_to(self, label: str) -> bool:
        return not self.labels or label in self.labels


def _emit_event(**event: Any) -> object:
    from prefect.events import emit_event

    return emit_event(**event)


class ResolveStage:
    name = "resolve"

    def __init__(
        self,
        engine: Engine,
        source: str,
        classifier: Classifier,
        playbook: Sequence[PlaybookEntry],
        *,
        text_stage: str = "context",
        classify_stage: str = "classify",
        label_descriptions: Mapping[str, str] | None = None,
        gate: Gate | None = None,
        write_back: WriteBack | None = None,
        event: str = EVENT,
        emit: Emit = _emit_event,
    ) -> None:
        self.engine = engine
        self.source = source
        self.classifier = classifier
        self.playbook = tuple(playbook)
        self.text_stage = text_stage
        self.classify_stage = classify_stage
        self.label_descriptions = dict(label_descriptions or {})
        self.gate = gate
        self.write_back = write_back
        self.event = event
        self.emit = emit

    def candidates(self, label: str) -> tuple[str, ...]:
        return tuple(entry.action for entry in self.playbook if entry.applies_to(label))

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        keys = [record.record_key for record in records]
        workspaces = {record.record_key: record.workspace_id for record in records}
        upstream = stage_outputs(
            self.engine, self.source, [self.text_stage, self.classify_stage], keys
        )
        outcomes: dict[str, StageOutcome] = {}
        questions: dict[str, Question] = {}
        labels: dict[str, Mapping[str, Any]] = {}
        for key in keys:
            found = text_of(key, upstream[self.text_stage].get(key), self.text_stage, "resolve")
            classified = upstream[self.classify_stage].get(key)
            if not isinstance(found, str):
                outcomes[key] = found
                continue
            if not isinstance(classified, Mapping) or not classified.get("label"):
                # This stage is due only once classify finished: it skipped the record.
                outcomes[key] = Skipped(f"no label to act on: {self.classify_stage} skipped it")
                continue
            label = str(classified["label"])
            candidates = self.candidates(label)
            if not candidates:
                outcomes[key] = Skipped(f"the playbook has no action for label {label!r}")
                continue
            labels[key] = classified
            described = self.label_descriptions.get(label)
            hint = f"The record was classified as {label}" + (
                f" ({described})." if described else "."
            )
            questions[key] = Question(found, candidates=candidates, hint=hint)
        asked = list(questions)
        answers = self.classifier.classify([questions[key] for key in asked])
        version = self.classifier.version
        for key, answer in zip(asked, answers, strict=True):
            if not isinstance(answer, Choice):
                outcomes[key] = Failed(
                    answer.error_type, f"record {key!r}: {answer.message}", answer.retryable
                )
                continue
            classified = labels[key]
            output = {
                "action": answer.option,
                "confidence": round(answer.confidence, 4),
                "alternatives": answer.alternatives,
                "label": classified["label"],
                "label_confidence": classified.get("confidence"),
                "backend": self.classifier.backend,
                "model": self.classifier.model,
                "version": version,
            }
            digest = input_hash(version, classified["label"], questions[key].text)
            effects = {
                "write_back": self.write_back.values(output) if self.write_back else None,
                "workspace_id": workspaces[key],
            }
            if self.gate is None:
                outcomes[key] = Completed(output=output, input_hash=digest, effects=effects)
            else:
                outcomes[key] = self.gate.outcome(
                    output, digest, effects, f"action {answer.option!r}"
                )
        return outcomes

    def write(self, connection: Connection, effects: Mapping[str, Any]) -> None:
        if self.write_back is not None:
            rows = {
                key: value["write_back"]
                for key, value in effects.items()
                if value is not None and value.get("write_back") is not None
            }
            self.write_back.write(connection, rows)

    def forget(self, connection: Connection, keys: Sequence[str]) -> None:
        if self.write_back is not None:
            self.write_back.clear(connection, keys)

    def announce(self, finished: Mapping[str, Completed | Skipped]) -> None:
        """One Prefect event per recommendation committed (not for gated or skipped records).
        At most once: a process that dies between the commit and this call loses the event,
        never the recommendation (it is in record_state and the written-back column)."""
        for key, outcome in sorted(finished.items()):
            if not isinstance(outcome, Completed) or outcome.output is None:
                continue
            output = outcome.output
            workspace = (outcome.effects or {}).get("workspace_id")
            self.emit(
                event=self.event,
                resource={
                    "prefect.resource.id": f"enrichment.record.{self.source}.{key}",
                    "prefect.resource.name": f"{self.source} {key}",
                    "enrichment.source": self.source,
                    "enrichment.record": key,
                    "enrichment.workspace": str(workspace),
                },
                related=[
                    {
                        "prefect.resource.id": f"enrichment.action.{output['action']}",
                        "prefect.resource.role": "recommended-action",
                    },
                    {
                        "prefect.resource.id": f"enrichment.label.{output['label']}",
                        "prefect.resource.role": "label",
                    },
                ],
                payload={
                    "action": output["action"],
                    "confidence": output["confidence"],
                    "label": output["label"],
                    "label_confidence": output["label_confidence"],
                    "backend": output["backend"],
                    "model": output["model"],
                    "version": output["version"],
                },
            )
