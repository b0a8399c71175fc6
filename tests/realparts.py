"""Real parts the tests start (Label Studio, Chromium, Prefect, the S3 server): what to do when one
cannot start, decided in one place.

* Absent here (not installed): **skip** locally, saying what is missing; **fail** in CI (``CI=true``,
  or the older ``AESCOT_REQUIRE_LABEL_STUDIO=1``), so a green CI run means every real part ran.
* Installed but does not start: **fail** everywhere, with the part's log.
* Optional extras (a library only some users install) skip with the extra's name: :func:`optional`.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

TRUE = {"1", "true", "yes", "on"}


def required() -> bool:
    """True when every real part must run: in CI, or with ``AESCOT_REQUIRE_LABEL_STUDIO=1``."""
    return (
        os.environ.get("CI", "").strip().lower() in TRUE
        or os.environ.get("AESCOT_REQUIRE_LABEL_STUDIO", "").strip() == "1"
    )


def absent(part: str, why: str) -> NoReturn:
    """``part`` is not installed here: skip (fail in CI)."""
    if required():
        pytest.fail(f"{part} is not available and CI needs every real part: {why}", pytrace=False)
    pytest.skip(f"{part} is not available here ({why}); in CI (CI=true) this fails")


def broken(part: str, why: str, log: str = "") -> NoReturn:
    """``part`` is installed but did not start: fail, with its log."""
    tail = f"\n--- {part} log (tail) ---\n{log[-4000:]}" if log else ""
    pytest.fail(f"{part} did not start: {why}{tail}", pytrace=False)


def need(module: str, part: str, install: str) -> ModuleType:
    """Import ``module`` that a real part needs (e.g. moto's server), or :func:`absent`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        absent(part, f"cannot import {module} ({exc}); install {install}")


def optional(module: str, extra: str) -> ModuleType:
    """Import ``module`` from an optional extra, or skip saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"needs the optional extra '{extra}' ({module}: {exc}); pip install -e '.[{extra}]'")
