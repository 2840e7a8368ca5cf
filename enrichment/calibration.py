"""Confidence from similarity: a softmax over an item's option scores, with a temperature
fitted on labelled data (temperature scaling, the one-parameter calibration of Guo et al. 2017).

Cosine similarities of a sentence model live in a narrow band (0.2-0.6 for related texts), so
their raw softmax says almost nothing; dividing by a temperature of a few hundredths makes the
top option's probability track how often it is right. The temperature is the one that
minimises the negative log-likelihood of the true options of a labelled set, found by a grid
over log T refined by golden-section search. :func:`expected_calibration_error` measures
how far confidence and accuracy are apart (0 is perfect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 10.0


def softmax(
    scores: NDArray[np.floating] | Sequence[float], temperature: float
) -> NDArray[np.float64]:
    """Probabilities of the options whose scores are given, sharper as temperature falls."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max()
    weights = np.exp(z)
    probabilities: NDArray[np.float64] = weights / weights.sum()
    return probabilities


def negative_log_likelihood(
    scores: Sequence[NDArray[np.floating]], targets: Sequence[int], temperature: float
) -> float:
    """Mean -log p(true option) over the items; each item may have its own number of options."""
    total = 0.0
    for item, target in zip(scores, targets, strict=True):
        probability = softmax(item, temperature)[target]
        total -= math.log(max(float(probability), 1e-12))
    return total / max(len(targets), 1)


def fit_temperature(scores: Sequence[NDArray[np.floating]], targets: Sequence[int]) -> float:
    """The temperature with the lowest negative log-likelihood of ``targets`` (indexes into
    each item's scores). Items with one option say nothing and are left out."""
    pairs = [(s, t) for s, t in zip(scores, targets, strict=True) if len(s) > 1]
    if not pairs:
        raise ValueError("calibration needs at least one item with two or more options")
    kept_scores = [s for s, _ in pairs]
    kept_targets = [t for _, t in pairs]

    def loss(log_t: float) -> float:
        return negative_log_likelihood(kept_scores, kept_targets, math.exp(log_t))

    grid = np.linspace(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE), 121)
    losses = [loss(float(x)) for x in grid]
    best = int(np.argmin(losses))
    low = float(grid[max(best - 1, 0)])
    high = float(grid[min(best + 1, len(grid) - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):  # golden-section search inside the best grid cell's neighbours
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        if loss(a) < loss(b):
            high = b
        else:
            low = a
    return math.exp((low + high) / 2.0)


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    """Items grouped by confidence: mean confidence and accuracy in each non-empty bin."""
    result = []
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        mask = (conf > low) & (conf <= high) if index else (conf >= low) & (conf <= high)
        if mask.any():
            result.append(
                ReliabilityBin(
                    low, high, int(mask.sum()), float(conf[mask].mean()), float(right[mask].mean())
                )
            )
    return result


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """Share-weighted mean |accuracy - confidence| over confidence bins."""
    total = len(confidences)
    if not total:
        return 0.0
    return sum(
        b.count / total * abs(b.accuracy - b.confidence)
        for b in reliability(confidences, correct, bins)
    )
