"""Named SQL queries, kept as SQL in ``queries.sql`` so the locking logic reads as SQL."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from sqlalchemy import TextClause, text

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(source: str) -> dict[str, str]:
    """Split a file of ``-- name: x`` blocks into {name: sql}."""
    parts = _NAME.split(source)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().rstrip(";")
    return queries


@cache
def queries() -> dict[str, TextClause]:
    raw = files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    return {name: text(body) for name, body in parse(raw).items()}


def query(name: str) -> TextClause:
    return queries()[name]
