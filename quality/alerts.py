"""Threshold alerts with their state in the database.

An alert is one episode of a rule breaching its threshold in one scope: it starts (firing)
when the metric first crosses the warning or critical threshold, escalates when it crosses the
critical one, is downgraded when it is back between the two, and resolves when the metric is
within bounds again (or no longer measured). While it fires, each check only moves
``last_seen`` and ``value``. Every change is returned as an :class:`AlertChange` (for the log
and a Prefect event); what the notification channels must still be told is worked out from
what they were last told (:func:`unsettled`), so a notification goes out when an alert starts,
escalates or resolves, never on every check, and a delivery that failed is tried again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, text

from quality.config import MonitoringConfig, RuleConfig
from quality.metrics import Grain, Metrics, Scope

# One evaluator at a time (two monitor runs overlapping would both start the same alert).
_LOCK = "enrich.alerts"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Transition(StrEnum):
    STARTED = "started"
    ESCALATED = "escalated"
    DOWNGRADED = "downgraded"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str  # "below" | "above"
    warning: float | None
    critical: float | None
    grain: Grain = "source"

    @classmethod
    def from_config(cls, name: str, config: RuleConfig) -> Rule:
        return cls(
            name=name,
            metric=config.metric,
            comparison=config.comparison,
            warning=config.warning,
            critical=config.critical,
            grain=config.grain,
        )

    def breaches(self, value: float, threshold: float) -> bool:
        return value < threshold if self.comparison == "below" else value > threshold

    def judge(self, value: float) -> tuple[Severity, float] | None:
        """The worst severity ``value`` breaches and its threshold, or None within bounds."""
        if self.critical is not None and self.breaches(value, self.critical):
            return Severity.CRITICAL, self.critical
        if self.warning is not None and self.breaches(value, self.warning):
            return Severity.WARNING, self.warning
        return None

    def message(self, value: float | None, severity: Severity, threshold: float) -> str:
        if value is None:
            return f"{self.metric} is no longer measured"
        return (
            f"{self.metric} is {value:.4g}, {self.comparison} the {severity} threshold "
            f"{threshold:g}"
        )


def rules_from_config(config: MonitoringConfig) -> list[Rule]:
    """The enabled rules, in name order."""
    return [
        Rule.from_config(name, rule) for name, rule in sorted(config.rules.items()) if rule.enabled
    ]


def default_rules() -> list[Rule]:
    return rules_from_config(MonitoringConfig())


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    metric: str
    scope: Scope
    severity: Severity
    status: str  # "firing" | "resolved"
    comparison: str
    value: float | None
    threshold: float
    message: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    notified_at: datetime | None
    notified_status: str | None
    notified_severity: Severity | None
    notify_error: str | None

    @classmethod
    def from_row(cls, row: Any) -> Alert:
        return cls(
            id=row.id,
            rule=row.rule,
            metric=row.metric,
            scope=Scope(row.workspace_id, row.source, row.stage),
            severity=Severity(row.severity),
            status=row.status,
            comparison=row.comparison,
            value=row.value,
            threshold=row.threshold,
            message=row.message,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            resolved_at=row.resolved_at,
            notified_at=row.notified_at,
            notified_status=row.notified_status,
            notified_severity=(
                Severity(row.notified_severity) if row.notified_severity is not None else None
            ),
            notify_error=row.notify_error,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "metric": self.metric,
            "scope": self.scope.label,
            "workspace_id": self.scope.workspace_id,
            "source": self.scope.source,
            "stage": self.scope.stage,
            "severity": str(self.severity),
            "status": self.status,
            "comparison": self.comparison,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "notified_at": self.notified_at.isoformat() if self.notified_at else None,
        }


@dataclass(frozen=True)
class AlertChange:
    """An alert changed state in this evaluation."""

    transition: Transition
    alert: Alert
    previous_severity: Severity | None = None


_COLUMNS = (
    "id, rule, metric, scope, workspace_id, source, stage, severity, status, comparison, value, "
    "threshold, message, first_seen, last_seen, resolved_at, notified_at, notified_status, "
    "notified_severity, notify_error"
)

_START = text(
    f"""
    INSERT INTO enrichment.alerts
        (rule, metric, scope, workspace_id, source, stage, severity, status, comparison, value,
         threshold, message, first_seen, last_seen, updated_at)
    VALUES (:rule, :metric, :scope, :workspace_id, :source, :stage, :severity, 'firing',
            :comparison, :value, :threshold, :message, :now, :now, :now)
    RETURNING {_COLUMNS}
    """
)

_UPDATE = text(
    f"""
    UPDATE enrichment.alerts
    SET severity = :severity, value = :value, threshold = :threshold, message = :message,
        last_seen = :now, updated_at = :now
    WHERE id = :id
    RETURNING {_COLUMNS}
    """
)

_RESOLVE = text(
    f"""
    UPDATE enrichment.alerts
    SET status = 'resolved', value = :value, message = :message, resolved_at = :now,
        updated_at = :now
    WHERE id = :id
    RETURNING {_COLUMNS}
    """
)


def firing(connection: Connection, *, lock: bool = False) -> list[Alert]:
    """Alerts firing now. Index: alerts_firing_key (rule, scope) WHERE status = 'firing'."""
    sql = f"SELECT {_COLUMNS} FROM enrichment.alerts WHERE status = 'firing' ORDER BY id"
    if lock:
        sql += " FOR UPDATE"
    return [Alert.from_row(row) for row in connection.execute(text(sql))]


def recent(connection: Connection, *, limit: int = 100) -> list[Alert]:
    """Alerts firing or resolved, most recently seen first."""
    rows = connection.execute(
        text(f"SELECT {_COLUMNS} FROM enrichment.alerts ORDER BY last_seen DESC, id DESC LIMIT :n"),
        {"n": limit},
    )
    return [Alert.from_row(row) for row in rows]


def evaluate(connection: Connection, metrics: Metrics, rules: Sequence[Rule]) -> list[AlertChange]:
    """Apply ``rules`` to ``metrics`` and move the alert state on; returns what changed.

    Idempotent for unchanged metrics: a second evaluation of the same values changes no state
    and returns nothing. Firing alerts of rules not in ``rules`` (removed or disabled) and of
    scopes no longer measured are resolved. Serialised by an advisory lock; runs in the
    caller's transaction.
    """
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK})
    now = metrics.taken_at
    open_alerts = {
        (alert.rule, alert.scope.label): alert for alert in firing(connection, lock=True)
    }
    changes: list[AlertChange] = []
    breaching: set[tuple[str, str]] = set()
    for rule in rules:
        for metric in metrics.named(rule.metric):
            if metric.scope.grain != rule.grain:
                continue
            verdict = rule.judge(metric.value)
            if verdict is None:
                continue
            severity, threshold = verdict
            key = (rule.name, metric.scope.label)
            breaching.add(key)
            params = {
                "value": metric.value,
                "severity": str(severity),
                "threshold": threshold,
                "message": rule.message(metric.value, severity, threshold),
                "now": now,
            }
            current = open_alerts.get(key)
            if current is None:
                row = connection.execute(
                    _START,
                    {
                        **params,
                        "rule": rule.name,
                        "metric": rule.metric,
                        "scope": metric.scope.label,
                        "workspace_id": metric.scope.workspace_id,
                        "source": metric.scope.source,
                        "stage": metric.scope.stage,
                        "comparison": rule.comparison,
                    },
                ).one()
                changes.append(AlertChange(Transition.STARTED, Alert.from_row(row)))
                continue
            row = connection.execute(_UPDATE, {**params, "id": current.id}).one()
            if severity != current.severity:
                transition = (
                    Transition.ESCALATED if severity is Severity.CRITICAL else Transition.DOWNGRADED
                )
                changes.append(AlertChange(transition, Alert.from_row(row), current.severity))
    rules_by_name = {rule.name: rule for rule in rules}
    for key, alert in open_alerts.items():
        if key in breaching:
            continue
        value = metrics.value(alert.metric, alert.scope)
        if alert.rule not in rules_by_name:
            message = f"rule {alert.rule!r} is no longer enabled"
        elif value is None:
            message = f"{alert.metric} is no longer measured"
        else:
            message = f"{alert.metric} is {value:.4g}, within bounds again"
        row = connection.execute(
            _RESOLVE, {"id": alert.id, "value": value, "message": message, "now": now}
        ).one()
        changes.append(AlertChange(Transition.RESOLVED, Alert.from_row(row), alert.severity))
    return changes


@dataclass(frozen=True)
class PendingNotification:
    """What the channels must be told about one alert."""

    transition: Transition
    alert: Alert


def unsettled(connection: Connection) -> list[PendingNotification]:
    """Alerts whose channels have not been told their latest start, escalation or resolution
    (a downgrade is not notified: the channels already know of the worse state).
    Index: alerts_unsettled_idx."""
    rows = connection.execute(
        text(
            f"SELECT {_COLUMNS} FROM enrichment.alerts "
            "WHERE status = 'firing' OR notified_status = 'firing' ORDER BY id"
        )
    )
    pending = []
    for row in rows:
        alert = Alert.from_row(row)
        transition = _owed(alert)
        if transition is not None:
            pending.append(PendingNotification(transition, alert))
    return pending


def _owed(alert: Alert) -> Transition | None:
    if alert.status == "firing":
        if alert.notified_status is None:
            return Transition.STARTED
        if alert.severity is Severity.CRITICAL and alert.notified_severity is Severity.WARNING:
            return Transition.ESCALATED
        return None
    if alert.notified_status == "firing":
        return Transition.RESOLVED
    return None


def record_delivery(
    connection: Connection, alert: Alert, *, at: datetime, error: str | None
) -> None:
    """Remember what the channels were told. With ``error`` set (no channel got it) nothing
    is marked as told, so the next run tries again; the error is kept for operators."""
    if error is not None:
        connection.execute(
            text("UPDATE enrichment.alerts SET notify_error = :error WHERE id = :id"),
            {"id": alert.id, "error": error},
        )
        return
    connection.execute(
        text(
            "UPDATE enrichment.alerts SET notified_status = :status, "
            "notified_severity = :severity, notified_at = :at, notify_error = NULL "
            "WHERE id = :id"
        ),
        {"id": alert.id, "status": alert.status, "severity": str(alert.severity), "at": at},
    )


def describe(changes: Iterable[AlertChange]) -> list[str]:
    """One line per change, for logs and artifacts."""
    return [
        f"{change.transition}: [{change.alert.severity}] {change.alert.rule} "
        f"({change.alert.scope.label}): {change.alert.message}"
        for change in changes
    ]
