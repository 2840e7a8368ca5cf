"""A source's pipeline: its stages in run order, each with its retry policy and lease."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection

from enrichment.clock import Clock, DatabaseClock
from enrichment.errors import InvalidInput, UnknownSource, UnknownStage
from enrichment.retry import RetryPolicy
from enrichment.sql import query
from enrichment.stages.base import Stage

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class StageSpec:
    stage: Stage
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease_seconds: float = 300.0

    @property
    def name(self) -> str:
        return self.stage.name


@dataclass(frozen=True)
class Pipeline:
    source: str
    stages: tuple[StageSpec, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.source):
            raise InvalidInput("source", f"{self.source!r} is not a name like 'support_messages'")
        if not self.stages:
            raise InvalidInput("stages", f"source {self.source!r} declares no stages")
        names = [spec.name for spec in self.stages]
        for position, name in enumerate(names):
            if not _NAME.match(name):
                raise InvalidInput(f"stages[{position}].name", f"{name!r} is not a stage name")
            if names.index(name) != position:
                raise InvalidInput(f"stages[{position}].name", f"stage {name!r} is declared twice")
            lease = self.stages[position].lease_seconds
            if lease <= 0:
                raise InvalidInput(f"stages[{position}].lease_seconds", f"must be > 0, got {lease}")

    @property
    def stage_names(self) -> list[str]:
        return [spec.name for spec in self.stages]

    def index(self, stage: str) -> int:
        try:
            return self.stage_names.index(stage)
        except ValueError:
            raise UnknownStage(stage, self.source, self.stage_names) from None

    def spec(self, stage: str) -> StageSpec:
        return self.stages[self.index(stage)]

    def next_stage(self, stage: str) -> str | None:
        position = self.index(stage) + 1
        return self.stages[position].name if position < len(self.stages) else None


class Pipelines(Mapping[str, Pipeline]):
    """The pipelines a worker knows, by source; lookups of unknown sources name the field."""

    def __init__(self, pipelines: Iterable[Pipeline]) -> None:
        self._by_source: dict[str, Pipeline] = {}
        for pipeline in pipelines:
            if pipeline.source in self._by_source:
                raise InvalidInput("source", f"source {pipeline.source!r} is declared twice")
            self._by_source[pipeline.source] = pipeline

    def __getitem__(self, source: str) -> Pipeline:
        try:
            return self._by_source[source]
        except KeyError:
            raise UnknownSource(source, sorted(self._by_source)) from None

    def __contains__(self, source: object) -> bool:
        return source in self._by_source

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_source)

    def __len__(self) -> int:
        return len(self._by_source)

    def select(self, sources: Iterable[str] | None) -> list[Pipeline]:
        if sources is None:
            return list(self._by_source.values())
        return [self[source] for source in sources]


def register(connection: Connection, pipeline: Pipeline, *, clock: Clock | None = None) -> bool:
    """Declare the pipeline's source and stage order in the database, so events for it fold.

    When the stage list changed, existing records follow it: rows of removed stages are
    deleted, new stages get PENDING rows (due where the stage before is finished), and nothing
    already done is redone. Returns True when the stored stage list changed.
    """
    changed = connection.execute(
        query("register_source"), {"name": pipeline.source, "stages": pipeline.stage_names}
    ).first()
    if changed is None:
        return False
    now = (clock or DatabaseClock()).now()
    params = {"source": pipeline.source, "now": now, "keys": None}
    for name in ("drop_undeclared_stages", "reindex_stages", "add_declared_stages", "unblock"):
        connection.execute(query(name), params)
    return True


def registered_sources(connection: Connection) -> dict[str, list[str]]:
    return {row.name: list(row.stages) for row in connection.execute(query("source_stages"))}
