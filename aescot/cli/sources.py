"""``aescot ingest`` and ``aescot status``."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, open_store, progress_bar

IGNORED_TEXT = {
    "hidden": "hidden (dot-files/folders)",
    "dangling_symlink": "dangling symlinks",
    "not_an_image": "not images",
}


def ingest_cmd(
    inputs: Annotated[
        list[str], typer.Argument(help="Folders, globs ('photos/**/*.jpg'), or manifest .csv/.parquet files.")
    ],
    root: RootOption = DEFAULT_ROOT,
    near_duplicate_distance: Annotated[
        int,
        typer.Option(
            help="Hamming radius in bits of the 256-bit pHash for near-duplicate sources (-1: off)."
        ),
    ] = 12,
    colour_distance: Annotated[
        int | None,
        typer.Option(
            help="A grey-near file is the same source only if its colour signature is at most this many "
            "percent from the source's (another colour: another source; -1: grey pHash alone) "
            "[default: ingest's, measured].",
            min=-1,
        ),
    ] = None,
    object_distance: Annotated[
        int | None,
        typer.Option(
            help="A file whose object hash (the pHash of the image reframed on its object) is at most this "
            "many bits from a source's is the same source: a crop that leaves the product whole, a border, "
            "a shift, a resize (-1: plain pHash only) [default: ingest's, measured].",
            min=-1,
        ),
    ] = None,
    max_side: Annotated[
        int, typer.Option(help="Downscale sources whose longest side is larger.", min=1)
    ] = 2048,
    min_side: Annotated[int, typer.Option(help="Reject sources whose shorter side is smaller.", min=1)] = 64,
    workers: Annotated[int, typer.Option(help="Decoding threads (at least 1).")] = 2,
) -> None:
    """Ingest source photos: normalise, mask, hash; reject bad files with a reason.

    A manifest has a 'path' column and optional 'mask' and 'product' columns. A mask can
    also sit beside its photo as '<name>.mask.png'. Re-running adds nothing already there.
    """
    from aescot.ingest import IngestConfig, ingest

    store = open_store(root, create=True)
    colour = {} if colour_distance is None else {"colour_distance": colour_distance}
    objects = {} if object_distance is None else {"object_distance": object_distance}
    cfg = IngestConfig(near_duplicate_distance=near_duplicate_distance, workers=workers, **colour, **objects)
    cfg.limits.max_side, cfg.limits.min_side = max_side, min_side
    with progress_bar("ingest") as bar:
        task = bar.task_ids[0]
        report = ingest(
            store,
            inputs,
            cfg,
            progress=lambda n: bar.advance(task, n),
            on_discovered=lambda n: bar.update(task, total=n),
        )
    console.print(
        f"[bold]ingest[/] {report.seen} files: [green]{report.added} added[/], "
        f"{report.already_present} already present, [red]{report.rejected} rejected[/]"
        + (
            f", {report.ignored_files} ignored ("
            + ", ".join(f"{n} {IGNORED_TEXT.get(r, r)}" for r, n in sorted(report.ignored.items()))
            + ")"
            if report.ignored_files
            else ""
        )
    )
    if report.colour_kept:
        console.print(
            f"{report.colour_kept} added although grey-near a source: another colour (colour signatures "
            f"more than {cfg.colour_distance}% apart)"
        )
    if report.rejects:
        table = Table("file", "reason", "detail", title="rejected", title_justify="left")
        for r in report.rejects:
            table.add_row(r.subject, r.reason, r.detail)
        console.print(table)
    console.print(f"store: {store.root}")


def status_cmd(root: RootOption = DEFAULT_ROOT) -> None:
    """Counts per stage (sources, candidates, items, tasks, annotations, labels, rationales, kept) and
    each table's version, fragments and files. A missing root is an error (exit 2): nothing is created."""
    report = None
    if "://" not in root and os.path.isdir(root):  # unchanged since the last status: no Lance needed
        from aescot.status_cache import fresh_status

        report = fresh_status(os.path.abspath(root))
        if report is not None:
            report["root"] = os.path.abspath(root)  # the folder may have moved since
    if report is None:
        store = open_store(root)  # a missing root fails here, before the counting code is imported
        from aescot.status import status_report

        report = status_report(store)  # a damaged file raises DamagedStore (one line, exit 3) first
    _print_status(report)


def _print_status(report: dict) -> None:
    table = Table("stage", "count", "detail", title=f"aescot status — {report['root']}", title_justify="left")
    for stage, count, detail in report["stages"]:
        table.add_row(stage, str(count), detail)
    console.print(table)
    if report["tables"]:
        tables = Table("table", "rows", "version", "fragments", "files", title="tables", title_justify="left")
        for st in report["tables"]:
            tables.add_row(st["name"], *(str(st[k]) for k in ("rows", "version", "fragments", "files")))
        console.print(tables)
    console.print(
        f"verified: {report['verified_files']} table files (present, full size, footers); "
        "every page and image: `aescot doctor`"
    )
    if report["missing_images"]:
        console.print(
            f"[yellow]warning:[/] {report['missing_images']} referenced images are missing "
            f"(e.g. {report['missing_example']}); run `aescot doctor --root {report['root']}`"
        )


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.command("status")(status_cmd)
