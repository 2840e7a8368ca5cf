"""Embeddings from any server that speaks OpenAI's ``POST /v1/embeddings``.

OpenAI itself, Azure-style proxies, vLLM, Ollama, text-embeddings-inference... The client's own
retries are switched off and enrichment/openai_calls.py retries instead, so the policy is the
same for every server (and for the chat endpoint) and visible in one place:

* 429, 408 and 5xx responses, timeouts and connection errors are retried with exponential
  backoff and full jitter; a ``retry-after-ms`` or ``Retry-After`` header (seconds or an HTTP
  date) replaces the backoff for that wait. A server asking for a wait longer than
  ``backoff_cap_seconds`` ends the call at once, so a worker never sleeps through its lease.
* Any other 4xx is permanent: the batch will fail the same way every time.
* When the retries are spent, :class:`EmbeddingUnavailable` is raised with ``retryable=True``
  and the queue tries the batch again later.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import openai
from openai.types import CreateEmbeddingResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from enrichment.embedders.base import EmbeddingError, EmbeddingUnavailable, Vector, check_vector
from enrichment.openai_calls import backoff_seconds, call_with_retries


class OpenAICompatibleConfig(BaseModel):
    """How to reach an OpenAI-compatible embeddings endpoint; validated once, then trusted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    implementation: Literal["openai_compatible"] = "openai_compatible"
    model: str = Field(min_length=1, description="Model name sent with every request.")
    base_url: str | None = Field(
        default=None,
        description="API root including /v1, e.g. http://localhost:8000/v1; "
        "None uses OPENAI_BASE_URL or api.openai.com.",
    )
    api_key: SecretStr
    dimensions: int = Field(gt=0, description="Length every returned vector must have.")
    send_dimensions: bool = Field(
        default=False,
        description="Send `dimensions` in the request (models that can shorten their vectors).",
    )
    model_version: str | None = Field(
        default=None,
        description="Recorded with every vector; default model@<dimensions>d/openai-compatible. "
        "Set it when a server changes what a model name means (a new revision).",
    )
    batch_size: int = Field(default=64, ge=1, le=2048, description="Texts per request.")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per request.")
    max_retries: int = Field(default=5, ge=0, description="Retries per request.")
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    backoff_cap_seconds: float = Field(default=60.0, ge=0)


class OpenAICompatibleEmbedder:
    """Embeds texts through an OpenAI-compatible API, ``batch_size`` texts per request.

    ``embed`` returns one result per text, in input order, whatever order the server answers
    in. A vector of the wrong length or with NaN/infinity, an empty text and a text the server
    skipped are per-text :class:`EmbeddingError` values; the other texts still get vectors.
    A request that cannot succeed raises :class:`EmbeddingUnavailable` for the whole call.

    ``sleep`` and ``rng`` are injectable so tests can record waits instead of waiting.
    """

    def __init__(
        self,
        config: OpenAICompatibleConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        client: openai.OpenAI | None = None,
    ) -> None:
        self._config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = client or openai.OpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    @property
    def config(self) -> OpenAICompatibleConfig:
        return self._config

    @property
    def model_name(self) -> str:
        return self._config.model

    @property
    def model_version(self) -> str:
        if self._config.model_version is not None:
            return self._config.model_version
        return f"{self._config.model}@{self._config.dimensions}d/openai-compatible"

    @property
    def dimensions(self) -> int:
        return self._config.dimensions

    def close(self) -> None:
        """Close the HTTP connections (only needed for long-lived processes making many)."""
        self._client.close()

    def embed(self, texts: Sequence[str]) -> list[Vector | EmbeddingError]:
        """One float32 vector or one error per text, in order; raises EmbeddingUnavailable."""
        results: list[Vector | EmbeddingError | None] = [None] * len(texts)
        to_send: list[int] = []
        for position, text in enumerate(texts):
            if text.strip():
                to_send.append(position)
            else:
                results[position] = EmbeddingError(
                    "EmptyText", f"model {self.model_name!r} cannot embed an empty text"
                )
        size = self._config.batch_size
        for start in range(0, len(to_send), size):
            positions = to_send[start : start + size]
            vectors = self._embed_batch([texts[position] for position in positions])
            for position, vector in zip(positions, vectors, strict=True):
                results[position] = vector
        return [result for result in results if result is not None]

    def backoff_seconds(self, retry: int) -> float:
        """Wait before retry ``retry`` (1, 2, ...): uniform in 0..min(cap, base * 2**(retry-1))."""
        return backoff_seconds(
            retry,
            base=self._config.backoff_base_seconds,
            cap=self._config.backoff_cap_seconds,
            rng=self._rng,
        )

    def _embed_batch(self, texts: list[str]) -> list[Vector | EmbeddingError]:
        response = call_with_retries(
            lambda: self._request(texts),
            model=self.model_name,
            max_retries=self._config.max_retries,
            timeout_seconds=self._config.timeout_seconds,
            backoff_cap_seconds=self._config.backoff_cap_seconds,
            backoff=self.backoff_seconds,
            sleep=self._sleep,
            unavailable=EmbeddingUnavailable,
        )
        return self._vectors(response, len(texts))

    def _request(self, texts: list[str]) -> CreateEmbeddingResponse:
        dimensions = self._config.dimensions if self._config.send_dimensions else openai.omit
        return self._client.embeddings.create(
            input=texts,
            model=self.model_name,
            dimensions=dimensions,
            encoding_format="float",
            timeout=self._config.timeout_seconds,
        )

    def _vectors(
        self, response: CreateEmbeddingResponse, count: int
    ) -> list[Vector | EmbeddingError]:
        """The response's vectors placed by their ``index``, each checked."""
        model = self.model_name
        by_index: dict[int, object] = {item.index: item.embedding for item in response.data}
        results: list[Vector | EmbeddingError] = []
        for index in range(count):
            if index not in by_index:
                results.append(
                    EmbeddingError(
                        "MissingEmbedding",
                        f"model {model!r} returned no embedding for input {index} of {count}",
                        retryable=True,
                    )
                )
                continue
            embedding = by_index[index]
            if isinstance(embedding, str):  # a server that sends base64 even when asked not to
                embedding = np.frombuffer(base64.b64decode(embedding), dtype="<f4")
            results.append(check_vector(embedding, model=model, dimensions=self.dimensions))
        return results
