"""``aescot doctor`` (check every table file and referenced image) and ``aescot repair`` (take damage out)."""

from __future__ import annotations

from typing import Annotated

import typer

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, open_store
from aescot.errors import EXIT_STORE


def doctor_cmd(
    root: RootOption = DEFAULT_ROOT,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Only check each data file is present, full size, with a readable footer (what the flow checks).",
        ),
    ] = False,
) -> None:
    """Read every page of every table file and check every referenced image; exit 3 on a problem."""
    from aescot.doctor import check_store

    store = open_store(root)
    report = check_store(store, deep=not quick)
    what = "sizes and footers" if quick else "every page of every file, referenced images"
    console.print(
        f"[bold]doctor[/] {store.root}: {report.tables} tables, {report.files} files, {report.rows} rows"
        + ("" if quick else f", {report.images} referenced images")
        + f" checked ({what})"
    )
    if report.ok:
        console.print("[green]no problems found[/]")
        return
    for p in report.problems:  # one line each, never wrapped: paths and commands copy as they are
        where = f"table {p.table!r}, " if p.table else ""
        console.print(f"[red]{p.kind}[/]: {where}{p.path}: {p.detail}", soft_wrap=True, highlight=False)
        console.print(f"  what to do: {p.fix}", soft_wrap=True, highlight=False)
    console.print(f"[red]{len(report.problems)} problems[/]")
    raise typer.Exit(EXIT_STORE)


def repair_cmd(root: RootOption = DEFAULT_ROOT) -> None:
    """Take unreadable fragments out of their tables (a new version; other rows stay), keep a copy of the
    files in <root>/quarantine/, and say which rows were lost and which command rebuilds them."""
    from aescot.doctor import repair_store

    store = open_store(root)
    report = repair_store(store)
    if not report.moved and not report.temps_removed and not report.remaining:
        console.print("[green]nothing to repair[/]")
        return
    for m in report.moved:
        keys = f" (keys: {', '.join(str(k)[:16] for k in m.keys[:5])}{' ...' if len(m.keys) > 5 else ''})"
        kept = f"copy kept at {m.to}" if m.to else "the file was gone, nothing to copy"
        console.print(
            f"table {m.table!r} lost {m.rows} rows{keys if m.keys else ' (their keys could not be read)'}: "
            f"{m.path} taken out of the table; {kept}; rebuild with: {m.rebuild}",
            soft_wrap=True,
        )
    for name, (old, new) in sorted(report.versions.items()):
        console.print(f"table {name!r}: version {old} -> {new} (the damaged version stays in its history)")
    if report.temps_removed:
        console.print(f"removed {report.temps_removed} temp files of dead writers")
    for p in report.remaining:
        console.print(f"[yellow]not repaired:[/] {p.kind} {p.path} — {p.fix}", soft_wrap=True)
    if report.remaining:
        raise typer.Exit(EXIT_STORE)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
    app.command("repair")(repair_cmd)
