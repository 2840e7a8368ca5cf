"""Temperature scaling: softmax with a temperature, the temperature fitted by likelihood, and
the calibration error that says how far confidence is from accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from enrichment.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    softmax,
)


def sample(temperature: float, items: int, options: int = 4, seed: int = 3):
    """Scores whose true option is drawn from softmax(scores / temperature): data that a
    calibrated model with that temperature would produce."""
    rng = np.random.default_rng(seed)
    scores = [rng.uniform(0.1, 0.6, options) for _ in range(items)]
    targets = [int(rng.choice(options, p=softmax(s, temperature))) for s in scores]
    return scores, targets


def test_softmax_sums_to_one_and_sharpens_as_the_temperature_falls() -> None:
    scores = np.array([0.40, 0.35, 0.10])

    warm, cold = softmax(scores, 1.0), softmax(scores, 0.02)

    assert warm.sum() == pytest.approx(1.0) and cold.sum() == pytest.approx(1.0)
    assert warm.max() < 0.4 < 0.9 < cold.max()
    assert int(cold.argmax()) == 0


def test_fitted_temperature_recovers_the_one_the_data_was_drawn_with() -> None:
    scores, targets = sample(0.05, items=4000)

    assert fit_temperature(scores, targets) == pytest.approx(0.05, rel=0.15)


def test_fitted_temperature_has_the_lowest_negative_log_likelihood() -> None:
    scores, targets = sample(0.08, items=500)

    fitted = fit_temperature(scores, targets)

    best = negative_log_likelihood(scores, targets, fitted)
    for other in (fitted * 0.7, fitted * 1.4):
        assert negative_log_likelihood(scores, targets, other) > best


def test_items_may_have_different_numbers_of_options() -> None:
    rng = np.random.default_rng(1)
    scores = [rng.uniform(0, 1, n) for n in (2, 3, 5) * 50]
    targets = [int(np.argmax(s)) for s in scores]

    assert fit_temperature(scores, targets) > 0


def test_items_with_a_single_option_are_left_out_and_alone_cannot_be_fitted() -> None:
    with pytest.raises(ValueError, match="two or more options"):
        fit_temperature([np.array([0.5]), np.array([0.2])], [0, 0])


def test_a_model_whose_confidence_equals_its_accuracy_has_no_calibration_error() -> None:
    confidences = [0.8] * 10
    correct = [True] * 8 + [False] * 2

    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0)


def test_an_overconfident_model_has_a_calibration_error_of_the_gap() -> None:
    confidences = [0.95] * 10
    correct = [True] * 6 + [False] * 4

    assert expected_calibration_error(confidences, correct) == pytest.approx(0.35)


def test_reliability_bins_count_every_item_once() -> None:
    confidences = [0.05, 0.1, 0.55, 0.56, 0.99, 1.0]
    bins = reliability(confidences, [True, False, True, True, False, True])

    assert sum(b.count for b in bins) == 6
    assert [(b.low, b.count) for b in bins] == [(0.0, 2), (0.5, 2), (0.9, 2)]
