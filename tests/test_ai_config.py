"""Configuration of the AI stages (classify, resolve, summarize): defaults, what the stages
expect of each other, and mistakes reported with the file and the exact key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from enrichment.config import (
    ClassifyStageConfig,
    ConfigError,
    ResolveStageConfig,
    SummarizeStageConfig,
    load_config,
    parse_config,
)
from enrichment.sources import config_hash

REPO = Path(__file__).resolve().parent.parent


def valid() -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": "exceptions",
                "table": "public.exceptions",
                "columns": ["description"],
                "entity": {"type": "exception", "category": "Fulfilment exception"},
                "stages": [
                    "context",
                    {
                        "classify": {
                            "labels": [
                                {"name": "carrier_delay", "description": "Late parcel."},
                                {"name": "damaged_item", "description": "Broken item."},
                            ],
                            "calibration": {"temperature": 0.03},
                            "min_confidence": 0.6,
                            "write_back": {"label": "ai_label", "confidence": "ai_confidence"},
                        }
                    },
                    {
                        "resolve": {
                            "playbook": [
                                {
                                    "name": "contact_carrier",
                                    "description": "Ask the carrier.",
                                    "labels": ["carrier_delay"],
                                },
                                {"name": "escalate", "description": "Ask a person."},
                            ],
                            "calibration": {"temperature": 0.05},
                            "write_back": {"action": "ai_action"},
                        }
                    },
                    {"summarize": {"write_back": {"summary": "ai_summary"}}},
                ],
            }
        ]
    }


def stage(data: dict[str, Any], index: int) -> dict[str, Any]:
    item = data["sources"][0]["stages"][index]
    return next(iter(item.values()))


def problems(change: Callable[[dict[str, Any]], object]) -> list[tuple[str, str]]:
    data = valid()
    change(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path="enrich.yaml")
    assert str(caught.value).startswith("enrich.yaml: invalid configuration")
    return caught.value.problems


def test_ai_stages_parse_with_their_defaults() -> None:
    source = parse_config(valid()).sources[0]

    classify, resolve, summarize = source.stages[1:]
    assert isinstance(classify, ClassifyStageConfig)
    assert classify.backend == "local" and classify.llm is None
    assert classify.recheck_after_hours == 24 and classify.max_rechecks == 3
    assert classify.text_stage is None
    assert isinstance(resolve, ResolveStageConfig)
    assert resolve.min_confidence is None
    assert resolve.event == "enrichment.resolution.recommended"
    assert resolve.playbook[1].labels == []  # every label
    assert isinstance(summarize, SummarizeStageConfig)
    assert (summarize.max_characters, summarize.max_sentences) == (300, 3)


def test_the_llm_backend_takes_openai_compatible_settings() -> None:
    data = valid()
    stage(data, 1).update(
        backend="llm",
        calibration=None,
        llm={"model": "gpt-4o-mini", "base_url": "http://127.0.0.1:8000/v1"},
    )

    classify = parse_config(data).sources[0].stages[1]

    assert isinstance(classify, ClassifyStageConfig) and classify.llm is not None
    assert classify.llm.api_key_env == "OPENAI_API_KEY"
    assert (classify.llm.timeout_seconds, classify.llm.max_retries) == (30.0, 5)


def test_a_calibration_file_is_read_from_the_configuration_files_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "labelled.jsonl").write_text('{"text": "late", "label": "carrier_delay"}\n')
    data = valid()
    stage(data, 1)["calibration"] = {"file": "labelled.jsonl"}
    config_file = tmp_path / "enrich.yaml"
    config_file.write_text(yaml.safe_dump(data))

    classify = load_config(config_file).sources[0].stages[1]

    assert isinstance(classify, ClassifyStageConfig) and classify.calibration is not None
    assert classify.calibration.path == tmp_path / "labelled.jsonl"


def test_the_demo_configuration_is_valid() -> None:
    config = load_config(REPO / "enrich.yaml")

    kinds = [s.kind for s in config.sources[0].stages]
    assert kinds == ["redact", "context", "classify", "resolve", "summarize", "chunk", "embed"]


def test_settings_of_how_the_ai_stages_run_do_not_change_the_config_hash() -> None:
    data = valid()
    stage(data, 1).update(
        backend="llm", calibration=None, llm={"model": "m", "base_url": "http://x/v1"}
    )
    before = config_hash(parse_config(data).sources[0])
    stage(data, 1)["llm"].update(timeout_seconds=5, max_retries=1, concurrency=9, api_key_env="K")
    stage(data, 1).update(recheck_after_hours=6, max_rechecks=9, batch_size=10)

    assert config_hash(parse_config(data).sources[0]) == before


def test_the_local_models_runtime_changes_the_config_hash_only_when_it_changes_the_vectors() -> (
    None
):
    def hashed(backend: str | None) -> str:
        data = valid()
        if backend is not None:
            stage(data, 1)["local"] = {"backend": backend}
        return config_hash(parse_config(data).sources[0])

    assert hashed("torch") == hashed("onnx") == hashed(None)  # the same vectors
    assert hashed("onnx-int8") != hashed("onnx")  # approximate ones


@pytest.mark.parametrize(
    "change",
    [
        lambda d: stage(d, 1)["labels"][0].update(description="Very late parcel."),
        lambda d: stage(d, 1)["labels"].append({"name": "stock_out", "description": "None."}),
        lambda d: stage(d, 1).update(min_confidence=0.7),
        lambda d: stage(d, 1)["calibration"].update(temperature=0.05),
        lambda d: stage(d, 2)["playbook"][0].update(description="Trace it."),
        lambda d: stage(d, 3).update(max_characters=200),
    ],
    ids=["label-description", "new-label", "gate", "temperature", "action", "summary-limit"],
)
def test_what_decides_the_results_changes_the_config_hash(
    change: Callable[[dict[str, Any]], object],
) -> None:
    before = config_hash(parse_config(valid()).sources[0])
    data = valid()
    change(data)

    assert config_hash(parse_config(data).sources[0]) != before


MISTAKES = [
    pytest.param(
        lambda d: stage(d, 1).update(backend="llm", calibration=None),
        "sources[0].stages[1].llm",
        "backend 'llm' needs llm settings",
        id="llm-without-settings",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(calibration=None),
        "sources[0].stages[1].calibration",
        "the local backend needs one",
        id="local-without-calibration",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(calibration={}),
        "sources[0].stages[1].calibration",
        "give either a temperature or a labelled file",
        id="empty-calibration",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(calibration={"file": "missing.jsonl"}),
        "sources[0].stages[1].calibration.file",
        "no such file",
        id="missing-calibration-file",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(labels=[{"name": "only", "description": "x"}]),
        "sources[0].stages[1].labels",
        "List should have at least 2 items",
        id="one-label",
    ),
    pytest.param(
        lambda d: stage(d, 1)["labels"][1].update(name="carrier_delay"),
        "sources[0].stages[1].labels",
        "each label may appear once: 'carrier_delay' is labels[0] and labels[1]",
        id="duplicate-label",
    ),
    pytest.param(
        lambda d: stage(d, 1)["labels"][0].update(name="Carrier Delay"),
        "sources[0].stages[1].labels[0].name",
        "is not a lowercase name",
        id="bad-label-name",
    ),
    pytest.param(
        lambda d: stage(d, 1)["labels"][0].pop("description"),
        "sources[0].stages[1].labels[0].description",
        "Field required",
        id="label-without-description",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(min_confidence=1.5),
        "sources[0].stages[1].min_confidence",
        "less than or equal to 1",
        id="confidence-above-one",
    ),
    pytest.param(
        lambda d: stage(d, 1)["write_back"].update(label="description"),
        "sources[0].stages[1].write_back.label",
        "column 'description' is read by the pipeline",
        id="write-back-to-a-read-column",
    ),
    pytest.param(
        lambda d: stage(d, 1)["write_back"].update(reason="ai_reason"),
        "sources[0].stages[1].write_back.reason",
        "classify has no output field 'reason'",
        id="write-back-unknown-field",
    ),
    pytest.param(
        lambda d: stage(d, 2)["write_back"].update(action="ai_label"),
        "sources[0].stages[2].write_back.action",
        "column 'ai_label' is already written by stages[1].write_back.label",
        id="write-back-twice",
    ),
    pytest.param(
        lambda d: stage(d, 1)["write_back"].update(label="ai label"),
        "sources[0].stages[1].write_back.label",
        "is not a column name",
        id="write-back-bad-column",
    ),
    pytest.param(
        lambda d: stage(d, 2)["playbook"][0].update(labels=["lost_parcel"]),
        "sources[0].stages[2].playbook[0].labels[0]",
        "'lost_parcel' is not a label of the classify stage",
        id="playbook-unknown-label",
    ),
    pytest.param(
        lambda d: d["sources"][0]["stages"].pop(1),
        "sources[0].stages[1]",
        "resolve needs a classify stage before it",
        id="resolve-without-classify",
    ),
    pytest.param(
        lambda d: d["sources"][0]["stages"].pop(0),
        "sources[0].stages[0]",
        "classify needs a context stage before it",
        id="no-context-stage",
    ),
    pytest.param(
        lambda d: stage(d, 3).update(text_stage="chunk"),
        "sources[0].stages[3].text_stage",
        "'chunk' is not a stage before summarize",
        id="text-stage-not-before",
    ),
    pytest.param(
        lambda d: stage(d, 3).update(max_characters=500),
        "sources[0].stages[3].max_characters",
        "less than or equal to 300",
        id="summary-too-long",
    ),
    pytest.param(
        lambda d: stage(d, 3).update(max_sentences=4),
        "sources[0].stages[3].max_sentences",
        "less than or equal to 3",
        id="too-many-sentences",
    ),
    pytest.param(
        lambda d: stage(d, 2).update(event="Resolution Recommended"),
        "sources[0].stages[2].event",
        "String should match pattern",
        id="bad-event-name",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(recheck_after_hours=0),
        "sources[0].stages[1].recheck_after_hours",
        "greater than 0",
        id="recheck-age-zero",
    ),
    pytest.param(
        lambda d: stage(d, 1).update(temperature=0.1),
        "sources[0].stages[1].temperature",
        "Extra inputs are not permitted",
        id="unknown-key",
    ),
]


@pytest.mark.parametrize(("change", "key", "expected"), MISTAKES)
def test_a_mistake_names_the_key_path_and_what_was_expected(
    change: Callable[[dict[str, Any]], object], key: str, expected: str
) -> None:
    [(reported_key, problem)] = problems(change)

    assert reported_key == key
    assert expected in problem
