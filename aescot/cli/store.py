"""``aescot compact`` (merge a table's small files now) and ``aescot migrate`` (convert a first-release store)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, fail, open_store
from aescot.errors import EXIT_USAGE

RootArgument = Annotated[
    str | None,
    typer.Argument(help="Dataset root (a local folder or an fsspec URI); default: --root / AESCOT_ROOT."),
]


def _root(positional: str | None, option: str) -> str:
    if positional and option not in (DEFAULT_ROOT, positional):
        fail(f"two roots given ({positional} and --root {option}): give one")
    return positional or option


def compact_cmd(
    root_arg: RootArgument = None,
    table: Annotated[str | None, typer.Option("--table", "-t", help="Only this table.")] = None,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Merge each table's small files into few, update its key index and drop versions older than 15
    minutes that no export tag keeps. Upserts do this by themselves once a table passes 32 fragments."""
    from aescot.store import register_all_tables

    store = open_store(_root(root_arg, root))
    register_all_tables()
    names = store.table_names()
    if table is not None and table not in names:
        fail(f"no table {table!r} in {store.root} (tables: {', '.join(names) or 'none'})")
    names = [table] if table else names
    if not names:
        console.print(f"no tables in {store.root}: nothing to compact")
        return
    before = {name: store.table_state(name) for name in names}
    out = Table(
        "table",
        "rows",
        "fragments",
        "files",
        "version",
        title=f"compact — {store.root}",
        title_justify="left",
    )
    for after in store.compact(table):
        old = before.get(after.name)
        if old is None:
            continue
        rows = str(after.rows) if after.rows == old.rows else f"{old.rows} -> {after.rows}"
        out.add_row(
            after.name,
            rows,
            f"{old.fragments} -> {after.fragments}",
            f"{old.files} -> {after.files}",
            f"{old.version} -> {after.version}",
        )
    console.print(out)


def migrate_cmd(root_arg: RootArgument = None, root: RootOption = DEFAULT_ROOT) -> None:
    """Convert a first-release store (tables as part-*.parquet files) to the current table format, once.

    Each table is verified by row count and keys before its part files move to
    tables/.first-release/. Safe to kill and re-run; refuses a store with nothing left to convert."""
    from aescot.errors import StoreError, one_line
    from aescot.legacy import BACKUP, legacy_tables, migrate
    from aescot.store import register_all_tables

    store = open_store(_root(root_arg, root))
    register_all_tables()  # tables owned by other modules (Label Studio, dedupe, ...) need their schemas
    pending = legacy_tables(store)
    try:
        report = migrate(store)
    except StoreError as exc:
        if pending:
            raise
        fail(one_line(exc), EXIT_USAGE)  # nothing to convert: a wrong command, not a damaged store
    out = Table("table", "rows", title=f"migrated — {store.root}", title_justify="left")
    for name, rows in sorted(report.tables.items()):
        out.add_row(name, str(rows))
    console.print(out)
    console.print(
        f"every table verified by row count and keys; the part files are kept in {store.uri(BACKUP)}"
    )


def register(app: typer.Typer) -> None:
    app.command("compact")(compact_cmd)
    app.command("migrate")(migrate_cmd)
