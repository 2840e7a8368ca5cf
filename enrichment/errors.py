"""Exceptions that stop a call. Each names what was wrong and where (record, field)."""

from __future__ import annotations


class EnrichmentError(Exception):
    """Base class for errors raised by this package."""


class InvalidInput(EnrichmentError, ValueError):
    """Input that cannot be used: names the field, what was given and what was expected."""

    def __init__(self, field: str, problem: str, *, record: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.record = record
        where = f"{record}: " if record else ""
        super().__init__(f"{where}field {field!r}: {problem}")


class UnknownSource(InvalidInput):
    def __init__(self, source: str, known: list[str], *, field: str = "source") -> None:
        choices = ", ".join(repr(name) for name in known) or "none are registered"
        super().__init__(field, f"unknown source {source!r} (known: {choices})")


class UnknownStage(InvalidInput):
    def __init__(self, stage: str, source: str, known: list[str], *, field: str = "stage") -> None:
        choices = ", ".join(repr(name) for name in known)
        super().__init__(
            field, f"unknown stage {stage!r} for source {source!r} (stages: {choices})"
        )
