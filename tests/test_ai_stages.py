"""The AI stages in a configured pipeline on the real queue: context → classify → resolve →
summarize over a source table, with write-back to its ai_* columns. The local backends run the
real packaged model; the LLM backends a real chat server on 127.0.0.1 (tests/fake_chat.py).
Time is a FrozenClock: a re-check 24 h later is a clock move, not a sleep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.events.worker import EventsWorker
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine, text

from enrichment import capture
from enrichment.clock import FrozenClock
from enrichment.config import EnrichConfig, parse_config
from enrichment.rechecks import gated_records, requeue_due_rechecks
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, sync
from enrichment.stages.base import ClaimedRecord, Completed, Failed, Skipped
from enrichment.stages.resolve import ResolveStage
from enrichment.stages.summarize import SummarizeStage
from enrichment.summarization import ExtractiveSummarizer
from tests.fake_chat import FakeChat, Raw, Reply, user_text
from tests.helpers import attempts, state

SOURCE = "exceptions"
TABLE = "public.ai_exceptions"
DAY = 86_400.0
KEY_ENV = "AI_STAGES_TEST_KEY"

LATE = "The parcel has been stuck in transit for nine days and tracking has not moved."
BROKEN = "The glass vase arrived shattered and the box was crushed."
OFF_TOPIC = "Hello there, what lovely weather we are having today."

LABELS = [
    {"name": "carrier_delay", "description": "The shipment is late or stuck in transit."},
    {"name": "damaged_item", "description": "The item arrived broken or damaged."},
    {"name": "customs_hold", "description": "The parcel is held at customs."},
]
PLAYBOOK = [
    {
        "name": "contact_carrier",
        "description": "A few days late: ask the carrier for a delivery date.",
        "labels": ["carrier_delay"],
    },
    {
        "name": "reship_order",
        "description": "A week or more late with no movement: ship the order again.",
        "labels": ["carrier_delay"],
    },
    {
        "name": "issue_replacement",
        "description": "Send a replacement item.",
        "labels": ["damaged_item"],
    },
]


def configuration(backend: str, base_url: str | None = None) -> dict[str, Any]:
    def ai(settings: dict[str, Any], temperature: float | None = None) -> dict[str, Any]:
        if backend == "llm":
            llm = {"model": "fake-chat-1", "base_url": base_url, "api_key_env": KEY_ENV}
            return {**settings, "backend": "llm", "llm": {**llm, "max_retries": 0}}
        if temperature is not None:
            settings["calibration"] = {"temperature": temperature, "none_similarity": 0.3}
        return settings

    return {
        "sources": [
            {
                "name": SOURCE,
                "table": TABLE,
                "columns": ["description"],
                "entity": {"type": "exception", "category": "Fulfilment exception"},
                "template": "{{ record.description }}",
                "stages": [
                    "context",
                    {
                        "classify": ai(
                            {
                                "labels": LABELS,
                                "min_confidence": 0.6,
                                "write_back": {"label": "ai_label", "confidence": "ai_confidence"},
                            },
                            temperature=0.03,
                        )
                    },
                    {
                        "resolve": ai(
                            {"playbook": PLAYBOOK, "write_back": {"action": "ai_action"}},
                            temperature=0.05,
                        )
                    },
                    {"summarize": ai({"write_back": {"summary": "ai_summary"}})},
                ],
            }
        ]
    }


class World:
    """The pipeline over the test table. Resolution events go to ``self.announced`` unless
    ``prefect_events`` (then to Prefect, as in production)."""

    def __init__(
        self,
        engine: Engine,
        config: EnrichConfig,
        clock: FrozenClock,
        *,
        prefect_events: bool = False,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.announced: list[dict[str, Any]] = []
        pipelines = build_pipelines(
            engine, config, Settings(retry_delays=(3600.0,), retry_jitter=0.0)
        )
        resolve = pipelines[SOURCE].spec("resolve").stage
        assert isinstance(resolve, ResolveStage)
        if not prefect_events:
            resolve.emit = lambda **event: self.announced.append(event)
        sync(engine, config, pipelines)
        self.runner = Runner(engine, pipelines, clock=clock, batch_size=50)
        with engine.begin() as connection:
            capture.install(connection, config.sources[0])

    def sql(self, statement: str, **params: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(statement), params)

    def insert(self, key: int, description: str, workspace: str = "acme") -> None:
        self.sql(
            f"INSERT INTO {TABLE} (id, workspace_id, description) VALUES (:id, :ws, :d)",
            id=key,
            ws=workspace,
            d=description,
        )

    def drain(self) -> None:
        self.runner.drain()

    def row(self, key: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            found = (
                connection.execute(
                    text(
                        f"SELECT ai_label, ai_confidence, ai_action, ai_summary FROM {TABLE} "
                        "WHERE id = :id"
                    ),
                    {"id": key},
                )
                .mappings()
                .one()
            )
        return dict(found)

    def status(self, key: int, stage: str) -> str:
        return str(state(self.engine, SOURCE, str(key), stage)["status"])

    def events(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(text("SELECT count(*) FROM enrichment.events")).scalar_one()
            )


@pytest.fixture
def table(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                f"""
                TRUNCATE enrichment.rechecks;
                DROP TABLE IF EXISTS {TABLE};
                CREATE TABLE {TABLE} (
                    id int PRIMARY KEY, workspace_id text NOT NULL, description text,
                    ai_label text, ai_confidence real, ai_action text, ai_summary text,
                    updated_at timestamptz NOT NULL DEFAULT now());
                """
            )
        )
    yield db
    with db.begin() as connection:
        capture.uninstall(connection, parse_config(configuration("local")).sources[0])
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE} CASCADE"))


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChat]:
    monkeypatch.setenv(KEY_ENV, "test-key")
    with FakeChat() as server:
        yield server


@pytest.fixture
def llm_world(table: Engine, chat: FakeChat) -> World:
    return World(table, parse_config(configuration("llm", chat.base_url)), FrozenClock())


@pytest.fixture
def local_world(table: Engine) -> World:
    return World(table, parse_config(configuration("local")), FrozenClock())


def label_by_keyword(body: dict[str, Any]) -> Any:
    """A chat model that classifies by keyword, sure of itself unless the text says 'maybe'."""
    prompt = user_text(body)
    schema = body["response_format"]["json_schema"]["schema"]["properties"]
    if "summary" in schema:
        return {"summary": "The customer reports a problem with the order."}
    text_part = prompt.rsplit('Text:\n"""', 1)[-1]
    confidence = 0.3 if "maybe" in text_part else 0.95
    if "label" in schema:
        label = (
            "damaged_item"
            if "broken" in text_part or "shattered" in text_part
            else ("carrier_delay")
        )
        return {"label": label, "confidence": confidence}
    return {"action": schema["action"]["enum"][-1], "confidence": 0.8}


# --- local backends (real model) -----------------------------------------------------------


@pytest.mark.slow
def test_a_confident_record_is_classified_resolved_summarized_and_written_back(
    local_world: World,
) -> None:
    local_world.insert(1, LATE)
    local_world.insert(2, BROKEN)

    local_world.drain()

    late, broken = local_world.row(1), local_world.row(2)
    assert (late["ai_label"], broken["ai_label"]) == ("carrier_delay", "damaged_item")
    assert late["ai_confidence"] >= 0.6 and broken["ai_confidence"] >= 0.6
    assert late["ai_action"] in ("contact_carrier", "reship_order")
    assert broken["ai_action"] == "issue_replacement"
    assert broken["ai_summary"] == BROKEN
    classified = state(local_world.engine, SOURCE, "1", "classify")["output"]
    assert classified["backend"] == "local" and classified["model"] == "all-MiniLM-L6-v2"
    assert classified["version"] and 0 < classified["confidence"] <= 1
    summary = state(local_world.engine, SOURCE, "2", "summarize")["output"]
    assert 0 < summary["quality"] <= 1 and summary["characters"] == len(BROKEN)


@pytest.mark.slow
def test_a_low_confidence_record_skips_resolution_and_comes_back_after_the_recheck_age(
    local_world: World,
) -> None:
    world = local_world
    world.insert(1, OFF_TOPIC)
    world.drain()

    assert world.status(1, "classify") == "SKIPPED"
    reason = state(world.engine, SOURCE, "1", "resolve")["skip_reason"]
    assert reason.startswith("low confidence") and "re-checked after 24 h" in reason
    assert world.status(1, "summarize") == "SKIPPED"
    written = world.row(1)
    assert written["ai_label"] is not None and written["ai_confidence"] < 0.6  # not hidden
    assert written["ai_action"] is None and written["ai_summary"] is None

    world.clock.advance(DAY - 1)
    with world.engine.begin() as connection:
        assert requeue_due_rechecks(connection, world.clock) == 0
    world.clock.advance(1)
    with world.engine.begin() as connection:
        assert requeue_due_rechecks(connection, world.clock) == 1
    world.drain()

    tries = [a for a in attempts(world.engine, "1") if a["stage"] == "classify"]
    assert [a["outcome"] for a in tries] == ["SKIPPED", "SKIPPED"]
    with world.engine.connect() as connection:
        [held] = gated_records(connection, source=SOURCE)
    assert held.rechecks == 1 and held.due_at is not None


@pytest.mark.slow
def test_a_gated_record_whose_text_becomes_clear_is_resolved(local_world: World) -> None:
    local_world.insert(1, OFF_TOPIC)
    local_world.drain()

    local_world.sql(f"UPDATE {TABLE} SET description = :d WHERE id = 1", d=BROKEN)
    local_world.drain()

    assert local_world.status(1, "resolve") == "COMPLETED"
    assert local_world.row(1)["ai_action"] == "issue_replacement"


@pytest.mark.slow
def test_writing_back_results_raises_no_change_event(local_world: World) -> None:
    local_world.insert(1, BROKEN)
    before = local_world.events()

    local_world.drain()

    assert local_world.row(1)["ai_label"] == "damaged_item"
    assert local_world.events() == before


# --- LLM backends --------------------------------------------------------------------------


def test_llm_backends_classify_resolve_and_summarize(llm_world: World, chat: FakeChat) -> None:
    chat.respond_with(label_by_keyword)
    llm_world.insert(1, BROKEN)

    llm_world.drain()

    assert llm_world.row(1) == {
        "ai_label": "damaged_item",
        "ai_confidence": pytest.approx(0.95),
        "ai_action": "issue_replacement",
        "ai_summary": "The customer reports a problem with the order.",
    }
    resolved = state(llm_world.engine, SOURCE, "1", "resolve")["output"]
    assert resolved["backend"] == "llm" and resolved["model"] == "fake-chat-1"
    assert resolved["label"] == "damaged_item" and resolved["label_confidence"] == 0.95


def test_resolution_asks_only_for_the_actions_of_the_records_label(
    llm_world: World, chat: FakeChat
) -> None:
    chat.respond_with(label_by_keyword)
    llm_world.insert(1, LATE)

    llm_world.drain()

    [resolve] = [b for b in chat.requests if "action" in str(b["response_format"])]
    enum = resolve["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"]
    assert enum == ["contact_carrier", "reship_order"]
    assert "classified as carrier_delay" in user_text(resolve)


def test_an_answer_outside_the_label_set_fails_the_attempt_and_leaves_the_columns_null(
    llm_world: World, chat: FakeChat
) -> None:
    chat.script(Reply({"label": "lost_parcel", "confidence": 0.99}))
    llm_world.insert(1, LATE)

    llm_world.drain()

    classified = state(llm_world.engine, SOURCE, "1", "classify")
    assert classified["status"] == "FAILED" and classified["output"] is None
    assert classified["last_error_type"] == "OutOfSetAnswer"
    assert classified["next_attempt_at"] is not None  # retried on the schedule
    assert llm_world.status(1, "resolve") == "PENDING"  # never ran on a guess
    assert llm_world.row(1) == dict.fromkeys(
        ("ai_label", "ai_confidence", "ai_action", "ai_summary")
    )


def test_a_malformed_answer_fails_the_attempt_and_the_retry_succeeds(
    llm_world: World, chat: FakeChat
) -> None:
    chat.respond_with(label_by_keyword)
    chat.script(Raw("carrier_delay, I think"))
    llm_world.insert(1, LATE)
    llm_world.drain()
    assert llm_world.row(1)["ai_label"] is None

    llm_world.clock.advance(3600)
    llm_world.drain()

    assert llm_world.row(1)["ai_label"] == "carrier_delay"
    tries = [a for a in attempts(llm_world.engine, "1") if a["stage"] == "classify"]
    assert [(a["outcome"], a["error_type"]) for a in tries] == [
        ("FAILED", "MalformedAnswer"),
        ("COMPLETED", None),
    ]


def test_a_failure_after_a_success_sets_the_written_columns_back_to_null(
    llm_world: World, chat: FakeChat
) -> None:
    chat.respond_with(label_by_keyword)
    llm_world.insert(1, LATE)
    llm_world.drain()
    assert llm_world.row(1)["ai_action"] is not None

    chat.respond_with(lambda body: "not json")
    llm_world.sql(f"UPDATE {TABLE} SET description = :d WHERE id = 1", d=BROKEN)
    llm_world.drain()

    # The label was for the old text: it, and what was built on it, must not stay.
    assert llm_world.row(1) == dict.fromkeys(
        ("ai_label", "ai_confidence", "ai_action", "ai_summary")
    )


def test_a_low_confidence_llm_answer_is_gated_like_a_local_one(
    llm_world: World, chat: FakeChat
) -> None:
    chat.respond_with(label_by_keyword)
    llm_world.insert(1, "maybe the parcel is late")

    llm_world.drain()

    assert llm_world.status(1, "classify") == "SKIPPED"
    assert llm_world.status(1, "resolve") == "SKIPPED"
    assert llm_world.row(1)["ai_confidence"] == pytest.approx(0.3)
    assert not [b for b in chat.requests if "action" in str(b["response_format"])]


def test_an_unreachable_endpoint_fails_the_batch_retryably(
    llm_world: World, chat: FakeChat
) -> None:
    chat.stop()
    llm_world.insert(1, LATE)
    llm_world.insert(2, BROKEN)

    llm_world.drain()

    for key in (1, 2):
        classified = state(llm_world.engine, SOURCE, str(key), "classify")
        assert classified["last_error_type"] == "LLMUnavailable"
        assert classified["next_attempt_at"] is not None


def test_an_llm_summary_that_breaks_the_limits_fails_and_stores_nothing(
    llm_world: World, chat: FakeChat
) -> None:
    def long_summary(body: dict[str, Any]) -> Any:
        if "summary" in body["response_format"]["json_schema"]["schema"]["properties"]:
            return {"summary": "Too long. " * 40}
        return label_by_keyword(body)

    chat.respond_with(long_summary)
    llm_world.insert(1, BROKEN)

    llm_world.drain()

    summarized = state(llm_world.engine, SOURCE, "1", "summarize")
    assert summarized["last_error_type"] == "InvalidSummary" and summarized["output"] is None
    assert llm_world.row(1)["ai_summary"] is None
    assert llm_world.row(1)["ai_action"] == "issue_replacement"  # earlier stages stand


def test_a_label_the_playbook_has_no_action_for_is_skipped_with_the_reason(
    llm_world: World, chat: FakeChat
) -> None:
    chat.respond_with(
        lambda body: (
            {"label": "customs_hold", "confidence": 0.9}
            if "label" in str(body["response_format"])
            else {"summary": "Held at customs."}
        )
    )
    llm_world.insert(1, "Customs want the invoice.")

    llm_world.drain()

    resolved = state(llm_world.engine, SOURCE, "1", "resolve")
    assert resolved["status"] == "SKIPPED"
    assert resolved["skip_reason"] == "the playbook has no action for label 'customs_hold'"
    assert llm_world.status(1, "summarize") == "COMPLETED"  # not a gate


# --- the resolution event ------------------------------------------------------------------


def read_events(name: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with get_client() as client:
            for _ in range(100):
                response = await client._client.post(
                    "/events/filter", json={"filter": {"event": {"name": [name]}}}
                )
                found = response.json().get("events", [])
                if found:
                    return list(found)
                await asyncio.sleep(0.1)
            return []

    EventsWorker.drain_all()
    return asyncio.run(read())


def test_a_recommendation_is_announced_once_committed_and_a_gated_record_is_not(
    llm_world: World, chat: FakeChat
) -> None:
    chat.respond_with(label_by_keyword)
    llm_world.insert(1, BROKEN)
    llm_world.insert(2, "maybe the parcel is late")

    llm_world.drain()

    [event] = llm_world.announced
    assert event["resource"]["enrichment.record"] == "1"
    assert event["payload"]["action"] == llm_world.row(1)["ai_action"]


@pytest.mark.slow
def test_each_recommendation_is_announced_as_a_prefect_event(table: Engine, chat: FakeChat) -> None:
    chat.respond_with(label_by_keyword)
    config = parse_config(configuration("llm", chat.base_url))
    world = World(table, config, FrozenClock(), prefect_events=True)
    world.insert(7, BROKEN, workspace="globex")

    with prefect_test_harness(server_startup_timeout=60):
        world.drain()
        [event] = read_events("enrichment.resolution.recommended")

    assert event["resource"]["prefect.resource.id"] == f"enrichment.record.{SOURCE}.7"
    assert event["resource"]["enrichment.workspace"] == "globex"
    assert event["payload"]["action"] == "issue_replacement"
    assert event["payload"]["label"] == "damaged_item"
    assert event["payload"]["confidence"] == 0.8
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
    assert roles["recommended-action"] == "enrichment.action.issue_replacement"


# --- the summary's PII re-check ------------------------------------------------------------


def summarize_with(table: Engine, text_value: str, **options: Any) -> Completed | Skipped | Failed:
    from enrichment.embedders.local import SentenceTransformerEmbedder

    with table.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO enrichment.record_state (source, record_key, stage, stage_index, "
                "workspace_id, status, output, requested_at) VALUES ('pii', '1', 'context', 0, "
                "'w', 'COMPLETED', CAST(:output AS jsonb), now())"
            ),
            {"output": json.dumps({"text": text_value})},
        )
    stage = SummarizeStage(
        table,
        "pii",
        ExtractiveSummarizer(SentenceTransformerEmbedder(device="cpu")),
        confidence_stage=None,
        **options,
    )
    record = ClaimedRecord("pii", "summarize", "1", "w", 1, None, FrozenClock().now())
    outcome = stage.run([record])["1"]
    assert isinstance(outcome, Completed | Skipped | Failed)
    return outcome


@pytest.mark.slow
def test_pii_the_recheck_finds_in_a_summary_is_replaced_and_lowers_its_quality(
    table: Engine,
) -> None:
    def check(summary: str) -> tuple[str, int]:
        return summary.replace("jo@example.com", "[EMAIL]"), summary.count("jo@example.com")

    outcome = summarize_with(
        table, "Write to jo@example.com about the late parcel.", pii_check=check
    )

    assert isinstance(outcome, Completed) and outcome.output is not None
    assert outcome.output["summary"] == "Write to [EMAIL] about the late parcel."
    assert outcome.output["pii_checked"] is True and outcome.output["pii_found"] == 1
    assert outcome.output["signals"]["redactions"] == 0.5


@pytest.mark.slow
def test_a_failing_pii_recheck_stores_no_summary(table: Engine) -> None:
    def broken(summary: str) -> tuple[str, int]:
        raise RuntimeError(f"detector crashed on {summary}")

    outcome = summarize_with(table, "Call +49 170 1234567 about it.", pii_check=broken)

    assert isinstance(outcome, Failed) and outcome.error_type == "PiiCheckFailed"
    assert "+49" not in outcome.message and outcome.retryable


def test_privacy_mode_block_stores_no_summary_text(table: Engine) -> None:
    stage = SummarizeStage(table, "pii", summarizer=None, store_text=False)  # type: ignore[arg-type]
    record = ClaimedRecord("pii", "summarize", "1", "w", 1, None, FrozenClock().now())

    outcome = stage.run([record])["1"]

    assert isinstance(outcome, Skipped) and "privacy mode block" in outcome.reason
    assert outcome.output is None


def test_a_record_without_text_is_skipped_not_failed_and_the_model_is_not_asked(
    llm_world: World, chat: FakeChat
) -> None:
    llm_world.insert(1, "")

    llm_world.drain()

    assert state(llm_world.engine, SOURCE, "1", "classify")["skip_reason"].startswith("no text")
    assert llm_world.status(1, "resolve") == "SKIPPED"
    assert llm_world.status(1, "summarize") == "SKIPPED"
    assert not [a for a in attempts(llm_world.engine, "1") if a["outcome"] == "FAILED"]
    assert chat.requests == []
