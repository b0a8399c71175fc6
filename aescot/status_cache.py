"""The last ``aescot status`` of a local store, reused while nothing in the store has changed.

Counting needs Lance and pyarrow, which take most of the command's time to import (about 25 times a
bare interpreter start). A store that has not changed since the last status needs neither: this
module, which imports only the standard library, decides that and re-checks the data files itself.

The cache (``<root>/.status.json``) holds what status printed plus the store's **fingerprint** at
that time: each table's latest version (the newest manifest under ``_versions/``, which every Lance
commit writes), the data files of that version with their sizes, and the modification time of the
image folders (adding or deleting an image changes its folder's mtime). It is reused only when

* the fingerprint taken now equals the cached one (no commit, no table added or removed, no image
  added or removed, no first-release folder that ``aescot migrate`` must convert), and
* every cached data file is present, has its recorded size and ends in Lance's footer magic.

Otherwise status takes the full path (Lance), which also names a damaged file, and writes a new
cache when the store did not change while it counted. Object-store roots always take the full path.
"""

from __future__ import annotations

import json
import os
from typing import Any

CACHE_NAME = ".status.json"
FORMAT = 1
_LANCE_MAGIC = b"LANC"  # the last 4 bytes of every Lance data file
_U64_MAX = 2**64 - 1


def cache_path(root: str) -> str:
    return os.path.join(root, CACHE_NAME)


def _latest_version(versions_dir: str) -> int | None:
    """The newest version among ``_versions/*.manifest``: Lance's V2 names count down from
    ``2**64 - 1`` (the newest sorts first), V1 names are the version itself."""
    newest = None
    try:
        names = os.listdir(versions_dir)
    except OSError:
        return None
    for name in names:
        stem, _, ext = name.partition(".")
        if ext != "manifest" or not stem.isdigit():
            continue
        n = int(stem)
        version = _U64_MAX - n if n > 2**63 else n
        newest = version if newest is None else max(newest, version)
    return newest


def fingerprint(root: str) -> dict[str, Any] | None:
    """What changes whenever the store does, from directory listings and stats only; None when the
    store holds something only the full path handles (a first-release folder, an unreadable table)."""
    tables: dict[str, int] = {}
    base = os.path.join(root, "tables")
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        entries = []
    except OSError:
        return None
    for entry in entries:
        if not entry.is_dir():
            continue
        if not entry.name.endswith(".lance"):
            return None  # a first-release table folder (part files): status refuses it, with the fix
        version = _latest_version(os.path.join(entry.path, "_versions"))
        if version is None:
            return None
        tables[entry.name[: -len(".lance")]] = version
    images: dict[str, int] = {}
    folder = os.path.join(root, "images")
    try:
        images["."] = os.stat(folder).st_mtime_ns
        for entry in os.scandir(folder):
            if entry.is_dir():
                images[entry.name] = entry.stat().st_mtime_ns
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return {"tables": tables, "images": images}


def _file_intact(path: str, size: int | None) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            actual = fh.tell()
            if size is not None and actual != size:
                return False
            if actual < len(_LANCE_MAGIC):
                return False
            fh.seek(-len(_LANCE_MAGIC), os.SEEK_END)
            return fh.read(len(_LANCE_MAGIC)) == _LANCE_MAGIC
    except OSError:
        return False


def fresh_status(root: str) -> dict[str, Any] | None:
    """The cached status of the local store at ``root`` if it still describes the store, else None."""
    try:
        with open(cache_path(root), encoding="utf-8") as fh:
            cached = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("format") != FORMAT:
        return None
    if fingerprint(root) != cached.get("fingerprint"):
        return None
    for table, files in cached.get("files", {}).items():
        folder = os.path.join(root, "tables", f"{table}.lance", "data")
        for rel, size in files:
            if not _file_intact(os.path.join(folder, rel), size):
                return None  # the full path names the file and what is wrong with it
    return cached


def save_status(root: str, before: dict[str, Any] | None, report: dict[str, Any]) -> bool:
    """Write ``report`` (what status printed, plus ``files`` and the table versions it counted) as the
    cache, if the store is as it was when counting began (``before``) and the counts are of the
    versions that fingerprint names. Returns whether it was written; a read-only root is no error."""
    if before is None or fingerprint(root) != before:
        return False
    if {t["name"]: t["version"] for t in report["tables"]} != before["tables"]:
        return False  # a commit landed while counting: these counts are of an older version
    payload = {"format": FORMAT, "fingerprint": before, **report}
    tmp = cache_path(root) + f".tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, cache_path(root))
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        return False
    return True
