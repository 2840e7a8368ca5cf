"""The LLM backends of classify, resolve and summarize against a real OpenAI-compatible HTTP
server on 127.0.0.1 (tests/fake_chat.py): valid answers, answers outside the options, text that
is not JSON, truncated and refused answers, HTTP errors with retries and backoff. Waits between
retries are recorded by an injected ``sleep``, not slept."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from enrichment.classification import Choice, ChoiceError, LLMClassifier, Option, Question
from enrichment.llm import ChatClient, ChatConfig, LLMUnavailable, MalformedAnswer
from enrichment.summarization import LLMSummarizer, Summary, SummaryError
from tests.fake_chat import FakeChat, Raw, Refused, Reply, Truncated, user_text
from tests.fake_openai import HttpError

LABELS = [
    Option("carrier_delay", "The parcel is late or stuck in transit.", ("Tracking has not moved",)),
    Option("damaged_item", "The item arrived broken."),
    Option("customs_hold", "The parcel is held by customs."),
]


class CeilingRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def server() -> Iterator[FakeChat]:
    with FakeChat() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(server: FakeChat, sleeps: list[float], **settings: Any) -> ChatClient:
    defaults: dict[str, Any] = {"model": "fake-chat-1", "timeout_seconds": 5.0, "max_retries": 3}
    config = ChatConfig(
        base_url=server.base_url, api_key=SecretStr("test-key"), **{**defaults, **settings}
    )
    return ChatClient(config, sleep=sleeps.append, rng=CeilingRandom())


def classifier(server: FakeChat, sleeps: list[float], **settings: Any) -> LLMClassifier:
    return LLMClassifier(LABELS, client(server, sleeps, **settings), what="label", concurrency=1)


def ask(llm: LLMClassifier, text: str = "Where is my parcel?") -> Choice | ChoiceError:
    [answer] = llm.classify([Question(text)])
    return answer


# --- classify ------------------------------------------------------------------------------


def test_a_valid_answer_is_the_label_with_the_models_confidence(server, sleeps) -> None:
    server.script(Reply({"label": "customs_hold", "confidence": 0.83}))

    assert ask(classifier(server, sleeps)) == Choice("customs_hold", 0.83)


def test_the_request_asks_for_a_json_schema_answer_limited_to_the_labels(server, sleeps) -> None:
    ask(classifier(server, sleeps), "Parcel stuck at the hub for a week")

    [body] = server.requests
    assert body["model"] == "fake-chat-1"
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == [
        "carrier_delay",
        "damaged_item",
        "customs_hold",
    ]
    assert schema["required"] == ["label", "confidence"]


def test_the_prompt_carries_the_label_descriptions_examples_and_the_text(server, sleeps) -> None:
    ask(classifier(server, sleeps), "Parcel stuck at the hub for a week")

    prompt = user_text(server.requests[0])
    assert "- carrier_delay: The parcel is late or stuck in transit." in prompt
    assert "Examples: Tracking has not moved" in prompt
    assert "Parcel stuck at the hub for a week" in prompt


def test_a_label_outside_the_set_is_a_failed_attempt_not_a_guess(server, sleeps) -> None:
    server.script(Reply({"label": "lost_parcel", "confidence": 0.99}))

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError)
    assert answer.error_type == "OutOfSetAnswer" and answer.retryable
    assert "carrier_delay, damaged_item, customs_hold" in answer.message
    assert "lost_parcel" not in answer.message  # what the model wrote is not echoed


def test_text_that_is_not_json_is_a_failed_attempt(server, sleeps) -> None:
    server.script(Raw("I think it's a carrier delay."))

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError) and answer.error_type == "MalformedAnswer"
    assert "carrier delay" not in answer.message


def test_json_that_is_not_an_object_is_a_failed_attempt(server, sleeps) -> None:
    server.script(Reply(["carrier_delay", 0.9]))

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError) and answer.error_type == "MalformedAnswer"


@pytest.mark.parametrize(
    "reply",
    [
        {"label": "carrier_delay"},
        {"label": "carrier_delay", "confidence": "high"},
        {"label": "carrier_delay", "confidence": 1.7},
        {"label": "carrier_delay", "confidence": True},
    ],
    ids=["missing", "text", "above-one", "boolean"],
)
def test_a_confidence_that_is_not_a_number_in_zero_to_one_is_a_failed_attempt(
    server, sleeps, reply: dict[str, Any]
) -> None:
    server.script(Reply(reply))

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError) and answer.error_type == "MalformedAnswer"


def test_a_truncated_answer_is_a_failed_attempt(server, sleeps) -> None:
    server.script(Truncated())

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError) and answer.error_type == "MalformedAnswer"
    assert "ran out of tokens" in answer.message


def test_a_refusal_is_a_failed_attempt(server, sleeps) -> None:
    server.script(Refused())

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError) and answer.error_type == "Refusal"


def test_server_errors_are_retried_with_backoff_then_answered(server, sleeps) -> None:
    server.script(HttpError(503), HttpError(500), Reply({"label": "damaged_item", "confidence": 1}))

    answer = ask(classifier(server, sleeps))

    assert answer == Choice("damaged_item", 1.0)
    assert len(server.requests) == 3
    assert sleeps == [1.0, 2.0]  # full jitter drawn at its ceiling: base * 2**(retry - 1)


def test_rate_limits_wait_as_long_as_the_server_asks(server, sleeps) -> None:
    server.script(HttpError(429, retry_after="3"), HttpError(429, retry_after_ms="250"))

    assert isinstance(ask(classifier(server, sleeps)), Choice)
    assert sleeps == [3.0, 0.25]


def test_a_wait_longer_than_the_backoff_cap_gives_up_at_once(server, sleeps) -> None:
    server.script(HttpError(429, retry_after="600"))

    answer = ask(classifier(server, sleeps, backoff_cap_seconds=30.0))

    assert isinstance(answer, ChoiceError) and answer.error_type == "LLMUnavailable"
    assert answer.retryable and sleeps == [] and len(server.requests) == 1


def test_after_the_last_retry_the_endpoint_is_unavailable_and_retryable(server, sleeps) -> None:
    server.script(*[HttpError(502)] * 4)

    answer = ask(classifier(server, sleeps, max_retries=3))

    assert isinstance(answer, ChoiceError) and answer.error_type == "LLMUnavailable"
    assert answer.retryable and "gave up after 4 attempts" in answer.message


def test_a_client_error_is_permanent_and_not_retried(server, sleeps) -> None:
    server.script(HttpError(401, message="bad key"))

    answer = ask(classifier(server, sleeps))

    assert isinstance(answer, ChoiceError) and not answer.retryable
    assert len(server.requests) == 1 and sleeps == []


def test_when_the_endpoint_is_down_the_rest_of_the_batch_is_not_sent(server, sleeps) -> None:
    server.script(HttpError(503), HttpError(503))
    llm = classifier(server, sleeps, max_retries=1)

    answers = llm.classify([Question(f"text {i}") for i in range(5)])

    assert len(server.requests) == 2  # the first text's attempts only
    assert [a.error_type for a in answers if isinstance(a, ChoiceError)] == ["LLMUnavailable"] * 5
    assert all("not sent" in a.message for a in answers[1:] if isinstance(a, ChoiceError))


def test_one_bad_answer_does_not_fail_the_other_texts_of_its_batch(server, sleeps) -> None:
    def by_text(body: dict[str, Any]) -> Any:
        if "garbled-record" in user_text(body):
            return "not json"
        return {"label": "carrier_delay", "confidence": 0.7}

    server.respond_with(by_text)
    llm = LLMClassifier(LABELS, client(server, sleeps), concurrency=3)

    answers = llm.classify([Question("late"), Question("garbled-record"), Question("later")])

    assert [type(a).__name__ for a in answers] == ["Choice", "ChoiceError", "Choice"]


def test_candidates_limit_the_schema_and_the_prompt_and_the_hint_is_read(server, sleeps) -> None:
    actions = [
        Option("contact_carrier", "Ask the carrier for a date."),
        Option("reship_order", "Ship again."),
        Option("issue_replacement", "Send a replacement."),
    ]
    llm = LLMClassifier(actions, client(server, sleeps), what="action", concurrency=1)

    [answer] = llm.classify(
        [
            Question(
                "No scan for 12 days",
                candidates=("contact_carrier", "reship_order"),
                hint="The record was classified as carrier_delay.",
            )
        ]
    )

    body = server.requests[0]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["action"]["enum"] == ["contact_carrier", "reship_order"]
    assert "issue_replacement" not in user_text(body)
    assert "classified as carrier_delay" in user_text(body)
    assert answer == Choice("contact_carrier", 0.9)


def test_an_action_outside_the_candidates_is_a_failed_attempt(server, sleeps) -> None:
    actions = [Option("contact_carrier", "Ask."), Option("issue_replacement", "Replace.")]
    llm = LLMClassifier(actions, client(server, sleeps), what="action", concurrency=1)
    server.script(Reply({"action": "issue_replacement", "confidence": 0.9}))

    [answer] = llm.classify([Question("late", candidates=("contact_carrier",))])

    assert isinstance(answer, ChoiceError) and answer.error_type == "OutOfSetAnswer"


def test_the_version_changes_with_the_labels_the_model_and_the_prompt(server, sleeps) -> None:
    base = classifier(server, sleeps)
    other_labels = LLMClassifier(LABELS[:2], base.chat)
    other_model = LLMClassifier(LABELS, client(server, sleeps, model="fake-chat-2"))
    other_prompt = LLMClassifier(LABELS, base.chat, instructions="Prefer customs_hold.")

    versions = {c.version for c in (base, other_labels, other_model, other_prompt)}

    assert len(versions) == 4
    assert classifier(server, sleeps).version == base.version


def test_the_chat_client_raises_for_callers_that_want_exceptions(server, sleeps) -> None:
    chat = client(server, sleeps, max_retries=0)
    server.script(Raw("{"), HttpError(503))

    with pytest.raises(MalformedAnswer):
        chat.complete_json(system="s", user="u", schema={"type": "object"}, name="x")
    with pytest.raises(LLMUnavailable):
        chat.complete_json(system="s", user="u", schema={"type": "object"}, name="x")


# --- summarize -----------------------------------------------------------------------------


def summarizer(server: FakeChat, sleeps: list[float], **limits: Any) -> LLMSummarizer:
    return LLMSummarizer(client(server, sleeps), concurrency=2, **limits)


def test_an_llm_summary_within_the_limits_is_kept(server, sleeps) -> None:
    server.script(Reply({"summary": "The parcel is late.  The carrier\nhas no date."}))

    [summary] = summarizer(server, sleeps).summarize(["long record text"])

    assert summary == Summary("The parcel is late. The carrier has no date.", 2)
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["summary"]
    assert "long record text" in user_text(server.requests[0])


@pytest.mark.parametrize(
    "reply",
    [
        {"summary": "x " * 200},
        {"summary": "One. Two. Three. Four."},
        {"summary": "   "},
        {"summary": 42},
        {"text": "The parcel is late."},
    ],
    ids=["too-long", "four-sentences", "blank", "not-text", "wrong-field"],
)
def test_an_llm_summary_outside_the_limits_is_a_failed_attempt(
    server, sleeps, reply: dict[str, Any]
) -> None:
    server.script(Reply(reply))

    [result] = summarizer(server, sleeps).summarize(["record"])

    assert isinstance(result, SummaryError) and result.error_type == "InvalidSummary"
    assert result.retryable


def test_a_malformed_summary_answer_is_a_failed_attempt(server, sleeps) -> None:
    server.script(Raw("Here is your summary: the parcel is late"))

    [result] = summarizer(server, sleeps).summarize(["record"])

    assert isinstance(result, SummaryError) and result.error_type == "MalformedAnswer"


def test_the_summary_prompt_states_the_limits(server, sleeps) -> None:
    summarizer(server, sleeps, max_characters=200, max_sentences=2).summarize(["record"])

    system = server.requests[0]["messages"][0]["content"]
    assert "1 to 2 sentences" in system and "200 characters" in system
    assert server.requests[0]["response_format"]["json_schema"]["name"] == "summary"
