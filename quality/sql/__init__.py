"""Named SQL of the monitoring metrics, kept as SQL in ``metrics.sql`` (same format as the
queue's ``enrichment/sql/queries.sql``)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from sqlalchemy import TextClause, text

from enrichment.sql import parse


@cache
def queries() -> dict[str, TextClause]:
    raw = files(__package__).joinpath("metrics.sql").read_text(encoding="utf-8")
    return {name: text(body) for name, body in parse(raw).items()}


def query(name: str) -> TextClause:
    return queries()[name]
