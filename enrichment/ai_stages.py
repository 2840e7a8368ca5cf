"""From configuration to the AI stages (classify, resolve, summarize): their backends, the
calibration set their local confidence is fitted on, their gates and write-back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine

from enrichment.classification import (
    Classifier,
    EmbeddingClassifier,
    Example,
    LLMClassifier,
    Option,
    Question,
)
from enrichment.config import (
    Calibration,
    ClassifyStageConfig,
    LLMSettings,
    LocalModelSettings,
    RedactStageConfig,
    ResolveStageConfig,
    SourceConfig,
    SummarizeStageConfig,
)
from enrichment.embedders.base import Embedder
from enrichment.errors import InvalidInput
from enrichment.llm import ChatClient, ChatConfig
from enrichment.redaction import Redactor
from enrichment.stages.base import Stage
from enrichment.stages.classify import ClassifyStage
from enrichment.stages.gate import Gate
from enrichment.stages.resolve import PlaybookEntry, ResolveStage
from enrichment.stages.summarize import PiiCheck, SummarizeStage
from enrichment.summarization import ExtractiveSummarizer, LLMSummarizer, Summarizer
from enrichment.writeback import WriteBack

AIStageConfig = ClassifyStageConfig | ResolveStageConfig | SummarizeStageConfig


def stage_key(source: SourceConfig, config: AIStageConfig) -> str:
    return f"sources[{source.name}].stages[{source.stages.index(config)}]"


def text_stage(source: SourceConfig, config: AIStageConfig) -> str:
    """The stage whose text is read: as configured, else the last of redact and context
    before this stage (redacted text where the pipeline redacts)."""
    if config.text_stage is not None:
        return config.text_stage
    earlier = [stage.kind for stage in source.stages[: source.stages.index(config)]]
    return next(kind for kind in reversed(earlier) if kind in ("redact", "context"))


def local_embedder(settings: LocalModelSettings) -> Embedder:
    """The local model of the local backends, on the configured runtime (the embed stage's
    choice of runtimes: one ONNX export serves both)."""
    from enrichment.config import LocalEmbedding
    from enrichment.sources import build_embedder

    return build_embedder(
        LocalEmbedding(
            model=settings.model,
            device=settings.device,
            batch_size=settings.batch_size,
            backend=settings.backend,
        )
    )


def chat_client(settings: LLMSettings, key: str) -> ChatClient:
    api_key = os.environ.get(settings.api_key_env)
    if not api_key:
        raise InvalidInput(
            f"{key}.llm.api_key_env", f"environment variable {settings.api_key_env} is not set"
        )
    return ChatClient(
        ChatConfig(
            model=settings.model,
            base_url=settings.base_url,
            api_key=SecretStr(api_key),
            timeout_seconds=settings.timeout_seconds,
            max_retries=settings.max_retries,
            temperature=settings.temperature,
        )
    )


def read_labelled(path: Path, key: str) -> list[dict[str, str]]:
    """Lines of a labelled JSONL file: objects with a ``text`` and a ``label`` (and, for
    resolve, an ``action``). A bad line is reported with the file, line and field."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(key, f"{path} cannot be read: {err}") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InvalidInput(key, f"{path} line {number}: not JSON") from None
        if not isinstance(item, dict):
            raise InvalidInput(key, f"{path} line {number}: expected an object")
        for field in ("text", "label"):
            if not isinstance(item.get(field), str) or not item[field].strip():
                raise InvalidInput(key, f"{path} line {number}: field {field!r} is missing")
        items.append({k: v for k, v in item.items() if isinstance(v, str)})
    if not items:
        raise InvalidInput(key, f"{path} has no labelled lines")
    return items


def _calibration_examples(
    calibration: Calibration,
    key: str,
    known: set[str],
    to_example: Callable[[dict[str, str]], Example | None],
) -> list[Example]:
    path = calibration.path
    assert path is not None
    examples = []
    for number, item in enumerate(read_labelled(path, key), start=1):
        if item["label"] not in known:
            raise InvalidInput(
                key, f"{path} item {number}: label {item['label']!r} is not a configured label"
            )
        example = to_example(item)
        if example is not None:
            examples.append(example)
    if not examples:
        raise InvalidInput(key, f"{path} has no item this stage can be calibrated on")
    return examples


def build_classifier(
    config: ClassifyStageConfig | ResolveStageConfig,
    options: Sequence[Option],
    *,
    key: str,
    what: str,
    labels: set[str],
    calibration_example: Callable[[dict[str, str]], Example | None],
) -> Classifier:
    if config.backend == "llm":
        assert config.llm is not None
        return LLMClassifier(
            options,
            chat_client(config.llm, key),
            what=what,
            instructions=config.instructions,
            concurrency=config.llm.concurrency,
        )
    calibration = config.calibration
    assert calibration is not None  # the configuration requires one for the local backend
    examples = None
    if calibration.file is not None:
        examples = _calibration_examples(
            calibration, f"{key}.calibration.file", labels, calibration_example
        )
    try:
        return EmbeddingClassifier(
            options,
            local_embedder(config.local),
            temperature=calibration.temperature,
            none_similarity=calibration.none_similarity,
            calibration=examples,
        )
    except ValueError as err:
        raise InvalidInput(f"{key}.calibration", str(err)) from None


def _gate(config: ClassifyStageConfig | ResolveStageConfig) -> Gate | None:
    if config.min_confidence is None:
        return None
    return Gate(config.min_confidence, config.recheck_after_hours * 3600.0, config.max_rechecks)


def _write_back(
    engine: Engine, source: SourceConfig, config: AIStageConfig, key: str
) -> WriteBack | None:
    if not config.write_back:
        return None
    return WriteBack(engine, source, config.write_back, key=key)


def build_classify(engine: Engine, source: SourceConfig, config: ClassifyStageConfig) -> Stage:
    key = stage_key(source, config)
    names = {label.name for label in config.labels}
    classifier = build_classifier(
        config,
        [Option(label.name, label.description, tuple(label.examples)) for label in config.labels],
        key=key,
        what="label",
        labels=names,
        calibration_example=lambda item: Example(Question(item["text"]), item["label"]),
    )
    return ClassifyStage(
        engine,
        source.name,
        classifier,
        text_stage=text_stage(source, config),
        gate=_gate(config),
        write_back=_write_back(engine, source, config, key),
    )


def build_resolve(engine: Engine, source: SourceConfig, config: ResolveStageConfig) -> Stage:
    key = stage_key(source, config)
    classify = source.stage("classify")
    assert isinstance(classify, ClassifyStageConfig)  # the configuration checks it
    labels = {label.name: label.description for label in classify.labels}
    playbook = [PlaybookEntry(action.name, tuple(action.labels)) for action in config.playbook]

    def candidates(label: str) -> tuple[str, ...]:
        return tuple(entry.action for entry in playbook if entry.applies_to(label))

    def calibration_example(item: dict[str, str]) -> Example | None:
        action, label = item.get("action"), item["label"]
        if action is None:
            return None
        if action not in candidates(label):
            raise InvalidInput(
                f"{key}.calibration.file",
                f"action {action!r} of a calibration item is not in the playbook for {label!r}",
            )
        return Example(Question(item["text"], candidates=candidates(label)), action)

    classifier = build_classifier(
        config,
        [Option(a.name, a.description, tuple(a.examples)) for a in config.playbook],
        key=key,
        what="action",
        labels=set(labels),
        calibration_example=calibration_example,
    )
    return ResolveStage(
        engine,
        source.name,
        classifier,
        playbook,
        text_stage=text_stage(source, config),
        label_descriptions=labels,
        gate=_gate(config),
        write_back=_write_back(engine, source, config, key),
        event=config.event,
    )


def build_summarize(
    engine: Engine,
    source: SourceConfig,
    config: SummarizeStageConfig,
    *,
    pii_check: PiiCheck | None = None,
) -> Stage:
    key = stage_key(source, config)
    summarizer: Summarizer
    if config.backend == "llm":
        assert config.llm is not None
        summarizer = LLMSummarizer(
            chat_client(config.llm, key),
            max_characters=config.max_characters,
            max_sentences=config.max_sentences,
            concurrency=config.llm.concurrency,
        )
    else:
        summarizer = ExtractiveSummarizer(
            local_embedder(config.local),
            max_characters=config.max_characters,
            max_sentences=config.max_sentences,
        )
    return SummarizeStage(
        engine,
        source.name,
        summarizer,
        text_stage=text_stage(source, config),
        confidence_stage="classify" if source.stage("classify") is not None else None,
        pii_check=pii_check,
        store_text=source.privacy != "block",
        max_characters=config.max_characters,
        write_back=_write_back(engine, source, config, key),
    )


def summary_pii_check(source: SourceConfig) -> PiiCheck:
    """The PII re-check of a source's summaries: the redactor (the source's redact settings
    when it has them, else every detector), whatever the privacy mode: a summary is new text."""
    redact = source.stage("redact")
    settings = redact.redaction if isinstance(redact, RedactStageConfig) else None
    return Redactor(settings).scrub


def build_ai_stage(engine: Engine, source: SourceConfig, config: AIStageConfig) -> Stage:
    if isinstance(config, ClassifyStageConfig):
        return build_classify(engine, source, config)
    if isinstance(config, ResolveStageConfig):
        return build_resolve(engine, source, config)
    return build_summarize(engine, source, config, pii_check=summary_pii_check(source))
