"""The Great Expectations suites against the real database: they pass on sound data and fail,
naming the records, when the data is wrong."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from enrichment.retry import RetryPolicy
from enrichment.stages.base import Completed
from quality.expectations import IntegrityLimits, Outcome, validate
from quality.expectations.rules import Array, for_great_expectations, render
from tests.helpers import AlwaysFails, FakeStage, pipeline, runner
from tests.quality_data import (
    SOURCE,
    classify,
    enrich,
    insert_raw_vector,
    register_table,
    store_vectors,
    vector_table,
    waiting_since,
)

pytestmark = pytest.mark.slow

KEYS = [f"t{i}" for i in range(10)]


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _sound_data(engine: Engine) -> None:
    enrich(engine, KEYS, FakeStage("context"), classify(dict.fromkeys(KEYS, 0.92)))
    table = vector_table(engine)
    store_vectors(
        engine, table, [(key, "ws1", f"parcel {key} is late", [0.1, 0.2, 0.3]) for key in KEYS]
    )


def test_every_rule_passes_on_sound_data(db: Engine) -> None:
    _sound_data(db)

    validation = validate(_url(db))

    assert {r.name: r.outcome for r in validation.results} == {
        "stuck_records": Outcome.PASSED,
        "high_confidence_rate": Outcome.PASSED,
        "retry_limit": Outcome.PASSED,
        "vector_dimensions": Outcome.PASSED,
        "vector_finite": Outcome.PASSED,
        "workspace_consistency": Outcome.PASSED,
        "no_pii": Outcome.PASSED,
    }
    assert validation.success


def test_confidence_rule_does_not_apply_while_no_output_carries_a_confidence(db: Engine) -> None:
    enrich(db, KEYS, FakeStage("context"))

    validation = validate(_url(db))

    verdict = validation.result("high_confidence_rate")
    assert verdict.outcome is Outcome.NOT_APPLICABLE
    assert verdict.note is not None and "confidence" in verdict.note
    assert validation.success


def test_record_incomplete_for_more_than_a_day_fails_and_is_named(db: Engine) -> None:
    runner(db, pipeline(SOURCE, FakeStage("context")))
    waiting_since(db, ["old"], days=2)
    waiting_since(db, ["recent"], days=0.5)

    verdict = validate(_url(db)).result("stuck_records")

    assert verdict.outcome is Outcome.FAILED
    assert verdict.unexpected == 1
    (row,) = verdict.rows
    assert (row["source"], row["record_key"], row["stage"], row["status"]) == (
        SOURCE,
        "old",
        "context",
        "PENDING",
    )
    assert row["hours_waiting"] >= 48


def test_high_confidence_rate_at_or_below_80_percent_fails(db: Engine) -> None:
    confidences = {key: (0.9 if index < 8 else 0.4) for index, key in enumerate(KEYS)}
    enrich(db, KEYS, classify(confidences))

    verdict = validate(_url(db)).result("high_confidence_rate")

    assert verdict.outcome is Outcome.FAILED
    (row,) = verdict.rows
    assert (row["stage"], row["scored"], row["high_confidence"], row["rate"]) == (
        "classify",
        10,
        8,
        0.8,
    )


def test_retries_beyond_the_stage_limit_fail_the_retry_rule(db: Engine) -> None:
    # Three attempts (two retries) under a policy that allowed them; the stage's limit is now 1.
    enrich(db, ["r1"], AlwaysFails("context"), retry=RetryPolicy(delays=(0.0, 0.0), jitter=0))
    lowered = IntegrityLimits(retry_limits={(SOURCE, "context"): 1})

    within = validate(_url(db)).result("retry_limit")
    beyond = validate(_url(db), lowered).result("retry_limit")

    assert within.outcome is Outcome.PASSED
    assert beyond.outcome is Outcome.FAILED
    (row,) = beyond.rows
    assert (row["record_key"], row["attempts"], row["max_attempts"]) == ("r1", 3, 2)


def test_a_nan_vector_fails_the_finite_rule(db: Engine) -> None:
    # pgvector refuses NaN in its own types; an array column (an imported table) can hold one.
    enrich(db, ["good", "bad"], FakeStage("context"))
    register_table(db, "embeddings_imported", "real[]", 3)
    insert_raw_vector(db, "embeddings_imported", "good", "{0.1,0.2,0.3}", "real[]")
    insert_raw_vector(db, "embeddings_imported", "bad", "{0.1,NaN,0.3}", "real[]")

    validation = validate(_url(db))

    verdict = validation.result("vector_finite")
    assert verdict.outcome is Outcome.FAILED
    assert [(r["vector_table"], r["record_key"]) for r in verdict.rows] == [
        ("embeddings_imported", "bad")
    ]
    assert validation.result("vector_dimensions").outcome is Outcome.PASSED


def test_a_vector_of_another_dimension_fails_the_dimension_rule(db: Engine) -> None:
    enrich(db, ["short", "fine"], FakeStage("context"))
    register_table(db, "embeddings_untyped", "vector", 3)
    insert_raw_vector(db, "embeddings_untyped", "fine", "[1,2,3]", "vector")
    insert_raw_vector(db, "embeddings_untyped", "short", "[1,2]", "vector")

    verdict = validate(_url(db)).result("vector_dimensions")

    assert verdict.outcome is Outcome.FAILED
    (row,) = verdict.rows
    assert (row["record_key"], row["dimensions"], row["expected_dimensions"]) == ("short", 2, 3)


def test_an_email_address_in_chunk_text_fails_the_pii_rule_without_showing_it(db: Engine) -> None:
    enrich(db, ["clean", "leaky"], FakeStage("context"))
    table = vector_table(db)
    store_vectors(
        db,
        table,
        [
            ("clean", "ws1", "the parcel arrived damaged", [0.1, 0.2, 0.3]),
            ("leaky", "ws1", "write back to jane.doe@example.com please", [0.3, 0.2, 0.1]),
        ],
    )

    verdict = validate(_url(db)).result("no_pii")

    assert verdict.outcome is Outcome.FAILED
    (row,) = verdict.rows
    assert (row["location"], row["record_key"], row["patterns"]) == (
        "vector table",
        "leaky",
        "e-mail address",
    )
    assert "example.com" not in json.dumps(verdict.rows)


def test_pii_in_a_stage_output_is_found_by_kind(db: Engine) -> None:
    outputs = {
        "phone": "call me on +44 20 7946 0958 after six",
        "card": "paid with 4111 1111 1111 1111 twice",
        "not_a_card": "order 4111 1111 1111 1112 is late",
        "ssn": "my SSN is 078-05-1120",
        "plain": "the box was crushed, two items are broken",
    }
    enrich(
        db,
        outputs,
        FakeStage(
            "summarize",
            {
                key: Completed(output={"summary": text, "words": len(text.split())})
                for key, text in outputs.items()
            },
        ),
    )

    verdict = validate(_url(db)).result("no_pii")

    found = {row["record_key"]: row["patterns"] for row in verdict.rows}
    assert found == {"phone": "phone number", "card": "card number", "ssn": "US SSN"}
    assert all(row["location"] == "stage output" for row in verdict.rows)


def test_vectors_must_agree_with_record_state_on_the_workspace(db: Engine) -> None:
    enrich(db, ["mine", "moved"], FakeStage("context"), workspace="ws1")
    table = vector_table(db)
    store_vectors(
        db,
        table,
        [
            ("mine", "ws1", None, [0.1, 0.2, 0.3]),
            ("moved", "ws2", None, [0.1, 0.2, 0.3]),
            ("orphan", "ws1", None, [0.1, 0.2, 0.3]),
        ],
    )

    verdict = validate(_url(db)).result("workspace_consistency")

    assert verdict.outcome is Outcome.FAILED
    assert {(r["record_key"], r["problem"]) for r in verdict.rows} == {
        ("moved", "workspace differs"),
        ("orphan", "no record state"),
    }


def test_rule_values_are_rendered_as_literals() -> None:
    sql = render(
        "SELECT :name, :n, :rate, :keys -- :not_a_value\nWHERE x = 'a:b'",
        {"name": "it's", "n": 3, "rate": 0.8, "keys": Array(["a"], "text")},
    )

    assert sql == "SELECT 'it''s', 3, 0.8, CAST(ARRAY['a'] AS text[]) \nWHERE x = 'a:b'"


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(KeyError, match=":missing"):
        render("SELECT :missing", {})


def test_a_rule_that_joins_is_refused() -> None:
    with pytest.raises(ValueError, match="JOIN"):
        for_great_expectations("SELECT * FROM {batch} AS b JOIN x ON true")
