"""Privacy settings in the configuration: ``redact`` requires the redact stage first, so no stage
reads a record before it is redacted; redaction settings are validated at the edge with their
key path; a change of them re-queues the source."""

from __future__ import annotations

from typing import Any

import pytest

from enrichment.config import ConfigError, RedactStageConfig, parse_config
from enrichment.errors import InvalidInput
from enrichment.redaction import RedactionConfig
from enrichment.sources import config_hash
from enrichment.stages.context import ContextStage


def _config(privacy: str, stages: list[Any]) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": "tickets",
                "table": "public.tickets",
                "columns": ["body"],
                "entity": {"type": "ticket", "category": "Ticket"},
                "privacy": privacy,
                "stages": stages,
            }
        ]
    }


def _problems(privacy: str, stages: list[Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_config(_config(privacy, stages), path="enrich.yaml")
    assert str(raised.value).startswith("enrich.yaml: invalid configuration")
    return raised.value.problems


def test_redact_mode_with_the_redact_stage_first_is_valid() -> None:
    config = parse_config(_config("redact", ["redact", "context", "chunk", "embed"]))

    stage = config.sources[0].stages[0]
    assert isinstance(stage, RedactStageConfig)
    assert stage.redaction == RedactionConfig()


def test_redact_mode_without_a_redact_stage_is_rejected() -> None:
    [(key, problem)] = _problems("redact", ["context", "chunk", "embed"])

    assert key == "sources[0].stages"
    assert "privacy 'redact' needs 'redact' as the first stage" in problem
    assert "(stages: context, chunk, embed)" in problem


def test_a_redact_stage_after_context_is_rejected() -> None:
    [(key, problem)] = _problems("redact", ["context", "redact", "embed"])

    assert key == "sources[0].stages"
    assert "needs 'redact' as the first stage" in problem


@pytest.mark.parametrize(
    ("privacy", "why"),
    [("none", "does not redact"), ("block", "stores no text, so there is nothing to redact")],
)
def test_a_redact_stage_needs_privacy_redact(privacy: str, why: str) -> None:
    [(key, problem)] = _problems(privacy, ["redact", "context"])

    assert key == "sources[0].stages"
    assert f"stages[0] is 'redact' but privacy '{privacy}' {why}" in problem


def test_a_redact_stage_needs_a_context_stage_to_hand_its_record_to() -> None:
    [(_, problem)] = _problems("redact", ["redact", "chunk", "embed"])

    assert "hands its redacted record to 'context'" in problem


def test_redaction_settings_may_be_written_at_the_stages_top_level() -> None:
    stages = [
        {"redact": {"detectors": ["email", "phone"], "allow": ["help@acme.example"]}},
        "context",
    ]

    stage = parse_config(_config("redact", stages)).sources[0].stages[0]

    assert stage.redaction.detectors == ("email", "phone")
    assert stage.redaction.allow == ("help@acme.example",)


@pytest.mark.parametrize(
    ("stage", "key", "problem"),
    [
        (
            {"redact": {"detectors": ["email", "mail"]}},
            "sources[0].stages[0].detectors",
            "unknown detector 'mail'",
        ),
        (
            {"redact": {"redaction": {"detectors": ["mail"]}}},
            "sources[0].stages[0].redaction.detectors",
            "unknown detector 'mail'",
        ),
        (
            {"redact": {"patterns": [{"name": "ref", "regex": "CUST-("}]}},
            "sources[0].stages[0].patterns[0]",
            "regex 'CUST-(' does not compile",
        ),
        (
            {"redact": {"max_value_chars": 0}},
            "sources[0].stages[0].max_value_chars",
            "greater than or equal to 1",
        ),
        ({"redact": {"detector": ["email"]}}, "sources[0].stages[0].detector", "Extra inputs"),
    ],
)
def test_a_wrong_redaction_setting_names_its_key(stage: Any, key: str, problem: str) -> None:
    problems = _problems("redact", [stage, "context"])

    assert [k for k, _ in problems] == [key]
    assert problem in problems[0][1]


def test_a_change_of_the_detectors_changes_the_config_hash() -> None:
    before = parse_config(_config("redact", ["redact", "context"])).sources[0]
    after = parse_config(
        _config("redact", [{"redact": {"detectors": ["email"]}}, "context"])
    ).sources[0]

    assert config_hash(before) != config_hash(after)


def test_a_context_stage_of_a_redact_source_refuses_to_read_the_source_table() -> None:
    source = parse_config(_config("redact", ["redact", "context"])).sources[0]

    with pytest.raises(InvalidInput, match="needs a redact stage before context"):
        ContextStage(None, source, config_hash="x")  # type: ignore[arg-type]
