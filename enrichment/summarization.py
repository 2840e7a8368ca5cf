"""Summaries of 1-3 sentences and at most 300 characters, with a quality score in 0..1.

* :class:`ExtractiveSummarizer` (``local``) keeps the text's most central sentences: each
  sentence's centrality is its mean cosine similarity to the text's other sentences (the
  degree centrality of LexRank, without a threshold), so the sentences that say what the rest
  also says win; a small bonus for coming early (``LEAD_BONUS``) settles near-ties, since
  records tend to say what happened first. The best are taken while they fit, and put back
  in their original order.
  One model call per batch, for every sentence of every text.
* :class:`LLMSummarizer` (``llm``) asks an OpenAI-compatible chat model for ``{"summary": …}``;
  an answer that breaks the limits (too long, more than three sentences, empty) is a failed
  attempt, not something to cut down.

:func:`quality_score` combines the signals seed 003 names (confidence, redactions, errors,
length) into one number; see its docstring for the weights.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from enrichment.embedders.base import Embedder, EmbeddingError
from enrichment.llm import ChatClient, LLMUnavailable, MalformedAnswer

MAX_CHARACTERS = 300
LEAD_BONUS = 0.05  # added to the first sentence's centrality, falling to 0 for the last
MAX_SENTENCES = 3
ELLIPSIS = "…"

# A sentence ends at . ! ? (and closing quotes/brackets) before whitespace; a handful of
# abbreviations and initials do not end one.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ABBREVIATIONS = frozenset(
    {
        *("e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "st", "no", "nr", "vs", "approx"),
        *("ref", "inc", "ltd", "co", "corp", "dept", "est", "fig"),
    }
)
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*\]")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, whitespace collapsed; separators (``—``, ``|``, newlines) and
    sentence punctuation end one."""
    sentences: list[str] = []
    for block in re.split(r"\s*(?:\n+|\s—\s|\s\|\s)\s*", text):
        block = " ".join(block.split())
        if not block:
            continue
        start = 0
        for match in _BOUNDARY.finditer(block):
            candidate = block[start : match.start()].strip()
            last_word = candidate.rsplit(" ", 1)[-1].rstrip(".").lower()
            if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
                continue  # "e.g. the", "J. Smith": not the end of a sentence
            if candidate:
                sentences.append(candidate)
            start = match.end()
        rest = block[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


def clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:—-") + ELLIPSIS


def count_placeholders(text: str) -> int:
    """Typed redaction placeholders (``[EMAIL]``, ``[CARD]``…) in ``text``."""
    return len(_PLACEHOLDER.findall(text))


@dataclass(frozen=True)
class Summary:
    text: str
    sentences: int


@dataclass(frozen=True)
class SummaryError:
    error_type: str
    message: str
    retryable: bool = True


class Summarizer(Protocol):
    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    def summarize(self, texts: Sequence[str]) -> list[Summary | SummaryError]: ...


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


class ExtractiveSummarizer:
    backend = "local"

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_characters: int = MAX_CHARACTERS,
        max_sentences: int = MAX_SENTENCES,
    ) -> None:
        self.embedder = embedder
        self.max_characters = max_characters
        self.max_sentences = max_sentences

    @property
    def model(self) -> str:
        return self.embedder.model_name

    @property
    def version(self) -> str:
        return _digest(
            {
                "backend": self.backend,
                "model": self.embedder.model_version,
                "method": "degree-centrality/v1",
                "limits": [self.max_characters, self.max_sentences],
            }
        )

    def summarize(self, texts: Sequence[str]) -> list[Summary | SummaryError]:
        split = [split_sentences(text) for text in texts]
        wanted = sorted({s for sentences in split if len(sentences) > 1 for s in sentences})
        vectors = dict(zip(wanted, self.embedder.embed(wanted), strict=True)) if wanted else {}
        results: list[Summary | SummaryError] = []
        for sentences in split:
            if not sentences:
                results.append(SummaryError("EmptyText", "there is no text to summarize", False))
                continue
            if len(sentences) == 1:
                results.append(Summary(clip(sentences[0], self.max_characters), 1))
                continue
            found = [vectors[s] for s in sentences]
            failed = next((v for v in found if isinstance(v, EmbeddingError)), None)
            if failed is not None:
                results.append(SummaryError(failed.error_type, failed.message, failed.retryable))
                continue
            matrix = np.stack([v for v in found if not isinstance(v, EmbeddingError)])
            results.append(self._pick(sentences, matrix))
        return results

    def _pick(self, sentences: list[str], matrix: np.ndarray[Any, Any]) -> Summary:
        similarity = matrix @ matrix.T
        count = len(sentences)
        centrality = (similarity.sum(axis=1) - similarity.diagonal()) / (count - 1)
        # Records say what happened first: a small lead bonus decides near-ties.
        lead = LEAD_BONUS * (1.0 - np.arange(count) / (count - 1))
        score = centrality + lead
        # Best first; exact ties keep the earlier sentence (the text's own order).
        ranked = sorted(range(count), key=lambda i: (-round(float(score[i]), 6), i))
        chosen: list[int] = []
        length = 0
        for index in ranked:
            if len(chosen) == self.max_sentences:
                break
            added = len(sentences[index]) + (1 if chosen else 0)
            if length + added <= self.max_characters:
                chosen.append(index)
                length += added
        if not chosen:  # even the most central sentence is too long: cut it
            return Summary(clip(sentences[ranked[0]], self.max_characters), 1)
        return Summary(" ".join(sentences[i] for i in sorted(chosen)), len(chosen))


SUMMARY_PROMPT = (
    "Summarize the record for an operations team in {min} to {max} sentences and at most "
    "{chars} characters: what happened, to which order, and what is needed. Do not copy "
    "personal data (names, e-mail addresses, phone numbers, street addresses, card or account "
    "numbers); keep placeholders such as [EMAIL] out of the summary. Answer with a JSON object "
    '{{"summary": "..."}} only.'
)


class LLMSummarizer:
    """One chat request per text, ``concurrency`` in flight; an unavailable endpoint fails the
    batch's remaining texts without sending them (see :class:`LLMClassifier`)."""

    backend = "llm"

    def __init__(
        self,
        chat: ChatClient,
        *,
        max_characters: int = MAX_CHARACTERS,
        max_sentences: int = MAX_SENTENCES,
        concurrency: int = 4,
    ) -> None:
        self.chat = chat
        self.max_characters = max_characters
        self.max_sentences = max_sentences
        self.concurrency = concurrency
        self._system = SUMMARY_PROMPT.format(min=1, max=max_sentences, chars=max_characters)

    @property
    def model(self) -> str:
        return self.chat.model

    @property
    def version(self) -> str:
        return _digest(
            {
                "backend": self.backend,
                "model": self.chat.model,
                "temperature": self.chat.config.temperature,
                "system": self._system,
            }
        )

    def summarize(self, texts: Sequence[str]) -> list[Summary | SummaryError]:
        unavailable: list[LLMUnavailable] = []
        lock = threading.Lock()

        def ask(text: str) -> Summary | SummaryError:
            with lock:
                if unavailable:
                    return SummaryError(
                        "LLMUnavailable",
                        f"not sent: the endpoint failed for another text of the batch: "
                        f"{unavailable[0]}",
                        unavailable[0].retryable,
                    )
            try:
                return self._ask(text)
            except LLMUnavailable as err:
                with lock:
                    unavailable.append(err)
                return SummaryError("LLMUnavailable", str(err), err.retryable)

        if not texts:
            return []
        with ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(texts)), thread_name_prefix="enrich-llm"
        ) as pool:
            return list(pool.map(ask, texts))

    def _ask(self, text: str) -> Summary | SummaryError:
        if not text.strip():
            return SummaryError("EmptyText", "there is no text to summarize", False)
        try:
            answer = self.chat.complete_json(
                system=self._system,
                user=f'Record:\n"""\n{text}\n"""',
                schema={
                    "type": "object",
                    "properties": {"summary": {"type": "string"}},
                    "required": ["summary"],
                    "additionalProperties": False,
                },
                name="summary",
            )
        except MalformedAnswer as err:
            return SummaryError(err.error_type, str(err))
        summary = answer.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            return SummaryError("InvalidSummary", f"model {self.model!r} returned no summary")
        summary = " ".join(summary.split())
        sentences = len(split_sentences(summary))
        if len(summary) > self.max_characters or sentences > self.max_sentences:
            return SummaryError(
                "InvalidSummary",
                f"model {self.model!r} returned a summary of {len(summary)} characters and "
                f"{sentences} sentences; the limits are {self.max_characters} and "
                f"{self.max_sentences}",
            )
        return Summary(summary, sentences)


# --- quality -------------------------------------------------------------------------------

QUALITY_WEIGHTS: Mapping[str, float] = {
    "confidence": 0.4,
    "length": 0.25,
    "redactions": 0.2,
    "errors": 0.15,
}
GOOD_LENGTH = (60, MAX_CHARACTERS)


def length_signal(characters: int) -> float:
    """1 for a summary of 60-300 characters, falling linearly to 0 for an empty one."""
    low, high = GOOD_LENGTH
    if characters >= low:
        return 1.0 if characters <= high else 0.0
    return max(characters, 0) / low


def quality_signals(
    *,
    summary: str,
    confidence: float | None,
    attempt: int,
    pii_found: int,
) -> dict[str, float]:
    """The signals, each in 0..1 (1 is good):

    * ``confidence`` — the record's classification confidence, when there is a classifier;
    * ``length`` — :func:`length_signal` of the summary;
    * ``redactions`` — 1 minus 0.25 per placeholder in the summary or PII the re-check found
      in it (a summary made of placeholders tells little);
    * ``errors`` — 1 / attempt: every failed attempt before this one halves, thirds… it.
    """
    signals = {
        "length": length_signal(len(summary)),
        "redactions": max(0.0, 1.0 - 0.25 * (count_placeholders(summary) + pii_found)),
        "errors": 1.0 / max(attempt, 1),
    }
    if confidence is not None:
        signals["confidence"] = min(max(float(confidence), 0.0), 1.0)
    return signals


def quality_score(signals: Mapping[str, float]) -> float:
    """Weighted mean of the signals present (weights in QUALITY_WEIGHTS: confidence 0.4,
    length 0.25, redactions 0.2, errors 0.15; a missing signal's weight is shared out)."""
    weights = {name: QUALITY_WEIGHTS[name] for name in signals}
    total = sum(weights.values())
    if not total:
        return 0.0
    return round(sum(signals[name] * weights[name] for name in signals) / total, 4)
