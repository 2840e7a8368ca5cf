"""The integrity rules, their limits, and the SQL each suite runs (from ``rules.sql``).

Rules are SQL run where the data is: Great Expectations gets a query per rule and an asset per
suite, and only the rows that break a rule come back. Values are written into the SQL as
literals here (never stored text, never user input beyond the configuration), because the
queries reach Great Expectations as finished SQL with no bind parameters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from importlib.resources import files

from sqlalchemy import Connection, text

from enrichment.config import EnrichConfig
from enrichment.settings import Settings
from enrichment.sql import parse
from quality.config import MonitoringConfig, retry_limits

RECORD_STATE = "record_state"
VECTORS = "vectors"
STORED_TEXT = "stored_text"


@dataclass(frozen=True)
class IntegrityLimits:
    """What the rules hold the data to. Defaults are seed 002's integrity checks."""

    max_incomplete_age: timedelta = timedelta(days=1)
    high_confidence: float = 0.7
    min_high_confidence_rate: float = 0.8
    max_retries: int = 5
    retry_limits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(source, stage) -> retries allowed, where a stage's configuration sets its own."""
    sample_rows: int = 20
    """Rows kept per broken rule for the report (the count is always exact)."""

    @classmethod
    def configured(
        cls,
        settings: Settings,
        config: EnrichConfig | None = None,
        monitoring: MonitoringConfig | None = None,
    ) -> IntegrityLimits:
        """Retry limits as the pipelines apply them (a stage's ``retry_delays``, else
        ``ENRICH_RETRY_DELAYS``: the number of delays is the number of retries) and the
        monitoring section's high-confidence level."""
        monitoring = monitoring or (config.monitoring if config else MonitoringConfig())
        return cls(
            high_confidence=monitoring.high_confidence,
            max_retries=len(settings.retry_delays),
            retry_limits=retry_limits(config, settings.retry_delays),
        )


@dataclass(frozen=True)
class Rule:
    """One expectation: ``sql`` returns the rows that break it (``{batch}`` is the asset)."""

    name: str
    suite: str
    title: str
    sql: str


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    """A schema-qualified name, quoted."""

    schema: str
    name: str

    def sql(self) -> str:
        return f"{_quote_identifier(self.schema)}.{_quote_identifier(self.name)}"


@dataclass(frozen=True)
class Fragment:
    """SQL written in this package (an expression for a column type), inserted as is."""

    text: str


@dataclass(frozen=True)
class Array:
    values: Sequence[str | int]
    element_type: str


SqlValue = str | int | float | Identifier | Fragment | Array

# A comment or a quoted literal is kept as it is; `:name` outside them is a value to fill in.
_TOKENS = re.compile(r"--[^\n]*|'(?:[^']|'')*'|(?<![:\w]):(\w+)")
# What SQLAlchemy's text() would take for a bind parameter.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: SqlValue) -> str:
    if isinstance(value, Identifier):
        return value.sql()
    if isinstance(value, Fragment):
        return value.text
    if isinstance(value, Array):
        items = ", ".join(_literal(item) for item in value.values)
        return f"CAST(ARRAY[{items}] AS {value.element_type}[])"
    if isinstance(value, bool):
        raise TypeError("booleans are not used in the rules")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a rule limit must be finite, got {value}")
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


def render(sql: str, values: Mapping[str, SqlValue]) -> str:
    """Fill ``:name`` placeholders with literals and drop comments. Every placeholder must
    have a value, and nothing that a driver would take for a bind parameter may remain."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:  # comments go (they may name placeholders), literals stay
            return "" if match.group(0).startswith("--") else match.group(0)
        if name not in values:
            raise KeyError(f"no value for :{name} in rule SQL")
        return _literal(values[name])

    rendered = _TOKENS.sub(fill, sql)
    code = _TOKENS.sub(lambda m: "" if m.group(1) is None else m.group(0), rendered)
    leftover = _BIND.search(code)
    if leftover:
        raise ValueError(f"rule SQL still has a placeholder :{leftover.group(1)}")
    return rendered


_JOIN = re.compile(r"\bJOIN\b", re.IGNORECASE)


def for_great_expectations(sql: str) -> str:
    """The rule as Great Expectations takes it. It fills ``{batch}`` with str.format, so every
    other brace (regular expression repetitions) is doubled to stay a brace; and it aliases
    ``{batch}`` itself only when the query has no JOIN, so a rule must not have one."""
    code = _TOKENS.sub(lambda m: "" if m.group(1) is None else m.group(0), sql)
    if _JOIN.search(code):
        raise ValueError("a rule joins with commas, LATERAL or subqueries, not JOIN")
    return sql.replace("{", "{{").replace("}", "}}").replace("{{batch}}", "{batch}")


@cache
def _blocks() -> dict[str, str]:
    raw = files(__package__).joinpath("rules.sql").read_text(encoding="utf-8")
    return parse(raw)


def block(name: str, **values: SqlValue) -> str:
    return render(_blocks()[name], values)


# --- the rules ----------------------------------------------------------------------------------


def rules(limits: IntegrityLimits) -> list[Rule]:
    """Every rule, in report order."""
    keys = sorted(limits.retry_limits)
    hours = limits.max_incomplete_age.total_seconds() / 3600
    return [
        Rule(
            "stuck_records",
            RECORD_STATE,
            f"No record incomplete for more than {hours:g} h",
            block("stuck_records", max_age_seconds=limits.max_incomplete_age.total_seconds()),
        ),
        Rule(
            "high_confidence_rate",
            RECORD_STATE,
            f"High-confidence rate (>= {limits.high_confidence:g}) above "
            f"{limits.min_high_confidence_rate:.0%} in every scored stage",
            block(
                "low_confidence_stages",
                high_confidence=float(limits.high_confidence),
                min_rate=float(limits.min_high_confidence_rate),
            ),
        ),
        Rule(
            "retry_limit",
            RECORD_STATE,
            "Nobody over the retry limit",
            block(
                "over_retry_limit",
                limit_sources=Array([source for source, _ in keys], "text"),
                limit_stages=Array([stage for _, stage in keys], "text"),
                limit_retries=Array([limits.retry_limits[key] for key in keys], "int"),
                max_retries=limits.max_retries,
            ),
        ),
        Rule(
            "vector_dimensions",
            VECTORS,
            "Every vector has its table's dimension",
            block("wrong_dimension"),
        ),
        Rule(
            "vector_finite",
            VECTORS,
            "No vector holds NaN or infinity",
            block("non_finite_vectors"),
        ),
        Rule(
            "workspace_consistency",
            VECTORS,
            "Vectors and record state agree on the workspace",
            block("workspace_mismatch"),
        ),
        Rule(
            "no_pii",
            STORED_TEXT,
            "No PII pattern in stored text (e-mail, card, phone, SSN)",
            block("pii_in_stored_text"),
        ),
    ]


def confidence_scored(connection: Connection) -> bool:
    return bool(connection.execute(text(block("confidence_scored"))).scalar_one())


# --- assets -------------------------------------------------------------------------------------

SCHEMA = "enrichment"

# Per embedding column type: its dimension, and whether every component is finite. pgvector's
# norms are computed in double precision, so a finite float32 vector never overflows them; a
# NaN or infinity makes the norm NaN or infinite, and NaN < 'Infinity' is false in PostgreSQL.
_VECTOR_EXPRESSIONS = {
    "vector": ("vector_dims(v.embedding)", "vector_norm(v.embedding) < 'Infinity'::float8"),
    "halfvec": ("vector_dims(v.embedding)", "l2_norm(v.embedding) < 'Infinity'::float8"),
    "array": (
        "cardinality(v.embedding)",
        "NOT EXISTS (SELECT 1 FROM unnest(v.embedding) AS x "
        "WHERE x IS NULL OR x IN ('NaN', 'Infinity', '-Infinity'))",
    ),
}


@dataclass(frozen=True)
class RegisteredTable:
    name: str
    state: str
    dimensions: int
    embedding_type: str | None

    @property
    def kind(self) -> str | None:
        """``vector``, ``halfvec`` or ``array``; None for a type the rules cannot read."""
        if self.embedding_type is None:
            return None
        if self.embedding_type.endswith("[]"):
            return "array"
        base = self.embedding_type.split("(", 1)[0]
        return base if base in ("vector", "halfvec") else None


def registered_tables(connection: Connection) -> list[RegisteredTable]:
    """Registered vector tables that exist, with their embedding column's type."""
    return [
        RegisteredTable(
            row.name, row.state, row.dimensions, row.embedding_type if row.has_embedding else None
        )
        for row in connection.execute(text(block("vector_tables")))
    ]


def vectors_asset(tables: Sequence[RegisteredTable]) -> str:
    """The rows of every active or building vector table, with their dimension and
    finiteness (retired tables are no longer kept current)."""
    branches = []
    for table in tables:
        if table.state == "retired":
            continue
        if table.kind is None:
            raise ValueError(
                f"vector table {table.name!r}: embedding column of type "
                f"{table.embedding_type or 'none'} cannot be checked"
            )
        dimensions_of, finite = _VECTOR_EXPRESSIONS[table.kind]
        branches.append(
            block(
                "vector_rows",
                vector_table=table.name,
                dimensions=table.dimensions,
                dimensions_of=Fragment(dimensions_of),
                finite=Fragment(finite),
                table=Identifier(SCHEMA, table.name),
            )
        )
    return "\nUNION ALL\n".join(branches) if branches else block("no_vector_rows")


def stored_text_asset(tables: Sequence[RegisteredTable]) -> str:
    """Every stored string: chunk texts of every vector table and strings of stage outputs."""
    branches = [
        block("stored_vector_text", vector_table=table.name, table=Identifier(SCHEMA, table.name))
        for table in tables
    ]
    branches.append(block("stored_output_text"))
    return "\nUNION ALL\n".join(branches)
