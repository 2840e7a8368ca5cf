"""The ``monitoring:`` section of the configuration file: metric settings, alert thresholds
and notification channels, validated once, at the edge.

Every key is optional; the defaults are the thresholds of the enrichment architecture
(completeness critical below 70 %, warning below 85 %; quality critical below 60, warning below
80; backlog critical above 1,000; failure rate critical above 20 %) plus freshness, dead
letters, retry limit and stuck leases. A rule given in the file is merged over the default of
the same name, so ``rules: {completeness: {critical: 75}}`` changes one number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from quality.metrics import METRICS, Grain, MetricOptions

if TYPE_CHECKING:  # enrichment.config holds a MonitoringConfig: only the type is needed here
    from enrichment.config import EnrichConfig

Comparison = Literal["below", "above"]

DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "completeness": {
        "metric": "completeness_rate",
        "comparison": "below",
        "warning": 85.0,
        "critical": 70.0,
    },
    "quality": {
        "metric": "quality_score",
        "comparison": "below",
        "warning": 80.0,
        "critical": 60.0,
    },
    "backlog": {"metric": "backlog_size", "comparison": "above", "critical": 1000.0},
    "failure_rate": {
        "metric": "failure_rate",
        "comparison": "above",
        "warning": 5.0,
        "critical": 20.0,
    },
    "freshness": {
        "metric": "freshness_sla_rate",
        "comparison": "below",
        "warning": 99.0,
        "critical": 95.0,
    },
    "dead_letters": {
        "metric": "dead_letters",
        "comparison": "above",
        "warning": 0.0,
        "critical": 100.0,
    },
    "retry_limit": {"metric": "over_retry_limit", "comparison": "above", "warning": 0.0},
    "stuck": {"metric": "stuck_in_progress", "comparison": "above", "warning": 0.0},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConfig(_Strict):
    """Fire when ``metric`` is ``below``/``above`` a threshold in a scope of ``grain``
    (``source``: each source, all its workspaces; see quality.metrics.GRAINS)."""

    metric: str
    comparison: Comparison
    warning: float | None = None
    critical: float | None = None
    grain: Grain = "source"
    enabled: bool = True

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r} (known: {', '.join(sorted(METRICS))})")
        return value

    @model_validator(mode="after")
    def _thresholds(self) -> RuleConfig:
        if self.warning is None and self.critical is None:
            raise ValueError("give a warning or a critical threshold (or both)")
        if self.warning is not None and self.critical is not None:
            worse = (
                self.critical <= self.warning
                if self.comparison == "below"
                else self.critical >= self.warning
            )
            if not worse:
                raise ValueError(
                    f"critical ({self.critical}) must be {self.comparison} warning "
                    f"({self.warning}) or equal"
                )
        if self.grain not in METRICS[self.metric].grains:
            raise ValueError(
                f"metric {self.metric!r} has no value at grain {self.grain!r} "
                f"(it has: {', '.join(METRICS[self.metric].grains)})"
            )
        return self


class EmailChannelConfig(_Strict):
    """E-mail over SMTP: a prefect-email ``EmailServerCredentials`` block by name, or a server
    given here (the password read from the environment variable ``password_env``)."""

    block: str | None = Field(default=None, description="EmailServerCredentials block name.")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str = "ENRICH_SMTP_PASSWORD"
    timeout_seconds: float = Field(default=30.0, gt=0)
    sender: str | None = Field(default=None, description="From address; default: the username.")
    to: list[str] = Field(min_length=1, description="Recipients.")

    @model_validator(mode="after")
    def _server(self) -> EmailChannelConfig:
        if (self.block is None) == (self.host is None):
            raise ValueError("give either block (an EmailServerCredentials name) or host")
        if self.sender is None and self.username is None and self.block is None:
            raise ValueError("give sender (the From address)")
        return self

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for position, address in enumerate(value):
            if "@" not in address:
                raise ValueError(f"to[{position}]: {address!r} is not an e-mail address")
        return value


class ChannelsConfig(_Strict):
    """Where alert notifications go. The log always gets them; Prefect events are emitted for
    every state change unless ``prefect_events`` is false."""

    email: EmailChannelConfig | None = None
    apprise_urls: list[str] = Field(
        default_factory=list,
        description="Webhooks, Slack, …: apprise URLs such as json://host/path, slack://…",
    )
    notification_blocks: list[str] = Field(
        default_factory=list, description="Names of Prefect notification blocks."
    )
    prefect_events: bool = True


class MonitoringConfig(_Strict):
    """The ``monitoring:`` section. Overridable per key by the Prefect Variable
    ``enrich_monitoring`` (a JSON object of the same shape), read on every monitor run."""

    window_minutes: float = Field(default=60.0, gt=0, description="Window of rates and latency.")
    freshness_sla_minutes: float = Field(default=60.0, gt=0)
    high_confidence: float = Field(default=0.7, ge=0, le=1)
    capacity_lookback_hours: float = Field(default=168.0, gt=0)
    retention_days: float = Field(default=30.0, gt=0, description="Snapshots kept this long.")
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)

    @model_validator(mode="before")
    @classmethod
    def _merge_default_rules(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("rules") or {}
        if not isinstance(given, dict):
            return data  # the field's own validation reports it
        merged: dict[str, Any] = {name: dict(rule) for name, rule in DEFAULT_RULES.items()}
        for name, rule in given.items():
            if isinstance(rule, dict) and name in merged:
                merged[name] = {**merged[name], **rule}
            elif isinstance(rule, BaseModel):
                merged[name] = rule.model_dump()
            else:
                merged[name] = rule
        return {**data, "rules": merged}

    @field_validator("rules")
    @classmethod
    def _rule_names(cls, rules: dict[str, RuleConfig]) -> dict[str, RuleConfig]:
        for name in rules:
            if not name or not name.replace("_", "").isalnum() or name != name.lower():
                raise ValueError(f"rule name {name!r} should be lowercase like 'dead_letters'")
        return rules

    def metric_options(
        self, retry_limits: dict[tuple[str, str], int] | None = None, max_retries: int = 5
    ) -> MetricOptions:
        return MetricOptions(
            window_seconds=self.window_minutes * 60,
            freshness_sla_seconds=self.freshness_sla_minutes * 60,
            high_confidence=self.high_confidence,
            max_retries=max_retries,
            retry_limits=retry_limits or {},
            capacity_lookback_seconds=self.capacity_lookback_hours * 3600,
        )


def retry_limits(
    config: EnrichConfig | None, default_delays: Sequence[float]
) -> dict[tuple[str, str], int]:
    """Each configured stage's retry limit: the length of its retry_delays, or of the
    default schedule."""
    if config is None:
        return {}
    limits: dict[tuple[str, str], int] = {}
    for source in config.sources:
        for stage in source.stages:
            delays = stage.retry_delays if stage.retry_delays is not None else default_delays
            limits[(source.name, stage.kind)] = len(delays)
    return limits


def metric_options(
    config: MonitoringConfig, enrich_config: EnrichConfig | None, default_delays: Sequence[float]
) -> MetricOptions:
    """What the metrics are measured against, from the monitoring section and the stages'
    retry schedules."""
    return config.metric_options(
        retry_limits(enrich_config, default_delays), max_retries=len(default_delays)
    )
