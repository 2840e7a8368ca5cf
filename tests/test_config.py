"""The YAML source configuration, validated once at the edge: a valid file parses with its
defaults; a mistake is a ConfigError naming the file, the exact key path and what was expected."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from enrichment.chunking import ChunkingConfig
from enrichment.config import (
    ChunkStageConfig,
    ConfigError,
    ContextStageConfig,
    EmbedStageConfig,
    EnrichConfig,
    LocalEmbedding,
    OpenAIEmbedding,
    load_config,
    parse_config,
)
from enrichment.sources import config_hash

FILE = "enrich.yaml"


def valid() -> dict[str, Any]:
    """One source with a related entity and the three stages, in their shorthands."""
    return {
        "sources": [
            {
                "name": "support_messages",
                "table": "public.support_messages",
                "columns": ["channel", "body"],
                "entity": {"type": "support_message", "category": "Support communication"},
                "related": [
                    {
                        "name": "customer",
                        "table": "public.customers",
                        "join": {"local": "customer_id", "remote": "id"},
                        "fields": ["segment", "tier"],
                    }
                ],
                "stages": [
                    "context",
                    {"chunk": {"strategy": "fixed", "max_tokens": 100}},
                    {"embed": {"embedding": {"provider": "openai", "model": "m", "dimensions": 8}}},
                ],
            }
        ]
    }


def problems(change: Callable[[dict[str, Any]], object]) -> list[tuple[str, str]]:
    """The problems ConfigError reports for the valid config with ``change`` applied; checks
    the message names the file and every key path."""
    data = valid()
    change(data)
    with pytest.raises(ConfigError) as raised:
        parse_config(data, path=FILE)
    error = raised.value
    assert error.path == FILE
    message = str(error)
    assert message.startswith(f"{FILE}: invalid configuration\n")
    for key, problem in error.problems:
        assert f"\n  {key}: {problem}" in message
    return error.problems


def source(data: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = data["sources"][0]
    return first


def stages(data: dict[str, Any]) -> list[Any]:
    listed: list[Any] = source(data)["stages"]
    return listed


def customer(data: dict[str, Any]) -> dict[str, Any]:
    relation: dict[str, Any] = source(data)["related"][0]
    return relation


# --- valid configurations ------------------------------------------------------------------


def test_stage_shorthands_expand_to_configured_stages() -> None:
    config = parse_config(valid())

    context, chunk, embed = config.sources[0].stages
    assert context == ContextStageConfig()
    assert isinstance(chunk, ChunkStageConfig)
    assert chunk.chunking == ChunkingConfig(strategy="fixed", max_tokens=100)
    assert isinstance(embed, EmbedStageConfig)
    assert embed.embedding == OpenAIEmbedding(model="m", dimensions=8)


def test_the_long_stage_form_is_the_same_configuration_as_the_shorthand() -> None:
    data = valid()
    source(data)["stages"] = [
        {"kind": "context"},
        {"kind": "chunk", "chunking": {"strategy": "fixed", "max_tokens": 100}},
        {"kind": "embed", "embedding": {"provider": "openai", "model": "m", "dimensions": 8}},
    ]

    assert parse_config(data) == parse_config(valid())


def test_a_stage_with_no_settings_takes_the_defaults() -> None:
    data = valid()
    source(data)["stages"] = ["context", {"chunk": None}, "embed"]

    _, chunk, embed = parse_config(data).sources[0].stages

    assert chunk.chunking == ChunkingConfig(
        strategy="recursive", max_tokens=256, overlap_tokens=32, format="text"
    )
    assert embed.embedding == LocalEmbedding(model=None, device=None, batch_size=16)


def test_a_source_gets_the_documented_defaults() -> None:
    config = parse_config(valid()).sources[0]

    assert (config.key_column, config.workspace_column, config.updated_at_column) == (
        "id",
        "workspace_id",
        "updated_at",
    )
    assert config.template is None
    assert config.privacy == "none"
    assert config.entity.description == ""
    assert config.entity.attributes == {} and config.entity.relationships == {}
    relation = config.related[0]
    assert (relation.many, relation.significant, relation.limit, relation.entity_type) == (
        False,
        True,
        20,
        None,
    )
    assert all(
        (s.retry_delays, s.lease_seconds, s.batch_size) == (None, None, None) for s in config.stages
    )


def test_openai_embedding_defaults() -> None:
    embedding = parse_config(valid()).sources[0].stages[2].embedding

    assert embedding.api_key_env == "OPENAI_API_KEY"
    assert embedding.base_url is None
    assert (embedding.batch_size, embedding.timeout_seconds, embedding.max_retries) == (
        128,
        30.0,
        6,
    )
    assert embedding.send_dimensions is False


def test_a_source_without_an_updated_at_column_says_so_with_null() -> None:
    data = valid()
    source(data)["updated_at_column"] = None

    assert parse_config(data).sources[0].updated_at_column is None


def test_a_source_is_found_by_name() -> None:
    config = parse_config(valid())

    assert config.source("support_messages") is config.sources[0]


def test_the_parsed_configuration_is_immutable() -> None:
    config = parse_config(valid())

    with pytest.raises(ValueError, match="frozen"):
        config.sources[0].name = "other"  # type: ignore[misc]


YAML = """\
# Support messages, enriched with their customer.
sources:
  - name: support_messages
    table: public.support_messages
    columns: [channel, body]
    entity:
      type: support_message
      category: Support communication
    related:
      - name: customer
        table: public.customers
        join: {local: customer_id, remote: id}
        fields: [segment, tier]
    stages:
      - context
      - chunk: {strategy: fixed, max_tokens: 100}
      - embed: {embedding: {provider: openai, model: m, dimensions: 8}}
"""


def test_load_config_reads_the_yaml_file_into_the_same_configuration(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(YAML, encoding="utf-8")

    config = load_config(path)

    assert isinstance(config, EnrichConfig)
    assert config == parse_config(valid())


def test_a_loaded_configuration_dumped_and_loaded_again_is_unchanged(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text(YAML, encoding="utf-8")
    config = load_config(first)
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")

    assert load_config(second) == config


# --- mistakes ------------------------------------------------------------------------------


MISTAKES = [
    # unknown keys (extra="forbid")
    pytest.param(
        lambda d: d.update(defaults={"privacy": "redact"}),
        "defaults",
        "Extra inputs are not permitted",
        id="unknown-top-level-key",
    ),
    pytest.param(
        lambda d: source(d).update(colums=["body"]),
        "sources[0].colums",
        "Extra inputs are not permitted",
        id="unknown-source-key",
    ),
    pytest.param(
        lambda d: customer(d)["join"].update(foreign="id"),
        "sources[0].related[0].join.foreign",
        "Extra inputs are not permitted",
        id="unknown-join-key",
    ),
    pytest.param(
        lambda d: source(d)["entity"].update(label="x"),
        "sources[0].entity.label",
        "Extra inputs are not permitted",
        id="unknown-entity-key",
    ),
    pytest.param(
        lambda d: stages(d).__setitem__(1, {"chunk": {"strategy": "fixed", "max_token": 10}}),
        "sources[0].stages[1].max_token",
        "Extra inputs are not permitted",
        id="unknown-chunk-key",
    ),
    pytest.param(
        lambda d: stages(d)[2]["embed"]["embedding"].update(model_name="x"),
        "sources[0].stages[2].embedding.model_name",
        "Extra inputs are not permitted",
        id="unknown-embedding-key",
    ),
    # names of tables, columns, sources
    pytest.param(
        lambda d: source(d).update(table="public.support messages"),
        "sources[0].table",
        "'public.support messages' is not a table name like 'public.support_messages'",
        id="bad-table",
    ),
    pytest.param(
        lambda d: customer(d).update(table="db.public.customers"),
        "sources[0].related[0].table",
        "'db.public.customers' is not a table name like 'public.customers'",
        id="bad-related-table",
    ),
    pytest.param(
        lambda d: source(d).update(columns=["channel", "body; DROP TABLE x"]),
        "sources[0].columns[1]",
        "'body; DROP TABLE x' is not a column name (letters, digits, underscores)",
        id="bad-column",
    ),
    pytest.param(
        lambda d: source(d).update(key_column="messages.id"),
        "sources[0].key_column",
        "'messages.id' is not a column name",
        id="bad-key-column",
    ),
    pytest.param(
        lambda d: source(d).update(workspace_column="1tenant"),
        "sources[0].workspace_column",
        "'1tenant' is not a column name",
        id="bad-workspace-column",
    ),
    pytest.param(
        lambda d: source(d).update(updated_at_column="updated at"),
        "sources[0].updated_at_column",
        "'updated at' is not a column name",
        id="bad-updated-at-column",
    ),
    pytest.param(
        lambda d: customer(d)["join"].update(local="customer-id"),
        "sources[0].related[0].join.local",
        "'customer-id' is not a column name",
        id="bad-join-local",
    ),
    pytest.param(
        lambda d: customer(d).update(fields=["segment", "tier level"]),
        "sources[0].related[0].fields[1]",
        "'tier level' is not a column name",
        id="bad-related-field",
    ),
    pytest.param(
        lambda d: source(d).update(columns=["channel", ""]),
        "sources[0].columns[1]",
        "String should have at least 1 character",
        id="empty-column",
    ),
    pytest.param(
        lambda d: source(d).update(name="Support Messages"),
        "sources[0].name",
        "'Support Messages' is not a lowercase name like 'support_messages'",
        id="bad-source-name",
    ),
    pytest.param(
        lambda d: customer(d).update(name="Customer"),
        "sources[0].related[0].name",
        "'Customer' is not a lowercase name like 'customer'",
        id="bad-related-name",
    ),
    # required fields
    pytest.param(
        lambda d: source(d).pop("columns"),
        "sources[0].columns",
        "Field required",
        id="missing-columns",
    ),
    pytest.param(
        lambda d: source(d)["entity"].pop("category"),
        "sources[0].entity.category",
        "Field required",
        id="missing-category",
    ),
    pytest.param(
        lambda d: customer(d)["join"].pop("remote"),
        "sources[0].related[0].join.remote",
        "Field required",
        id="missing-join-remote",
    ),
    pytest.param(
        lambda d: stages(d)[2]["embed"]["embedding"].pop("dimensions"),
        "sources[0].stages[2].embedding.dimensions",
        "Field required",
        id="missing-openai-dimensions",
    ),
    pytest.param(
        lambda d: d.pop("sources"),
        "sources",
        "Field required",
        id="missing-sources",
    ),
    pytest.param(
        lambda d: d.update(sources=[]),
        "sources",
        "List should have at least 1 item",
        id="no-sources",
    ),
    pytest.param(
        lambda d: source(d).update(stages=[]),
        "sources[0].stages",
        "List should have at least 1 item",
        id="no-stages",
    ),
    pytest.param(
        lambda d: customer(d).update(fields=[]),
        "sources[0].related[0].fields",
        "List should have at least 1 item",
        id="no-related-fields",
    ),
    # chunking
    pytest.param(
        lambda d: stages(d)[1]["chunk"].update(overlap_tokens=100),
        "sources[0].stages[1].overlap_tokens",
        "overlap_tokens (100) must be less than max_tokens (100)",
        id="overlap-equals-max",
    ),
    pytest.param(
        lambda d: stages(d).__setitem__(
            1, {"kind": "chunk", "chunking": {"max_tokens": 10, "overlap_tokens": 50}}
        ),
        "sources[0].stages[1].chunking.overlap_tokens",
        "overlap_tokens (50) must be less than max_tokens (10)",
        id="overlap-above-max-long-form",
    ),
    pytest.param(
        lambda d: stages(d)[1]["chunk"].update(strategy="sentences"),
        "sources[0].stages[1].strategy",
        "Input should be 'none', 'fixed' or 'recursive'",
        id="unknown-chunk-strategy",
    ),
    # stages
    pytest.param(
        lambda d: stages(d).append("rerank"),
        "sources[0].stages[3]",
        "Input tag 'rerank' found using 'kind' does not match any of the expected tags: "
        "'context', 'chunk', 'embed'",
        id="unknown-stage-kind",
    ),
    pytest.param(
        lambda d: stages(d).__setitem__(2, {"embed": {"embedding": {"provider": "cohere"}}}),
        "sources[0].stages[2].embedding",
        "Input tag 'cohere' found using 'provider' does not match any of the expected tags: "
        "'local', 'openai'",
        id="unknown-embedding-provider",
    ),
    pytest.param(
        lambda d: stages(d).__setitem__(1, {"chunk": "fixed"}),
        "sources[0].stages[1]",
        "the settings of 'chunk' should be a mapping like 'chunk: {batch_size: 100}', got 'fixed'",
        id="stage-settings-not-a-mapping",
    ),
    pytest.param(
        lambda d: stages(d).append(5),
        "sources[0].stages[3]",
        "Input should be a valid dictionary or object to extract fields from (got 5)",
        id="stage-not-a-mapping",
    ),
    # duplicates
    pytest.param(
        lambda d: stages(d).append("context"),
        "sources[0].stages",
        "each stage may appear once: 'context' is stages[0] and stages[3]",
        id="duplicate-stage",
    ),
    pytest.param(
        lambda d: d["sources"].append(copy.deepcopy(source(d))),
        "sources",
        "each source name may appear once: 'support_messages' is sources[0] and sources[1]",
        id="duplicate-source-name",
    ),
    pytest.param(
        lambda d: source(d)["related"].append({**customer(d), "table": "public.accounts"}),
        "sources[0].related",
        "each related name may appear once: 'customer' is related[0] and related[1]",
        id="duplicate-related-name",
    ),
    # wrong types and values
    pytest.param(
        lambda d: source(d).update(columns="body"),
        "sources[0].columns",
        "Input should be a valid list (got 'body')",
        id="columns-not-a-list",
    ),
    pytest.param(
        lambda d: customer(d).update(many="lots"),
        "sources[0].related[0].many",
        "Input should be a valid boolean",
        id="many-not-a-boolean",
    ),
    pytest.param(
        lambda d: customer(d).update(limit="ten"),
        "sources[0].related[0].limit",
        "Input should be a valid integer",
        id="limit-not-an-integer",
    ),
    pytest.param(
        lambda d: customer(d).update(limit=0),
        "sources[0].related[0].limit",
        "Input should be greater than or equal to 1 (got 0)",
        id="limit-zero",
    ),
    pytest.param(
        lambda d: stages(d)[2]["embed"]["embedding"].update(dimensions="eight"),
        "sources[0].stages[2].embedding.dimensions",
        "Input should be a valid integer, unable to parse string as an integer (got 'eight')",
        id="dimensions-not-an-integer",
    ),
    pytest.param(
        lambda d: stages(d).__setitem__(0, {"context": {"lease_seconds": 0}}),
        "sources[0].stages[0].lease_seconds",
        "Input should be greater than 0",
        id="lease-not-positive",
    ),
    pytest.param(
        lambda d: source(d).update(privacy="maybe"),
        "sources[0].privacy",
        "Input should be 'none', 'redact' or 'block' (got 'maybe')",
        id="unknown-privacy",
    ),
    pytest.param(
        lambda d: source(d)["entity"].update(attributes={"body": 3}),
        "sources[0].entity.attributes.body",
        "Input should be a valid string (got 3)",
        id="attribute-label-not-a-string",
    ),
    pytest.param(
        lambda d: source(d).update(entity="support_message"),
        "sources[0].entity",
        "Input should be a valid dictionary",
        id="entity-not-a-mapping",
    ),
    pytest.param(
        lambda d: d.update(sources={"name": "x"}),
        "sources",
        "Input should be a valid list",
        id="sources-not-a-list",
    ),
]


@pytest.mark.parametrize(("change", "key", "expected"), MISTAKES)
def test_a_mistake_names_the_file_the_key_path_and_what_was_expected(
    change: Callable[[dict[str, Any]], object], key: str, expected: str
) -> None:
    [(reported_key, problem)] = problems(change)

    assert reported_key == key
    assert expected in problem


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    def two_mistakes(data: dict[str, Any]) -> None:
        source(data).update(colums=["body"], privacy="maybe")

    reported = problems(two_mistakes)

    assert sorted(key for key, _ in reported) == ["sources[0].colums", "sources[0].privacy"]


def test_a_document_that_is_not_a_mapping_is_reported_at_the_top_level() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(["sources"], path=FILE)

    [(key, problem)] = raised.value.problems
    assert key == "(top level)"
    assert "Input should be a valid dictionary" in problem


def test_config_error_is_an_enrichment_error_not_a_pydantic_one() -> None:
    from enrichment.errors import EnrichmentError

    with pytest.raises(EnrichmentError) as raised:
        parse_config({}, path=FILE)

    assert raised.value.__cause__ is None and raised.value.__suppress_context__


# --- files ---------------------------------------------------------------------------------


def test_a_yaml_syntax_error_reports_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(YAML.replace("table: public.support_messages", "table: public: messages"))

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.problems == [
        ("line 4, column 18", "not valid YAML: mapping values are not allowed here")
    ]
    assert str(raised.value) == (
        f"{path}: invalid configuration\n"
        "  line 4, column 18: not valid YAML: mapping values are not allowed here"
    )


def test_an_unclosed_bracket_is_reported_where_yaml_notices_it(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(YAML.replace("columns: [channel, body]", "columns: [channel, body"))

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    [(where, problem)] = raised.value.problems
    assert where == "line 6, column 11"  # the next key, where the list cannot go on
    assert problem.startswith("not valid YAML: expected ',' or ']'")


def test_a_tab_in_the_indentation_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text("sources:\n  - name: a\n\ttable: b\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.problems[0][0].startswith("line 3,")


def test_a_mistake_in_a_loaded_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(YAML.replace("dimensions: 8", "dimensions: 0"))

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.path == str(path)
    assert raised.value.problems == [
        (
            "sources[0].stages[2].embedding.dimensions",
            "Input should be greater than or equal to 1 (got 0)",
        )
    ]


def test_an_empty_file_is_reported_as_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text("# nothing configured yet\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    [(key, problem)] = raised.value.problems
    assert key == "(top level)"
    assert "Input should be a valid dictionary" in problem and "(got None)" in problem


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.problems == [("(file)", "cannot be read: No such file or directory")]
    assert str(path) in str(raised.value)


def test_a_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path)

    assert raised.value.path == str(tmp_path)
    assert raised.value.problems == [("(file)", "cannot be read: Is a directory")]


def test_a_file_that_is_not_utf8_reports_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_bytes(
        YAML.replace("Support communication", "Communication caf\xe9").encode("latin-1")
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.problems == [("line 8", "not UTF-8 text: byte 0xe9")]


# --- config_hash ---------------------------------------------------------------------------


def hash_after(change: Callable[[dict[str, Any]], object]) -> str:
    data = valid()
    change(data)
    return config_hash(parse_config(data).sources[0])


UNCHANGED = hash_after(lambda d: None)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda d: source(d)["entity"].update(category="Customer email"), id="category"
        ),
        pytest.param(lambda d: source(d)["entity"].update(type="email"), id="entity-type"),
        pytest.param(
            lambda d: source(d)["entity"].update(attributes={"body": "message"}), id="attributes"
        ),
        pytest.param(
            lambda d: source(d)["entity"].update(description="From customers"), id="description"
        ),
        pytest.param(lambda d: source(d).update(template="{{ record.body }}"), id="template"),
        pytest.param(lambda d: source(d).update(columns=["body"]), id="columns"),
        pytest.param(lambda d: customer(d).update(fields=["segment"]), id="related-fields"),
        pytest.param(lambda d: customer(d).update(limit=5), id="related-limit"),
        pytest.param(lambda d: source(d).update(privacy="block"), id="privacy"),
        pytest.param(lambda d: stages(d)[1]["chunk"].update(max_tokens=200), id="max-tokens"),
        pytest.param(lambda d: stages(d)[1]["chunk"].update(overlap_tokens=0), id="overlap"),
        pytest.param(lambda d: stages(d)[1]["chunk"].update(strategy="recursive"), id="strategy"),
        pytest.param(
            lambda d: stages(d)[2]["embed"]["embedding"].update(model="m2"), id="embedding-model"
        ),
        pytest.param(
            lambda d: stages(d)[2]["embed"]["embedding"].update(dimensions=16), id="dimensions"
        ),
        pytest.param(lambda d: stages(d).__setitem__(2, "embed"), id="embedding-provider"),
        pytest.param(lambda d: stages(d).pop(1), id="stage-removed"),
    ],
)
def test_config_hash_changes_when_what_shapes_the_results_changes(
    change: Callable[[dict[str, Any]], object],
) -> None:
    assert hash_after(change) != UNCHANGED


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda d: stages(d)[2]["embed"]["embedding"].update(
                batch_size=16, timeout_seconds=5, max_retries=1, api_key_env="KEY"
            ),
            id="embedding-call-settings",
        ),
        pytest.param(
            lambda d: stages(d).__setitem__(
                0, {"context": {"retry_delays": [1, 2], "lease_seconds": 60, "batch_size": 10}}
            ),
            id="stage-retry-lease-batch",
        ),
        pytest.param(lambda d: customer(d).update(significant=False), id="related-significant"),
        pytest.param(
            lambda d: stages(d).__setitem__(0, {"kind": "context"}), id="long-form-of-a-stage"
        ),
    ],
)
def test_config_hash_ignores_settings_that_only_change_how_the_work_runs(
    change: Callable[[dict[str, Any]], object],
) -> None:
    assert hash_after(change) == UNCHANGED


def test_config_hash_of_a_source_ignores_changes_to_another_source() -> None:
    def with_second_source(template: str) -> EnrichConfig:
        data = valid()
        other = {**copy.deepcopy(source(data)), "name": "emails", "template": template}
        data["sources"].append(other)
        return parse_config(data)

    before = with_second_source("{{ record.body }}")
    after = with_second_source("{{ record.channel }}: {{ record.body }}")

    assert config_hash(after.source("support_messages")) == config_hash(
        before.source("support_messages")
    )
    assert config_hash(after.source("emails")) != config_hash(before.source("emails"))
