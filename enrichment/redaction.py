"""Redaction of personal data and secrets: typed placeholders in place of what the detectors
(``enrichment.pii``) find, and a count per kind, so the enriched text keeps its meaning ("my
card [CARD] was charged twice") and nothing identifying is stored or embedded.

Pure and deterministic: the same input always gives the same output, so a redacted record
whose personal data changed but whose redacted form did not is not enriched again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from enrichment.errors import EnrichmentError
from enrichment.pii import DETECTORS, Finding, Scan, field_hints

_PATTERN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class CustomPattern(BaseModel):
    """A detector of the user's own: a regular expression whose matches (or the named
    ``group`` of them) are replaced by ``placeholder`` and counted under ``NAME``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    regex: str = Field(min_length=1)
    group: str | int = 0
    placeholder: str | None = Field(default=None, description="Default: [NAME].")
    ignore_case: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _PATTERN_NAME.match(value):
            raise ValueError(f"{value!r} is not a lowercase name like 'customer_ref'")
        if value in DETECTORS:
            raise ValueError(f"{value!r} is a built-in detector's name")
        return value

    @model_validator(mode="after")
    def _compiles(self) -> CustomPattern:
        try:
            compiled = self.compiled()
        except re.error as err:
            raise ValueError(f"regex {self.regex!r} does not compile: {err}") from None
        if compiled.search(""):
            raise ValueError(f"regex {self.regex!r} matches the empty string")
        groups = compiled.groupindex if isinstance(self.group, str) else range(compiled.groups + 1)
        if self.group not in groups:
            raise ValueError(f"regex {self.regex!r} has no group {self.group!r}")
        return self

    @property
    def kind(self) -> str:
        return self.name.upper()

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.regex, re.IGNORECASE if self.ignore_case else 0)


class RedactionConfig(BaseModel):
    """Which detectors run, extra patterns, values never redacted, and the size limit of one
    value (a longer one is a redaction error: the record is stored as metadata only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: tuple[str, ...] = Field(
        default=tuple(DETECTORS), min_length=1, description="Built-in detectors to run."
    )
    patterns: tuple[CustomPattern, ...] = ()
    allow: tuple[str, ...] = Field(
        default=(), description="Exact values never redacted (case-insensitive)."
    )
    max_value_chars: int = Field(default=200_000, ge=1, le=10_000_000)

    @field_validator("detectors")
    @classmethod
    def _known(cls, detectors: tuple[str, ...]) -> tuple[str, ...]:
        for detector in detectors:
            if detector not in DETECTORS:
                known = ", ".join(DETECTORS)
                raise ValueError(f"unknown detector {detector!r} (known: {known})")
        if len(set(detectors)) != len(detectors):
            raise ValueError("each detector may appear once")
        return detectors

    @field_validator("patterns")
    @classmethod
    def _names_once(cls, patterns: tuple[CustomPattern, ...]) -> tuple[CustomPattern, ...]:
        names = [pattern.name for pattern in patterns]
        if len(set(names)) != len(names):
            raise ValueError("each pattern name may appear once")
        return patterns


class RedactionError(EnrichmentError):
    """A value could not be redacted. Names the field, never the value."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"field {field!r}: {problem}")


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redacted text and how many of each kind were replaced in it."""

    text: str
    counts: Mapping[str, int]


@dataclass(slots=True)
class RedactedValues:
    """A redacted JSON value, the counts by kind and the fields (dotted paths) that had any."""

    value: Any
    counts: Counter[str] = field(default_factory=Counter)
    fields: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Custom:
    kind: str
    placeholder: str
    pattern: re.Pattern[str]
    group: str | int


class Redactor:
    """Finds and replaces personal data and secrets in text and in JSON values."""

    CUSTOM_PRIORITY = 0  # the user's own patterns win overlaps

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config or RedactionConfig()
        self._detectors = [DETECTORS[name] for name in self.config.detectors]
        self._custom = [
            _Custom(p.kind, p.placeholder or f"[{p.kind}]", p.compiled(), p.group)
            for p in self.config.patterns
        ]
        self._placeholders = {c.kind: c.placeholder for c in self._custom}
        self._allow = frozenset(value.casefold() for value in self.config.allow)

    def placeholder(self, kind: str) -> str:
        return self._placeholders.get(kind, f"[{kind}]")

    def find(self, text: str, *, field: str | None = None) -> list[Finding]:
        """Non-overlapping findings in text order. Where two overlap, the higher priority kind
        wins, then the longer span."""
        scan = Scan(text, field_hints(field))
        candidates: list[tuple[int, int, Finding]] = []
        for custom in self._custom:
            for match in custom.pattern.finditer(text):
                start, end = match.span(custom.group)
                if end > start:
                    finding = Finding(custom.kind, start, end)
                    candidates.append((self.CUSTOM_PRIORITY, start - end, finding))
        for detector in self._detectors:
            for start, end in detector.find(scan):
                candidates.append(
                    (detector.priority, start - end, Finding(detector.kind, start, end))
                )
        if not candidates:
            return []
        candidates.sort(key=lambda c: (c[0], c[1], c[2].start))
        taken: list[Finding] = []
        for _, _, finding in candidates:
            if self._allow and text[finding.start : finding.end].casefold() in self._allow:
                continue
            if all(finding.end <= t.start or finding.start >= t.end for t in taken):
                taken.append(finding)
        return sorted(taken, key=lambda f: f.start)

    def redact(self, text: str, *, field: str | None = None) -> Redacted:
        """The text with every finding replaced by its placeholder, e.g. ``[EMAIL]``."""
        if len(text) > self.config.max_value_chars:
            raise RedactionError(
                field or "(text)",
                f"{len(text)} characters, more than max_value_chars "
                f"({self.config.max_value_chars}) allows to scan",
            )
        findings = self.find(text, field=field)
        if not findings:
            return Redacted(text, {})
        parts: list[str] = []
        position = 0
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(self.placeholder(finding.kind))
            position = finding.end
        parts.append(text[position:])
        return Redacted("".join(parts), dict(Counter(f.kind for f in findings)))

    def scrub(self, text: str) -> tuple[str, int]:
        """The text redacted and how many values were replaced: the re-check of new text a
        stage produces (a summary, a model's answer) before it is stored."""
        redacted = self.redact(text)
        return redacted.text, sum(redacted.counts.values())

    def redact_values(self, value: Any, *, field: str) -> RedactedValues:
        """Redact every string in a JSON value (objects, arrays, scalars). Integers are read as
        text too (a card number stored as a number is still a card number); a changed one
        becomes its redacted text. Object keys are redacted like values."""
        result = RedactedValues(None)
        result.value = self._walk(value, field, result)
        return result

    def _walk(self, value: Any, path: str, result: RedactedValues) -> Any:
        if isinstance(value, str):
            return self._text(value, path, result)
        if isinstance(value, int) and not isinstance(value, bool):
            redacted = self._text(str(value), path, result)
            return value if redacted == str(value) else redacted
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                name = self._text(str(key), path, result)
                out[name] = self._walk(item, f"{path}.{name}", result)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, path, result) for item in value]
        return value

    def _text(self, text: str, path: str, result: RedactedValues) -> str:
        redacted = self.redact(text, field=path)
        if redacted.counts:
            result.counts.update(redacted.counts)
            result.fields.add(path)
        return redacted.text


def merge_counts(*counts: Mapping[str, int]) -> dict[str, int]:
    """Counts by kind added up, in a stable (sorted) order for stored outputs."""
    total: Counter[str] = Counter()
    for item in counts:
        total.update(item)
    return dict(sorted(total.items()))
