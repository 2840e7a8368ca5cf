"""Alert lifecycle: fire, no repeat while firing, escalate, downgrade, resolve; and what the
channels are owed at each step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from quality import alerts
from quality.alerts import Rule, Severity, Transition
from quality.metrics import Metric, MetricOptions, Metrics, Scope
from tests.monitoring_data import NOW

NOTES = Scope(source="notes")
COMPLETENESS = Rule(
    "completeness", "completeness_rate", "below", warning=85.0, critical=70.0, grain="source"
)
BACKLOG = Rule("backlog", "backlog_size", "above", warning=None, critical=1000.0, grain="source")


def snapshot(values: dict[tuple[str, Scope], float], minutes: float = 0) -> Metrics:
    return Metrics(
        taken_at=NOW + timedelta(minutes=minutes),
        options=MetricOptions(),
        values=tuple(Metric(scope, name, value) for (name, scope), value in values.items()),
    )


def completeness(value: float, minutes: float = 0, scope: Scope = NOTES) -> Metrics:
    return snapshot({("completeness_rate", scope): value}, minutes)


def evaluate(engine: Engine, metrics: Metrics, rules: list[Rule] | None = None):
    with engine.begin() as connection:
        return alerts.evaluate(connection, metrics, rules or [COMPLETENESS])


def firing(engine: Engine) -> list[alerts.Alert]:
    with engine.connect() as connection:
        return alerts.firing(connection)


def owed(engine: Engine) -> list[tuple[Transition, str, str]]:
    with engine.connect() as connection:
        return [
            (item.transition, item.alert.rule, str(item.alert.severity))
            for item in alerts.unsettled(connection)
        ]


def tell(engine: Engine, *, error: str | None = None) -> None:
    with engine.begin() as connection:
        for item in alerts.unsettled(connection):
            alerts.record_delivery(connection, item.alert, at=NOW, error=error)


def test_a_rule_judges_the_worst_threshold_breached() -> None:
    assert COMPLETENESS.judge(90.0) is None
    assert COMPLETENESS.judge(85.0) is None  # below, strictly
    assert COMPLETENESS.judge(80.0) == (Severity.WARNING, 85.0)
    assert COMPLETENESS.judge(60.0) == (Severity.CRITICAL, 70.0)
    assert BACKLOG.judge(1000.0) is None
    assert BACKLOG.judge(1001.0) == (Severity.CRITICAL, 1000.0)


def test_an_alert_starts_when_a_threshold_is_breached(db: Engine) -> None:
    changes = evaluate(db, completeness(80.0))

    assert [(c.transition, c.alert.severity) for c in changes] == [
        (Transition.STARTED, Severity.WARNING)
    ]
    (alert,) = firing(db)
    assert (alert.rule, alert.scope, alert.value, alert.threshold) == (
        "completeness",
        NOTES,
        80.0,
        85.0,
    )
    assert alert.first_seen == alert.last_seen == NOW
    assert alert.message == "completeness_rate is 80, below the warning threshold 85"


def test_a_firing_alert_is_not_repeated_on_later_checks(db: Engine) -> None:
    evaluate(db, completeness(80.0))
    tell(db)

    changes = evaluate(db, completeness(78.0, minutes=5))

    assert changes == []
    (alert,) = firing(db)
    assert alert.value == 78.0
    assert alert.first_seen == NOW
    assert alert.last_seen == NOW + timedelta(minutes=5)
    assert owed(db) == []


def test_an_alert_escalates_when_the_critical_threshold_is_breached(db: Engine) -> None:
    evaluate(db, completeness(80.0))
    tell(db)

    changes = evaluate(db, completeness(60.0, minutes=5))

    assert [(c.transition, c.previous_severity) for c in changes] == [
        (Transition.ESCALATED, Severity.WARNING)
    ]
    (alert,) = firing(db)
    assert (alert.severity, alert.threshold, alert.first_seen) == (Severity.CRITICAL, 70.0, NOW)
    assert owed(db) == [(Transition.ESCALATED, "completeness", "critical")]


def test_a_downgrade_changes_state_but_owes_no_notification(db: Engine) -> None:
    evaluate(db, completeness(60.0))
    tell(db)

    changes = evaluate(db, completeness(80.0, minutes=5))

    assert [c.transition for c in changes] == [Transition.DOWNGRADED]
    assert firing(db)[0].severity is Severity.WARNING
    assert owed(db) == []
    # Critical again: the channels were told of critical already.
    evaluate(db, completeness(60.0, minutes=10))
    assert owed(db) == []


def test_an_alert_resolves_when_the_metric_is_within_bounds_again(db: Engine) -> None:
    evaluate(db, completeness(60.0))
    tell(db)

    changes = evaluate(db, completeness(95.0, minutes=5))

    assert [c.transition for c in changes] == [Transition.RESOLVED]
    assert firing(db) == []
    with db.connect() as connection:
        (alert,) = alerts.recent(connection)
    assert (alert.status, alert.value, alert.resolved_at) == (
        "resolved",
        95.0,
        NOW + timedelta(minutes=5),
    )
    assert owed(db) == [(Transition.RESOLVED, "completeness", "critical")]
    tell(db)
    assert owed(db) == []


def test_a_breach_after_resolution_starts_a_new_alert(db: Engine) -> None:
    evaluate(db, completeness(60.0))
    evaluate(db, completeness(95.0, minutes=5))

    changes = evaluate(db, completeness(60.0, minutes=10))

    assert [c.transition for c in changes] == [Transition.STARTED]
    with db.connect() as connection:
        assert [a.status for a in alerts.recent(connection)] == ["firing", "resolved"]


def test_an_alert_whose_scope_is_no_longer_measured_resolves(db: Engine) -> None:
    evaluate(db, completeness(60.0))

    changes = evaluate(db, snapshot({}, minutes=5))

    assert [(c.transition, c.alert.message) for c in changes] == [
        (Transition.RESOLVED, "completeness_rate is no longer measured")
    ]


def test_an_alert_of_a_rule_no_longer_enabled_resolves(db: Engine) -> None:
    evaluate(db, completeness(60.0))

    changes = evaluate(db, completeness(60.0, minutes=5), [BACKLOG])

    assert [(c.transition, c.alert.message) for c in changes] == [
        (Transition.RESOLVED, "rule 'completeness' is no longer enabled")
    ]


def test_rules_apply_at_their_grain_only(db: Engine) -> None:
    per_workspace = Scope("acme", "notes")
    metrics = snapshot(
        {("completeness_rate", per_workspace): 10.0, ("completeness_rate", NOTES): 90.0}
    )

    assert evaluate(db, metrics) == []
    workspace_rule = Rule(
        "completeness", "completeness_rate", "below", 85.0, 70.0, grain="workspace_source"
    )
    changes = evaluate(db, metrics, [workspace_rule])
    assert [c.alert.scope for c in changes] == [per_workspace]


def test_each_scope_has_its_own_alert(db: Engine) -> None:
    metrics = snapshot(
        {
            ("completeness_rate", Scope(source="notes")): 60.0,
            ("completeness_rate", Scope(source="mail")): 80.0,
        }
    )

    evaluate(db, metrics)

    assert sorted((a.scope.label, str(a.severity)) for a in firing(db)) == [
        ("source=mail", "warning"),
        ("source=notes", "critical"),
    ]


def test_a_notification_that_reached_no_channel_is_owed_again(db: Engine) -> None:
    evaluate(db, completeness(60.0))

    tell(db, error="email: connection refused")

    assert owed(db) == [(Transition.STARTED, "completeness", "critical")]
    assert firing(db)[0].notify_error == "email: connection refused"


def test_an_alert_resolved_before_anyone_was_told_is_not_notified(db: Engine) -> None:
    evaluate(db, completeness(60.0))
    evaluate(db, completeness(95.0, minutes=5))

    assert owed(db) == []


@pytest.mark.parametrize(
    ("value", "expected"), [(1500.0, "critical"), (999.0, None), (1000.0, None)]
)
def test_the_default_backlog_rule_is_critical_above_1000(
    db: Engine, value: float, expected: str | None
) -> None:
    rules = {rule.name: rule for rule in alerts.default_rules()}

    changes = evaluate(db, snapshot({("backlog_size", NOTES): value}), [rules["backlog"]])

    assert [str(c.alert.severity) for c in changes] == ([expected] if expected else [])
