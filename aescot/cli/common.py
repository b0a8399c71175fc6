"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aescot.store import DatasetStore, StoreError

console = Console(stderr=False)
err_console = Console(stderr=True)

DEFAULT_ROOT = "aescot-data"
RootOption = Annotated[
    str,
    typer.Option(
        "--root", "-r", envvar="AESCOT_ROOT", help="Dataset root: a local folder or an fsspec URI (s3://...)."
    ),
]


def open_store(root: str) -> DatasetStore:
    try:
        return DatasetStore(root)
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error (what is wrong and what to do) and exit non-zero."""
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Progress]:
    """A rich progress bar (quiet when stdout is not a terminal); ``advance`` via ``bar.advance(task, n)``."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        bar.add_task(description, total=total)
        yield bar
