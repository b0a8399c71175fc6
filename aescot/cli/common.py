"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from aescot.errors import EXIT_USAGE, AescotError, exit_code, one_line

if TYPE_CHECKING:  # the store imports pyarrow and fsspec: only commands that open one pay for them
    from rich.progress import Progress

    from aescot.store import DatasetStore

console = Console(stderr=False)
err_console = Console(stderr=True)

DEFAULT_ROOT = "aescot-data"
RootOption = Annotated[
    str,
    typer.Option(
        "--root", "-r", envvar="AESCOT_ROOT", help="Dataset root: a local folder or an fsspec URI (s3://...)."
    ),
]


def open_store(root: str, create: bool = False) -> DatasetStore:
    """The dataset at ``root``. Only commands that add data pass ``create=True``: a read command on a
    mistyped root says "no dataset at PATH" (exit 2) instead of creating an empty one."""
    if not create and "://" not in root and not os.path.isdir(root):
        # a local root that is not there: say so before the store (pyarrow, Lance) is even imported
        from aescot.errors import NoDataset

        raise NoDataset(os.path.abspath(root))
    from aescot.store import open_store as open_dataset

    return open_dataset(root, create=create)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print a one-line error (what is wrong and what to do) and exit non-zero."""
    err_console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def option_name(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the command-line option it most likely came from."""
    names = [str(p) for p in loc if not isinstance(p, int)]
    return "--" + (names[-1] if names else "config").replace("_", "-")


def validation_message(exc: Any) -> str:
    """A pydantic ``ValidationError`` as one line naming the options."""
    return "; ".join(f"{option_name(e['loc'])}: {e['msg']}" for e in exc.errors())


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The one place that turns errors into exit codes and one-line messages (see :mod:`aescot.errors`).

    Every command is wrapped by :class:`App`; unexpected exceptions keep their traceback (a bug).
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AescotError as exc:
            fail(one_line(exc), exit_code(exc))
        except Exception as exc:
            # settings built from options; pydantic is imported only by commands that build settings
            # (0.1 s that `aescot status` on an unchanged store does not pay), so look it up, not import it
            pydantic = sys.modules.get("pydantic")
            if pydantic is not None and isinstance(exc, pydantic.ValidationError):
                fail(validation_message(exc), EXIT_USAGE)
            raise

    return run


class App(typer.Typer):
    """A Typer app whose commands report :class:`~aescot.errors.AescotError` as one line + exit code."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            register(report_errors(fn))
            return fn

        return decorator


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Progress]:
    """A rich progress bar (quiet when stdout is not a terminal); ``advance`` via ``bar.advance(task, n)``."""
    from rich.progress import (  # here, not at start: --help and read commands never draw one
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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
