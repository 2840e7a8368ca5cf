"""The OpenAI-compatible embedder against a real HTTP server on 127.0.0.1 with scripted faults.

Waits between retries are recorded by an injected ``sleep`` instead of slept; only the timeout
test really waits (for the client's 1 s timeout).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from enrichment.embedders import Embedder, EmbeddingError, EmbeddingUnavailable
from enrichment.embedders.openai_compatible import (
    OpenAICompatibleConfig,
    OpenAICompatibleEmbedder,
)
from enrichment.openai_calls import retry_after_seconds
from tests.fake_openai import (
    Delay,
    FakeOpenAI,
    HttpError,
    NotFinite,
    Reversed,
    WrongDimension,
    fake_embedding,
)

MODEL = "fake-embed-1"
DIMENSIONS = 8
TEXTS = ["alpha", "beta", "gamma"]


class CeilingRandom(random.Random):
    """Full jitter always drawing the top of its range, so backoff waits are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dimensions=DIMENSIONS) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


def embedder(
    server: FakeOpenAI, sleeps: list[float], **settings: object
) -> OpenAICompatibleEmbedder:
    config = OpenAICompatibleConfig.model_validate(
        {
            "model": MODEL,
            "base_url": server.base_url,
            "api_key": "test-key",
            "dimensions": DIMENSIONS,
            "timeout_seconds": 5.0,
            "max_retries": 3,
            **settings,
        }
    )
    return OpenAICompatibleEmbedder(config, sleep=sleeps.append, rng=CeilingRandom())


def expected(text: str) -> np.ndarray:
    return np.asarray(fake_embedding(text, DIMENSIONS), dtype=np.float32)


def assert_vectors_for(results: list[object], texts: list[str]) -> None:
    assert len(results) == len(texts)
    for result, text in zip(results, texts, strict=True):
        assert isinstance(result, np.ndarray), result
        assert result.dtype == np.float32
        np.testing.assert_allclose(result, expected(text), rtol=1e-6)


# --- the happy path ---------------------------------------------------------------------------


def test_vectors_come_back_in_input_order_with_the_configured_dimension(server, sleeps):
    results = embedder(server, sleeps).embed(TEXTS)

    assert_vectors_for(results, TEXTS)
    assert sleeps == []


def test_texts_are_sent_in_requests_of_at_most_batch_size(server, sleeps):
    texts = [f"text {i}" for i in range(10)]

    results = embedder(server, sleeps, batch_size=4).embed(texts)

    assert_vectors_for(results, texts)
    assert [request.inputs for request in server.requests] == [texts[0:4], texts[4:8], texts[8:]]


def test_request_names_the_model_asks_for_floats_and_carries_the_api_key(server, sleeps):
    embedder(server, sleeps).embed(TEXTS)

    (request,) = server.requests
    assert request.path == "/v1/embeddings"
    assert request.body == {"model": MODEL, "input": TEXTS, "encoding_format": "float"}
    assert request.headers["authorization"] == "Bearer test-key"


def test_dimensions_are_requested_only_when_send_dimensions_is_set(server, sleeps):
    embedder(server, sleeps, send_dimensions=True).embed(TEXTS)

    assert server.requests[0].body["dimensions"] == DIMENSIONS


def test_empty_input_sends_no_request(server, sleeps):
    assert embedder(server, sleeps).embed([]) == []
    assert server.requests == []


def test_empty_text_is_a_per_item_error_and_is_not_sent(server, sleeps):
    results = embedder(server, sleeps).embed(["alpha", "  ", "gamma"])

    assert isinstance(results[1], EmbeddingError)
    assert results[1].error_type == "EmptyText"
    assert_vectors_for([results[0], results[2]], ["alpha", "gamma"])
    assert server.requests[0].inputs == ["alpha", "gamma"]


def test_out_of_order_indices_are_put_back_in_input_order(server, sleeps):
    server.script(Reversed())

    results = embedder(server, sleeps).embed(TEXTS)

    assert_vectors_for(results, TEXTS)


# --- per-item errors --------------------------------------------------------------------------


def test_wrong_dimension_is_a_per_item_error_naming_model_expected_and_actual(server, sleeps):
    server.script(WrongDimension(item=1, dimensions=3))

    results = embedder(server, sleeps).embed(TEXTS)

    error = results[1]
    assert isinstance(error, EmbeddingError)
    assert error.error_type == "DimensionMismatch"
    assert MODEL in error.message
    assert "expected 8" in error.message
    assert "dimension 3" in error.message
    assert_vectors_for([results[0], results[2]], [TEXTS[0], TEXTS[2]])


def test_nan_in_a_vector_is_a_per_item_non_finite_error(server, sleeps):
    server.script(NotFinite(item=2))

    results = embedder(server, sleeps).embed(TEXTS)

    error = results[2]
    assert isinstance(error, EmbeddingError)
    assert error.error_type == "NonFiniteVector"
    assert MODEL in error.message
    assert_vectors_for(results[:2], TEXTS[:2])


# --- retries ----------------------------------------------------------------------------------


def test_429_waits_exactly_the_retry_after_seconds_then_succeeds(server, sleeps):
    server.script(HttpError(429, retry_after="7"))

    results = embedder(server, sleeps).embed(TEXTS)

    assert_vectors_for(results, TEXTS)
    assert sleeps == [7.0]
    assert len(server.requests) == 2


def test_retry_after_ms_is_preferred_to_retry_after(server, sleeps):
    server.script(HttpError(429, retry_after="7", retry_after_ms="250"))

    embedder(server, sleeps).embed(TEXTS)

    assert sleeps == [0.25]


def test_503_honours_retry_after_given_as_an_http_date(server, sleeps):
    server.script(HttpError(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))  # in the past

    results = embedder(server, sleeps).embed(TEXTS)

    assert_vectors_for(results, TEXTS)
    assert sleeps == [0.0]


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert retry_after_seconds({"retry-after": "3"}, now=now) == 3.0
    assert retry_after_seconds({"retry-after": "1.5"}, now=now) == 1.5
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now=now) == 30.0
    assert retry_after_seconds({"retry-after-ms": "1500"}, now=now) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None


def test_500_is_retried_after_a_backoff_then_succeeds(server, sleeps):
    server.script(HttpError(500))

    results = embedder(server, sleeps, backoff_base_seconds=0.5).embed(TEXTS)

    assert_vectors_for(results, TEXTS)
    assert sleeps == [0.5]
    assert len(server.requests) == 2


def test_backoff_doubles_per_retry_up_to_the_cap(server, sleeps):
    server.script(*[HttpError(502)] * 5)

    embedder(
        server, sleeps, max_retries=5, backoff_base_seconds=1.0, backoff_cap_seconds=5.0
    ).embed(TEXTS)

    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_uses_full_jitter_between_zero_and_the_ceiling(server):
    config = OpenAICompatibleConfig(
        model=MODEL, base_url=server.base_url, api_key="k", dimensions=DIMENSIONS
    )
    jittered = OpenAICompatibleEmbedder(config, rng=random.Random(1))

    waits = [jittered.backoff_seconds(3) for _ in range(200)]

    assert all(0.0 <= wait <= 4.0 for wait in waits)
    assert min(waits) < 1.0 < 3.0 < max(waits)


def test_timeout_is_retried_then_succeeds(server, sleeps):
    server.script(Delay(10.0))  # cut short when the server stops

    results = embedder(server, sleeps, timeout_seconds=1.0).embed(TEXTS)

    assert_vectors_for(results, TEXTS)
    assert [request.fault for request in server.requests] == [Delay(10.0), None]
    assert len(sleeps) == 1


def test_exhausted_retries_raise_retryable_unavailable_naming_model_status_attempts(server, sleeps):
    server.script(*[HttpError(500)] * 3)

    with pytest.raises(EmbeddingUnavailable) as raised:
        embedder(server, sleeps, max_retries=2).embed(TEXTS)

    assert raised.value.retryable is True
    message = str(raised.value)
    assert MODEL in message
    assert "HTTP 500" in message
    assert "3 attempts" in message
    assert len(server.requests) == 3  # the client's own retries are off
    assert len(sleeps) == 2


def test_unreachable_server_is_retried_then_retryable_unavailable(sleeps):
    with FakeOpenAI() as stopped:
        base_url = stopped.base_url  # nothing listens there once the block ends
    config = OpenAICompatibleConfig(
        model=MODEL, base_url=base_url, api_key="k", dimensions=DIMENSIONS, max_retries=1
    )

    with pytest.raises(EmbeddingUnavailable, match="connection error") as raised:
        OpenAICompatibleEmbedder(config, sleep=sleeps.append).embed(TEXTS)

    assert raised.value.retryable is True
    assert len(sleeps) == 1


def test_retry_after_longer_than_the_cap_gives_up_at_once(server, sleeps):
    server.script(HttpError(429, retry_after="3600"))

    with pytest.raises(EmbeddingUnavailable, match="3600") as raised:
        embedder(server, sleeps, backoff_cap_seconds=60).embed(TEXTS)

    assert raised.value.retryable is True
    assert sleeps == []
    assert len(server.requests) == 1


def test_400_is_permanent_and_not_retried(server, sleeps):
    server.script(HttpError(400, message="input is too long"))

    with pytest.raises(EmbeddingUnavailable) as raised:
        embedder(server, sleeps).embed(TEXTS)

    assert raised.value.retryable is False
    assert MODEL in str(raised.value)
    assert "HTTP 400" in str(raised.value)
    assert len(server.requests) == 1
    assert sleeps == []


def test_408_is_retried(server, sleeps):
    server.script(HttpError(408))

    assert_vectors_for(embedder(server, sleeps).embed(TEXTS), TEXTS)
    assert len(server.requests) == 2


# --- identity and configuration ---------------------------------------------------------------


def test_embedder_satisfies_the_interface_and_names_its_model(server, sleeps):
    provider = embedder(server, sleeps)

    assert isinstance(provider, Embedder)
    assert provider.model_name == MODEL
    assert provider.dimensions == DIMENSIONS
    assert provider.model_version == f"{MODEL}@8d/openai-compatible"
    assert embedder(server, sleeps, model_version="rev-2").model_version == "rev-2"


def test_config_rejects_unknown_fields_and_hides_the_api_key():
    with pytest.raises(ValidationError, match="extra"):
        OpenAICompatibleConfig.model_validate(
            {"model": MODEL, "api_key": "secret", "dimensions": 8, "batchsize": 10}
        )

    config = OpenAICompatibleConfig(model=MODEL, api_key="secret", dimensions=8)
    assert "secret" not in repr(config)
