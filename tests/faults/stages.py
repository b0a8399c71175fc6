"""The kill matrix's stage runner: run one stage on a store, optionally SIGKILLed at a chosen write.

``python -m tests.faults.stages STAGE ROOT CONTEXT_JSON KILL_AT`` runs in a subprocess; the same
:func:`run_stage` runs in-process for the reference run and the re-run. ``KILL_AT`` is ``N`` (kill
right after the N-th write completed) or ``N-`` (kill during the N-th write). Writes are counted
where they become visible: a table upsert (one Lance commit), the store's rename of a ``.tmp-*``
file (images, snapshots), and the export writer's move of a ``*.tmp`` shard to its final name.
Killed during a write, a blob or shard leaves its temp file on disk; an upsert leaves its data
files written but not committed (what a kill inside lance's merge_insert leaves: files no version
references). All of this is test instrumentation: the product has no fault hooks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("ingest", "generate", "items", "push", "collect", "rationales", "filter", "export")


_pending: dict[str, Callable[[], None]] = {}  # the data files the upsert in progress would leave


def _is_write(src: Any) -> bool:
    name = os.path.basename(str(src))
    return name.startswith(".tmp-") or name.endswith(".parquet.tmp")


@contextmanager
def watch_writes(on_write: Callable[[str, str, str], None]) -> Iterator[None]:
    """Call ``on_write(phase, src, dst)`` around every visible write (``phase``: before / after)."""
    from fsspec.implementations.local import LocalFileSystem

    from aescot.tables import LanceTables

    real_replace, real_mv, real_upsert = os.replace, LocalFileSystem.mv, LanceTables.upsert

    def replace(src, dst, *args, **kwargs):
        if not _is_write(src):
            return real_replace(src, dst, *args, **kwargs)
        on_write("before", str(src), str(dst))
        out = real_replace(src, dst, *args, **kwargs)
        on_write("after", str(src), str(dst))
        return out

    def mv(self, path1, path2, *args, **kwargs):
        if not _is_write(path1):
            return real_mv(self, path1, path2, *args, **kwargs)
        on_write("before", str(path1), str(path2))
        out = real_mv(self, path1, path2, *args, **kwargs)
        on_write("after", str(path1), str(path2))
        return out

    def upsert(self, table, data, key):
        if not data.num_rows:
            return real_upsert(self, table, data, key)
        uri = self.uri(table)
        _pending["partial"] = lambda: _uncommitted(uri, data)
        try:
            on_write("before", f"table:{table}", uri)
        finally:
            _pending.pop("partial", None)
        out = real_upsert(self, table, data, key)
        on_write("after", f"table:{table}", uri)
        return out

    os.replace, LocalFileSystem.mv, LanceTables.upsert = replace, mv, upsert
    try:
        yield
    finally:
        os.replace, LocalFileSystem.mv, LanceTables.upsert = real_replace, real_mv, real_upsert


def _uncommitted(uri: str, data: Any) -> None:
    """Write a batch's data files into a table's folder without committing them."""
    import lance.fragment

    lance.fragment.write_fragments(data, uri)


def kill_at(spec: str) -> Callable[[str, str, str], None]:
    """An ``on_write`` that SIGKILLs this process at the write ``spec`` names."""
    during, n = spec.endswith("-"), int(spec.rstrip("-"))
    count = {"n": 0}

    def on_write(phase: str, src: str, dst: str) -> None:
        if phase == "before":
            count["n"] += 1
            if during and count["n"] == n:
                _pending.get("partial", lambda: None)()  # an upsert: its data files, uncommitted
                os.kill(os.getpid(), signal.SIGKILL)
        elif not during and count["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    return on_write


def run_stage(stage: str, root: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """Run one stage with the small settings of the matrix; returns a few counts."""
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    if stage == "ingest":
        from aescot.ingest import IngestConfig, ingest

        r = ingest(store, [ctx["inputs"]], IngestConfig(batch_size=3, workers=1))
        return {"added": r.added, "rejected": r.rejected}
    if stage == "generate":
        from aescot.generate import GenerateConfig, generate_candidates

        r = generate_candidates(store, GenerateConfig(backend="synthetic"))
        return {"generated": r.generated}
    if stage == "items":
        from aescot.items import build_items

        return {"built": build_items(store).built}
    if stage in ("push", "collect"):
        from aescot.labelstudio import LabelStudioConfig, collect_annotations, push_items

        cfg = LabelStudioConfig(
            url=ctx["ls_url"],
            api_key=ctx["ls_token"],
            document_root=ctx["ls_document_root"],
            project_title=ctx["ls_project"],
            chunk_size=2,
            gold_share=0.0,
        )
        if stage == "push":
            return {"pushed": push_items(store, cfg).pushed}
        return {"new": collect_annotations(store, cfg).annotations_new}
    if stage == "rationales":
        from aescot.teacher.config import RationaleConfig, TeacherSettings
        from aescot.teacher.rationales import generate_rationales

        teacher = TeacherSettings(
            base_url=ctx["teacher_url"],
            model="kill-matrix-teacher",
            api_key=ctx["teacher_key"],
            concurrency=1,
            image_max_side=32,
            retry_initial_wait_s=0.01,
        )
        r = generate_rationales(store, RationaleConfig(teacher=teacher, samples=2, flush_every=2))
        return {"ok": r.ok, "failed": r.failed}
    if stage == "filter":
        from aescot.teacher.config import FilterConfig
        from aescot.teacher.filter import filter_rationales

        r = filter_rationales(store, FilterConfig(samples=2, min_consistency=0.5))
        return {"decided": r.decided}
    if stage == "export":
        from aescot.export.config import ExportConfig
        from aescot.export.run import export_dataset

        s = export_dataset(
            store, ExportConfig(out=ctx["export_out"], images="uri", plots=False, row_group_rows=2)
        )
        return {"items": s.items}
    raise ValueError(f"unknown stage {stage!r}")


if __name__ == "__main__":
    stage, root, ctx_json, spec = sys.argv[1:5]
    with watch_writes(kill_at(spec)):
        print(json.dumps(run_stage(stage, root, json.loads(ctx_json))))
