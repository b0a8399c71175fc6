"""One error tree for the whole package.

Every error aescot raises on purpose is an :class:`AescotError`, and belongs to one of a few families
that say what the caller can do about it::

    AescotError
    ├── ConfigError          settings, options or credentials are wrong: fix them, retrying is useless
    ├── InputError           an input file or value is bad (usually recorded as a reject, not raised)
    ├── StoreError           the dataset cannot be opened, read or written
    │   ├── NoDataset        there is no dataset at that root (read commands never create one)
    │   └── DamagedStore     a table file is truncated or garbled: run `aescot doctor` / `aescot repair`
    ├── ServiceUnavailable   a server (Label Studio, the teacher) did not answer in time: retry later
    ├── ContractError        data does not follow its contract (a bug, or a foreign writer)
    └── StageFailed          a stage ran but nothing it tried succeeded (e.g. every teacher call failed)

The CLI maps this tree to exit codes and one-line messages in one place (:func:`exit_code`); the
flow does not retry :class:`ConfigError` (:func:`is_retryable`). This module imports nothing of aescot.
"""

from __future__ import annotations

# Exit codes of the ``aescot`` command (documented in the README's "Reliability" section).
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but its work failed (nothing succeeded, a leak check failed, ...)
EXIT_USAGE = 2  # a wrong option, setting or credential, or no dataset at the root
EXIT_STORE = 3  # the store is damaged or cannot be written
EXIT_UNAVAILABLE = 4  # a service did not answer within its deadline; work so far is saved
EXIT_CONTRACT = 5  # data broke its contract: a bug, please report it
EXIT_INTERRUPTED = 130


class AescotError(Exception):
    """Root of every error aescot raises on purpose; ``str(exc)`` is one line saying what to do."""

    exit_code = EXIT_FAILED


class ConfigError(AescotError):
    """Settings, options or credentials are missing or wrong. Retrying cannot help."""

    exit_code = EXIT_USAGE


class InputError(AescotError):
    """An input (a file, a manifest, a value) is unusable."""

    exit_code = EXIT_USAGE


class StoreError(AescotError):
    """The dataset store cannot be opened, read or written."""

    exit_code = EXIT_STORE


class NoDataset(StoreError):
    """There is no dataset at the given root (read commands never create one)."""

    exit_code = EXIT_USAGE

    def __init__(self, root: str):
        super().__init__(f"no dataset at {root}: check --root (or AESCOT_ROOT), or run `aescot ingest` first")
        self.root = root


class DamagedStore(StoreError):
    """A table file cannot be read (truncated, zero bytes, garbled pages)."""

    def __init__(self, table: str, path: str, detail: str, root: str = ""):
        where = f" --root {root}" if root else ""
        super().__init__(
            f"table {table!r}: file {path} is damaged ({detail}); run `aescot doctor{where}` to list "
            f"damaged files and `aescot repair{where}` to move them aside"
        )
        self.table, self.path, self.detail = table, path, detail


class ServiceUnavailable(AescotError):
    """A server did not answer in time; work done so far is saved, re-run to resume."""

    exit_code = EXIT_UNAVAILABLE


class ContractError(AescotError):
    """Data does not follow its contract."""

    exit_code = EXIT_CONTRACT


class StageFailed(AescotError):
    """A stage ran, but nothing it attempted succeeded; the message summarises the causes."""

    exit_code = EXIT_FAILED


def exit_code(exc: BaseException) -> int:
    """The ``aescot`` exit status for an exception (the one place that maps errors to codes)."""
    if isinstance(exc, AescotError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the same call can help: never for configuration, input or contract errors."""
    return not isinstance(exc, (ConfigError, InputError, ContractError, NoDataset, DamagedStore))


def one_line(exc: BaseException, limit: int = 600) -> str:
    """The error's message on one line (whitespace folded, cut at ``limit`` characters)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
