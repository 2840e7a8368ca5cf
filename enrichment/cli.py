"""The ``enrich`` command line for operators."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from enrichment import capture, embedded, migrate, vectors
from enrichment.config import (
    EnrichConfig,
    LocalBackend,
    LocalEmbedding,
    OpenAIEmbedding,
    load_config,
    load_config_if_present,
)
from enrichment.database import database_url, get_engine, libpq_url
from enrichment.embedders.base import Embedder
from enrichment.errors import EnrichmentError, InvalidInput
from enrichment.events import enqueue, parse_event
from enrichment.notifications import EventListener
from enrichment.queue import Queue
from enrichment.search import MAX_K, Searcher, SearchFilters, SearchMode, SearchQuery
from enrichment.settings import get_settings
from enrichment.sources import build_embedder, build_pipelines, load_runner, reembed, sync
from enrichment.states import Action, Reason
from enrichment.status import queue_status
from quality import alerts as quality_alerts
from quality.config import MonitoringConfig
from quality.config import metric_options as monitoring_metric_options
from quality.health import configured_embedders, run_health
from quality.metrics import MetricOptions, Scope, compute_metrics
from quality.prometheus import PipelineCollector
from quality.prometheus import serve as serve_metrics

app = typer.Typer(
    help="Staged enrichment of PostgreSQL records into pgvector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The database: embedded server and schema migrations.", no_args_is_help=True
)
events_app = typer.Typer(help="Mutation events: the queue's input.", no_args_is_help=True)
sources_app = typer.Typer(
    help="Configured sources: registration and change capture.", no_args_is_help=True
)
vectors_app = typer.Typer(
    help="Vector tables, one per embedding model (blue-green).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(sources_app, name="sources")
app.add_typer(vectors_app, name="vectors")
embedders_app = typer.Typer(
    help="Local embedding models: the ONNX exports of the onnx backends.", no_args_is_help=True
)
app.add_typer(embedders_app, name="embedders")
metrics_app = typer.Typer(
    help="Monitoring metrics: show them, or serve them to Prometheus.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Threshold alerts and their state.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")
app.add_typer(alerts_app, name="alerts")

# Piped output (logs, CI) is not cut to 80 columns; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
SourceOption = Annotated[str | None, typer.Option("--source", help="Only this source.")]
StageOption = Annotated[str | None, typer.Option("--stage", help="Only this stage.")]
ErrorTypeOption = Annotated[
    str | None, typer.Option("--error-type", help="Only failures of this error type.")
]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


# --- db ---------------------------------------------------------------------------------------


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL (or reuse the running one) and print its URL."""
    settings = get_settings()
    if settings.database_url:
        console.print("DATABASE_URL is set: nothing to start.")
        return
    console.print(embedded.start(settings.resolved_pgdata_dir, settings.embedded_database))


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    settings = get_settings()
    if settings.database_url:
        console.print("DATABASE_URL is set: the embedded server is not in use.")
        return
    stopped = embedded.stop(settings.resolved_pgdata_dir)
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status(as_json: JsonOption = False) -> None:
    """Whether the embedded server runs, where its data lives, and the schema revision."""
    settings = get_settings()
    info: dict[str, Any]
    if settings.database_url:
        info = {"mode": "external", "url": _redact(settings.database_url)}
        running = True
    else:
        state = embedded.status(settings.resolved_pgdata_dir, settings.embedded_database)
        info = {
            "mode": "embedded",
            "pgdata": str(state.pgdata),
            "running": state.running,
            "pid": state.pid,
            "url": state.url,
        }
        running = state.running
    if running:
        engine = get_engine()
        info["revision"] = migrate.current_revision(engine)
        info["head"] = migrate.head_revision()
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/bold]: {value}")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    sys.stdout.write(database_url() + "\n")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply schema migrations. Safe to run again, and from several processes at once."""
    engine = get_engine()
    migrate.upgrade(engine, revision)
    console.print(f"schema at {migrate.current_revision(engine)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops everything).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Revert schema migrations (destroys the data of the reverted tables)."""
    if not yes:
        typer.confirm(f"Downgrade the enrichment schema to {revision!r}?", abort=True)
    engine = get_engine()
    migrate.downgrade(engine, revision)
    console.print(f"schema at {migrate.current_revision(engine)}")


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# --- queue ------------------------------------------------------------------------------------


@app.command("status")
def status(source: SourceOption = None, as_json: JsonOption = False) -> None:
    """Per source and stage: counts by status, backlog, oldest pending age and dead letters.

    due: PENDING and claimable; wait: PENDING behind an unfinished earlier stage; run:
    IN_PROGRESS; retry: FAILED with a retry scheduled; dead: dead letters (`enrich failures`);
    backlog: due + run + retry; oldest: age of the oldest request in the backlog."""
    with get_engine().connect() as connection:
        report = queue_status(connection, source=source)
    if as_json:
        _print_json(report.as_dict())
        return
    for source_name in dict.fromkeys(stage.source for stage in report.stages):
        title = f"source [bold]{source_name}[/bold]"
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("stage", no_wrap=True)
        for column in ("due", "wait", "run", "retry", "done", "skip", "dead", "backlog", "oldest"):
            table.add_column(column, justify="right", no_wrap=True)
        for stage in report.stages:
            if stage.source != source_name:
                continue
            table.add_row(
                stage.stage,
                str(stage.pending),
                str(stage.waiting),
                str(stage.in_progress),
                str(stage.retrying),
                str(stage.completed),
                str(stage.skipped),
                f"[red]{stage.dead_letters}[/red]" if stage.dead_letters else "0",
                str(stage.backlog),
                _age(report.age_seconds(stage.oldest_pending_since)),
            )
        console.print(table)
    if not report.stages:
        console.print("no records in the queue")
    console.print(
        f"events waiting to fold: {report.unfolded_events} "
        f"(oldest {_age(report.age_seconds(report.oldest_unfolded_since))}); "
        f"rejected: {report.rejected_events}"
    )


@app.command("failures")
def failures(
    source: SourceOption = None,
    stage: StageOption = None,
    error_type: ErrorTypeOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List dead letters (failed, no attempt left) with error type, message and attempts."""
    with get_engine().connect() as connection:
        letters = Queue(connection).dead_letters(
            source=source, stage=stage, error_type=error_type, limit=limit
        )
    if as_json:
        _print_json([letter.__dict__ for letter in letters])
        return
    table = Table(title=f"Dead letters ({len(letters)} shown)", box=box.SIMPLE_HEAD)
    for column in ("source", "stage", "record", "workspace", "tries", "error"):
        table.add_column(column, no_wrap=True, justify="right" if column == "tries" else "left")
    table.add_column("message", ratio=1, min_width=24, overflow="fold")
    table.add_column("failed", no_wrap=True)
    for letter in letters:
        table.add_row(
            letter.source,
            letter.stage,
            letter.record_key,
            letter.workspace_id,
            str(letter.attempts),
            letter.error_type or "",
            letter.error_message or "",
            letter.failed_at.strftime("%m-%d %H:%M") if letter.failed_at else "",
        )
    console.print(table)


@app.command("retry")
def retry(
    source: SourceOption = None,
    stage: StageOption = None,
    error_type: ErrorTypeOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Requeue dead letters (all, or those matching --source, --stage and --error-type)."""
    if not yes and not any((source, stage, error_type)):
        typer.confirm("Requeue every dead letter?", abort=True)
    with get_engine().begin() as connection:
        count = Queue(connection).retry_dead_letters(
            source=source, stage=stage, error_type=error_type
        )
    console.print(f"requeued {count} dead letters")


@app.command("rechecks")
def rechecks(
    source: SourceOption = None,
    workspace: Annotated[str | None, typer.Option(help="Only this workspace.")] = None,
    requeue: Annotated[
        bool, typer.Option("--requeue", help="Re-queue the records whose re-check is due.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Records a confidence gate holds back, with their next re-check (or none left)."""
    from enrichment.rechecks import gated_records, requeue_due_rechecks

    if requeue:
        with get_engine().begin() as connection:
            count = requeue_due_rechecks(
                connection, source=source, workspace=workspace, limit=limit
            )
        console.print(f"re-queued {count} records whose re-check was due")
        return
    with get_engine().connect() as connection:
        held = gated_records(connection, source=source, workspace=workspace, limit=limit)
    if as_json:
        _print_json([record.__dict__ for record in held])
        return
    table = Table(title=f"Gated records ({len(held)} shown)", box=box.SIMPLE_HEAD)
    for column in ("source", "stage", "record", "workspace", "re-checks", "next re-check"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", ratio=1, min_width=24, overflow="fold")
    for record in held:
        table.add_row(
            record.source,
            record.stage,
            record.record_key,
            record.workspace_id,
            f"{record.rechecks}/{record.max_rechecks}",
            record.due_at.strftime("%m-%d %H:%M") if record.due_at else "none left",
            record.reason,
        )
    console.print(table)


@events_app.command("add")
def events_add(
    source: Annotated[str, typer.Option(help="Source the records belong to.")],
    workspace: Annotated[str, typer.Option(help="Workspace of the records.")],
    ids: Annotated[list[str], typer.Argument(help="Record keys.")],
    action: Annotated[
        Action, typer.Option(case_sensitive=False, help="What happened.")
    ] = Action.UPDATE,
    reason: Annotated[
        Reason, typer.Option(case_sensitive=False, help="Why.")
    ] = Reason.MANUAL_REEMBED,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Drop the event if this key was seen.")
    ] = None,
) -> None:
    """Append one event for the given records."""
    event = parse_event(
        {
            "source": source,
            "workspace_id": workspace,
            "record_ids": ids,
            "action": action,
            "reason": reason,
            "idempotency_key": idempotency_key,
        },
        label="command line",
    )
    with get_engine().begin() as connection:
        result = enqueue(connection, [event])
    console.print(f"queued {result.inserted} event(s), {result.duplicates} duplicate(s) dropped")


@events_app.command("load")
def events_load(
    path: Annotated[Path, typer.Argument(help="JSON lines file of events, or - for stdin.")],
) -> None:
    """Append events from JSON lines (one event object per line); all or nothing."""
    stream = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    events = []
    with stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            label = f"{path}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise EnrichmentError(f"{label}: not JSON ({err.msg})") from None
            if not isinstance(raw, dict):
                raise EnrichmentError(f"{label}: expected a JSON object, got {type(raw).__name__}")
            events.append(parse_event(raw, label=label))
    with get_engine().begin() as connection:
        result = enqueue(connection, events)
    console.print(f"queued {result.inserted} event(s), {result.duplicates} duplicate(s) dropped")


# --- sources, runs, vectors ---------------------------------------------------------------------


def _config() -> EnrichConfig:
    return load_config(get_settings().config_path)


@sources_app.command("list")
def sources_list(as_json: JsonOption = False) -> None:
    """The sources of the configuration file, with their tables and stages."""
    config = _config()
    rows = [
        {
            "source": s.name,
            "table": s.table,
            "stages": [stage.kind for stage in s.stages],
            "related": [r.table for r in s.related],
            "privacy": s.privacy,
        }
        for s in config.sources
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"Sources in {get_settings().config_path}", box=box.SIMPLE_HEAD)
    for column in ("source", "table", "stages", "related", "privacy"):
        table.add_column(column)
    for s in config.sources:
        table.add_row(
            s.name,
            s.table,
            " → ".join(stage.kind for stage in s.stages),
            ", ".join(r.table for r in s.related) or "-",
            s.privacy,
        )
    console.print(table)


@sources_app.command("sync")
def sources_sync() -> None:
    """Register the configured sources; re-queue those whose configuration changed."""
    engine = get_engine()
    config = _config()
    for result in sync(engine, config, build_pipelines(engine, config, get_settings())):
        console.print(f"{result.source}: registered, {result.requeued} records re-queued")


@sources_app.command("install")
def sources_install(source: SourceOption = None) -> None:
    """Install the change-capture triggers (source and related tables). Safe to run again."""
    config = _config()
    with get_engine().begin() as connection:
        for selected in config.selected(source):
            capture.install(connection, selected)
            console.print(f"{selected.name}: triggers installed on {selected.table}")
    console.print("Existing rows are not queued by this; `enrich reembed --source S` queues them.")


@sources_app.command("uninstall")
def sources_uninstall(source: SourceOption = None) -> None:
    """Remove the change-capture triggers."""
    config = _config()
    with get_engine().begin() as connection:
        for selected in config.selected(source):
            capture.uninstall(connection, selected)
            console.print(f"{selected.name}: triggers removed")


@app.command("reembed")
def reembed_command(
    source: Annotated[str, typer.Option("--source", help="Source to re-embed.")],
    workspace: Annotated[str | None, typer.Option(help="Only this workspace.")] = None,
    ids: Annotated[list[str] | None, typer.Option("--ids", help="Only these record keys.")] = None,
    force: Annotated[
        bool, typer.Option("--force/--no-force", help="Redo every stage even if unchanged.")
    ] = True,
) -> None:
    """Queue records of a source table again (all, a workspace's, or the given ids)."""
    config = _config()
    with get_engine().begin() as connection:
        count = reembed(
            connection, config.source(source), workspace=workspace, ids=ids, force=force
        )
    console.print(f"queued {count} records of {source}")


@app.command("run")
def run(
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only these sources.")
    ] = None,
    stage: Annotated[list[str] | None, typer.Option("--stage", help="Only these stages.")] = None,
    workspace: Annotated[str | None, typer.Option(help="Only this workspace.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=100_000)] = None,
    time_budget: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    max_records: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many claims.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="With --time-budget: when idle, wait for new events until it ends."
        ),
    ] = False,
) -> None:
    """Drain the queue now, in this process (no Prefect): every stage, batch by batch."""
    _, runner = load_runner(get_settings(), get_engine())
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(EventListener(libpq_url(database_url()))) if wait else None
        report = runner.drain(
            sources=source,
            stages=stage,
            workspace=workspace,
            batch_size=batch_size,
            time_budget=time_budget,
            max_records=max_records,
            wait_for_events=listener.wait if listener else None,
        )
    _print_json(report.summary())


@vectors_app.command("list")
def vectors_list(as_json: JsonOption = False) -> None:
    """Vector tables with their model, dimension, state and row count."""
    with get_engine().connect() as connection:
        found = [(t, vectors.row_count(connection, t)) for t in vectors.tables(connection)]
    if as_json:
        _print_json([{**t.__dict__, "rows": rows} for t, rows in found])
        return
    table = Table(title="Vector tables", box=box.SIMPLE_HEAD)
    for column in ("table", "model", "version", "dims", "state", "rows"):
        table.add_column(column)
    for t, rows in found:
        table.add_row(t.name, t.model_name, t.model_version, str(t.dimensions), t.state, str(rows))
    console.print(table)


@vectors_app.command("activate")
def vectors_activate(name: Annotated[str, typer.Argument(help="Table to serve searches.")]) -> None:
    """Switch searches to another vector table (after its backfill); the old one is retired."""
    with get_engine().begin() as connection:
        table = vectors.activate(connection, name)
    console.print(f"{table.name} is active ({table.model_version})")


@embedders_app.command("prepare")
def embedders_prepare(source: SourceOption = None, as_json: JsonOption = False) -> None:
    """Export and verify the ONNX models of the configured local embedders now (once per
    model version; workers then start from the cache). A refusal exits with code 2."""
    from enrichment.config import EmbedStageConfig
    from enrichment.embedders.local_onnx import OnnxEmbedder

    settings = get_settings()
    rows = []
    for selected in _config().selected(source):
        stage = selected.stage("embed")
        if not isinstance(stage, EmbedStageConfig) or not isinstance(
            stage.embedding, LocalEmbedding
        ):
            continue
        embedder = build_embedder(stage.embedding, data_dir=settings.data_dir)
        row: dict[str, Any] = {
            "source": selected.name,
            "backend": stage.embedding.backend,
            "model_version": embedder.model_version,
        }
        if isinstance(embedder, OnnxEmbedder):
            exported = embedder.export()
            row.update(
                directory=str(exported.directory),
                at_export=exported.verification.to_json(),
                here=embedder.verification.to_json(),
            )
        rows.append(row)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print("No source embeds with the local provider.")
    for row in rows:
        if "directory" not in row:
            console.print(f"{row['source']}: {row['model_version']}: torch, nothing to export")
            continue
        console.print(
            f"{row['source']}: {row['model_version']} in {row['directory']}; verified against "
            f"torch: min cosine {row['at_export']['min_cosine']:.6f} at export, "
            f"{row['here']['min_cosine']:.6f} here"
        )


# --- monitoring: health, metrics, alerts ---------------------------------------------------------


def _optional_config() -> EnrichConfig | None:
    """The configuration file when there is one (validated); None without it."""
    return load_config_if_present(get_settings().config_path)


def _metric_options(config: EnrichConfig | None, window_minutes: float | None) -> MetricOptions:
    monitoring = config.monitoring if config is not None else MonitoringConfig()
    if window_minutes is not None:
        monitoring = monitoring.model_copy(update={"window_minutes": window_minutes})
    return monitoring_metric_options(monitoring, config, get_settings().retry_delays)


WindowOption = Annotated[
    float | None,
    typer.Option("--window-minutes", min=1, help="Window of rates and latencies (default 60)."),
]


@app.command("health")
def health(
    as_json: JsonOption = False,
    stall_minutes: Annotated[
        float, typer.Option(min=1, help="A backlog this old with nothing finished is a stall.")
    ] = 15.0,
    skip_model: Annotated[
        bool, typer.Option("--skip-model", help="Do not load the embedding models.")
    ] = False,
) -> None:
    """Can the pipeline work? The embedding models load and embed, pgvector is writable, the
    queue is draining (no backlog sitting while nothing finishes). Exit status 1 if not."""
    config = _optional_config()
    report = run_health(
        get_engine(),
        None if skip_model else (lambda: configured_embedders(config)),
        stall_seconds=stall_minutes * 60,
    )
    if as_json:
        _print_json(report.as_dict())
    else:
        for check in report.checks:
            mark = "[green]ok[/green]  " if check.healthy else "[red]FAIL[/red]"
            console.print(f"{mark} {check.name:<9} {check.detail} ({check.seconds:.2f} s)")
        console.print("healthy" if report.healthy else "[red]unhealthy[/red]")
    if not report.healthy:
        raise typer.Exit(1)


@metrics_app.command("show")
def metrics_show(
    source: SourceOption = None,
    window_minutes: WindowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every metric now, per source (and all sources); --json: every scope and metric."""
    config = _optional_config()
    with get_engine().connect() as connection:
        metrics = compute_metrics(connection, _metric_options(config, window_minutes))
    if as_json:
        report = metrics.as_dict()
        if source:
            report["scopes"] = [s for s in report["scopes"] if s["source"] == source]
        _print_json(report)
        return
    scopes = [Scope(), *metrics.scopes("source")]
    if source:
        scopes = [s for s in scopes if s.source == source]
    table = Table(title=f"Metrics at {metrics.taken_at:%Y-%m-%d %H:%M:%S}", box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for scope in scopes:
        table.add_column(scope.label, justify="right", no_wrap=True)
    names = sorted({name for scope in scopes for name in metrics.for_scope(scope)})
    for name in names:
        cells = []
        for scope in scopes:
            value = metrics.value(name, scope)
            cells.append("-" if value is None else f"{value:,.4g}")
        table.add_row(name, *cells)
    console.print(table)


@metrics_app.command("serve")
def metrics_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free).")] = 9464,
    cache_seconds: Annotated[
        float, typer.Option(min=0, help="Scrapes within this many seconds share a reading.")
    ] = 15.0,
    window_minutes: WindowOption = None,
) -> None:
    """Serve the metrics to Prometheus on http://HOST:PORT/metrics until interrupted."""
    collector = PipelineCollector(
        get_engine(),
        _metric_options(_optional_config(), window_minutes),
        cache_seconds=cache_seconds,
    )
    server, thread = serve_metrics(collector, host=host, port=port)
    console.print(f"serving http://{host}:{server.server_port}/metrics (Ctrl-C stops)")
    try:
        while thread.is_alive():
            thread.join(timeout=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


@alerts_app.command("list")
def alerts_list(
    all_alerts: Annotated[
        bool, typer.Option("--all", help="Resolved ones too (most recent first).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Alerts firing now (with --all: the recent history), as the monitor flow left them."""
    with get_engine().connect() as connection:
        found = (
            quality_alerts.recent(connection, limit=limit)
            if all_alerts
            else quality_alerts.firing(connection)[:limit]
        )
    if as_json:
        _print_json([alert.as_dict() for alert in found])
        return
    table = Table(title=f"Alerts ({len(found)})", box=box.SIMPLE_HEAD)
    for column in ("status", "severity", "rule", "scope", "value", "threshold", "since"):
        table.add_column(column, no_wrap=True)
    for alert in found:
        table.add_row(
            alert.status,
            f"[red]{alert.severity}[/red]" if alert.severity == "critical" else alert.severity,
            alert.rule,
            alert.scope.label,
            "-" if alert.value is None else f"{alert.value:.4g}",
            f"{alert.comparison} {alert.threshold:g}",
            f"{alert.first_seen:%m-%d %H:%M}",
        )
    console.print(table)


# --- search -----------------------------------------------------------------------------------


def _search_embedder(config: EnrichConfig | None) -> Embedder:
    """The embedder of the active vector table's model among the configured ones (and the
    packaged default model on each runtime, which a table may still hold while its successor
    is filled). Without a match, the first configured one: the search then says what does
    not match."""
    with get_engine().connect() as connection:
        active = vectors.active_table(connection)
    candidates: dict[str, LocalEmbedding | OpenAIEmbedding] = {}
    for source in config.sources if config else []:
        stage = source.stage("embed")
        if stage is not None:
            candidates.setdefault(stage.embedding.model_dump_json(), stage.embedding)
    for backend in get_args(LocalBackend):
        packaged = LocalEmbedding(backend=backend)
        candidates.setdefault(packaged.model_dump_json(), packaged)
    built = []
    for embedding in candidates.values():
        try:
            embedder = build_embedder(embedding)
        except EnrichmentError:
            continue  # e.g. an API key that is not set: not this one
        if active is not None and embedder.model_version == active.model_version:
            return embedder
        built.append(embedder)
    if not built:
        raise EnrichmentError("no embedding model could be built from the configuration")
    return built[0]


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace to search (required).")],
    mode: Annotated[
        SearchMode, typer.Option(case_sensitive=False, help="vector, lexical or hybrid.")
    ] = SearchMode.HYBRID,
    k: Annotated[int, typer.Option("--k", help=f"Results wanted (1-{MAX_K}).")] = 10,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable).")
    ] = None,
    entity_type: Annotated[
        list[str] | None, typer.Option("--entity-type", help="Only this entity type (repeatable).")
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="Only this semantic category (repeatable)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Updated at or after (ISO date or time).")
    ] = None,
    before: Annotated[
        str | None, typer.Option("--before", help="Updated before (ISO date or time).")
    ] = None,
    expand: Annotated[
        bool, typer.Option("--expand", help="Add records one hop from the hits.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Search one workspace's enriched records (hybrid: vector + full text, fused by rank)."""
    settings = get_settings()
    config = load_config_if_present(settings.config_path)
    request = SearchQuery(
        text=query,
        workspace=workspace,
        mode=mode,
        k=k,
        filters=SearchFilters(
            sources=tuple(source or ()),
            entity_types=tuple(entity_type or ()),
            categories=tuple(category or ()),
            updated_since=_moment("--since", since),
            updated_before=_moment("--before", before),
        ),
        expand=expand,
    )
    embedder = None if request.mode is SearchMode.LEXICAL else _search_embedder(config)
    searcher = Searcher(get_engine(), embedder, config=config, role=settings.search_role)
    response = searcher.search(request)
    if as_json:
        _print_json(response.as_dict())
        return
    title = (
        f"{len(response.results)} results in workspace {workspace!r} ({request.mode}, "
        f"{response.seconds * 1000:.0f} ms)"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("#", "score", "source", "record", "updated"):
        numeric = column in {"#", "score"}
        table.add_column(column, no_wrap=True, justify="right" if numeric else "left")
    table.add_column("snippet", ratio=1, min_width=30, overflow="fold")
    for rank, result in enumerate(response.results, start=1):
        snippet = result.snippet if result.snippet is not None else "[text not stored]"
        if result.expanded_from is not None:
            snippet = f"[dim]↳ {result.expanded_from.reason}[/dim]\n{snippet}"
        table.add_row(
            str(rank),
            f"{result.score:.4f}",
            result.source,
            result.record_key,
            result.updated_at.strftime("%Y-%m-%d"),
            snippet,
        )
    console.print(table)


def _moment(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            option, f"{value!r} is not an ISO date or time like 2026-01-31 or 2026-01-31T08:00"
        ) from None


# --- demo -------------------------------------------------------------------------------------


@app.command("demo")
def demo(
    records: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Fulfilment exceptions to seed.")
    ] = 1000,
    workspaces: Annotated[int, typer.Option(min=1, max=100, help="Merchants.")] = 4,
    seed: Annotated[int, typer.Option(help="The same seed gives the same exceptions.")] = 7,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Records per batch.")] = 64,
) -> None:
    """Seed the fulfilment demo, run the shipped pipeline once (a Prefect flow), print what came
    of it: labels against the ground truth, redactions, summaries, the queue status."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from rich.markdown import Markdown

    from enrichment.fulfilment.outcome import SOURCE, DemoOutcome
    from flows.demo import demo_flow

    summary = demo_flow(records=records, workspaces=workspaces, seed=seed, batch_size=batch_size)
    status(source=SOURCE, as_json=False)
    console.print()
    result = DemoOutcome.from_json(summary["outcome"])
    console.print(Markdown(result.render()))
    if summary["dead_lettered"]:
        failures(source=SOURCE, stage=None, error_type=None, limit=5, as_json=False)
        console.print("`enrich failures` lists every dead letter; `enrich retry` requeues them.")
    workspace = result.samples[0].workspace_id if result.samples else "WORKSPACE"
    console.print(
        '\nNext: `enrich search "parcel stuck in customs" --workspace '
        f"{workspace}` finds exceptions by meaning; `enrich rechecks` lists what the "
        "gate holds back; change a row (UPDATE fulfilment.exceptions ...; `enrich db url` for "
        "psql) and `enrich run` enriches only what changed."
    )


@app.command("serve")
def serve(
    deployment: Annotated[
        list[str] | None,
        typer.Option("--deployment", "-d", help="Serve only this deployment (repeatable)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Most flow runs at once in this process.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Deployments file (default: prefect.yaml).")
    ] = None,
) -> None:
    """Serve every deployment of prefect.yaml from this process (schedules, and ad hoc runs
    from the Prefect UI), for a single machine without a work pool or worker."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect loads only here: the other commands start without it.
    from prefect import serve as prefect_serve

    from deployments.serving import PREFECT_YAML, read_deployments, runner_deployments

    served = runner_deployments(read_deployments(file or PREFECT_YAML), only=deployment)
    console.print("serving: " + ", ".join(d.name for d in served))
    prefect_serve(*served, limit=limit)


# --- quality report ---------------------------------------------------------------------------


@app.command("report")
def report(
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to", help="E-mail it here (repeatable); default ENRICH_REPORT_TO or enrich.yaml."
        ),
    ] = None,
    no_email: Annotated[bool, typer.Option("--no-email", help="Write it only.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Directory to write to; default ENRICH_REPORT_DIR or reports."
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=90, help="Days of trends and failures.")] = 7,
    smtp_block: Annotated[
        str | None, typer.Option(help="EmailServerCredentials block to send with.")
    ] = None,
) -> None:
    """Render the quality report now: metrics, trends, failures, dead letters, confidence,
    integrity checks and capacity. Written to a file (its path is printed) and e-mailed when
    an SMTP server is configured."""
    # Imported here: Great Expectations and matplotlib take seconds to load, which every other
    # command would pay.
    from quality.email import mail_config, send_report
    from quality.report import (
        ReportOptions,
        build_report,
        report_directory,
        write_report,
    )

    config = _optional_config()
    built = build_report(get_engine(), ReportOptions.configured(get_settings(), config, days=days))
    path, rendered = write_report(built, report_directory(output))
    console.print(built.subject, soft_wrap=True, markup=False)
    console.print(f"written to {path}", soft_wrap=True, markup=False)
    if no_email:
        return
    channel = config.monitoring.channels.email if config is not None else None
    mail = mail_config(to=to, block=smtp_block, channel=channel)
    if mail is None:
        if to:
            err_console.print(
                "[yellow]not e-mailed:[/yellow] no SMTP server (set ENRICH_SMTP_HOST or "
                "ENRICH_SMTP_BLOCK)",
                soft_wrap=True,
            )
        return
    send_report(rendered, mail)
    console.print(f"e-mailed to {', '.join(mail.to)}", soft_wrap=True, markup=False)


def main() -> None:
    """Entry point: errors of bad input end with a one-line message and exit code 2."""
    try:
        app()
    except EnrichmentError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise SystemExit(2) from None
