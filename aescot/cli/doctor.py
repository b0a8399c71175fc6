"""``aescot doctor`` (check every table file and referenced image) and ``aescot repair`` (move damage aside)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, open_store
from aescot.errors import EXIT_STORE


def doctor_cmd(
    root: RootOption = DEFAULT_ROOT,
    quick: Annotated[
        bool, typer.Option("--quick", help="Only the file list and footers (what the flow checks at start).")
    ] = False,
) -> None:
    """Check every table file (footers and every column) and every referenced image; exit 3 on a problem."""
    from aescot.doctor import check_store

    store = open_store(root)
    report = check_store(store, deep=not quick)
    what = "footers" if quick else "footers, every column, referenced images"
    console.print(
        f"[bold]doctor[/] {store.root}: {report.tables} tables, {report.files} files, {report.rows} rows"
        + ("" if quick else f", {report.images} referenced images")
        + f" checked ({what})"
    )
    if report.ok:
        console.print("[green]no problems found[/]")
        return
    table = Table("problem", "table", "file", "detail", "what to do", title_justify="left")
    for column in table.columns[2:]:
        column.overflow = "fold"  # paths and commands are shown whole, never cut with an ellipsis
    prefix = store.uri("")
    for p in report.problems:
        table.add_row(p.kind, p.table, p.path.removeprefix(prefix), p.detail, p.fix)
    console.print(table)
    console.print(f"[red]{len(report.problems)} problems[/]")
    raise typer.Exit(EXIT_STORE)


def repair_cmd(root: RootOption = DEFAULT_ROOT) -> None:
    """Move damaged table files to <root>/quarantine/ (so reads work again) and say which rows to rebuild."""
    from aescot.doctor import repair_store

    store = open_store(root)
    report = repair_store(store)
    if not report.moved and not report.temps_removed and not report.remaining:
        console.print("[green]nothing to repair[/]")
        return
    for m in report.moved:
        rows = "an unknown number of rows" if m.rows is None else f"{m.rows} rows"
        keys = f" (keys: {', '.join(str(k)[:16] for k in m.keys[:5])}{' ...' if len(m.keys) > 5 else ''})"
        console.print(
            f"moved {m.path} -> {m.to}: table {m.table!r} lost {rows}{keys if m.keys else ''}; "
            f"rebuild with: {m.rebuild}"
        )
    if report.temps_removed:
        console.print(f"removed {report.temps_removed} temp files of dead writers")
    for p in report.remaining:
        console.print(f"[yellow]not repaired:[/] {p.kind} {p.path} — {p.fix}")
    if report.remaining:
        raise typer.Exit(EXIT_STORE)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
    app.command("repair")(repair_cmd)
