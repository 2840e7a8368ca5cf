"""The deployments of ``prefect.yaml`` as served deployments, so `enrich serve` runs exactly
what `prefect deploy --all` declares (one file, two ways to run it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.schedules import Cron, Interval, Schedule

from enrichment.errors import InvalidInput

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of ``prefect.yaml``'s ``deployments``."""

    name: str
    entrypoint: str
    description: str = ""
    tags: tuple[str, ...] = ()
    schedules: tuple[dict[str, Any], ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | dict[str, Any] | None = None


def read_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    data = yaml.safe_load(path.read_text())
    specs = []
    for position, entry in enumerate(data.get("deployments") or []):
        try:
            specs.append(
                DeploymentSpec(
                    name=entry["name"],
                    entrypoint=entry["entrypoint"],
                    description=entry.get("description") or "",
                    tags=tuple(entry.get("tags") or ()),
                    schedules=tuple(entry.get("schedules") or ()),
                    parameters=dict(entry.get("parameters") or {}),
                    concurrency_limit=entry.get("concurrency_limit"),
                )
            )
        except KeyError as missing:
            raise InvalidInput(
                f"{path}: deployments[{position}].{missing.args[0]}", "a value is required"
            ) from None
    return specs


def _schedule(entry: dict[str, Any]) -> Schedule:
    timezone = entry.get("timezone")
    if "cron" in entry:
        return Cron(entry["cron"], timezone=timezone)
    if "interval" in entry:
        return Interval(float(entry["interval"]), timezone=timezone)
    raise InvalidInput("schedules", f"a cron or an interval is required, got {entry!r}")


def _concurrency(limit: int | dict[str, Any] | None) -> int | ConcurrencyLimitConfig | None:
    if isinstance(limit, dict):
        return ConcurrencyLimitConfig(
            limit=int(limit["limit"]),
            collision_strategy=ConcurrencyLimitStrategy(limit.get("collision_strategy", "ENQUEUE")),
        )
    return limit


def runner_deployments(
    specs: Iterable[DeploymentSpec], only: Iterable[str] | None = None
) -> list[RunnerDeployment]:
    """Served deployments for ``specs`` (or the ``only`` ones, by name)."""
    wanted = set(only) if only else None
    specs = list(specs)
    if wanted is not None and (unknown := wanted - {spec.name for spec in specs}):
        known = ", ".join(spec.name for spec in specs)
        raise InvalidInput("deployment", f"unknown {sorted(unknown)} (known: {known})")
    deployments = []
    for spec in specs:
        if wanted is not None and spec.name not in wanted:
            continue
        flow: Flow[..., Any] = load_flow_from_entrypoint(spec.entrypoint)
        deployment = flow.to_deployment(
            name=spec.name,
            description=spec.description,
            tags=list(spec.tags),
            schedules=[_schedule(entry) for entry in spec.schedules],
            parameters=spec.parameters,
            concurrency_limit=_concurrency(spec.concurrency_limit),
        )
        assert isinstance(deployment, RunnerDeployment)  # synchronous call: not a coroutine
        deployments.append(deployment)
    return deployments
