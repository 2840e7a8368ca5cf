"""The redactor: every positive of the corpus is replaced by its typed placeholder and counted,
every negative is left alone; overlaps, field names, allowed values, extra patterns, JSON
values and the size limit behave as documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from enrichment.pii import iban_valid, luhn_valid, ssn_valid
from enrichment.redaction import CustomPattern, RedactionConfig, RedactionError, Redactor
from tests.redaction_corpus import NEGATIVES, POSITIVES, Positive

REDACTOR = Redactor()

POSITIVE_CASES = [
    pytest.param(example, id=f"{detector}-{index}")
    for detector, examples in POSITIVES.items()
    for index, example in enumerate(examples)
]
NEGATIVE_CASES = [
    pytest.param(example, id=f"{detector}-{index}")
    for detector, examples in NEGATIVES.items()
    for index, example in enumerate(examples)
]


# --- the corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("example", POSITIVE_CASES)
def test_every_positive_is_replaced_by_its_placeholder(example: Positive) -> None:
    expected = example.text
    for value in example.values:
        expected = expected.replace(value, f"[{example.kind}]", 1)

    assert REDACTOR.redact(example.text, field=example.field).text == expected


@pytest.mark.parametrize("example", POSITIVE_CASES)
def test_every_positive_is_counted_under_its_kind_only(example: Positive) -> None:
    redacted = REDACTOR.redact(example.text, field=example.field)

    assert redacted.counts == {example.kind: len(example.values)}


@pytest.mark.parametrize("text", NEGATIVE_CASES)
def test_every_negative_is_left_alone(text: str) -> None:
    redacted = REDACTOR.redact(text)

    assert (redacted.text, redacted.counts) == (text, {})


@pytest.mark.parametrize("example", POSITIVE_CASES)
def test_redacting_redacted_text_changes_nothing(example: Positive) -> None:
    once = REDACTOR.redact(example.text, field=example.field).text

    assert REDACTOR.redact(once, field=example.field).text == once


# --- validators ----------------------------------------------------------------------------


def test_a_card_number_needs_a_valid_luhn_check_digit() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert REDACTOR.redact("card 4111111111111112").counts == {}


def test_a_luhn_valid_number_without_a_card_issuer_prefix_is_not_a_card() -> None:
    assert luhn_valid("1000000000000008")
    assert REDACTOR.redact("order 1000000000000008").counts == {}


def test_an_iban_needs_its_checksum_and_its_countrys_length() -> None:
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")  # checksum
    assert not iban_valid("DE8937040044053201300")  # one character short
    assert not iban_valid("QQ89370400440532013000")  # no such country


def test_ssn_issuing_rules() -> None:
    assert ssn_valid("536", "22", "1234")
    assert not ssn_valid("000", "22", "1234")
    assert not ssn_valid("666", "22", "1234")
    assert not ssn_valid("912", "22", "1234")
    assert not ssn_valid("536", "00", "1234")
    assert not ssn_valid("536", "22", "0000")


# --- behaviour -----------------------------------------------------------------------------


def test_counts_are_per_kind_for_the_whole_text() -> None:
    redacted = REDACTOR.redact("a@x.io, b@y.io, 8.8.8.8 and card 4111 1111 1111 1111")

    assert redacted.counts == {"EMAIL": 2, "IP": 1, "CARD": 1}
    assert redacted.text == "[EMAIL], [EMAIL], [IP] and card [CARD]"


def test_overlapping_findings_keep_the_higher_priority_kind() -> None:
    assert REDACTOR.redact("+442079460958").counts == {"PHONE": 1}

    redacted = REDACTOR.redact("password: +442079460958")  # a password that is also a number

    assert (redacted.text, redacted.counts) == ("password: [SECRET]", {"SECRET": 1})


def test_a_bare_number_is_a_phone_number_only_in_a_field_named_for_it() -> None:
    assert REDACTOR.redact("4155552671", field="order_number").counts == {}
    assert REDACTOR.redact("4155552671", field="customer.mobile_phone").counts == {"PHONE": 1}


def test_a_bare_number_is_a_phone_number_after_a_word_that_says_so() -> None:
    assert REDACTOR.redact("order 4155552671").counts == {}
    assert REDACTOR.redact("whatsapp: 4155552671").counts == {"PHONE": 1}


def test_any_value_of_a_password_field_is_a_secret() -> None:
    assert REDACTOR.redact("correct horse", field="users.password").text == "[SECRET]"


def test_a_field_is_a_secret_only_when_its_name_ends_with_the_word() -> None:
    assert REDACTOR.redact("2048", field="token_count").counts == {}
    assert REDACTOR.redact("2048", field="api_token").counts == {"SECRET": 1}


def test_a_number_in_an_identifier_field_is_not_a_card() -> None:
    assert REDACTOR.redact_values(4111111111111111, field="order_id").value == 4111111111111111
    assert REDACTOR.redact("4111111111111111", field="tracking_number").counts == {}


def test_a_date_in_a_passport_field_is_not_an_id() -> None:
    assert REDACTOR.redact("2027-05-01", field="passport_expiry").counts == {}
    assert REDACTOR.redact("C01X00T47", field="passport_no").counts == {"NATIONAL_ID": 1}


def test_allowed_values_are_kept() -> None:
    redactor = Redactor(RedactionConfig(allow=("Support@Acme.example",)))

    redacted = redactor.redact("write to support@acme.example or jo@acme.example")

    assert redacted.text == "write to support@acme.example or [EMAIL]"


def test_only_the_selected_detectors_run() -> None:
    redactor = Redactor(RedactionConfig(detectors=("email",)))

    redacted = redactor.redact("jo@acme.example, +44 20 7946 0958")

    assert redacted.text == "[EMAIL], +44 20 7946 0958"


def test_an_extra_pattern_is_replaced_by_its_placeholder_and_counted_under_its_name() -> None:
    pattern = CustomPattern(name="customer_ref", regex=r"CUST-\d{6}")
    redactor = Redactor(RedactionConfig(patterns=(pattern,)))

    redacted = redactor.redact("customer CUST-123456 wrote from jo@acme.example")

    assert redacted.text == "customer [CUSTOMER_REF] wrote from [EMAIL]"
    assert redacted.counts == {"CUSTOMER_REF": 1, "EMAIL": 1}


def test_an_extra_pattern_can_replace_one_group_with_its_own_placeholder() -> None:
    pattern = CustomPattern(
        name="pin", regex=r"PIN:? (?P<value>\d{4})", group="value", placeholder="****"
    )
    redactor = Redactor(RedactionConfig(patterns=(pattern,)))

    assert redactor.redact("my PIN 1234 works").text == "my PIN **** works"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": "ref", "regex": "CUST-("}, "does not compile"),
        ({"name": "ref", "regex": "x*"}, "matches the empty string"),
        ({"name": "ref", "regex": "x", "group": "value"}, "has no group 'value'"),
        ({"name": "email", "regex": "x"}, "built-in detector"),
        ({"name": "Bad Name", "regex": "x"}, "not a lowercase name"),
    ],
)
def test_a_wrong_extra_pattern_is_rejected(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CustomPattern.model_validate(settings)


def test_an_unknown_detector_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown detector 'mail' \(known: secret, "):
        RedactionConfig(detectors=("mail",))


def test_a_value_over_the_size_limit_is_an_error_naming_the_field_not_the_value() -> None:
    redactor = Redactor(RedactionConfig(max_value_chars=20))

    with pytest.raises(RedactionError) as raised:
        redactor.redact("jo@acme.example wrote a long message", field="body")

    assert raised.value.field == "body"
    assert "acme" not in str(raised.value)


def test_scrubbing_new_text_returns_it_redacted_with_the_number_of_replacements() -> None:
    summary = "Customer jo@acme.example (+44 20 7946 0958) asks for a refund."

    assert REDACTOR.scrub(summary) == ("Customer [EMAIL] ([PHONE]) asks for a refund.", 2)


def test_json_values_are_redacted_at_every_depth_and_the_fields_are_named() -> None:
    value = {
        "contact": {"email": "jo@acme.example", "phones": ["+44 20 7946 0958", "n/a"]},
        "jo@acme.example": "as a key too",
        "visits": 3,
        "vip": True,
    }

    redacted = REDACTOR.redact_values(value, field="profile")

    assert redacted.value == {
        "contact": {"email": "[EMAIL]", "phones": ["[PHONE]", "n/a"]},
        "[EMAIL]": "as a key too",
        "visits": 3,
        "vip": True,
    }
    assert dict(redacted.counts) == {"EMAIL": 2, "PHONE": 1}
    assert redacted.fields == {"profile", "profile.contact.email", "profile.contact.phones"}


def test_a_card_number_stored_as_a_number_is_redacted() -> None:
    redacted = REDACTOR.redact_values(4111111111111111, field="payment")

    assert redacted.value == "[CARD]"


def test_an_ordinary_number_stays_a_number() -> None:
    assert REDACTOR.redact_values(1000234567, field="order_id").value == 1000234567


def test_summaries_are_rechecked_by_the_redactor_whatever_the_privacy_mode() -> None:
    from enrichment.ai_stages import summary_pii_check
    from enrichment.config import parse_config

    source = parse_config(
        {
            "sources": [
                {
                    "name": "notes",
                    "table": "public.notes",
                    "columns": ["body"],
                    "entity": {"type": "note", "category": "Note"},
                    "stages": ["context", "summarize"],
                }
            ]
        }
    ).sources[0]
    text, found = summary_pii_check(source)("Customer jo@example.com waits for a refund.")
    assert found == 1 and "jo@example.com" not in text and "[EMAIL]" in text
