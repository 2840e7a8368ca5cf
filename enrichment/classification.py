"""Choosing one of a described set of options for a text: the labels of a classifier, the
actions of a playbook. Two backends, one interface:

* :class:`EmbeddingClassifier` (``local``) compares the text's embedding with each option's
  prototype (the normalised mean of the embeddings of its description and examples) and turns
  the cosine similarities into probabilities with a softmax whose temperature was fitted on a
  labelled set (see :mod:`enrichment.calibration`): the confidence is the chosen option's
  probability. Beside the options there is an implicit "none of them" with a fixed
  similarity (``none_similarity``, by default the 2nd percentile of the labelled set's best
  similarities): a text far from every option (off-topic, empty of content) keeps most of the
  probability there and gets a low confidence whichever option is nearest, where a softmax
  over the options alone would be sure of a coin toss. One model call per batch.
* :class:`LLMClassifier` (``llm``) asks an OpenAI-compatible chat model for a JSON object
  ``{<what>: one of the options, "confidence": 0..1}``. An answer outside the options, or one
  that is not such an object, is an error for that text: a failed attempt, never a guess. Its
  confidence is the model's own estimate, not calibrated.

Results come back per text (:class:`Choice` or :class:`ChoiceError`) so one bad answer never
fails its batch.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from enrichment.calibration import fit_temperature, softmax
from enrichment.embedders.base import Embedder, EmbeddingError, Vector
from enrichment.llm import ChatClient, LLMUnavailable, MalformedAnswer

ALTERNATIVES_KEPT = 3
NONE_QUANTILE = 0.02  # "none of them" sits at this quantile of labelled texts' best similarity


@dataclass(frozen=True)
class Option:
    name: str
    description: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Question:
    """A text to classify; ``candidates`` limits the options (None: all of them); ``hint`` is
    context the LLM reads (e.g. the record's label when choosing an action)."""

    text: str
    candidates: tuple[str, ...] | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Example:
    """A question with its right answer: calibration and evaluation data."""

    question: Question
    answer: str


@dataclass(frozen=True)
class Choice:
    option: str
    confidence: float
    alternatives: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChoiceError:
    """Why a text got no choice; ``retryable=False`` errors are dead-lettered at once."""

    error_type: str
    message: str
    retryable: bool = True


class Classifier(Protocol):
    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str:
        """Changes when what decides the answer changes (options, model, prompt, temperature)."""
        ...

    def classify(self, questions: Sequence[Question]) -> list[Choice | ChoiceError]: ...


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _options_dump(options: Sequence[Option]) -> list[dict[str, Any]]:
    return [
        {"name": o.name, "description": o.description, "examples": list(o.examples)}
        for o in options
    ]


def _check_options(options: Sequence[Option]) -> dict[str, int]:
    index = {option.name: position for position, option in enumerate(options)}
    if len(index) != len(options) or not options:
        raise ValueError("options must be a non-empty list of distinct names")
    return index


class _RecentEmbeddings:
    """The last few thousand text embeddings, by model version and text: resolve reads the
    text classify has just embedded, in the same worker, and need not embed it again."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], Vector] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> list[Vector | EmbeddingError]:
        version = embedder.model_version
        with self._lock:
            found: dict[str, Vector] = {}
            for text in texts:
                kept = self._vectors.get((version, text))
                if kept is not None:
                    self._vectors.move_to_end((version, text))
                    found[text] = kept
        missing = sorted({text for text in texts if text not in found})
        fresh = dict(zip(missing, embedder.embed(missing), strict=True)) if missing else {}
        with self._lock:
            for text, result in fresh.items():
                if not isinstance(result, EmbeddingError):
                    self._vectors[(version, text)] = result
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return [found[text] if text in found else fresh[text] for text in texts]


_RECENT = _RecentEmbeddings()


class EmbeddingClassifier:
    """The local backend: embedding similarity to option prototypes, calibrated softmax.

    Give ``temperature``, or ``calibration`` examples to fit it on (at first use, since it
    needs the model). Prototypes are computed once, at first use.
    """

    backend = "local"

    def __init__(
        self,
        options: Sequence[Option],
        embedder: Embedder,
        *,
        temperature: float | None = None,
        none_similarity: float | None = None,
        calibration: Sequence[Example] | None = None,
    ) -> None:
        self.options = tuple(options)
        self._index = _check_options(self.options)
        if (temperature is None) == (not calibration):
            raise ValueError("give either a temperature or calibration examples")
        self.embedder = embedder
        self._temperature = temperature
        self._none = none_similarity
        self._calibration = tuple(calibration or ())
        for example in self._calibration:
            self._candidates(example.question)  # unknown names fail now, not at first use
            if example.answer not in (example.question.candidates or self._index):
                raise ValueError(f"calibration answer {example.answer!r} is not a candidate")
        self._prototypes: NDArray[np.float32] | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.embedder.model_name

    @property
    def version(self) -> str:
        calibration: dict[str, Any] = (
            {"temperature": self._temperature}
            if not self._calibration
            else {"fitted_on": _digest([(e.question.text, e.answer) for e in self._calibration])}
        )
        calibration["none_similarity"] = self._none
        return _digest(
            {
                "backend": self.backend,
                "model": self.embedder.model_version,
                "options": _options_dump(self.options),
                "calibration": calibration,
            }
        )

    @property
    def temperature(self) -> float:
        """The softmax temperature (fitted on the calibration examples on first use)."""
        self._ready()
        assert self._temperature is not None
        return self._temperature

    @property
    def none_similarity(self) -> float | None:
        """The similarity of the implicit "none of them" (None: there is none)."""
        self._ready()
        return self._none

    def probabilities(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated probabilities of the candidates whose similarities are ``scores`` (they
        sum to less than 1 when "none of them" takes a share)."""
        self._ready()
        assert self._temperature is not None
        if self._none is None:
            return softmax(scores, self._temperature)
        return softmax(np.append(scores, self._none), self._temperature)[:-1]

    def classify(self, questions: Sequence[Question]) -> list[Choice | ChoiceError]:
        prototypes = self._ready()
        results: list[Choice | ChoiceError] = []
        for question, scores in zip(questions, self._scores(questions, prototypes), strict=True):
            if isinstance(scores, ChoiceError):
                results.append(scores)
                continue
            names = self._candidates(question)
            probabilities = self.probabilities(scores)
            order = np.argsort(-probabilities)
            results.append(
                Choice(
                    option=names[int(order[0])],
                    confidence=float(probabilities[order[0]]),
                    alternatives={
                        names[int(i)]: round(float(probabilities[i]), 4)
                        for i in order[:ALTERNATIVES_KEPT]
                    },
                )
            )
        return results

    def _candidates(self, question: Question) -> tuple[str, ...]:
        names = question.candidates or tuple(option.name for option in self.options)
        unknown = [name for name in names if name not in self._index]
        if unknown:
            raise ValueError(f"unknown options {unknown} (known: {sorted(self._index)})")
        return names

    def _scores(
        self, questions: Sequence[Question], prototypes: NDArray[np.float32]
    ) -> list[NDArray[np.float64] | ChoiceError]:
        vectors = _RECENT.embed(self.embedder, [question.text for question in questions])
        results: list[NDArray[np.float64] | ChoiceError] = []
        for question, vector in zip(questions, vectors, strict=True):
            if isinstance(vector, EmbeddingError):
                results.append(ChoiceError(vector.error_type, vector.message, vector.retryable))
                continue
            rows = [self._index[name] for name in self._candidates(question)]
            results.append((prototypes[rows] @ vector).astype(np.float64))
        return results

    def _ready(self) -> NDArray[np.float32]:
        with self._lock:
            if self._prototypes is None:
                self._prototypes = self._build_prototypes()
            if self._temperature is None:
                self._temperature = self._fit(self._prototypes)
            return self._prototypes

    def _build_prototypes(self) -> NDArray[np.float32]:
        texts = [text for o in self.options for text in (o.description, *o.examples)]
        vectors = self.embedder.embed(texts)
        errors = [v for v in vectors if isinstance(v, EmbeddingError)]
        if errors:
            raise ValueError(f"cannot embed the option descriptions: {errors[0].message}")
        prototypes = []
        position = 0
        for option in self.options:
            count = 1 + len(option.examples)
            rows = [
                v for v in vectors[position : position + count] if not isinstance(v, EmbeddingError)
            ]
            mean = np.mean(np.stack(rows), axis=0)
            prototypes.append(mean / np.linalg.norm(mean))
            position += count
        return np.stack(prototypes).astype(np.float32)

    def _fit(self, prototypes: NDArray[np.float32]) -> float:
        """The temperature that fits the calibration examples best, with "none of them" at
        ``none_similarity`` (by default the examples' 2nd percentile of best similarity)."""
        questions = [example.question for example in self._calibration]
        scores, targets = [], []
        for example, item in zip(
            self._calibration, self._scores(questions, prototypes), strict=True
        ):
            if isinstance(item, ChoiceError):
                raise ValueError(f"cannot embed a calibration text: {item.message}")
            scores.append(item)
            targets.append(self._candidates(example.question).index(example.answer))
        if self._none is None:
            best = [float(item.max()) for item in scores if len(item) > 1]
            self._none = round(float(np.quantile(best, NONE_QUANTILE)), 4) if best else None
        if self._none is not None:
            scores = [np.append(item, self._none) for item in scores]
        return fit_temperature(scores, targets)


SYSTEM_PROMPT = (
    "You classify operational records. Choose exactly one {what} from the list for the text, "
    "using only the list's names, and estimate the probability (0 to 1) that your choice is "
    "right. Answer with a JSON object only."
)


class LLMClassifier:
    """The LLM backend: one chat request per text, ``concurrency`` in flight. When the endpoint
    is unavailable (after its retries) the batch's remaining texts are not sent: they fail with
    the same error and are retried on the queue's schedule."""

    backend = "llm"

    def __init__(
        self,
        options: Sequence[Option],
        chat: ChatClient,
        *,
        what: str = "label",
        instructions: str | None = None,
        concurrency: int = 4,
    ) -> None:
        self.options = tuple(options)
        self._index = _check_options(self.options)
        self.chat = chat
        self.what = what
        self.concurrency = concurrency
        self._system = SYSTEM_PROMPT.format(what=what) + (
            f"\n{instructions.strip()}" if instructions else ""
        )

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
                "options": _options_dump(self.options),
            }
        )

    def prompt(self, question: Question) -> str:
        names = question.candidates or tuple(o.name for o in self.options)
        lines = [f"{self.what.capitalize()}s:"]
        for name in names:
            option = self.options[self._index[name]]
            line = f"- {option.name}: {option.description}"
            if option.examples:
                line += " Examples: " + " | ".join(option.examples)
            lines.append(line)
        if question.hint:
            lines += ["", question.hint]
        lines += ["", 'Text:\n"""', question.text, '"""']
        return "\n".join(lines)

    def schema(self, question: Question) -> dict[str, Any]:
        names = list(question.candidates or (o.name for o in self.options))
        return {
            "type": "object",
            "properties": {
                self.what: {"type": "string", "enum": names},
                "confidence": {"type": "number"},
            },
            "required": [self.what, "confidence"],
            "additionalProperties": False,
        }

    def classify(self, questions: Sequence[Question]) -> list[Choice | ChoiceError]:
        unavailable: list[LLMUnavailable] = []
        lock = threading.Lock()

        def ask(question: Question) -> Choice | ChoiceError:
            with lock:
                if unavailable:
                    err = unavailable[0]
                    return ChoiceError(
                        "LLMUnavailable",
                        f"not sent: the endpoint failed for another text of the batch: {err}",
                        err.retryable,
                    )
            try:
                return self._ask(question)
            except LLMUnavailable as err:
                with lock:
                    unavailable.append(err)
                return ChoiceError("LLMUnavailable", str(err), err.retryable)

        if not questions:
            return []
        workers = min(self.concurrency, len(questions))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="enrich-llm") as pool:
            return list(pool.map(ask, questions))

    def _ask(self, question: Question) -> Choice | ChoiceError:
        names = question.candidates or tuple(o.name for o in self.options)
        try:
            answer = self.chat.complete_json(
                system=self._system,
                user=self.prompt(question),
                schema=self.schema(question),
                name=self.what,
            )
        except MalformedAnswer as err:
            return ChoiceError(err.error_type, str(err))
        chosen = answer.get(self.what)
        confidence = answer.get("confidence")
        if not isinstance(chosen, str) or chosen not in names:
            shown = "no answer" if chosen is None else f"a {type(chosen).__name__}"
            if isinstance(chosen, str):
                shown = f"a {self.what} of {len(chosen)} characters"
            return ChoiceError(
                "OutOfSetAnswer",
                f"model {self.model!r} answered {shown}, which is not one of {', '.join(names)}",
            )
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0.0 <= float(confidence) <= 1.0
        ):
            return ChoiceError(
                "MalformedAnswer",
                f"model {self.model!r} gave no confidence between 0 and 1 for its {self.what}",
            )
        return Choice(option=chosen, confidence=float(confidence))
