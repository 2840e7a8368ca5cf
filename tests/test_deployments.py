"""prefect.yaml declares every deployment the way users run them, and they run for real: a
Prefect server on 127.0.0.1 (temporary SQLite), `prefect deploy --all`, an ad hoc run with
parameters created through the API as the UI does, a process worker; and `enrich serve`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import Engine, text

from deployments.serving import read_deployments, runner_deployments
from enrichment import capture, vectors
from enrichment.config import load_config
from enrichment.errors import InvalidInput
from enrichment.settings import get_settings
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TABLE = "public.deployed_notes"
CONFIG = {
    "sources": [
        {
            "name": "deployed_notes",
            "table": TABLE,
            "updated_at_column": None,
            "columns": ["body"],
            "entity": {"type": "note", "category": "Note"},
            "stages": ["context", "embed"],
        }
    ]
}


def _yaml() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "prefect.yaml").read_text()))


def test_every_deployment_loads_and_its_parameters_fit_its_flow() -> None:
    for spec in read_deployments():
        flow = load_flow_from_entrypoint(spec.entrypoint)
        flow.validate_parameters(spec.parameters)  # raises on a wrong name or type
        assert flow.description, spec.name


def test_the_schedules_and_limits_are_the_documented_ones() -> None:
    specs = {spec.name: spec for spec in read_deployments()}
    assert [s["cron"] for s in specs["enrich"].schedules] == ["* * * * *"]
    assert [s["cron"] for s in specs["reprocess"].schedules] == ["0 */4 * * *"]
    assert [s["cron"] for s in specs["reconcile"].schedules] == ["17 * * * *"]
    assert [s["cron"] for s in specs["monitor"].schedules] == ["*/5 * * * *"]
    assert [s["cron"] for s in specs["quality-report"].schedules] == ["0 6 * * *"]
    assert not specs["backfill"].schedules and not specs["demo"].schedules
    for spec in specs.values():  # small frequent runs never pile up
        assert isinstance(spec.concurrency_limit, dict), spec.name
        assert spec.concurrency_limit["collision_strategy"] == "CANCEL_NEW"
    assert specs["enrich"].parameters["time_budget_seconds"] < 60  # under its interval


def test_the_pull_step_does_not_depend_on_the_deploying_machine() -> None:
    (step,) = _yaml()["pull"]
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == "{{ $ENRICH_PROJECT_DIR }}"
    assert str(REPO) not in (REPO / "prefect.yaml").read_text()


def test_served_deployments_carry_the_yaml_schedules_and_limits() -> None:
    (served,) = runner_deployments(read_deployments(), only=["reconcile"])
    assert served.name == "reconcile"
    assert [s.schedule.cron for s in served.schedules] == ["17 * * * *"]  # type: ignore[union-attr]
    assert served.concurrency_limit == 1
    with pytest.raises(InvalidInput, match=r"unknown.*nope"):
        runner_deployments(read_deployments(), only=["nope"])


# --- a real Prefect server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 120, "the Prefect server")
        yield {key: env[key] for key in ("PREFECT_HOME", "PREFECT_API_URL")}
    finally:
        server.terminate()
        server.wait(30)
        log.close()


@pytest.fixture
def deployed_notes(
    db: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A source with triggers and five rows waiting; the environment a worker needs."""
    path = tmp_path / "enrich.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENRICH_CONFIG", str(path))
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(
            text(
                f"DROP TABLE IF EXISTS {TABLE}; "
                f"CREATE TABLE {TABLE} (id int PRIMARY KEY, workspace_id text, body text)"
            )
        )
    from flows.common import load_pipelines

    load_pipelines.fn()  # registers the source
    with db.begin() as connection:
        capture.install(connection, load_config(path).source("deployed_notes"))
        connection.execute(
            text(
                f"INSERT INTO {TABLE} SELECT g, 'acme', 'deployed note ' || g "
                "FROM generate_series(1, 5) g"
            )
        )
    yield {
        "DATABASE_URL": database_url,
        "ENRICH_CONFIG": str(path),
        "ENRICH_PROJECT_DIR": str(REPO),
    }
    get_settings.cache_clear()
    with db.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE} CASCADE"))


async def _run_deployment(api_url: str, name: str, parameters: dict[str, Any]) -> Any:
    """What the UI's "Custom run" does: create a flow run of the deployment."""
    with temporary_settings({PREFECT_API_URL: api_url}):
        async with get_client() as client:
            return await _create_run(client, name, parameters)


async def _create_run(client: Any, name: str, parameters: dict[str, Any]) -> Any:
    deployment = await client.read_deployment_by_name(name)
    return await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)


async def _flow_run_state(api_url: str, flow_run_id: Any) -> Any:
    with temporary_settings({PREFECT_API_URL: api_url}):
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state


def _enriched(db: Engine) -> set[str]:
    with db.connect() as connection:
        table = vectors.active_table(connection)
        if table is None:
            return set()
        return set(
            connection.execute(
                text(
                    f"SELECT DISTINCT record_key FROM {table.qualified} "
                    "WHERE source = 'deployed_notes'"
                )
            ).scalars()
        )


def _prefect(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), *args],
        env=os.environ | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_deploy_all_then_an_ad_hoc_run_with_parameters_is_picked_up_by_a_process_worker(
    prefect_server: dict[str, str], deployed_notes: dict[str, str], db: Engine
) -> None:
    env = prefect_server | deployed_notes
    _prefect(env, "work-pool", "create", "enrichment", "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")

    run = asyncio.run(
        _run_deployment(
            prefect_server["PREFECT_API_URL"],
            "enrich/enrich",
            {"time_budget_seconds": 30, "wait_for_events": False, "batch_size": 2},
        )
    )
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "enrichment", "--run-once"],
        env=os.environ | env,
        cwd=REPO,
    )
    worker.wait(240)
    state = asyncio.run(_flow_run_state(prefect_server["PREFECT_API_URL"], run.id))
    assert state.is_completed(), state
    assert _enriched(db) == {"1", "2", "3", "4", "5"}


@pytest.mark.slow
def test_enrich_serve_runs_an_ad_hoc_run_without_a_worker(
    prefect_server: dict[str, str], deployed_notes: dict[str, str], db: Engine
) -> None:
    env = prefect_server | deployed_notes
    # A deployment of the same name made by `prefect deploy` (the test above) is removed
    # first: serving does not take over a deployment that pulls from a work pool's storage.
    asyncio.run(_delete_deployment(prefect_server["PREFECT_API_URL"], "enrich/enrich"))
    started = datetime.now(UTC)
    served = subprocess.Popen(
        [str(BIN / "enrich"), "serve", "--deployment", "enrich"],
        env=os.environ | env,
        cwd=REPO,
    )
    try:

        def registered() -> bool:
            try:
                asyncio.run(_read_served(prefect_server["PREFECT_API_URL"], started))
                return True
            except Exception:
                return False

        wait_for(registered, 120, "the served deployment")
        run = asyncio.run(
            _run_deployment(
                prefect_server["PREFECT_API_URL"],
                "enrich/enrich",
                {"time_budget_seconds": 30, "wait_for_events": False},
            )
        )

        def finished() -> bool:
            state = asyncio.run(_flow_run_state(prefect_server["PREFECT_API_URL"], run.id))
            return bool(state and state.is_final())

        wait_for(finished, 240, "the served run")
        state = asyncio.run(_flow_run_state(prefect_server["PREFECT_API_URL"], run.id))
    finally:
        served.terminate()
        served.wait(60)
    assert state.is_completed(), state
    assert _enriched(db) == {"1", "2", "3", "4", "5"}


async def _delete_deployment(api_url: str, name: str) -> None:
    with temporary_settings({PREFECT_API_URL: api_url}):
        async with get_client() as client:
            try:
                deployment = await client.read_deployment_by_name(name)
            except ObjectNotFound:
                return
            await client.delete_deployment(deployment.id)


async def _read_served(api_url: str, since: datetime) -> Any:
    with temporary_settings({PREFECT_API_URL: api_url}):
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("enrich/enrich")
    assert deployment.updated >= since  # (re)registered by the serving process
    return deployment
