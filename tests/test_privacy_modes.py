"""Privacy modes end to end, with the real packaged model and the real database: with
``redact`` no detected personal data reaches stored chunk text, the text that is embedded,
stage outputs, error messages or logs; with ``block`` (or a record that cannot be redacted)
only metadata is stored."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment import capture, vectors
from enrichment.config import EnrichConfig, parse_config
from enrichment.embedders.base import Embedder, EmbeddingError, Vector
from enrichment.redaction import Redactor
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, sync
from tests.helpers import states

pytestmark = pytest.mark.slow

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
# Every value here must never be stored, embedded, logged or quoted.
PII = {
    "email": "maria.gonzalez@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ip": "203.0.113.195",
    "secret": "sk-proj-abcDEF1234567890abcdefGHIJ",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "jwt": JWT,
    "ssn": "536-22-1234",
    "customer_email": "li.wei@corp.cn",
    "customer_phone": "4155552671",
}

BODIES = {
    1: f"Hi, this is Maria ({PII['email']}, {PII['phone']}). My parcel never arrived.",
    2: f"I was charged twice on card {PII['card']}; refund to IBAN {PII['iban']} please.",
    3: f"Our integration from {PII['ip']} fails with key {PII['secret']} and {PII['aws']}.",
    4: f"Authorization: Bearer {PII['jwt']} returns 401. SSN {PII['ssn']} for the form.",
    # Long enough to be chunked: personal data in several chunks.
    5: " ".join(
        f"Update {i}: the courier called {PII['phone']} and wrote to {PII['email']}."
        for i in range(25)
    ),
}

SOURCE: dict[str, Any] = {
    "name": "tickets",
    "table": "public.privacy_tickets",
    "columns": ["channel", "body"],
    "entity": {
        "type": "support_ticket",
        "category": "Support ticket",
        "attributes": {"body": "message", "customer.email": "customer e-mail"},
    },
    "related": [
        {
            "name": "customer",
            "table": "public.privacy_customers",
            "join": {"local": "customer_id", "remote": "id"},
            "fields": ["segment", "email", "phone"],
            "entity_type": "customer",
        }
    ],
    "privacy": "redact",
    "stages": [
        {"redact": {"max_value_chars": 5000}},
        "context",
        {"chunk": {"strategy": "recursive", "max_tokens": 64, "overlap_tokens": 8}},
        "embed",
    ],
}


class RecordingEmbedder:
    """The real embedder, keeping every text it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def model_version(self) -> str:
        return self.inner.model_version

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    def embed(self, texts: Sequence[str]) -> list[Vector | EmbeddingError]:
        self.texts.extend(texts)
        return self.inner.embed(texts)


def _config(**overrides: Any) -> EnrichConfig:
    source = copy.deepcopy(SOURCE)
    source.update(overrides)
    return parse_config({"sources": [source]})


def _runner(db: Engine, config: EnrichConfig) -> tuple[Runner, RecordingEmbedder]:
    pipelines = build_pipelines(db, config, Settings(retry_delays=(), retry_jitter=0.0))
    embed_stage: Any = pipelines["tickets"].spec("embed").stage
    recorder = RecordingEmbedder(embed_stage.embedder)
    embed_stage.embedder = recorder
    sync(db, config, pipelines)
    return Runner(db, pipelines, batch_size=50), recorder


@pytest.fixture
def tables(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                """
                DROP TABLE IF EXISTS public.privacy_tickets, public.privacy_customers;
                CREATE TABLE public.privacy_customers (
                    id int PRIMARY KEY, segment text, email text, phone bigint);
                CREATE TABLE public.privacy_tickets (
                    id int PRIMARY KEY, workspace_id text NOT NULL, customer_id int,
                    channel text, body text, updated_at timestamptz NOT NULL DEFAULT now());
                """
            )
        )
        connection.execute(
            text("INSERT INTO public.privacy_customers VALUES (1, 'Enterprise', :email, :phone)"),
            {"email": PII["customer_email"], "phone": int(PII["customer_phone"])},
        )
    yield db
    with db.begin() as connection:
        connection.execute(
            text("DROP TABLE IF EXISTS public.privacy_tickets, public.privacy_customers")
        )


def _insert(db: Engine, bodies: dict[int, str], channel: str = "email") -> None:
    with db.begin() as connection:
        for key, body in bodies.items():
            connection.execute(
                text(
                    "INSERT INTO public.privacy_tickets (id, workspace_id, customer_id, channel, "
                    "body) VALUES (:id, 'acme', 1, :channel, :body) "
                    "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, updated_at = now()"
                ),
                {"id": key, "channel": channel, "body": body},
            )


def _queue_all(db: Engine, config: EnrichConfig) -> None:
    with db.begin() as connection:
        capture.install(connection, config.sources[0])
    # Rows inserted before the triggers: queue them like `enrich reembed` does.
    from enrichment.sources import reembed

    with db.begin() as connection:
        reembed(connection, config.sources[0])


def _chunk_texts(db: Engine) -> list[str | None]:
    with db.connect() as connection:
        table = vectors.active_table(connection)
        if table is None:
            return []
        return list(
            connection.execute(
                text(f"SELECT chunk_text FROM {table.qualified} WHERE source = 'tickets'")
            ).scalars()
        )


def _stored_texts(db: Engine) -> dict[str, list[str]]:
    """Everything the pipeline stored that could carry text, by where it was found."""
    with db.connect() as connection:
        outputs = connection.execute(
            text(
                "SELECT output::text FROM enrichment.record_state "
                "WHERE source = 'tickets' AND output IS NOT NULL"
            )
        ).scalars()
        errors = connection.execute(
            text(
                "SELECT concat_ws(' ', last_error_type, last_error_message, skip_reason) "
                "FROM enrichment.record_state WHERE source = 'tickets'"
            )
        ).scalars()
        attempts = connection.execute(
            text(
                "SELECT concat_ws(' ', error_type, error_message) FROM enrichment.attempts "
                "WHERE source = 'tickets'"
            )
        ).scalars()
        return {
            "stage outputs": list(outputs),
            "error messages": [e for e in errors if e] + [a for a in attempts if a],
            "chunk text": [t for t in _chunk_texts(db) if t],
        }


def _leaks(texts: dict[str, list[str]]) -> list[str]:
    found = []
    for where, items in texts.items():
        for item in items:
            for name, value in PII.items():
                # JSON escapes nothing in these values; compare compact forms too.
                forms = {value, value.replace(" ", "")}
                if any(form in item or form in item.replace(" ", "") for form in forms):
                    found.append(f"{name} in {where}: {item[:120]!r}")
    return found


def test_no_detected_personal_data_reaches_anything_stored_embedded_or_logged(
    tables: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # A template that fails on one record, with an error quoting that record's value.
    template = (
        "{% if record.channel == 'fax' %}{{ record[record.body] + 1 }}{% endif %}"
        "{{ entity.category }}: {{ record.body }} (customer {{ customer.email }}, "
        "{{ customer.phone }})"
    )
    config = _config(template=template)
    runner, recorder = _runner(tables, config)
    _insert(tables, BODIES)
    _insert(tables, {6: f"Fax from {PII['email']}"}, channel="fax")
    _insert(tables, {7: "x" * 4000 + f" {PII['card']} " + "y" * 2000})  # over max_value_chars
    _queue_all(tables, config)

    with caplog.at_level(logging.DEBUG):
        report = runner.drain()

    stored = _stored_texts(tables)
    stored["embedded text"] = recorder.texts
    stored["logs"] = [caplog.text]
    assert _leaks(stored) == []
    # The invariant behind it: the detectors find nothing in anything stored or embedded.
    redactor = Redactor()
    chunks = stored["chunk text"] + recorder.texts
    assert [t for t in chunks if redactor.find(t)] == []
    # ... and the pipeline still did its work, on redacted text.
    rows = states(tables, "tickets")
    assert report.total("dead_lettered") == 1  # the fax record's template error
    assert rows[("6", "context")]["last_error_type"] == "TemplateError"
    assert "[EMAIL]" in rows[("6", "context")]["last_error_message"]
    assert len([t for t in stored["chunk text"] if "[PHONE]" in t]) > 3  # record 5, chunked
    assert any("[CARD]" in t and "[IBAN]" in t for t in stored["chunk text"])


def test_the_redact_stage_stores_the_redacted_record_and_counts_by_kind(tables: Engine) -> None:
    config = _config()
    runner, _ = _runner(tables, config)
    _insert(tables, {2: BODIES[2], 3: BODIES[3]})
    _queue_all(tables, config)
    runner.drain()

    rows = states(tables, "tickets")
    redacted = rows[("2", "redact")]["output"]
    assert redacted["record"]["body"] == (
        "I was charged twice on card [CARD]; refund to IBAN [IBAN] please."
    )
    assert redacted["related"]["customer"] == {
        "segment": "Enterprise",
        "email": "[EMAIL]",
        "phone": "[PHONE]",  # a number column, redacted because its field is a phone
    }
    assert redacted["redactions"] == {"CARD": 1, "EMAIL": 1, "IBAN": 1, "PHONE": 1}
    assert redacted["redacted_fields"] == ["body", "customer.email", "customer.phone"]
    assert rows[("3", "redact")]["output"]["redactions"] == {
        "EMAIL": 1,
        "IP": 1,
        "PHONE": 1,
        "SECRET": 2,
    }
    context = rows[("2", "context")]["output"]
    assert context["privacy"] == "redact"
    assert context["redactions"] == redacted["redactions"]
    assert context["metadata"]["body"] == redacted["record"]["body"]


def test_a_record_that_cannot_be_redacted_is_stored_as_metadata_only(tables: Engine) -> None:
    config = _config()
    runner, recorder = _runner(tables, config)
    _insert(tables, {1: "short and fine", 7: "x" * 6000 + f" {PII['card']}"})
    _queue_all(tables, config)
    runner.drain()

    rows = states(tables, "tickets")
    assert {rows[("7", stage)]["status"] for stage in ("redact", "context", "chunk", "embed")} == {
        "COMPLETED"
    }
    redact = rows[("7", "redact")]["output"]
    assert redact["privacy"] == "block"
    assert "record" not in redact and "related" not in redact
    assert redact["redaction_error"]["field"] == "body"
    context = rows[("7", "context")]["output"]
    assert (context["text"], context["privacy"], context["metadata"]) == (None, "block", {})
    assert rows[("7", "chunk")]["output"] == {"chunks": []}
    assert all("xxxx" not in t for t in recorder.texts)
    assert len(_chunk_texts(tables)) == 1  # record 1 only


def test_block_mode_stores_metadata_only(tables: Engine) -> None:
    config = _config(privacy="block", stages=["context", "chunk", "embed"])
    runner, recorder = _runner(tables, config)
    _insert(tables, {1: BODIES[1], 5: BODIES[5]})
    _queue_all(tables, config)
    report = runner.drain()

    assert report.total("dead_lettered") == 0
    rows = states(tables, "tickets")
    context = rows[("1", "context")]["output"]
    assert context == {
        "text": None,
        "privacy": "block",
        "workspace_id": "acme",
        "entity_type": "support_ticket",
        "semantic_category": "Support ticket",
        "related_entity_types": [],
        "metadata": {},
        "source_updated_at": context["source_updated_at"],
    }
    outputs = json.dumps([row["output"] for row in rows.values()])
    assert "parcel" not in outputs and "courier" not in outputs and "email" not in outputs
    assert recorder.texts == []
    assert _chunk_texts(tables) == []


def test_switching_a_source_to_redact_replaces_the_text_it_had_stored(tables: Engine) -> None:
    plain = _config(privacy="none", stages=SOURCE["stages"][1:])
    runner, _ = _runner(tables, plain)
    _insert(tables, {1: BODIES[1], 2: BODIES[2]})
    _queue_all(tables, plain)
    runner.drain()
    assert _leaks({"chunk text": [t for t in _chunk_texts(tables) if t]})  # stored as written

    runner, _ = _runner(tables, _config())  # the configuration change re-queues every record
    runner.drain()

    assert _leaks(_stored_texts(tables)) == []
    assert any("[EMAIL]" in t for t in _chunk_texts(tables) if t)


def test_switching_a_source_to_block_deletes_its_vectors(tables: Engine) -> None:
    plain = _config(privacy="none", stages=SOURCE["stages"][1:])
    runner, _ = _runner(tables, plain)
    _insert(tables, {1: BODIES[1]})
    _queue_all(tables, plain)
    runner.drain()
    assert _chunk_texts(tables)

    runner, _ = _runner(tables, _config(privacy="block", stages=SOURCE["stages"][1:]))
    runner.drain()

    assert _chunk_texts(tables) == []
    assert _leaks(_stored_texts(tables)) == []


def test_changed_personal_data_with_the_same_redacted_record_is_not_embedded_again(
    tables: Engine,
) -> None:
    config = _config()
    runner, recorder = _runner(tables, config)
    _insert(tables, {1: "Please call me on +44 20 7946 0958"})
    _queue_all(tables, config)
    runner.drain()
    embedded = len(recorder.texts)

    _insert(tables, {1: "Please call me on +33 1 23 45 67 89"})  # captured by the trigger
    report = runner.drain()

    assert report.total("unchanged") == 1
    assert not [b for b in report.batches if b.stage in ("context", "chunk", "embed")]
    assert len(recorder.texts) == embedded
