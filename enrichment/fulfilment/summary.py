"""What the fulfilment tables hold, counted (``describe``), and the ground truth (``truth``).

The truth is for evaluation and for showing outcomes; a pipeline never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from enrichment.fulfilment.playbook import PII_KINDS, TYPE_NAMES
from enrichment.fulfilment.schema import SCHEMA

TABLE_NAMES = ("customers", "orders", "exceptions", "messages")


@dataclass(frozen=True)
class WorkspaceSummary:
    workspace_id: str
    customers: int
    orders: int
    exceptions: int
    messages: int


@dataclass(frozen=True)
class Truth:
    exception_type: str
    recommended_action: str | None
    phrasing: str | None
    confusable_with: str | None
    planted_pii: dict[str, int]


@dataclass(frozen=True)
class SeedSummary:
    """Counts per workspace (largest first), per exception type, description phrasing,
    recommended action and kind of planted personal data; orders past their promised date;
    when the exceptions were reported. ``seed``, ``anchor`` (the ``now`` the times were drawn
    back from) and ``seconds`` are known when the summary comes from ``seed()``."""

    workspaces: tuple[WorkspaceSummary, ...]
    exception_types: dict[str, int]
    phrasing: dict[str, int]
    recommended_actions: dict[str, int]
    planted_pii: dict[str, int]
    sla_breaches: int
    first_reported_at: datetime | None
    last_reported_at: datetime | None
    seed: int | None = field(default=None, compare=False)
    anchor: datetime | None = field(default=None, compare=False)
    seconds: float | None = field(default=None, compare=False)

    @property
    def totals(self) -> dict[str, int]:
        return {
            name: sum(getattr(workspace, name) for workspace in self.workspaces)
            for name in TABLE_NAMES
        }

    def render(self) -> str:
        """A plain-text table for a terminal or a log."""
        totals = self.totals
        origin = []
        if self.seed is not None:
            origin.append(f"seed {self.seed}")
        if self.anchor is not None:
            origin.append(f"times up to {self.anchor:%Y-%m-%d %H:%M %Z}")
        if self.seconds is not None:
            origin.append(f"loaded in {self.seconds:.1f}s")
        lines = [
            f"fulfilment demo data: {totals['exceptions']:,} exceptions in "
            f"{len(self.workspaces)} workspaces" + (f" ({', '.join(origin)})" if origin else ""),
            "",
            f"{'workspace':<24}{'customers':>11}{'orders':>11}{'exceptions':>12}{'messages':>11}",
        ]
        for row in (*self.workspaces, WorkspaceSummary("total", **totals)):
            lines.append(
                f"{row.workspace_id:<24}{row.customers:>11,}{row.orders:>11,}"
                f"{row.exceptions:>12,}{row.messages:>11,}"
            )
        lines.append("")
        for label, counts in (
            ("exception types", self.exception_types),
            ("phrasing", self.phrasing),
            ("recommended actions", self.recommended_actions),
            ("personal data planted", self.planted_pii),
        ):
            lines.append(f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        lines.append(f"orders past their promised date: {self.sla_breaches:,}")
        if self.first_reported_at and self.last_reported_at:
            lines.append(
                f"exceptions reported between {self.first_reported_at:%Y-%m-%d %H:%M} and "
                f"{self.last_reported_at:%Y-%m-%d %H:%M}"
            )
        return "\n".join(lines)


def ordered_counts(counts: dict[str, int], order: tuple[str, ...] = ()) -> dict[str, int]:
    """``order``'s keys first (zeros included), then the rest by count, largest first."""
    result = {key: counts.get(key, 0) for key in order}
    for key, value in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        result.setdefault(key, value)
    return result


def by_size(counts: dict[str, dict[str, int]]) -> tuple[WorkspaceSummary, ...]:
    rows = [
        WorkspaceSummary(workspace, *(values.get(name, 0) for name in TABLE_NAMES))
        for workspace, values in counts.items()
    ]
    return tuple(sorted(rows, key=lambda row: (-row.exceptions, -row.orders, row.workspace_id)))


def describe(connection: Connection, *, now: datetime | None = None) -> SeedSummary:
    """Count what the fulfilment tables hold now. SLA breaches are counted as of ``now``
    (default: the database clock)."""
    workspaces: dict[str, dict[str, int]] = {}
    for name in TABLE_NAMES:
        rows = connection.execute(
            text(f"SELECT workspace_id, count(*) FROM {SCHEMA}.{name} GROUP BY workspace_id")
        )
        for workspace, count in rows:
            workspaces.setdefault(workspace, {})[name] = count

    def grouped(column: str) -> dict[str, int]:
        rows = connection.execute(
            text(
                f"SELECT {column}, count(*) FROM {SCHEMA}.exception_truth "
                f"WHERE {column} IS NOT NULL GROUP BY 1"
            )
        )
        return {key: count for key, count in rows}

    pii = connection.execute(
        text(
            f"SELECT key, sum(value::int) FROM {SCHEMA}.exception_truth, "
            "jsonb_each_text(planted_pii) GROUP BY key"
        )
    )
    breaches = connection.execute(
        text(
            f"SELECT count(*) FROM {SCHEMA}.orders "
            "WHERE coalesce(delivered_at, coalesce(CAST(:now AS timestamptz), now())) "
            "> promised_at"
        ),
        {"now": now},
    ).scalar_one()
    first, last = connection.execute(
        text(f"SELECT min(reported_at), max(reported_at) FROM {SCHEMA}.exceptions")
    ).one()
    return SeedSummary(
        workspaces=by_size(workspaces),
        exception_types=ordered_counts(grouped("exception_type"), TYPE_NAMES),
        phrasing=ordered_counts(grouped("phrasing"), ("explicit", "implied", "ambiguous")),
        recommended_actions=ordered_counts(grouped("recommended_action")),
        planted_pii=ordered_counts({key: int(total) for key, total in pii}, PII_KINDS),
        sla_breaches=breaches,
        first_reported_at=first,
        last_reported_at=last,
    )


def truth(connection: Connection) -> dict[int, str]:
    """Exception id -> its true type."""
    rows = connection.execute(
        text(f"SELECT exception_id, exception_type FROM {SCHEMA}.exception_truth")
    )
    return {exception_id: exception_type for exception_id, exception_type in rows}


def truth_records(connection: Connection) -> dict[int, Truth]:
    """Exception id -> everything the ground truth knows about it."""
    rows = connection.execute(
        text(
            "SELECT exception_id, exception_type, recommended_action, phrasing, confusable_with, "
            f"planted_pii FROM {SCHEMA}.exception_truth"
        )
    )
    result: dict[int, Truth] = {}
    for exception_id, *values in rows:
        planted: dict[str, Any] = values[4] or {}
        result[exception_id] = Truth(
            values[0], values[1], values[2], values[3], {k: int(v) for k, v in planted.items()}
        )
    return result
