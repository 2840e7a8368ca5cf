"""Run the integrity suites with Great Expectations against PostgreSQL.

An ephemeral context (nothing written to disk) with one SQL datasource on the project's
database. Three suites, one per asset: ``record_state`` (the table), ``vectors`` and
``stored_text`` (queries over the registry of vector tables). Every rule is an
UnexpectedRowsExpectation, so the database does the work and only broken rows travel.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import great_expectations as gx
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent.interfaces import GxDatasourceWarning
from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)

from enrichment.database import sqlalchemy_url
from quality.expectations.rules import (
    RECORD_STATE,
    SCHEMA,
    STORED_TEXT,
    VECTORS,
    IntegrityLimits,
    Rule,
    confidence_scored,
    for_great_expectations,
    registered_tables,
    rules,
    stored_text_asset,
    vectors_asset,
)

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not applicable"
    ERROR = "error"


@dataclass(frozen=True)
class ExpectationResult:
    """One rule's verdict; ``rows`` are a sample of what broke it (``unexpected`` is exact)."""

    name: str
    suite: str
    title: str
    outcome: Outcome
    unexpected: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "suite": self.suite,
            "title": self.title,
            "outcome": self.outcome.value,
            "unexpected": self.unexpected,
            "rows": self.rows,
            "note": self.note,
        }


@dataclass(frozen=True)
class QualityValidation:
    results: list[ExpectationResult]
    validated_at: datetime

    @property
    def success(self) -> bool:
        """Every rule passed or does not apply."""
        return all(r.outcome in (Outcome.PASSED, Outcome.NOT_APPLICABLE) for r in self.results)

    def result(self, name: str) -> ExpectationResult:
        return next(r for r in self.results if r.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "validated_at": self.validated_at.isoformat(),
            "success": self.success,
            "results": [r.as_dict() for r in self.results],
        }


def _plain(value: Any) -> Any:
    """A value of a result row as JSON and templates take it."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _context() -> Any:
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def validate(url: str, limits: IntegrityLimits | None = None) -> QualityValidation:
    """Run every rule against the database at ``url`` (libpq or SQLAlchemy form).

    A rule whose query fails is an ``error`` result naming the database's message; the other
    rules still run. The confidence rule is ``not applicable`` while no stage output carries
    a confidence.
    """
    limits = limits or IntegrityLimits()
    context = _context()
    # add_sql, not add_postgres: the latter's URL validation refuses a libpq socket URL
    # (host in the query string), which is what the embedded server listens on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GxDatasourceWarning)  # "a PostgresDatasource may fit"
        datasource = context.data_sources.add_sql(
            "enrichment", connection_string=sqlalchemy_url(url)
        )
    engine = datasource.get_engine()
    try:
        with engine.connect() as connection:
            tables = registered_tables(connection)
            scored = confidence_scored(connection)
        assets = {
            RECORD_STATE: datasource.add_query_asset(
                RECORD_STATE, query=f"SELECT * FROM {SCHEMA}.record_state"
            ),
            VECTORS: datasource.add_query_asset(VECTORS, query=vectors_asset(tables)),
            STORED_TEXT: datasource.add_query_asset(STORED_TEXT, query=stored_text_asset(tables)),
        }
        all_rules = rules(limits)
        results: dict[str, ExpectationResult] = {}
        for suite_name, asset in assets.items():
            suite_rules = [rule for rule in all_rules if rule.suite == suite_name]
            results.update(_run_suite(context, suite_name, asset, suite_rules, limits))
        if not scored:
            verdict = results["high_confidence_rate"]
            if verdict.outcome is Outcome.PASSED:
                results[verdict.name] = ExpectationResult(
                    verdict.name,
                    verdict.suite,
                    verdict.title,
                    Outcome.NOT_APPLICABLE,
                    note=(
                        "no stage output carries a confidence: no AI stage such as classify "
                        "has finished"
                    ),
                )
        return QualityValidation(
            [results[rule.name] for rule in all_rules], validated_at=datetime.now(UTC)
        )
    finally:
        engine.dispose()


def _run_suite(
    context: Any, suite_name: str, asset: Any, suite_rules: list[Rule], limits: IntegrityLimits
) -> dict[str, ExpectationResult]:
    batch = asset.add_batch_definition_whole_table("all")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for rule in suite_rules:
        suite.add_expectation(
            UnexpectedRowsExpectation(
                unexpected_rows_query=for_great_expectations(rule.sql),
                description=rule.title,
                meta={"rule": rule.name},
            )
        )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
    )
    run = definition.run(result_format="COMPLETE")
    by_rule = {rule.name: rule for rule in suite_rules}
    verdicts: dict[str, ExpectationResult] = {}
    for item in run.results:
        rule = by_rule[item.expectation_config.meta["rule"]]
        info = item.exception_info or {}
        if info.get("raised_exception"):
            message = str(info.get("exception_message") or "the rule's query failed")
            log.error("expectation %s failed to run: %s", rule.name, message)
            verdicts[rule.name] = ExpectationResult(
                rule.name, rule.suite, rule.title, Outcome.ERROR, note=message
            )
            continue
        observed = int(item.result.get("observed_value") or 0)
        rows = item.result.get("details", {}).get("unexpected_rows") or []
        verdicts[rule.name] = ExpectationResult(
            rule.name,
            rule.suite,
            rule.title,
            Outcome.PASSED if item.success else Outcome.FAILED,
            unexpected=observed,
            rows=[
                {key: _plain(value) for key, value in row.items()}
                for row in rows[: limits.sample_rows]
            ],
        )
    return verdicts
