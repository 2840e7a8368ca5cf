"""Sources and their pipelines, declared in a YAML file and validated once, at the edge.

A mistake is reported with the file, the key path (``sources[0].related[1].join.local``) and
what was expected; past this module the configuration is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from enrichment.chunking import ChunkingConfig
from enrichment.errors import EnrichmentError, UnknownSource

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_QUALIFIED = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})?$")
_COLUMN = re.compile(rf"^{_IDENTIFIER}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ConfigError(EnrichmentError):
    """The configuration file is wrong: names the file, the key path and what was expected."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [f"{key}: {problem}" for key, problem in problems]
        super().__init__(f"{path}: invalid configuration\n  " + "\n  ".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _column(value: str) -> str:
    if not _COLUMN.match(value):
        raise ValueError(f"{value!r} is not a column name (letters, digits, underscores)")
    return value


# Checked per value, so a bad entry of a list is reported at its index (``columns[1]``).
Column = Annotated[str, Field(min_length=1), AfterValidator(_column)]


class Join(_Strict):
    """``related.<remote> = source.<local>``: many-to-one (local = the foreign key) and
    one-to-many (remote = the foreign key) alike."""

    local: Column
    remote: Column


def _unique(what: str, key: str, values: list[str]) -> None:
    """Each value once; a repeat names both positions (``'context' is stages[0] and
    stages[3]``)."""
    for position, value in enumerate(values):
        first = values.index(value)
        if first != position:
            raise ValueError(
                f"each {what} may appear once: {value!r} is {key}[{first}] and {key}[{position}]"
            )


class RelatedEntity(_Strict):
    """Entities one hop away whose fields enrich the record's text."""

    name: str = Field(description="How the template refers to it, e.g. 'customer'.")
    table: str
    join: Join
    fields: list[Column] = Field(min_length=1)
    entity_type: str | None = None
    many: bool = Field(default=False, description="One-to-many: a list of related rows.")
    significant: bool = Field(
        default=True, description="A change of these fields re-enriches the record."
    )
    limit: int = Field(default=20, ge=1, le=1000, description="Rows kept when many=True.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a lowercase name like 'customer'")
        return value

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _QUALIFIED.match(value):
            raise ValueError(f"{value!r} is not a table name like 'public.customers'")
        return value


class EntityMetadata(_Strict):
    """What the record is, in words: prepended to its text so the vector carries its place in
    the entity graph."""

    type: str = Field(min_length=1, description="Entity type, e.g. 'support_message'.")
    category: str = Field(
        min_length=1, description="Semantic category, e.g. 'Support communication'."
    )
    description: str = ""
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Column -> label or description."
    )
    relationships: dict[str, str] = Field(
        default_factory=dict, description="Related entity name -> what the relationship means."
    )


class _StageBase(_Strict):
    retry_delays: tuple[float, ...] | None = Field(
        default=None, description="Seconds before retry 1..n; default from settings."
    )
    lease_seconds: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1, le=100_000)


class ContextStageConfig(_StageBase):
    kind: Literal["context"] = "context"


class ChunkStageConfig(_StageBase):
    kind: Literal["chunk"] = "chunk"
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        """Allow chunking settings at the stage's top level (``chunk: {strategy: fixed}``)."""
        if isinstance(data, dict):
            keys = set(ChunkingConfig.model_fields) & set(data)
            if keys:
                data = dict(data)
                data["chunking"] = {**data.get("chunking", {}), **{k: data.pop(k) for k in keys}}
        return data


class LocalEmbedding(_Strict):
    provider: Literal["local"] = "local"
    model: str | None = Field(
        default=None, description="Model directory; default: packaged MiniLM."
    )
    device: str | None = Field(default=None, description="cpu or cuda; default: cuda if available.")
    batch_size: int = Field(default=16, ge=1, le=4096)
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx",
        description="Runtime of the model: onnx (the model exported once to ONNX and run by "
        "onnxruntime: torch's vectors, faster on CPU), torch (sentence-transformers; for GPUs) "
        "or onnx-int8 (dynamically quantized: faster still, approximate vectors). Part of the "
        "model version: changing it re-embeds through a new vector table.",
    )


class OpenAIEmbedding(_Strict):
    provider: Literal["openai"] = "openai"
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Variable holding the key.")
    dimensions: int = Field(ge=1, le=16_000)
    send_dimensions: bool = False
    batch_size: int = Field(default=128, ge=1, le=2048)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=20)


EmbeddingConfig = Annotated[LocalEmbedding | OpenAIEmbedding, Field(discriminator="provider")]


class EmbedStageConfig(_StageBase):
    kind: Literal["embed"] = "embed"
    embedding: EmbeddingConfig = Field(default_factory=LocalEmbedding)


def _stage_shorthand(item: Any) -> Any:
    """``- context`` and ``- chunk: {...}`` are shorthands for ``- {kind: ..., ...}``."""
    if isinstance(item, str):
        return {"kind": item}
    if isinstance(item, dict) and len(item) == 1 and "kind" not in item:
        ((kind, settings),) = item.items()
        if settings is not None and not isinstance(settings, dict):
            raise ValueError(
                f"the settings of {kind!r} should be a mapping like "
                f"'{kind}: {{batch_size: 100}}', got {settings!r}"
            )
        return {"kind": kind, **(settings or {})}
    return item


# The shorthand is expanded per stage, so a mistake in it is reported at its index.
StageConfig = Annotated[
    ContextStageConfig | ChunkStageConfig | EmbedStageConfig,
    Field(discriminator="kind"),
    BeforeValidator(_stage_shorthand),
]


class SourceConfig(_Strict):
    name: str
    table: str
    key_column: Column = "id"
    workspace_column: Column = "workspace_id"
    updated_at_column: Column | None = "updated_at"
    columns: list[Column] = Field(
        min_length=1, description="Columns the pipeline reads; only their changes re-enrich."
    )
    entity: EntityMetadata
    related: list[RelatedEntity] = Field(default_factory=list)
    template: str | None = Field(
        default=None, description="Jinja2 template of the enriched text; default: generated."
    )
    privacy: Literal["none", "redact", "block"] = "none"
    stages: list[StageConfig] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a lowercase name like 'support_messages'")
        return value

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _QUALIFIED.match(value):
            raise ValueError(f"{value!r} is not a table name like 'public.support_messages'")
        return value

    @field_validator("stages")
    @classmethod
    def _stages_once(cls, stages: list[StageConfig]) -> list[StageConfig]:
        _unique("stage", "stages", [stage.kind for stage in stages])
        return stages

    @field_validator("related")
    @classmethod
    def _related_once(cls, related: list[RelatedEntity]) -> list[RelatedEntity]:
        _unique("related name", "related", [relation.name for relation in related])
        return related

    def stage(self, kind: str) -> Any:
        return next((stage for stage in self.stages if stage.kind == kind), None)

    def metadata_hash(self) -> str:
        """Changes when anything that shapes the enriched text changes (semantic metadata,
        related fields, template): a change re-queues every record of the source."""
        shaping = {
            "entity": self.entity.model_dump(),
            "related": [r.model_dump() for r in self.related],
            "template": self.template,
            "columns": self.columns,
            "privacy": self.privacy,
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


class EnrichConfig(_Strict):
    sources: list[SourceConfig] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _names_once(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        _unique("source name", "sources", [source.name for source in sources])
        return sources

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise UnknownSource(name, [source.name for source in self.sources])


_TAGS = {"stages": {"context", "chunk", "embed"}, "embedding": {"local", "openai"}}


def _key_path(location: tuple[int | str, ...]) -> str:
    path, owner = "", ""
    for part in location:
        if isinstance(part, str) and part in _TAGS.get(owner, ()):
            continue  # pydantic's discriminator tag, not a key the user wrote
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
        owner = part if isinstance(part, str) else owner
    return path or "(top level)"


def _as_written(data: Any, location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The location as the file has it: chunk settings written flat (``- chunk: {max_tokens:
    100}``) were moved under ``chunking`` by the shorthand, a key the file does not have."""
    if location[:1] != ("sources",) or location[2:3] != ("stages",):
        return location
    if location[4:6] != ("chunk", "chunking"):
        return location
    try:
        stage = data["sources"][location[1]]["stages"][location[3]]
    except (KeyError, IndexError, TypeError):
        return location
    if not isinstance(stage, dict):
        return location
    settings = stage if "kind" in stage else next(iter(stage.values()), None)
    if isinstance(settings, dict) and "chunking" in settings:
        return location
    return location[:5] + location[6:]


def parse_config(data: Any, *, path: Path | str = "<config>") -> EnrichConfig:
    try:
        return EnrichConfig.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            # A value error on a list or mapping names what is wrong in it; its dump is noise.
            noisy = error["type"] == "value_error" and isinstance(error["input"], list | dict)
            given = "" if error["type"] == "missing" or noisy else f" (got {error['input']!r:.80})"
            location = _as_written(data, error["loc"])
            problems.append((_key_path(location), f"{error['msg']}{given}"))
        raise ConfigError(path, problems) from None


def load_config(path: Path | str) -> EnrichConfig:
    """Read and validate a YAML configuration file."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(path, [("(file)", f"cannot be read: {err.strerror}")]) from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ConfigError(
            path, [(f"line {line}", f"not UTF-8 text: byte {err.object[err.start]:#04x}")]
        ) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(
            path, [(where, f"not valid YAML: {getattr(err, 'problem', err)}")]
        ) from None
    return parse_config(data, path=path)
