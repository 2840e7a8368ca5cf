"""JSON answers from any server that speaks OpenAI's ``POST /v1/chat/completions``.

The request asks for a JSON-schema response (``response_format: json_schema, strict``); the
answer is still checked here, because not every server enforces the schema. The retry policy
is the embedder's (enrichment/openai_calls.py), so every endpoint behaves alike:

* 429, 408 and 5xx responses, timeouts and connection errors are retried with exponential
  backoff and full jitter; ``retry-after-ms`` / ``Retry-After`` replace the backoff for that
  wait, and a wait longer than ``backoff_cap_seconds`` ends the call at once.
* Any other 4xx is permanent (:class:`LLMUnavailable` with ``retryable=False``).
* An answer that is not a JSON object, was cut off (``finish_reason: length``) or was refused
  is a :class:`MalformedAnswer`: a failed attempt of that record, never a guess.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from enrichment.openai_calls import backoff_seconds, call_with_retries


class ChatConfig(BaseModel):
    """How to reach an OpenAI-compatible chat endpoint; validated once, then trusted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key: SecretStr
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    backoff_cap_seconds: float = Field(default=60.0, ge=0)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=400, ge=1)


class LLMUnavailable(Exception):
    """The endpoint could not answer (after retries, or with a permanent HTTP error)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class MalformedAnswer(Exception):
    """The endpoint answered, but not with what was asked for."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class ChatClient:
    """Sends one conversation, returns its answer as a JSON object.

    ``sleep`` and ``rng`` are injectable so tests record waits instead of waiting.
    """

    def __init__(
        self,
        config: ChatConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        client: openai.OpenAI | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = client or openai.OpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    @property
    def model(self) -> str:
        return self.config.model

    def close(self) -> None:
        self._client.close()

    def backoff_seconds(self, retry: int) -> float:
        """Wait before retry ``retry`` (1, 2, ...): uniform in 0..min(cap, base * 2**(retry-1))."""
        return backoff_seconds(
            retry,
            base=self.config.backoff_base_seconds,
            cap=self.config.backoff_cap_seconds,
            rng=self._rng,
        )

    def complete_json(
        self, *, system: str, user: str, schema: Mapping[str, Any], name: str
    ) -> dict[str, Any]:
        """The model's answer to ``user`` as a JSON object shaped by ``schema`` (not checked
        beyond being an object: the caller checks what it needs)."""
        model = self.model
        response = call_with_retries(
            lambda: self._client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": dict(schema), "strict": True},
                },
                temperature=self.config.temperature,
                max_tokens=self.config.max_tokens,
                timeout=self.config.timeout_seconds,
            ),
            model=model,
            max_retries=self.config.max_retries,
            timeout_seconds=self.config.timeout_seconds,
            backoff_cap_seconds=self.config.backoff_cap_seconds,
            backoff=self.backoff_seconds,
            sleep=self._sleep,
            unavailable=LLMUnavailable,
        )
        return _answer(response, model)


def _answer(response: Any, model: str) -> dict[str, Any]:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise MalformedAnswer("MalformedAnswer", f"model {model!r} returned no choices")
    choice = choices[0]
    message = choice.message
    refusal = getattr(message, "refusal", None)
    if refusal:
        raise MalformedAnswer("Refusal", f"model {model!r} refused to answer")
    if choice.finish_reason == "length":
        raise MalformedAnswer(
            "MalformedAnswer", f"model {model!r} ran out of tokens before finishing its answer"
        )
    content = message.content or ""
    try:
        parsed = json.loads(content)
    except ValueError:
        # The answer itself is left out: it may echo the record's text into an error message.
        raise MalformedAnswer(
            "MalformedAnswer",
            f"model {model!r} answered with {len(content)} characters that are not JSON",
        ) from None
    if not isinstance(parsed, dict):
        raise MalformedAnswer(
            "MalformedAnswer",
            f"model {model!r} answered with JSON {type(parsed).__name__}, expected an object",
        )
    return parsed
