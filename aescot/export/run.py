"""``export_dataset``: the export stage, from the store's tables to a training-ready folder.

Output layout (``out`` is a local folder or any fsspec URI)::

    <out>/README.md                     dataset card (Hugging Face YAML header: configs, licence)
    <out>/plots/*.png                   card plots
    <out>/dataset_info.json             LLaMA-Factory dataset registry for the sft folders
    <out>/manifest.json                 input fingerprint, config, counts, leak check (written last)
    <out>/<format>/<split>/<split>-00000-of-00001.parquet

The export is a snapshot, and says of what: before reading, it tags the current version of every
table it reads with its id (:mod:`aescot.export.history`) and reads only through that pinned
view, so concurrent writers cannot mix into it; the id and the versions go into the manifest and
the card. ``export_dataset(store, cfg, as_of=TAG)`` reads the tagged versions again and writes the
same files byte for byte (nothing in the output comes from the clock or a random source), and
writes nothing to the store.

Reads follow the work: the split plan needs the key, source and defect columns of every labelled
item; everything else (labels, items, selections, the chosen rationales, annotations, candidates
for the card) is read by key a batch at a time with only the columns used.

Running it again with unchanged inputs and config does nothing (fingerprint in the manifest);
with changed inputs it rebuilds in a staging folder and swaps each format folder in only when
every file is written, so a crash never leaves a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aescot.errors import ConfigError
from aescot.export import history
from aescot.export.batch import BatchRows, read_batch
from aescot.export.config import ExportConfig, ExportSummary
from aescot.export.features import FORMATS, LETTERS, features
from aescot.export.prompt import student_prompt_text
from aescot.export.rows import pair_rows, rl_row, sft_rows, verl_row
from aescot.export.scores import SCORE_PROMPT, candidate_sections, score_rl_row, score_sft_row, score_stats
from aescot.export.splits import SPLITS, SPLITS_TABLE, LeakReport, SplitPlan, assign_splits, check_leaks
from aescot.export.writer import ShardWriter
from aescot.ids import canonical_json, sha256_bytes
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore
from aescot.teacher.parse import AnswerFormatError, parse_answer
from aescot.timeutil import now_iso

STAGE = "export"
SCORE_FORMATS = history.SCORE_FORMATS


class AsOfError(ConfigError, ValueError):
    """An ``--as-of`` export cannot reproduce what was asked (settings differ from the tagged export's)."""


# --- reading inputs -----------------------------------------------------------------------------------


@dataclass
class _Inputs:
    """What the split plan needs of every labelled item, and nothing else (rows are read per batch)."""

    item_dims: dict[str, tuple[str, list[str]]]  # item -> (source, defect dimensions of its candidates)
    phash: dict[str, str]
    previous: dict[str, str]
    missing_items: list[str]  # labelled items without an item record


def _read_inputs(store: DatasetStore, cfg: ExportConfig) -> _Inputs:
    labels = store.read_arrow("labels", columns=["item_id", "dimensions"])
    items = store.read_arrow("items", columns=["item_id", "source_id"])
    keys = labels.select(["item_id"]).append_column("__row", pa.array(range(labels.num_rows), pa.int64()))
    joined = keys.join(items, "item_id", join_type="left outer", use_threads=False).sort_by("item_id")
    has_item = pc.is_valid(joined.column("source_id"))
    missing = joined.filter(pc.invert(has_item)).column("item_id").to_pylist()
    joined = joined.filter(has_item)
    dims = labels.column("dimensions").take(joined.column("__row")).combine_chunks()
    per_letter = [dims.field(k).to_pylist() for k in LETTERS]
    item_dims: dict[str, tuple[str, list[str]]] = {}
    for i, (item_id, source_id) in enumerate(
        zip(joined.column("item_id").to_pylist(), joined.column("source_id").to_pylist(), strict=True)
    ):
        item_dims[item_id] = (source_id, [d for lists in per_letter for d in (lists[i] or [])])
    src = store.read_arrow("sources", columns=["source_id", "phash"])
    phash = dict(zip(src.column("source_id").to_pylist(), src.column("phash").to_pylist()))
    previous: dict[str, str] = {}
    if not cfg.resplit:
        prev = store.read_arrow(SPLITS_TABLE.name, columns=["source_id", "split"])
        previous = dict(zip(prev.column("source_id").to_pylist(), prev.column("split").to_pylist()))
    return _Inputs(item_dims, phash, previous, missing)


def _fingerprint(versions: dict[str, int], cfg: ExportConfig, prompt_text: str, plan: SplitPlan) -> str:
    """SHA-256 over the config, the prompt, the versions of the tables read and the split of every item.

    The remembered splits enter through the plan, not their table's version: the export's own write of
    new assignments must not make the next run with unchanged inputs rebuild."""
    head = {
        "config": cfg.fingerprint_part(),
        "prompt": prompt_text,
        "versions": {t: v for t, v in versions.items() if t != SPLITS_TABLE.name},
    }
    if SCORE_FORMATS & set(cfg.formats):
        head["score_prompt"] = SCORE_PROMPT
    h = hashlib.sha256(canonical_json(head).encode())
    ids = sorted(plan.split_of_item)
    for start in range(0, len(ids), 8192):
        part = ids[start : start + 8192]
        h.update(canonical_json([[i, plan.split_of_item[i]] for i in part]).encode())
    return h.hexdigest()


# --- the run ------------------------------------------------------------------------------------------


def _image_value(store: DatasetStore, key: str, mode: str) -> dict[str, Any]:
    if mode == "embed":
        if store.is_local:  # a plain open is ~5x faster than fsspec's, and pathlib costs as much as the read
            with open(os.path.join(store.path, key), "rb") as fh:
                data = fh.read()
        else:
            data = store.read_bytes(key)
        return {"bytes": data, "path": posixpath.basename(key)}
    if not (os.path.exists(os.path.join(store.path, key)) if store.is_local else store.exists(key)):
        raise FileNotFoundError(key)
    return {"bytes": None, "path": store.uri(key)}


def _plan(inp: _Inputs, cfg: ExportConfig, rejects: list[Reject]) -> SplitPlan:
    for item_id in inp.missing_items:
        rejects.append(
            Reject(STAGE, item_id, "item_missing", "a label exists but its screening item does not")
        )
    return assign_splits(
        inp.item_dims, inp.phash, cfg.ratios, cfg.seed, cfg.near_duplicate_bits, inp.previous
    )


def _pin(
    store: DatasetStore, cfg: ExportConfig, as_of: str | None
) -> tuple[DatasetStore, str, dict[str, int]]:
    """The read-only view this export reads through, its id and the versions it pins.

    A normal export tags the current versions of its input tables with its id first. ``as_of`` (a tag
    an export printed, or an ISO time) reads that snapshot; with a tag the settings must be that
    export's (the id is recomputed from them and the tagged versions, and must be the tag)."""
    if as_of is None:
        versions = history.pinned_versions(store, cfg)
        eid = history.export_id(versions, cfg)
        store.tag_versions(eid, versions)
        return store.at(eid), eid, versions
    view = store.at(as_of)
    versions = history.pinned_versions(view, cfg)
    if "labels" not in versions:
        raise AsOfError(f"{store.root} had no labels as of {as_of}: nothing to export")
    eid = history.export_id(versions, cfg)
    if history.EXPORT_ID.match(as_of) and eid != as_of:
        raise AsOfError(
            f"the settings given are not those of export {as_of} (they make {eid}): "
            "export with its recorded settings (aescot export OUT --as-of TAG, without other options)"
        )
    return view, eid, versions


def _created_at(store: DatasetStore, eid: str, as_of: str | None) -> str | None:
    """When this export id was first written (recorded in the store), else now for a normal export, or
    the ``as_of`` time itself for an as-of export of a time no export recorded."""
    rec = history.recorded(store, eid)
    if rec is not None:
        return rec["created_at"]
    if as_of is None:
        return now_iso()
    return history.iso_ref(as_of)


def export_as_of(store: DatasetStore, ref: str, out: str, force: bool = False) -> ExportSummary:
    """Write the export recorded under ``ref`` (an export id) again into ``out``, byte for byte."""
    rec = history.recorded(store, ref)
    if rec is None:
        raise AsOfError(f"no export {ref!r} is recorded in {store.root}: pass its settings with an ISO time")
    cfg = ExportConfig(**rec["config"], out=out, force=force)
    return export_dataset(store, cfg, as_of=ref)


def export_dataset(store: DatasetStore, config: ExportConfig, as_of: str | None = None) -> ExportSummary:
    """Export every labelled item: SFT (kept items with their rationale), RL and pairs (all labelled items).

    Bad items (missing item record, missing image, kept without a rationale) are recorded in the
    ``rejects`` table with their reason and left out; the run goes on. ``as_of`` (an export id or an
    ISO time) reads the store as it was then and writes nothing to it.
    """
    cfg = config
    fs, out = fsspec.core.url_to_fs(cfg.out)
    out = out.rstrip("/")
    prompt_text = student_prompt_text()
    view, eid, versions = _pin(store, cfg, as_of)
    inp = _read_inputs(view, cfg)
    rejects: list[Reject] = []
    plan = _plan(inp, cfg, rejects)
    fingerprint = _fingerprint(versions, cfg, prompt_text, plan)
    manifest_path = posixpath.join(out, "manifest.json")
    if not cfg.force and fs.exists(manifest_path):
        old = json.loads(fs.cat_file(manifest_path))
        if old.get("fingerprint") == fingerprint:
            return ExportSummary(
                out=cfg.out,
                skipped=True,
                rows=old["rows"],
                items=old["items"],
                leak_ok=old["leak"]["ok"],
                leak_summary=old["leak"]["summary"],
                fingerprint=fingerprint,
                files=old["files"],
                export_id=old.get("export_id", ""),
                versions=old.get("versions", {}),
                created_at=old.get("created_at"),
                as_of=as_of,
            )
    created_at = _created_at(store, eid, as_of)
    from aescot.export.card import CardStats  # matplotlib import only when writing

    stats = CardStats()

    for g in plan.conflicts:
        rejects.append(
            Reject(
                STAGE,
                g,
                "split_conflict",
                "near-duplicate sources were in several splits before; the group now goes to train",
                related_id=g,
            )
        )

    for stale in fs.glob(posixpath.join(out, ".staging-*")):  # left by an export that was killed
        fs.rm(stale, recursive=True)
    staging = posixpath.join(out, f".staging-{uuid.uuid4().hex[:12]}")
    rows: dict[str, dict[str, int]] = {f: {} for f in cfg.formats}
    items_per_split: Counter = Counter()
    score_counts: Counter = Counter()
    final_files: list[str] = []
    try:
        for split in SPLITS:
            ids = sorted(
                (i for i, s in plan.split_of_item.items() if s == split),
                key=lambda i: sha256_bytes(f"{cfg.seed}:{i}".encode()),
            )
            if not ids:
                continue
            writers = {
                f: ShardWriter(
                    fs,
                    posixpath.join(staging, f, split),
                    split,
                    features(f),
                    cfg.rows_per_shard,
                    cfg.row_group_rows,
                    cfg.row_group_bytes,
                )
                for f in cfg.formats
            }
            for start in range(0, len(ids), cfg.batch_size):
                batch = ids[start : start + cfg.batch_size]
                rows_of = read_batch(view, batch, want_scores=bool(SCORE_FORMATS & set(cfg.formats)))
                stats.add(view, split, batch, rows_of)
                n = _export_batch(
                    view, rows_of, cfg, batch, split, prompt_text, writers, rejects, score_counts
                )
                items_per_split[split] += n
            for f, w in writers.items():
                if w.rows:
                    final_files += [p[len(staging) + 1 :] for p in w.close()]
                    rows[f][split] = w.rows
                else:
                    w.abort()
        leak = _check_written(fs, staging, final_files, inp.phash, cfg.near_duplicate_bits, plan.near_pairs)
        for f in FORMATS:  # swap in each format folder whole; a format not exported now is removed
            target = posixpath.join(out, f)
            if fs.exists(target):
                fs.rm(target, recursive=True)
            if f in cfg.formats and fs.exists(posixpath.join(staging, f)):
                fs.mv(posixpath.join(staging, f), target, recursive=True)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)

    if as_of is None:  # an as-of export reads a snapshot and leaves the store as it is
        if plan.new_sources or cfg.resplit:
            _remember_splits(store, plan, cfg, now_iso(), only_new=not cfg.resplit)
        if rejects:
            record_rejects(store, rejects)

    from aescot.export.card import write_card

    summary = ExportSummary(
        out=cfg.out,
        skipped=False,
        rows=rows,
        items={s: items_per_split.get(s, 0) for s in SPLITS},
        rejects=len(rejects),
        reject_reasons=dict(Counter(r.reason for r in rejects)),
        split_conflicts=len(plan.conflicts),
        scores=dict(score_counts),
        leak_ok=leak.ok,
        leak_summary=leak.summary(),
        fingerprint=fingerprint,
        files=sorted(final_files),
        export_id=eid,
        versions=versions,
        created_at=created_at,
        as_of=as_of,
    )
    write_card(fs, out, cfg, summary, plan, leak, stats, prompt_text)
    if as_of is None:
        history.record(store, eid, created_at or now_iso(), fingerprint, versions, cfg)
    manifest = {
        "export_id": eid,
        "versions": versions,
        "created_at": created_at,
        "fingerprint": fingerprint,
        "config": cfg.recorded(),
        "rows": rows,
        "items": summary.items,
        "files": summary.files,
        "leak": {"ok": leak.ok, "summary": leak.summary()},
        "rejects": summary.reject_reasons,
        "scores": summary.scores,
    }
    with fs.open(manifest_path, "w") as fh:
        fh.write(json.dumps(manifest, indent=1))
    return summary


def _export_batch(
    store: DatasetStore,
    rows_of: BatchRows,
    cfg: ExportConfig,
    batch: list[str],
    split: str,
    prompt_text: str,
    writers: dict[str, ShardWriter],
    rejects: list[Reject],
    score_counts: Counter | None = None,
) -> int:
    labels, items, selections = rows_of.labels, rows_of.items, rows_of.selections
    rationales, annotations = rows_of.rationales, rows_of.annotations
    done = 0
    for item_id in batch:
        item, label = items[item_id], labels[item_id]
        keys = [item["source_image_key"]] + [
            c["image_key"] for c in sorted(item["candidates"], key=lambda c: c["letter"])
        ]
        try:
            images = [_image_value(store, k, cfg.images) for k in keys]
        except (FileNotFoundError, OSError) as exc:
            rejects.append(
                Reject(STAGE, item_id, "image_missing", f"cannot read image {exc}", item["source_id"])
            )
            continue
        payload = sum(len(im["bytes"] or b"") for im in images)
        sel = selections.get(item_id)
        if sel and sel["kept"] and ({"sft", "sft_trl"} & set(writers)):
            rat = rationales.get(sel["rationale_id"] or "")
            problem = _rationale_problem(rat)
            if rat is None or not (rat["text"] or "").strip():
                rejects.append(
                    Reject(
                        STAGE,
                        item_id,
                        "rationale_missing",
                        f"kept with rationale {sel['rationale_id']!r}, which is missing or empty",
                        sel["rationale_id"],
                    )
                )
            elif problem:
                rejects.append(
                    Reject(
                        STAGE,
                        item_id,
                        "rationale_unparseable",
                        f"the kept rationale does not end in a readable answer ({problem}); "
                        "it would teach the wrong format",
                        sel["rationale_id"],
                    )
                )
            else:
                sharegpt, trl = sft_rows(item, label, sel, rat, images, split, prompt_text)
                if "sft" in writers:
                    writers["sft"].write(sharegpt, payload)
                if "sft_trl" in writers:
                    writers["sft_trl"].write(trl, payload)
        if "rl" in writers:
            writers["rl"].write(rl_row(item, label, images, split, prompt_text), payload)
        if "verl" in writers:
            index = writers["verl"].rows
            writers["verl"].write(verl_row(item, label, images, split, prompt_text, index), payload)
        if "pairs" in writers:
            for row in pair_rows(item, label, images, split):
                writers["pairs"].write(row, payload * 3 // 5)
        if SCORE_FORMATS & set(writers):
            rat = rationales.get(sel["rationale_id"] or "") if sel and sel["kept"] else None
            _write_scores(item, label, images, split, annotations, rat, writers, rejects, score_counts)
        done += 1
    return done


def _write_scores(
    item: dict,
    label: dict,
    images: list[dict],
    split: str,
    annotations: dict[str, dict],
    rationale: dict | None,
    writers: dict[str, ShardWriter],
    rejects: list[Reject],
    counts: Counter | None,
) -> None:
    """The ``scores`` rows of one item (every scored candidate) and its ``scores_sft`` rows (scored
    candidates whose kept rationale has a section of their own)."""
    counts = counts if counts is not None else Counter()
    missing = [a for a in label["annotation_ids"] if a not in annotations]
    if missing:
        rejects.append(
            Reject(
                STAGE,
                item["item_id"],
                "annotations_missing",
                f"the label lists {len(missing)} annotation(s) absent from the annotations table "
                f"(first {missing[0]!r}); no score rows for this item",
                missing[0],
            )
        )
        return
    stats = score_stats(label, annotations)
    counts["candidates_unscored"] += len(LETTERS) - len(stats)
    usable = (
        rationale is not None and (rationale["text"] or "").strip() and _rationale_problem(rationale) is None
    )
    sections = candidate_sections(rationale["text"]) if usable else {}
    for k, letter in enumerate(LETTERS):
        if letter not in stats:
            continue
        counts["candidates_scored"] += 1
        pair = [images[0], images[1 + k]]
        payload = sum(len(im["bytes"] or b"") for im in pair)
        if "scores" in writers:
            writers["scores"].write(score_rl_row(item, label, letter, stats[letter], pair, split), payload)
        if not usable:
            continue
        counts["scored_in_kept_items"] += 1
        if letter not in sections:
            counts["no_section"] += 1
            continue
        counts["cold_start"] += 1
        if "scores_sft" in writers:
            row = score_sft_row(
                item, label, letter, stats[letter], pair, split, sections[letter], rationale["rationale_id"]
            )
            writers["scores_sft"].write(row, payload)


def _rationale_problem(rationale: dict | None) -> str | None:
    """Why a rationale cannot be an SFT target (None when it ends in a parseable answer)."""
    if rationale is None or not (rationale["text"] or "").strip():
        return None
    try:
        parse_answer(rationale["text"])
    except AnswerFormatError as exc:
        return str(exc)
    return None


def _check_written(
    fs,
    staging: str,
    files: list[str],
    phash: dict[str, str],
    bits: int,
    pairs: list[tuple[str, str, int]] | None = None,
) -> LeakReport:
    """Run the leak check on what was written: (item, source) of every row, with the split its folder says
    (what loaders use); a row whose ``split`` column disagrees with its folder is reported too."""
    misplaced: list[str] = []

    def rows():
        for rel in files:
            folder_split = rel.split("/")[-2]
            with fs.open(posixpath.join(staging, rel), "rb") as fh:
                t = pq.read_table(fh, columns=["item_id", "source_id", "split"])
            for item, src, split in zip(
                *(t.column(c).to_pylist() for c in ("item_id", "source_id", "split"))
            ):
                if split != folder_split:
                    misplaced.append(item)
                yield item, src, folder_split

    report = check_leaks(rows(), phash, bits, pairs)
    report.rows_in_wrong_folder = sorted(set(misplaced))
    return report


def check_export(out: str, store: DatasetStore, near_duplicate_bits: int = 8) -> LeakReport:
    """Leak check of an existing export folder (every Parquet file under it) against the store's sources."""
    fs, root = fsspec.core.url_to_fs(out)
    files = [p[len(root.rstrip("/")) + 1 :] for p in fs.glob(posixpath.join(root, "*", "*", "*.parquet"))]
    src = store.read_arrow("sources", columns=["source_id", "phash"])
    phash = dict(zip(src.column("source_id").to_pylist(), src.column("phash").to_pylist()))
    return _check_written(fs, root.rstrip("/"), files, phash, near_duplicate_bits)


def _remember_splits(
    store: DatasetStore, plan: SplitPlan, cfg: ExportConfig, at: str, only_new: bool
) -> None:
    sources = plan.new_sources if only_new else sorted(plan.split_of_source)
    store.upsert(
        SPLITS_TABLE.name,
        [
            {
                "source_id": s,
                "group_id": plan.group_of_source[s],
                "split": plan.split_of_source[s],
                "seed": cfg.seed,
                "assigned_at": at,
            }
            for s in sources
        ],
    )
