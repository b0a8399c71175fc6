"""What ``aescot status`` shows, kept current by the processes that change the store, so that status
itself needs no Lance (whose import alone is ~30 times a bare interpreter start).

The cache lives in ``<root>/.status/`` (local roots only):

* ``tables/<name>.json``: one table's **summary** at one version: rows, fragments, data files with
  their sizes, and the stage detail status prints for it (kept / dropped, requeued, rejects by
  reason). The process that commits a version writes its summary right after the commit
  (:func:`aescot.status_record.record_commit`); a full status writes every table's.
* ``images.json``: the image folders' modification times when the images were last accounted for,
  and the referenced images found missing then. A full status writes it (one listing of every
  image, compared with every reference). A writer keeps it current without a listing: around each
  image it writes it stats the image folder, and at its next commit it moves the folder's recorded
  time forward only if the folder was at the recorded time when it began (so the change was its
  own addition); the rows it commits have their referenced images checked one by one, and a
  referenced image found absent is added to the missing ones.

Status is served from the cache only when every table's newest version (the newest manifest under
``_versions/``, which every Lance commit writes) has its summary, every image folder is at its
recorded time, and every recorded data file is present, at its size and ends in Lance's footer
magic. Anything else (a commit whose writer died before recording it, an image deleted or added by
hand, a damaged file, a first-release folder) takes the full path, which names a damaged file and
writes the cache afresh. Entries are self-describing (a version, folder times), so a stale or lost
write can only send status down the full path, never show counts of another version.

This module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

CACHE_DIR = ".status"
FORMAT = 2
_LANCE_MAGIC = b"LANC"  # the last 4 bytes of every Lance data file
_U64_MAX = 2**64 - 1

# The columns of the tables that reference images (status warns about referenced images that are gone).
IMAGE_REFS = {"sources": ("image_key", "mask_key"), "candidates": ("image_key",)}

# (table, stage label) in pipeline order; tables registered later by other modules are added at the end.
ORDER = [
    ("sources", "sources"),
    ("candidates", "candidates"),
    ("items", "screening items"),
    ("labelstudio_tasks", "tasks in Label Studio"),
    ("annotations", "annotations"),
    ("invalid_annotations", "invalid annotations"),
    ("labels", "labelled items"),
    ("rationales", "rationales"),
    ("selections", "filter decisions"),
]
# bookkeeping tables (ledgers, cursors, indexes) that say nothing a user counts
INTERNAL = {
    "rejects",
    "generation_groups",
    "labelstudio_task_state",
    "labelstudio_cursor",
    "labelstudio_projects",
    "source_outlines",
    "dedupe_hashes",
    "export_splits",
}


def cache_path(root: str) -> str:
    return os.path.join(root, CACHE_DIR)


def _table_path(root: str, table: str) -> str:
    return os.path.join(root, CACHE_DIR, "tables", f"{table}.json")


def _images_path(root: str) -> str:
    return os.path.join(root, CACHE_DIR, "images.json")


# --- reading the store without Lance ------------------------------------------------------------


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
    """What changes whenever the store does, from directory listings and stats only: each table's
    newest version and each image folder's modification time. None when the store holds something
    only the full path handles (a first-release folder, an unreadable table)."""
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
    return {"tables": tables, "images": image_folders(root)}


def image_folders(root: str) -> dict[str, int] | None:
    """The modification time of ``images/`` (".") and of each folder in it (adding or removing an
    image changes its folder's time; a new folder changes the parent's)."""
    out: dict[str, int] = {}
    folder = os.path.join(root, "images")
    try:
        out["."] = os.stat(folder).st_mtime_ns
        for entry in os.scandir(folder):
            if entry.is_dir():
                out[entry.name] = entry.stat().st_mtime_ns
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return out


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


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            got = json.load(fh)
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) and got.get("format") == FORMAT else None


def _write(path: str, obj: dict[str, Any]) -> bool:
    """Replace ``path`` atomically; False (and nothing left behind) when the root is not writable."""
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, **obj}, fh)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        return False
    return True


# --- the report ---------------------------------------------------------------------------------


def assemble(root: str, summaries: dict[str, dict[str, Any]], missing: list[str]) -> dict[str, Any]:
    """What status prints, from each table's summary and the missing images: the same function for
    the cached and the full path, so both print the same thing word for word."""
    ordered = {t for t, _ in ORDER}
    extra = [(t, t.replace("_", " ")) for t in sorted(summaries) if t not in ordered | INTERNAL]
    stages = []
    for table, label in ORDER + extra:
        s = summaries.get(table, {})
        stages.append([label, s.get("rows", 0), s.get("detail", "")])
    stages += [list(r) for r in summaries.get("rejects", {}).get("stage_rows", [])]
    tables = [
        {k: summaries[t][k] for k in ("name", "rows", "version", "fragments", "files")}
        for t in sorted(summaries)
    ]
    return {
        "root": root,
        "stages": stages,
        "tables": tables,
        "verified_files": sum(t["files"] for t in tables),
        "missing_images": len(missing),
        "missing_example": missing[0] if missing else "",
    }


def fresh_status(root: str) -> dict[str, Any] | None:
    """The status of the local store at ``root`` from its cache, if the cache describes the store as it
    is now; else None (the full path counts it)."""
    now = fingerprint(root)
    if now is None or now["images"] is None:
        return None
    summaries = {}
    for table, version in now["tables"].items():
        summary = _load(_table_path(root, table))
        if summary is None or summary.get("version") != version:
            return None
        summaries[table] = summary
    images = _load(_images_path(root))
    if images is None or images.get("folders") != now["images"]:
        return None
    for table, summary in summaries.items():
        folder = os.path.join(root, "tables", f"{table}.lance", "data")
        for rel, size in summary.get("data_files", []):
            if not _file_intact(os.path.join(folder, rel), size):
                return None  # the full path names the file and what is wrong with it
    return assemble(root, summaries, list(images.get("missing", [])))


# --- writing ------------------------------------------------------------------------------------


def record_table(root: str, summary: dict[str, Any]) -> bool:
    """Save one table's summary (``name``, ``version``, ``rows``, ...), unless a newer version's is
    already saved (a writer that committed after this one and recorded first)."""
    path = _table_path(root, summary["name"])
    saved = _load(path)
    if saved is not None and saved.get("version", -1) > summary["version"]:
        return False
    return _write(path, summary)


def forget_table(root: str, table: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(_table_path(root, table))


def images_accounted(root: str) -> bool:
    """Whether a full status has accounted for the images (writers then keep that current)."""
    return os.path.exists(_images_path(root))


def forget_images(root: str) -> None:
    with _writes_lock:
        _writes.pop(root, None)
    with contextlib.suppress(OSError):
        os.remove(_images_path(root))


def save_images(root: str, before: dict[str, Any] | None, missing: list[str]) -> bool:
    """Save a full accounting of the images: the folder times in the store's fingerprint taken before
    it began (``before``) and the referenced images found missing; not when the store changed while it
    ran (a commit could have added references this accounting did not see). Checked under the lock
    writers take to account for their commits, so a commit lands either before the check (and this
    is not saved) or after it (and its writer updates what this saved)."""
    if before is None or before["images"] is None:
        return False
    with _images_lock(root):
        if fingerprint(root) != before:
            return False
        return _write(_images_path(root), {"folders": before["images"], "missing": sorted(missing)})


def account_new_store(root: str) -> bool:
    """Account for the images of a store that has neither tables nor images yet (there are none, none
    missing), so the writers' records keep ``aescot status`` current from its first commit on. A few
    stats when the store exists already."""
    if os.path.exists(_images_path(root)):
        return False
    if any(os.path.exists(os.path.join(root, d)) for d in ("images", "tables")):
        return False  # a store counted by no status yet: the first full count accounts for it
    return save_images(root, fingerprint(root), [])


@contextlib.contextmanager
def _images_lock(root: str):
    """An exclusive lock on ``images.json`` among processes (so one writer's update is not lost
    under another's); without a lock file (a read-only root) updates go ahead unlocked."""
    try:
        os.makedirs(cache_path(root), exist_ok=True)
        fh = open(os.path.join(cache_path(root), "images.lock"), "a+")  # noqa: SIM115
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class _ImageWrites:
    """One process's image writes into one root since its last commit: per folder the time it had
    before the first write and after the last one (None once another change came between), and the
    keys written."""

    folders: dict[str, list[int | None]] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)


_writes: dict[str, _ImageWrites] = {}
_writes_lock = threading.Lock()


def _folder_times(root: str, key: str) -> tuple[str, int | None, int | None]:
    folder = key.split("/")[1]
    base = os.path.join(root, "images")
    times = []
    for path in (base, os.path.join(base, folder)):
        try:
            times.append(os.stat(path).st_mtime_ns)
        except OSError:
            times.append(None)
    return folder, times[0], times[1]


def is_image_key(key: str) -> bool:
    return key.startswith("images/") and key.count("/") == 2


def before_image_write(root: str, key: str) -> tuple[str, int | None, int | None]:
    """The times of ``images/`` and of ``key``'s folder before writing it (for :func:`image_written`)."""
    return _folder_times(root, key)


def image_written(root: str, key: str, before: tuple[str, int | None, int | None], ok: bool) -> None:
    """Note a finished (``ok``) or failed image write: the folders' times move from ``before`` to now."""
    folder, root_before, folder_before = before
    _, root_after, folder_after = _folder_times(root, key)
    with _writes_lock:
        writes = _writes.setdefault(root, _ImageWrites())
        for name, was, now in ((".", root_before, root_after), (folder, folder_before, folder_after)):
            chain = writes.folders.get(name)
            if chain is None:
                writes.folders[name] = [was, now if ok else None]
            elif chain[1] is not None and chain[1] == was and ok:
                chain[1] = now
            else:
                chain[1] = None  # something else changed the folder between our writes (or ours failed)
        if ok:
            writes.keys.add(key)


def account_commit(root: str, absent_refs: list[str], changes_refs: bool) -> None:
    """At a commit: move the recorded image folder times along this process's own image writes, add
    the committed rows' referenced images that are absent (``absent_refs``) to the missing ones and
    drop those written since. ``changes_refs``: the commit changed rows that reference images (a
    reference may have gone), so a non-empty missing list can no longer be trusted."""
    with _writes_lock:
        writes = _writes.pop(root, None)
    if writes is None and not changes_refs:
        return
    path = _images_path(root)
    if not os.path.exists(path):
        return  # the images were never accounted for: the next full status does it
    with _images_lock(root):
        saved = _load(path)
        if saved is None:
            return
        folders = dict(saved.get("folders", {}))
        missing = set(saved.get("missing", []))
        if missing and changes_refs:
            with contextlib.suppress(OSError):
                os.remove(path)  # a reference to a missing image may be gone: recount in full
            return
        for name, (was, now) in (writes.folders if writes else {}).items():
            if now is not None and folders.get(name) == was:
                folders[name] = now
            else:
                folders.pop(name, None)  # a change that was not ours: status counts in full
        if writes:
            missing -= writes.keys
        missing |= set(absent_refs)
        _write(path, {"folders": folders, "missing": sorted(missing)})
