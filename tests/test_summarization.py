"""Summaries: sentence splitting, the 300-character / 3-sentence limits, the extractive
summary of the most central sentences (real packaged model), and the quality score."""

from __future__ import annotations

import pytest

from enrichment.embedders.local import SentenceTransformerEmbedder
from enrichment.summarization import (
    ELLIPSIS,
    QUALITY_WEIGHTS,
    ExtractiveSummarizer,
    Summary,
    SummaryError,
    clip,
    count_placeholders,
    length_signal,
    quality_score,
    quality_signals,
    split_sentences,
)


@pytest.fixture(scope="module")
def summarizer() -> ExtractiveSummarizer:
    return ExtractiveSummarizer(SentenceTransformerEmbedder(device="cpu"))


# --- sentences and limits ------------------------------------------------------------------


def test_sentences_end_at_sentence_punctuation_followed_by_space() -> None:
    text = "The parcel is late. Where is it?! Please call me back (urgent). Thanks"

    assert split_sentences(text) == [
        "The parcel is late.",
        "Where is it?!",
        "Please call me back (urgent).",
        "Thanks",
    ]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence() -> None:
    text = "Sent via e.g. DHL to Mr. J. Smith, value 143.10 EUR. It never arrived."

    assert split_sentences(text) == [
        "Sent via e.g. DHL to Mr. J. Smith, value 143.10 EUR.",
        "It never arrived.",
    ]


def test_newlines_and_dash_separators_end_a_sentence_and_whitespace_collapses() -> None:
    text = "Support note — customer called\n\nparcel   damaged\nno photos yet"

    assert split_sentences(text) == [
        "Support note",
        "customer called",
        "parcel damaged",
        "no photos yet",
    ]


def test_clip_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    text = "word " * 100

    clipped = clip(text.strip(), 50)

    assert len(clipped) <= 50 and clipped.endswith(ELLIPSIS)
    assert clipped[: -len(ELLIPSIS)].split() == ["word"] * len(clipped[:-1].split())


def test_clip_leaves_short_text_alone() -> None:
    assert clip("short", 300) == "short"


def test_placeholders_are_counted_by_their_typed_brackets() -> None:
    assert count_placeholders("Mail [EMAIL] or call [PHONE]; card [CARD] [sic]") == 3


# --- quality -------------------------------------------------------------------------------


def test_length_signal_is_one_in_the_good_band_and_falls_for_short_summaries() -> None:
    assert length_signal(0) == 0.0
    assert length_signal(30) == pytest.approx(0.5)
    assert length_signal(60) == length_signal(300) == 1.0


def test_a_confident_clean_first_attempt_scores_one() -> None:
    signals = quality_signals(
        summary="The parcel is nine days late and the carrier has no scan since pickup.",
        confidence=1.0,
        attempt=1,
        pii_found=0,
    )

    assert quality_score(signals) == 1.0


def test_each_signal_lowers_the_score_by_its_weight() -> None:
    good = "The parcel is nine days late and the carrier has no scan since pickup."
    base = {"summary": good, "confidence": 1.0, "attempt": 1, "pii_found": 0}

    unsure = quality_score(quality_signals(**{**base, "confidence": 0.5}))
    retried = quality_score(quality_signals(**{**base, "attempt": 2}))
    leaky = quality_score(quality_signals(**{**base, "pii_found": 2}))

    assert unsure == pytest.approx(1 - 0.5 * QUALITY_WEIGHTS["confidence"])
    assert retried == pytest.approx(1 - 0.5 * QUALITY_WEIGHTS["errors"])
    assert leaky == pytest.approx(1 - 0.5 * QUALITY_WEIGHTS["redactions"])


def test_placeholders_in_the_summary_lower_its_score() -> None:
    plain = "Customer asks for a new delivery date for the late parcel, tracking is stale."
    redacted = "Customer [EMAIL] asks [PHONE] for a new date, [ADDRESS] tracking is stale."

    def score(summary: str) -> float:
        return quality_score(
            quality_signals(summary=summary, confidence=0.9, attempt=1, pii_found=0)
        )

    assert score(redacted) < score(plain)


def test_without_a_classifier_the_other_signals_share_its_weight() -> None:
    signals = quality_signals(summary="x" * 30, confidence=None, attempt=1, pii_found=0)

    assert "confidence" not in signals
    assert quality_score(signals) == pytest.approx((0.5 * 0.25 + 0.2 + 0.15) / 0.6, abs=1e-4)


def test_the_score_is_within_zero_and_one() -> None:
    worst = quality_signals(summary="", confidence=0.0, attempt=9, pii_found=9)

    assert 0.0 <= quality_score(worst) <= 0.05


# --- extractive summaries (real model) -----------------------------------------------------

THREAD = (
    "The customer reports that the parcel has not arrived and tracking stopped in Leipzig. "
    "Our records show the express order was promised for Monday. "
    "The carrier confirms the parcel is delayed at the Leipzig hub. "
    "The weather in Lyon was lovely this weekend. "
    "The carrier expects to deliver the delayed parcel on Thursday. "
    "Kind regards from the support team."
)


@pytest.mark.slow
def test_extractive_summary_keeps_the_central_sentences_in_their_order(
    summarizer: ExtractiveSummarizer,
) -> None:
    [summary] = summarizer.summarize([THREAD])

    assert isinstance(summary, Summary)
    kept = split_sentences(summary.text)
    assert 1 <= len(kept) == summary.sentences <= 3
    assert len(summary.text) <= 300
    assert "weather" not in summary.text and "Kind regards" not in summary.text
    order = [THREAD.index(sentence) for sentence in kept]
    assert order == sorted(order)


@pytest.mark.slow
def test_a_summary_never_exceeds_the_character_limit(summarizer: ExtractiveSummarizer) -> None:
    long_sentences = " ".join(
        f"Sentence {i} describes the delayed parcel, its carrier, the hub where it waits and "
        f"what the customer was told about it on day {i}."
        for i in range(8)
    )
    one_huge = "The parcel " + "is very late and " * 60 + "nobody knows why."

    results = summarizer.summarize([long_sentences, one_huge])

    for result in results:
        assert isinstance(result, Summary)
        assert len(result.text) <= 300
    assert results[1].text.endswith(ELLIPSIS) and results[1].sentences == 1


@pytest.mark.slow
def test_a_single_sentence_is_its_own_summary(summarizer: ExtractiveSummarizer) -> None:
    [summary] = summarizer.summarize(["Box arrived crushed, the vase is broken."])

    assert summary == Summary("Box arrived crushed, the vase is broken.", 1)


@pytest.mark.slow
def test_an_empty_text_is_an_error_not_an_empty_summary(summarizer: ExtractiveSummarizer) -> None:
    [result] = summarizer.summarize(["   "])

    assert isinstance(result, SummaryError) and result.error_type == "EmptyText"
    assert not result.retryable


@pytest.mark.slow
def test_tighter_limits_are_kept(summarizer: ExtractiveSummarizer) -> None:
    tight = ExtractiveSummarizer(summarizer.embedder, max_characters=120, max_sentences=1)

    [summary] = tight.summarize([THREAD])

    assert isinstance(summary, Summary)
    assert summary.sentences == 1 and len(summary.text) <= 120
