"""``aescot labelstudio start|stop|status|setup``, ``aescot push``, ``aescot collect``, ``aescot agreement``.

Connection: ``LABEL_STUDIO_URL`` + ``LABEL_STUDIO_API_KEY`` for an existing server; without them, the
embedded server started for the dataset by ``aescot labelstudio start`` is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, App, RootOption, console, fail, open_store
from aescot.errors import AescotError

ProjectOption = Annotated[
    str | None, typer.Option("--project", help="Project title (default: aescot screening).")
]

ls_app = App(help="Run the embedded Label Studio and set up the screening project.", no_args_is_help=True)

if TYPE_CHECKING:
    from aescot.labelstudio import LabelStudioConfig
    from aescot.store import DatasetStore


def _config(store: DatasetStore, project: str | None, **overrides) -> LabelStudioConfig:
    from aescot.labelstudio.config import resolve_config

    return resolve_config(store, project_title=project, **overrides)


def _run(fn):
    """Run a stage; its errors (unavailable, configuration, contract) become exit codes in one place
    (:func:`aescot.cli.common.report_errors`), a plain ``ValueError`` a usage error."""
    try:
        return fn()
    except ValueError as exc:
        if isinstance(exc, AescotError):
            raise
        fail(str(exc))


@ls_app.command("start")
def start_cmd(
    root: RootOption = DEFAULT_ROOT, port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080
) -> None:
    """Start the embedded server for this dataset (SQLite, data in <root>/.labelstudio) and leave it running.
    With AESCOT_LABEL_STUDIO_DATABASE=postgresql://user:pass@host:port/name its database is PostgreSQL."""
    from aescot.labelstudio.server import ServerNotFound, ServerStartError, local_server_config, start_server

    store = open_store(root, create=True)
    if not store.is_local:
        fail(
            "the embedded server serves local datasets; for object storage point LABEL_STUDIO_URL at a server"
        )
    cfg = local_server_config(Path(store.root), port=port)
    try:
        server = start_server(cfg)
    except (ServerNotFound, ServerStartError) as exc:
        fail(str(exc))
    where = cfg.database.describe() if cfg.database is not None else "SQLite in " + str(cfg.data_dir)
    console.print(
        f"Label Studio running at [bold]{server.url}[/] (pid {server.pid}, database: {where}); log in as "
        f"{cfg.username}, password in {cfg.data_dir / 'aescot-credentials.json'}"
    )


@ls_app.command("stop")
def stop_cmd(root: RootOption = DEFAULT_ROOT) -> None:
    """Stop the embedded server of this dataset."""
    from aescot.labelstudio.server import stop_server

    stopped = stop_server(Path(open_store(root).root) / ".labelstudio")
    console.print("stopped" if stopped else "not running")


@ls_app.command("status")
def status_cmd(root: RootOption = DEFAULT_ROOT) -> None:
    """Is the embedded server of this dataset running, and where."""
    from aescot.labelstudio.server import server_status

    running = server_status(Path(open_store(root).root) / ".labelstudio")
    console.print(f"running at {running.url} (pid {running.pid})" if running else "not running")
    if running is None:
        raise typer.Exit(1)


@ls_app.command("setup")
def setup_cmd(
    root: RootOption = DEFAULT_ROOT,
    project: ProjectOption = None,
    annotators_per_task: Annotated[int | None, typer.Option(help="Annotations wanted per task.")] = None,
) -> None:
    """Create or update the screening project (config, guidelines, image storage). Idempotent."""
    from aescot.labelstudio import ensure_project

    store = open_store(root)
    cfg = _config(store, project, annotators_per_task=annotators_per_task)
    p = _run(lambda: ensure_project(store, cfg))
    what = "created" if p.created else (f"updated {', '.join(p.changed)}" if p.changed else "up to date")
    console.print(
        f"project {p.id} '{p.title}' {what}; images via {p.storage}; {cfg.url}/projects/{p.id}/data"
    )


def push_cmd(
    root: RootOption = DEFAULT_ROOT,
    project: ProjectOption = None,
    item: Annotated[
        list[str] | None, typer.Option("--item", help="Only these item ids (repeatable).")
    ] = None,
    gold_share: Annotated[float | None, typer.Option(help="Share of pushed tasks that are gold.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Tasks per bulk import call.")] = None,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="List the project's tasks and record any the dataset does not know of first "
            "(after restoring the dataset from a backup).",
        ),
    ] = False,
) -> None:
    """Push screening items not yet in Label Studio as tasks (bulk; re-running pushes nothing twice)."""
    from aescot.labelstudio import push_items

    store = open_store(root)
    cfg = _config(store, project, gold_share=gold_share, chunk_size=chunk_size)
    r = _run(lambda: push_items(store, cfg, item_ids=item, reconcile_first=reconcile))
    console.print(
        f"project {r.project_id}: pushed {r.pushed} ({r.gold_pushed} gold, {r.gold_held_back} gold held "
        f"back), already there {r.already_pushed}, recovered {r.recovered}, rejected {r.rejected}"
    )


def collect_cmd(root: RootOption = DEFAULT_ROOT, project: ProjectOption = None) -> None:
    """Pull annotations changed since the last pull (raw snapshot first), update annotations and labels."""
    from aescot.labelstudio import collect_annotations

    store = open_store(root)
    cfg = _config(store, project)
    r = _run(lambda: collect_annotations(store, cfg))
    console.print(
        f"project {r.project_id}: {r.tasks_changed} tasks changed; annotations new {r.annotations_new}, "
        f"edited {r.annotations_updated}, skipped {r.skipped}, rejected {r.rejected}; labels written "
        f"{r.labels_written}; waiting for adjudication {len(r.needs_adjudication)}"
    )


def agreement_cmd(
    root: RootOption = DEFAULT_ROOT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Krippendorff's alpha per field, per-annotator stats and gold accuracy (from collected annotations)."""
    from aescot.labelstudio import agreement_report, gold_report

    store = open_store(root)
    agreement, gold = agreement_report(store), gold_report(store)
    if as_json:
        console.print_json(json.dumps({"agreement": agreement.to_dict(), "gold": gold.to_dict()}))
        return
    fields = Table(
        "field", "alpha", "units (>=2 raters)", "level", title=f"agreement over {agreement.items} items"
    )
    for f in agreement.fields:
        fields.add_row(f.field, "n/a" if f.alpha is None else f"{f.alpha:.3f}", str(f.units), f.level)
    console.print(fields)
    scores = {g.annotator: g for g in gold.annotators}
    people = Table(
        "annotator",
        "submitted",
        "skipped",
        "mean lead s",
        "agrees w/ consensus",
        "gold n",
        "gold best acc",
        "gold dims acc",
        title=f"annotators (gold items pushed {gold.gold_items_pushed})",
    )
    for s in agreement.annotators:
        g = scores.get(s.annotator)
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
        people.add_row(
            s.annotator,
            str(s.submitted),
            str(s.skipped),
            fmt(s.mean_lead_time_s),
            fmt(s.agrees_with_consensus),
            str(g.gold_items if g else 0),
            fmt(g.best_accuracy if g else None),
            fmt(g.dimension_accuracy if g else None),
        )
    console.print(people)


def register(app: typer.Typer) -> None:
    app.add_typer(ls_app, name="labelstudio")
    app.command("push")(push_cmd)
    app.command("collect")(collect_cmd)
    app.command("agreement")(agreement_cmd)
