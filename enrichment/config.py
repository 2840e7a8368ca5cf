"""Sources and their pipelines, declared in a YAML file and validated once, at the edge.

A mistake is reported with the file, the key path (``sources[0].related[1].join.local``) and
what was expected; past this module the configuration is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from enrichment.chunking import ChunkingConfig
from enrichment.errors import EnrichmentError, UnknownSource
from enrichment.redaction import RedactionConfig
from quality.config import MonitoringConfig

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_QUALIFIED = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})?$")
_COLUMN = re.compile(rf"^{_IDENTIFIER}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


# Runtimes of the packaged local model (docs/embedding-backends.md).
LocalBackend = Literal["torch", "onnx", "onnx-int8"]


class ConfigError(EnrichmentError):
    """The configuration file is wrong: names the file, the key path and what was expected."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [f"{key}: {problem}" for key, problem in problems]
        super().__init__(f"{path}: invalid configuration\n  " + "\n  ".join(lines))


class KeyedValueError(ValueError):
    """A mistake found by a check of a whole object, at a key below it (``stages[2].labels``):
    parse_config reports it at that exact key path."""

    def __init__(self, location: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.location = location


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


class RedactStageConfig(_StageBase):
    """The redact stage: which detectors, extra patterns and allowed values (see
    enrichment/redaction.py). Settings may also be written at the stage's top level."""

    kind: Literal["redact"] = "redact"
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        """Allow redaction settings at the stage's top level (``redact: {detectors: [...]}``)."""
        if isinstance(data, dict):
            keys = set(RedactionConfig.model_fields) & set(data)
            if keys:
                data = dict(data)
                data["redaction"] = {
                    **data.get("redaction", {}),
                    **{k: data.pop(k) for k in keys},
                }
        return data


class LocalEmbedding(_Strict):
    provider: Literal["local"] = "local"
    model: str | None = Field(
        default=None, description="Model directory; default: packaged MiniLM."
    )
    device: str | None = Field(default=None, description="cpu or cuda; default: cuda if available.")
    batch_size: int = Field(default=16, ge=1, le=4096)
    backend: LocalBackend = Field(
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


# --- AI stages: classify, resolve, summarize ----------------------------------------------


class LLMSettings(_Strict):
    """An OpenAI-compatible chat completions endpoint, asked for JSON-schema answers."""

    model: str = Field(min_length=1)
    base_url: str | None = Field(
        default=None, description="API root including /v1; None: OPENAI_BASE_URL or OpenAI."
    )
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Variable holding the key.")
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight per batch.")
    temperature: float = Field(default=0.0, ge=0, le=2)


class LocalModelSettings(_Strict):
    """The local embedding model the local backends compare texts with."""

    model: str | None = Field(
        default=None, description="Model directory; default: packaged MiniLM."
    )
    device: str | None = Field(default=None, description="cpu or cuda; default: cuda if available.")
    batch_size: int = Field(default=16, ge=1, le=4096)
    backend: LocalBackend = Field(
        default="onnx",
        description="Runtime of the model, as for the embed stage's local provider: onnx "
        "(torch's vectors, faster on CPU), torch, or onnx-int8 (approximate vectors).",
    )


class Calibration(_Strict):
    """How the local backend's similarities become a confidence: softmax with a temperature,
    given, or fitted (lowest negative log-likelihood) on a labelled JSONL file of
    ``{"text": ..., "label": ...}`` lines (resolve reads ``"action"`` too). A relative file is
    read from the configuration file's directory. ``none_similarity`` is the score of an
    implicit "none of the options", so a text unlike all of them gets a low confidence; with a
    file it defaults to the 2nd percentile of the labelled texts' best similarity."""

    temperature: float | None = Field(default=None, gt=0, le=10)
    file: str | None = Field(default=None, min_length=1)
    none_similarity: float | None = Field(default=None, ge=-1, le=1)
    _base: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _one(self) -> Calibration:
        if (self.temperature is None) == (self.file is None):
            raise ValueError("give either a temperature or a labelled file to fit one on")
        return self

    def model_post_init(self, context: Any, /) -> None:
        base = context.get("config_dir") if isinstance(context, dict) else None
        self._base = Path(base) if base else Path(".")

    @field_validator("file")
    @classmethod
    def _readable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        base = (info.context or {}).get("config_dir") or "."
        path = Path(value) if Path(value).is_absolute() else Path(base) / value
        if not path.is_file():
            raise ValueError(f"no such file: {str(path)!r}")
        return value

    @property
    def path(self) -> Path | None:
        """The file, resolved against the configuration file's directory."""
        if self.file is None:
            return None
        file = Path(self.file)
        return file if file.is_absolute() else self._base / file


def _option_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a lowercase name like 'carrier_delay'")
    return value


OptionName = Annotated[str, AfterValidator(_option_name)]


class LabelConfig(_Strict):
    """One label of a classifier: the local backend compares texts with its description and
    examples; the LLM backend reads them in its prompt."""

    name: OptionName
    description: str = Field(min_length=1)
    examples: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


class PlaybookAction(_Strict):
    """A recommended action for classified records (executing it is someone else's job)."""

    name: OptionName
    description: str = Field(min_length=1)
    labels: list[OptionName] = Field(
        default_factory=list, description="Labels it applies to; empty: every label."
    )
    examples: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


def _options_once(what: str, key: str, names: list[str]) -> None:
    _unique(what, key, names)


class _AIStageBase(_StageBase):
    kind: str
    backend: Literal["local", "llm"] = "local"
    local: LocalModelSettings = Field(default_factory=LocalModelSettings)
    llm: LLMSettings | None = None
    text_stage: str | None = Field(
        default=None,
        description="Stage whose output text is read; default: redact if declared, else context.",
    )
    write_back: dict[str, Column] = Field(
        default_factory=dict, description="Output field -> source column, NULL on failure."
    )

    _WRITABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _backend_settings(self) -> _AIStageBase:
        if self.backend == "llm" and self.llm is None:
            raise KeyedValueError(("llm",), "backend 'llm' needs llm settings ({model: ...})")
        for name in self.write_back:
            if name not in self._WRITABLE:
                raise KeyedValueError(
                    ("write_back", name),
                    f"{self.kind} has no output field {name!r} to write; it has "
                    f"{', '.join(sorted(self._WRITABLE))}",
                )
        return self


class _GatedStageBase(_AIStageBase):
    min_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Below it the record's later stages are skipped and it is re-checked.",
    )
    recheck_after_hours: float = Field(default=24.0, gt=0)
    max_rechecks: int = Field(default=3, ge=0, le=100)
    calibration: Calibration | None = None

    @model_validator(mode="after")
    def _calibrated(self) -> _GatedStageBase:
        if self.backend == "local" and self.calibration is None:
            raise KeyedValueError(
                ("calibration",),
                "the local backend needs one ({file: labelled.jsonl} or {temperature: 0.03}) "
                "so that its confidence means something",
            )
        return self


class ClassifyStageConfig(_GatedStageBase):
    kind: Literal["classify"] = "classify"
    labels: list[LabelConfig] = Field(min_length=2)
    instructions: str | None = Field(default=None, description="Extra words for the LLM prompt.")

    _WRITABLE: ClassVar[frozenset[str]] = frozenset(
        {"label", "confidence", "backend", "model", "version"}
    )

    @field_validator("labels")
    @classmethod
    def _labels_once(cls, labels: list[LabelConfig]) -> list[LabelConfig]:
        _options_once("label", "labels", [label.name for label in labels])
        return labels


class ResolveStageConfig(_GatedStageBase):
    kind: Literal["resolve"] = "resolve"
    playbook: list[PlaybookAction] = Field(min_length=1)
    instructions: str | None = Field(default=None, description="Extra words for the LLM prompt.")
    event: str = Field(
        default="enrichment.resolution.recommended",
        pattern=r"^[a-z][a-z0-9_.-]*$",
        description="Name of the Prefect event emitted for each recommendation.",
    )

    _WRITABLE: ClassVar[frozenset[str]] = frozenset(
        {"action", "confidence", "label", "backend", "model", "version"}
    )

    @field_validator("playbook")
    @classmethod
    def _actions_once(cls, playbook: list[PlaybookAction]) -> list[PlaybookAction]:
        _options_once("action", "playbook", [action.name for action in playbook])
        return playbook


class SummarizeStageConfig(_AIStageBase):
    kind: Literal["summarize"] = "summarize"
    max_characters: int = Field(default=300, ge=40, le=300)
    max_sentences: int = Field(default=3, ge=1, le=3)

    _WRITABLE: ClassVar[frozenset[str]] = frozenset({"summary", "quality"})


AI_STAGE_KINDS = ("classify", "resolve", "summarize")


def _check_ai_stages(source: SourceConfig) -> None:
    """What one AI stage expects of the others: a text stage before it, a classifier before
    resolve, playbook labels the classifier knows, write-back columns the pipeline does not
    read (writing one would re-queue the record, forever)."""
    kinds = [stage.kind for stage in source.stages]
    read = {source.key_column, source.workspace_column, source.updated_at_column, *source.columns}
    written: dict[str, str] = {}
    for position, stage in enumerate(source.stages):
        if not isinstance(stage, _AIStageBase):
            continue
        at: tuple[int | str, ...] = ("stages", position)
        earlier = kinds[:position]
        if stage.text_stage is not None and stage.text_stage not in earlier:
            raise KeyedValueError(
                (*at, "text_stage"), f"{stage.text_stage!r} is not a stage before {stage.kind}"
            )
        if stage.text_stage is None and not {"context", "redact"} & set(earlier):
            raise KeyedValueError(
                at, f"{stage.kind} needs a context stage before it (it reads its text)"
            )
        if isinstance(stage, ResolveStageConfig):
            classify = source.stage("classify")
            if classify is None or "classify" not in earlier:
                raise KeyedValueError(at, "resolve needs a classify stage before it")
            known = {label.name for label in classify.labels}
            for index, action in enumerate(stage.playbook):
                for number, label in enumerate(action.labels):
                    if label not in known:
                        raise KeyedValueError(
                            (*at, "playbook", index, "labels", number),
                            f"{label!r} is not a label of the classify stage",
                        )
        for field_name, column in stage.write_back.items():
            key = (*at, "write_back", field_name)
            if column in read:
                raise KeyedValueError(
                    key,
                    f"column {column!r} is read by the pipeline; writing it would re-queue the "
                    "record after every write",
                )
            if column in written:
                raise KeyedValueError(
                    key, f"column {column!r} is already written by {written[column]}"
                )
            written[column] = _key_path(key)


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
    ContextStageConfig
    | ChunkStageConfig
    | EmbedStageConfig
    | RedactStageConfig
    | ClassifyStageConfig
    | ResolveStageConfig
    | SummarizeStageConfig,
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

    @field_validator("stages")
    @classmethod
    def _redaction_first(cls, stages: list[StageConfig], info: ValidationInfo) -> list[StageConfig]:
        """Privacy ``redact`` means no stage reads a record before it is redacted: the redact
        stage comes first and hands the redacted record to context. ``none`` and ``block``
        have no redact stage (``block`` stores no text, so there is nothing to redact)."""
        privacy = info.data.get("privacy")
        kinds = [stage.kind for stage in stages]
        if privacy == "redact" and kinds[:1] != ["redact"]:
            raise ValueError(
                "privacy 'redact' needs 'redact' as the first stage, so that no stage reads a "
                f"record before it is redacted (stages: {', '.join(kinds)})"
            )
        if "redact" in kinds and privacy in ("none", "block"):
            why = (
                "stores no text, so there is nothing to redact"
                if privacy == "block"
                else "does not redact"
            )
            raise ValueError(
                f"stages[{kinds.index('redact')}] is 'redact' but privacy {privacy!r} {why}: "
                "set privacy: redact or remove the stage"
            )
        if "redact" in kinds and "context" not in kinds:
            raise ValueError("the redact stage hands its redacted record to 'context': add it")
        return stages

    @field_validator("related")
    @classmethod
    def _related_once(cls, related: list[RelatedEntity]) -> list[RelatedEntity]:
        _unique("related name", "related", [relation.name for relation in related])
        return related

    @model_validator(mode="after")
    def _ai_stages(self) -> SourceConfig:
        _check_ai_stages(self)
        return self

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
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig,
        description="Metrics, alert thresholds and channels (docs/monitoring.md).",
    )

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

    def selected(self, name: str | None) -> list[SourceConfig]:
        """Every source when ``name`` is None, else the one named (an unknown name fails with
        the known ones named): the choice behind every ``source`` option and parameter."""
        return list(self.sources) if name is None else [self.source(name)]


STAGE_KINDS = frozenset({"context", "chunk", "embed", "redact", *AI_STAGE_KINDS})
_TAGS = {"stages": STAGE_KINDS, "embedding": {"local", "openai"}}
# Stage settings that may be written flat but live in a nested model (``- chunk: {max_tokens:
# 100}`` is ``chunk.chunking.max_tokens``).
_NESTED = {"chunk": "chunking", "redact": "redaction"}


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
    if len(location) < 6 or _NESTED.get(str(location[4])) != location[5]:
        return location
    try:
        stage = data["sources"][location[1]]["stages"][location[3]]
    except (KeyError, IndexError, TypeError):
        return location
    if not isinstance(stage, dict):
        return location
    settings = stage if "kind" in stage else next(iter(stage.values()), None)
    if isinstance(settings, dict) and location[5] in settings:
        return location
    return location[:5] + location[6:]


def parse_config(data: Any, *, path: Path | str = "<config>") -> EnrichConfig:
    # Files the configuration names (calibration sets) are read relative to it.
    context = {"config_dir": str(Path(path).parent)}
    try:
        return EnrichConfig.model_validate(data, context=context)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            # A value error on a list or mapping names what is wrong in it; its dump is noise.
            noisy = error["type"] == "value_error" and isinstance(error["input"], list | dict)
            given = "" if error["type"] == "missing" or noisy else f" (got {error['input']!r:.80})"
            location = _as_written(data, error["loc"])
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, KeyedValueError):
                location = (*location, *cause.location)
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


def load_config_if_present(path: Path | str) -> EnrichConfig | None:
    """The configuration file when there is one; None without it, for the commands and flows
    that run on defaults then (health, metrics, monitoring, reports). A file that exists but
    is invalid is an error, as for :func:`load_config`."""
    return load_config(path) if Path(path).exists() else None
