"""The enriched text of a record: category, labelled context and content by default, or the
source's Jinja2 template, rendered in a sandbox. Missing values are absent, never 'None'."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

from enrichment.config import SourceConfig, parse_config
from enrichment.errors import InvalidInput
from enrichment.formatting import TextFormatter

CUSTOMER = {
    "name": "customer",
    "table": "public.customers",
    "join": {"local": "customer_id", "remote": "id"},
    "fields": ["segment", "tier"],
}
ORDERS = {
    "name": "orders",
    "table": "public.orders",
    "join": {"local": "id", "remote": "message_id"},
    "fields": ["item", "paid"],
    "many": True,
}


def source(*, related: list[dict[str, Any]] | None = None, **changes: Any) -> SourceConfig:
    """The seed example: support messages with their customer's segment and tier."""
    config: dict[str, Any] = {
        "name": "support_messages",
        "table": "public.messages",
        "columns": ["channel", "body"],
        "entity": {
            "type": "support_message",
            "category": "Support communication",
            "attributes": {
                "body": "message content",
                "customer.segment": "customer segment",
                "customer.tier": "subscription tier",
                "orders": "recent orders",
                "orders.item": "item",
                "orders.paid": "paid",
            },
        },
        "related": [CUSTOMER] if related is None else related,
        "stages": ["context"],
    }
    config.update(changes)
    return parse_config({"sources": [config]}).sources[0]


def render(
    config: SourceConfig,
    record: dict[str, Any],
    related: dict[str, Any] | None = None,
    workspace: str = "acme",
) -> str:
    return TextFormatter(config).render(record, related or {}, workspace_id=workspace)


DANGLING_LABEL = re.compile(r":\s*(,|;|—|$)")


def assert_nothing_missing_shows(text: str) -> None:
    assert "None" not in text
    assert not DANGLING_LABEL.search(text), f"a label without a value in {text!r}"


# --- the default text ----------------------------------------------------------------------


def test_default_text_is_category_then_labelled_context_then_the_content() -> None:
    text = render(
        source(),
        {"channel": "email", "body": "I am frustrated with the onboarding flow"},
        {"customer": {"segment": "Enterprise", "tier": "Pro"}},
    )

    assert text == (
        "Support communication — customer segment: Enterprise, subscription tier: Pro, "
        "channel: email — message content: I am frustrated with the onboarding flow"
    )


def test_a_name_without_a_configured_label_is_labelled_with_its_words() -> None:
    config = source(
        columns=["support_channel", "body"],
        related=[{**CUSTOMER, "fields": ["region_code"]}],
    )

    text = render(
        config, {"support_channel": "chat", "body": "Hi"}, {"customer": {"region_code": "EU"}}
    )

    assert text == (
        "Support communication — customer region code: EU, support channel: chat "
        "— message content: Hi"
    )


@pytest.mark.parametrize(
    ("record", "related", "expected"),
    [
        pytest.param(
            {"channel": None, "body": "Hi"},
            {"customer": {"segment": "SMB", "tier": "Free"}},
            "Support communication — customer segment: SMB, subscription tier: Free "
            "— message content: Hi",
            id="context-column",
        ),
        pytest.param(
            {"channel": "chat", "body": None},
            {"customer": {"segment": "SMB", "tier": "Free"}},
            "Support communication — customer segment: SMB, subscription tier: Free, channel: chat",
            id="content",
        ),
        pytest.param(
            {"channel": "chat", "body": "Hi"},
            {"customer": {"segment": None, "tier": "Free"}},
            "Support communication — subscription tier: Free, channel: chat — message content: Hi",
            id="related-field",
        ),
        pytest.param(
            {"channel": "chat", "body": "Hi"},
            {"customer": {"segment": None, "tier": None}},
            "Support communication — channel: chat — message content: Hi",
            id="every-related-field",
        ),
        pytest.param(
            {"channel": "chat", "body": "Hi"},
            {"customer": None},
            "Support communication — channel: chat — message content: Hi",
            id="related-entity",
        ),
        pytest.param(
            {"channel": "chat", "body": "Hi"},
            {},
            "Support communication — channel: chat — message content: Hi",
            id="relation-not-fetched",
        ),
        pytest.param(
            {"channel": None, "body": None},
            {"customer": None},
            "Support communication",
            id="everything",
        ),
    ],
)
def test_a_missing_value_is_absent_with_its_label(
    record: dict[str, Any], related: dict[str, Any], expected: str
) -> None:
    text = render(source(), record, related)

    assert text == expected
    assert_nothing_missing_shows(text)


def test_empty_and_blank_strings_are_absent_like_missing_values() -> None:
    text = render(
        source(), {"channel": "", "body": "   "}, {"customer": {"segment": "", "tier": "Pro"}}
    )

    assert text == "Support communication — subscription tier: Pro"


def test_booleans_read_yes_and_no_and_zero_is_a_value() -> None:
    config = source(columns=["urgent", "escalated", "reopened_count", "body"], related=[])

    text = render(config, {"urgent": True, "escalated": False, "reopened_count": 0, "body": "Help"})

    assert text == (
        "Support communication — urgent: yes, escalated: no, reopened count: 0 "
        "— message content: Help"
    )


def test_one_to_many_rows_are_listed_under_the_relations_label() -> None:
    config = source(related=[CUSTOMER, ORDERS])

    text = render(
        config,
        {"channel": "email", "body": "Where is my desk?"},
        {
            "customer": {"segment": "Enterprise", "tier": "Pro"},
            "orders": [{"item": "desk", "paid": True}, {"item": "chair", "paid": False}],
        },
    )

    assert text == (
        "Support communication — customer segment: Enterprise, subscription tier: Pro, "
        "recent orders: item: desk, paid: yes; item: chair, paid: no, channel: email "
        "— message content: Where is my desk?"
    )


def test_a_one_to_many_row_with_missing_values_keeps_only_its_present_ones() -> None:
    config = source(related=[ORDERS])

    text = render(
        config,
        {"channel": "email", "body": "Hi"},
        {"orders": [{"item": None, "paid": True}, {"item": "lamp", "paid": None}]},
    )

    assert text == (
        "Support communication — recent orders: paid: yes; item: lamp, channel: email "
        "— message content: Hi"
    )


@pytest.mark.parametrize(
    "orders",
    [
        pytest.param([], id="no-rows"),
        pytest.param(None, id="null"),
        pytest.param([{"item": None, "paid": None}, {"item": ""}], id="rows-without-values"),
    ],
)
def test_a_one_to_many_relation_without_values_is_absent_with_its_label(
    orders: list[dict[str, Any]] | None,
) -> None:
    config = source(related=[ORDERS])

    text = render(config, {"channel": "email", "body": "Hi"}, {"orders": orders})

    assert text == "Support communication — channel: email — message content: Hi"
    assert_nothing_missing_shows(text)


def test_a_one_to_many_row_without_values_between_others_leaves_no_gap() -> None:
    config = source(related=[ORDERS])

    text = render(
        config,
        {"channel": "email", "body": "Hi"},
        {"orders": [{"item": "desk"}, {"item": None, "paid": None}, {"item": "lamp"}]},
    )

    assert "recent orders: item: desk; item: lamp," in text
    assert_nothing_missing_shows(text)


# --- templates -----------------------------------------------------------------------------


def test_a_template_renders_record_related_entity_and_workspace() -> None:
    config = source(
        template=(
            "[{{ workspace }}] {{ entity.category }}: {{ record.body }}\n"
            "({{ customer.segment }} / {{ related.customer.tier }})"
        )
    )

    text = render(
        config,
        {"channel": "email", "body": "Hello"},
        {"customer": {"segment": "Enterprise", "tier": "Pro"}},
        workspace="acme",
    )

    assert text == "[acme] Support communication: Hello (Enterprise / Pro)"


def test_the_labelled_filter_writes_label_and_value_or_nothing() -> None:
    config = source(
        template=(
            "{{ record.channel | labelled('channel') }}|"
            "{{ customer.segment | labelled('segment') }}|"
            "{{ customer.tier | labelled('tier') }}|"
            "{{ record.not_a_column | labelled('other') }}"
        )
    )

    text = render(
        config, {"channel": "chat", "body": "x"}, {"customer": {"segment": None, "tier": "Pro"}}
    )

    assert text == "channel: chat||tier: Pro|"


def test_the_labelled_filter_writes_nothing_for_a_blank_value() -> None:
    config = source(template="<{{ record.body | labelled('message') }}>")

    assert render(config, {"body": "  \n "}) == "<>"


def test_the_join_present_filter_joins_only_present_values() -> None:
    config = source(
        template=(
            "{{ [record.channel, customer.segment, record.missing, customer.tier, '', ' '] "
            "| join_present(' / ') }}"
            "|{{ [customer.segment, customer.tier] | join_present }}"
        )
    )

    text = render(
        config, {"channel": "chat", "body": "x"}, {"customer": {"segment": None, "tier": "Pro"}}
    )

    assert text == "chat / Pro|Pro"


@pytest.mark.parametrize(
    "expression",
    [
        "record.channel",  # NULL column
        "record.not_a_column",
        "customer.segment",  # NULL related field
        "customer.address.city",  # chain through something missing
        "orders",  # relation not fetched
        "record.get('not_a_column')",  # a Python None reaching the output
        "none",
    ],
)
def test_a_missing_value_in_a_template_renders_as_nothing(expression: str) -> None:
    config = source(template=f"<{{{{ {expression} }}}}>")

    text = render(config, {"channel": None, "body": "x"}, {"customer": {"segment": None}})

    assert text == "<>"


def test_a_template_loops_over_one_to_many_rows_without_their_missing_values() -> None:
    config = source(
        related=[CUSTOMER, ORDERS],
        template="Orders: {% for o in orders %}{{ o.item }}{{ ', ' if not loop.last }}{% endfor %}",
    )

    text = render(
        config, {"body": "x"}, {"orders": [{"item": "desk"}, None, {"item": "lamp", "paid": None}]}
    )

    assert text == "Orders: desk, lamp"


def test_template_whitespace_collapses_to_single_spaces() -> None:
    config = source(
        template="{{ record.channel }}\n\n   {{ record.missing }}\t\n{{ record.body }}  "
    )

    assert render(config, {"channel": "chat", "body": "Hi"}) == "chat Hi"


def test_a_template_syntax_error_raises_invalid_input_naming_the_sources_template() -> None:
    config = source(template="{{ record.body }}\n{% if record.channel %}unclosed")

    with pytest.raises(InvalidInput) as raised:
        TextFormatter(config)

    assert raised.value.field == "sources[support_messages].template"
    assert raised.value.problem.startswith("not a valid template: ")
    assert "(line 2)" in raised.value.problem
    assert "sources[support_messages].template" in str(raised.value)


def test_an_unknown_filter_is_refused_when_the_template_is_compiled() -> None:
    config = source(template="{{ record.body | shout }}")

    with pytest.raises(InvalidInput, match=r"No filter named 'shout'"):
        TextFormatter(config)


# --- the sandbox ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__",
        "record.__class__",
        "record.body.__class__.__mro__",
        "labelled.__globals__",
        "cycler.__init__.__globals__",
    ],
)
def test_python_internals_are_unreachable_and_render_as_nothing(expression: str) -> None:
    config = source(template=f"<{{{{ {expression} }}}}>")

    assert render(config, {"body": "x"}) == "<>"


def test_calling_into_python_internals_raises_a_security_error() -> None:
    config = source(template="{{ ''.__class__.__mro__[1].__subclasses__() }}")

    with pytest.raises(SecurityError, match="__class__"):
        render(config, {"body": "x"})
