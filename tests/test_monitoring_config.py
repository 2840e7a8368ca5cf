"""The monitoring: section: seed defaults, rules merged over them, mistakes named by key path,
overrides applied key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrichment.config import ConfigError, load_config
from quality.alerts import rules_from_config
from quality.config import MonitoringConfig, metric_options, retry_limits
from quality.monitor import apply_overrides, load_monitoring_config

SOURCE = """
sources:
  - name: notes
    table: public.notes
    columns: [body]
    entity: {type: note, category: Notes}
    stages:
      - context
      - chunk: {retry_delays: [10]}
      - embed
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "enrich.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def thresholds(config: MonitoringConfig) -> dict[str, tuple[str, float | None, float | None]]:
    return {
        rule.name: (rule.comparison, rule.warning, rule.critical)
        for rule in rules_from_config(config)
    }


def test_the_defaults_are_the_architectures_thresholds() -> None:
    found = thresholds(MonitoringConfig())

    assert found["completeness"] == ("below", 85.0, 70.0)
    assert found["quality"] == ("below", 80.0, 60.0)
    assert found["backlog"] == ("above", None, 1000.0)
    assert found["failure_rate"] == ("above", 5.0, 20.0)
    assert {"freshness", "dead_letters"} <= set(found)


def test_a_file_without_a_monitoring_section_gets_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, SOURCE)).monitoring == MonitoringConfig()


def test_a_rule_in_the_file_is_merged_over_its_default(tmp_path: Path) -> None:
    text = SOURCE + "monitoring:\n  rules:\n    completeness: {critical: 75}\n"

    config = load_config(write(tmp_path, text)).monitoring

    assert thresholds(config)["completeness"] == ("below", 85.0, 75.0)
    assert thresholds(config)["quality"] == ("below", 80.0, 60.0)


def test_rules_can_be_added_and_disabled(tmp_path: Path) -> None:
    text = SOURCE + (
        "monitoring:\n  rules:\n    dead_letters: {enabled: false}\n"
        "    slow_stage: {metric: stage_latency_p95_seconds, comparison: above, warning: 30,"
        " grain: source_stage}\n"
    )

    names = {
        rule.name: rule for rule in rules_from_config(load_config(write(tmp_path, text)).monitoring)
    }

    assert "dead_letters" not in names
    assert (names["slow_stage"].grain, names["slow_stage"].warning) == ("source_stage", 30.0)


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ("rules: {completeness: {critical: 90}}", "monitoring.rules.completeness", "critical"),
        (
            "rules: {x: {metric: nope, comparison: above, warning: 1}}",
            "monitoring.rules.x.metric",
            "unknown metric",
        ),
        (
            "rules: {x: {metric: records, comparison: above}}",
            "monitoring.rules.x",
            "give a warning",
        ),
        (
            "rules: {x: {metric: records, comparison: above, warning: 1, grain: source_stage}}",
            "monitoring.rules.x",
            "no value at grain",
        ),
        ("window_minutes: 0", "monitoring.window_minutes", "greater than 0"),
        (
            "channels: {email: {host: h, to: [nobody]}}",
            "monitoring.channels.email.to",
            "not an e-mail",
        ),
        ("channels: {email: {to: [a@b.c]}}", "monitoring.channels.email", "block"),
        ("colour: red", "monitoring.colour", "Extra inputs"),
    ],
)
def test_mistakes_are_named_by_file_and_key_path(
    tmp_path: Path, section: str, key: str, problem: str
) -> None:
    path = write(tmp_path, SOURCE + "monitoring:\n  " + section + "\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.path == str(path)
    assert [k for k, _ in raised.value.problems] == [key]
    assert problem in raised.value.problems[0][1]


def test_overrides_apply_key_by_key_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, SOURCE + "monitoring:\n  freshness_sla_minutes: 30\n")

    config, enrich_config = load_monitoring_config(
        path, {"rules": {"backlog": {"critical": 5000}}, "window_minutes": 15}
    )

    assert enrich_config is not None
    assert thresholds(config)["backlog"] == ("above", None, 5000.0)
    assert (config.window_minutes, config.freshness_sla_minutes) == (15, 30)


def test_a_bad_override_names_where_it_came_from() -> None:
    with pytest.raises(ConfigError) as raised:
        apply_overrides(
            MonitoringConfig(),
            {"rules": {"backlog": {"critical": "lots"}}},
            label="Prefect Variable 'enrich_monitoring'",
        )

    assert raised.value.path == "Prefect Variable 'enrich_monitoring'"
    assert raised.value.problems[0][0] == "rules.backlog.critical"


def test_without_a_file_the_defaults_apply(tmp_path: Path) -> None:
    config, enrich_config = load_monitoring_config(tmp_path / "missing.yaml")

    assert (config, enrich_config) == (MonitoringConfig(), None)


def test_retry_limits_come_from_each_stages_retry_delays(tmp_path: Path) -> None:
    enrich_config = load_config(write(tmp_path, SOURCE))

    assert retry_limits(enrich_config, (60, 300, 900)) == {
        ("notes", "context"): 3,
        ("notes", "chunk"): 1,
        ("notes", "embed"): 3,
    }
    options = metric_options(MonitoringConfig(window_minutes=10), enrich_config, (60, 300))
    assert (options.window_seconds, options.max_retries) == (600, 2)
