"""Ingest: turn what users send (a folder, a glob, a CSV/Parquet manifest) into validated,
normalised sources with product masks in the store.

Each file is read once, hashed (its source id), normalised, perceptually hashed and masked.
Bad files become rejects with a reason; exact and near-duplicate sources are reported and
skipped; files already ingested are counted and skipped, so re-running adds nothing.

A near-duplicate is a file whose grey pHash is within ``near_duplicate_distance`` bits of a
source's *and* whose colour signature (:func:`aescot.neardup.colour_hash`, a hue histogram) is
within ``colour_distance`` percent of that source's: the same product in another colour is another source, a re-encoded,
resized or slightly cropped copy is not. A source stored before colour signatures (null
``colour_hash``) is compared on the grey hash alone.

A crop moves the pHash far (16-62 bits for 2 % per side), so the grey half of the rule has a
second way in: the **object hash** (:func:`aescot.neardup.object_hash`, the pHash of the image
reframed on its object, stored as ``object_phash``), which a crop that leaves the product whole, a
border, a shift or a resize barely move. A file whose object hash is within ``object_distance``
bits of a source's, with colours within ``object_colour_distance``, is that source (the limits are
tighter than the plain rule's: the object hash also meets products that look alike up to scale and
position). Sources stored before object hashes (null column) are compared plainly.

Cost follows the new files: the store's sources come from the persisted source index
(:mod:`aescot.source_index`: ids, colour signatures and hashes as words in a few memory-mapped
segments, extended by each batch that commits; rebuilt from one projected scan of ``sources`` when
it does not cover the table). A window finds its ids among the store's by binary search and reads
by key only those present, and near-duplicates are found with one
:class:`~aescot.neardup.HammingIndex` per call, built from the index's words and extended after each
batch commits. The index is searched on the pHash only; the colour check is applied to its matches
(each index row carries its source's colour signature as part of its label). The object hashes have
a second :class:`~aescot.neardup.HammingIndex`, built and extended alike.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image
from pydantic import BaseModel, Field

from aescot.ids import sha256_bytes
from aescot.images import ImageLimits, ImageRejected, encode_png, normalise_image
from aescot.mask import MaskConfig, MaskError, product_mask
from aescot.neardup import (
    HammingIndex,
    colour_apart,
    colour_hash,
    colour_match,
    get_hasher,
    object_hash,
    radius_search,
)
from aescot.rejects import Reject, count_reasons, record_rejects
from aescot.source_index import SourceIndex, load_source_index
from aescot.store import DatasetStore
from aescot.timeutil import now_iso

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MASK_SUFFIX = ".mask"  # sidecar masks: photo.png -> photo.mask.png
STAGE = "ingest"
# Measured by bench/colour_pairs.py (120 rendered products at 256 and at 128 px, 256-bit pHash
# within 12 bits): the JPEG q75 and 70 % resized copies the grey rule merges are 0-13 % apart in
# colour, a product recoloured (hue +90 or +180 degrees) 22-100 % (and 148 of 328 recolour pairs are
# grey-near: the grey rule alone merges them). Every threshold from 13 to 21 % has the fewest errors
# with the object hashes on: 13 over both sizes (crops the rule misses), none a recolour or a
# distinct product merged; 17 is the middle of that range.
COLOUR_DISTANCE = 17
# Measured by the same bench (bench/colour_pairs.py: the labelled pairs above, and every pair of 3,000
# distinct products for the false matches): 2 % and 4 % border crops are a median of 2-4 bits from
# their original's object hash (the plain pHash: 16-62 bits); with 8 bits and colours within 12 % the
# rule catches 116 and 116 of 120 at 256 px, 117 and 118 at 128 px (the plain rule: 0), keeps every
# recolour apart and merges 0 of 7,140 labelled distinct pairs; of the 4.5 million pairs of 3,000
# distinct products it merges 8 at 256 px and 1 at 128 px, where the plain rule merges 12 and 10.
# 10 bits and 17 % would merge 40 at 256 px, 12 bits and 17 %: 75.
OBJECT_DISTANCE = 8
OBJECT_COLOUR_DISTANCE = 12


class IngestConfig(BaseModel):
    """Typed settings of the ingest stage."""

    limits: ImageLimits = Field(default_factory=ImageLimits)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    hash_method: str = "phash"
    # 16x16 = 256-bit pHash. Measured on 90 distinct rendered products: distinct pairs differ by
    # >= 22 bits, JPEG q75 / resized copies by <= 8; 8x8 hashes could not tell apart (0 bits).
    hash_size: int = Field(16, ge=4, le=32, description="pHash side; the hash has hash_size**2 bits")
    near_duplicate_distance: int = Field(
        12, ge=-1, description="Hamming radius (bits) for near-duplicate sources; -1 turns the check off"
    )
    colour_distance: int = Field(
        COLOUR_DISTANCE,
        ge=-1,
        description="a grey-near pair is one source only if its colour signatures are at most this many "
        "percent apart (another colour: another source); -1: the grey pHash alone",
    )
    object_distance: int = Field(
        OBJECT_DISTANCE,
        ge=-1,
        description="a file whose object hash (the pHash of the image reframed on its object) is within "
        "this many bits of a source's is that source (a crop that leaves the product whole, a border, a "
        "shift, a resize); -1: not compared, the plain pHash only",
    )
    object_colour_distance: int = Field(
        OBJECT_COLOUR_DISTANCE,
        ge=0,
        description="an object-hash match is one source only if its colour signatures are at most this many "
        "percent apart (and within colour_distance; with colour_distance -1 colours are not compared)",
    )
    batch_size: int = Field(
        128, ge=1, description="files per window, written in one commit (a crash loses at most one batch)"
    )
    workers: int = Field(2, ge=1, description="decoding threads")


@dataclass(frozen=True)
class SourceFile:
    """One input: where the image is, an optional user mask, an optional product name."""

    path: str
    mask: str | None = None
    product: str | None = None


@dataclass
class IngestReport:
    """What an ingest run did."""

    seen: int = 0
    added: int = 0
    already_present: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)
    added_ids: list[str] = field(default_factory=list)
    # files added although grey-near a source, because their colour differs (a recoloured product)
    colour_kept: int = 0
    # where the time went: "index" (near-duplicate index: build, search, extend) and "key_lookup"
    # (each window's ids looked up in sources), wall seconds; "<name>_cpu": that code's CPU seconds
    seconds: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def ignored_files(self) -> int:
        """Files passed over without being read (see :func:`discover` for the reasons)."""
        return sum(self.ignored.values())

    def reasons(self) -> dict[str, int]:
        return count_reasons(self.rejects)


# --- finding inputs ------------------------------------------------------------------------------


def _is_mask_file(p: Path) -> bool:
    return p.stem.endswith(MASK_SUFFIX)


def _sidecar_mask(p: Path) -> str | None:
    for ext in (".png", p.suffix):
        cand = p.with_name(p.stem + MASK_SUFFIX + ext)
        if cand.exists():
            return str(cand)
    return None


def _read_manifest(path: str) -> list[SourceFile]:
    base = os.path.dirname(path)
    if path.endswith(".parquet"):
        with fsspec.open(path, "rb") as fh:
            rows = pq.read_table(fh).to_pylist()
    else:
        with fsspec.open(path, "r", encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    if rows and not ({"path", "image"} & set(rows[0])):
        raise ValueError(f"manifest {path} needs a 'path' (or 'image') column; it has {sorted(rows[0])}")

    def resolve(p: str | None) -> str | None:
        if not p:
            return None
        return p if "://" in p or os.path.isabs(p) else os.path.join(base, p)

    return [
        SourceFile(
            resolve(r.get("path") or r.get("image")), resolve(r.get("mask")), (r.get("product") or None)
        )
        for r in rows
        if (r.get("path") or r.get("image"))
    ]


def _hidden(p: Path, base: Path) -> bool:
    """A dot-file, or a file inside a dot-folder below ``base`` (.git, .cache, editor backups)."""
    try:
        rel = p.relative_to(base)
    except ValueError:
        rel = Path(p.name)
    return any(part.startswith(".") for part in rel.parts)


def discover(inputs: Iterable[str]) -> tuple[list[SourceFile], Counter[str]]:
    """Expand folders, globs and manifests into source files.

    Returns the files and what was passed over, by reason: ``hidden`` (dot-files and dot-folders),
    ``dangling_symlink`` (a link whose target is gone), ``not_an_image`` (another extension).
    """
    files: list[SourceFile] = []
    ignored: Counter[str] = Counter()
    for spec in inputs:
        spec = str(spec)
        if spec.endswith((".csv", ".parquet")):
            files.extend(_read_manifest(spec))
            continue
        if os.path.isdir(spec):
            base = Path(spec)
            paths = []
            for p in sorted(base.rglob("*")):
                if p.is_dir():
                    continue
                if _hidden(p, base):
                    ignored["hidden"] += 1
                elif p.is_symlink() and not p.exists():
                    ignored["dangling_symlink"] += 1
                elif p.is_file():
                    paths.append(p)
        elif any(ch in spec for ch in "*?["):
            paths = []
            for name in sorted(glob.glob(spec, recursive=True)):
                if os.path.islink(name) and not os.path.exists(name):
                    ignored["dangling_symlink"] += 1
                elif os.path.isfile(name):
                    paths.append(Path(name))
        else:
            paths = [Path(spec)]
        for p in paths:
            if _is_mask_file(p):
                continue
            if p.suffix.lower() not in IMAGE_EXTENSIONS and len(paths) > 1:
                ignored["not_an_image"] += 1
                continue
            files.append(SourceFile(str(p), _sidecar_mask(p)))
    return files, ignored


# --- preparing one file (pure: no store writes) ------------------------------------------------


@dataclass
class Prepared:
    file: SourceFile
    source_id: str
    png: bytes
    mask_png: bytes
    mask_method: str
    mask_coverage: float
    width: int
    height: int
    mode: str
    original_format: str | None
    original_mode: str | None
    notes: list[str]
    phash: str
    colour_hash: str
    object_phash: str | None  # None: a blank image, or object hashes off


def _read(path: str) -> bytes:
    with fsspec.open(path, "rb") as fh:
        return fh.read()


@dataclass
class Known:
    """A file whose bytes are already a source: nothing to decode."""

    file: SourceFile
    source_id: str
    original_name: str


@dataclass
class Loaded:
    """A file read and hashed (its source id), not decoded yet."""

    file: SourceFile
    source_id: str
    data: bytes


def load(file: SourceFile) -> Loaded | Reject:
    """Read one file and hash its bytes (the source id); an unreadable file becomes a :class:`Reject`."""
    try:
        data = _read(file.path)
    except (OSError, ValueError) as exc:
        return Reject(STAGE, file.path, "unreadable", f"cannot read the file: {exc}")
    return Loaded(file, sha256_bytes(data), data)


def decode(item: Loaded, cfg: IngestConfig) -> Prepared | Reject:
    """Normalise, mask and perceptually hash a loaded file; a problem becomes a :class:`Reject`."""
    file = item.file
    try:
        norm = normalise_image(item.data, cfg.limits)
        user = None
        if file.mask:
            try:
                user = Image.open(io.BytesIO(_read(file.mask)))
                user.load()
            except (OSError, ValueError) as exc:
                return Reject(STAGE, file.path, "bad_mask", f"mask {file.mask} cannot be read: {exc}")
        mask = product_mask(norm.image, cfg.mask, user)
    except (ImageRejected, MaskError) as exc:
        return Reject(STAGE, file.path, exc.reason, exc.detail)
    img = norm.image
    hasher = get_hasher(cfg.hash_method, cfg.hash_size)
    return Prepared(
        file=file,
        source_id=item.source_id,
        png=encode_png(img),
        mask_png=encode_png(mask.image),
        mask_method=mask.method,
        mask_coverage=round(mask.coverage, 6),
        width=img.width,
        height=img.height,
        mode=img.mode,
        original_format=norm.original_format,
        original_mode=norm.original_mode,
        notes=norm.notes,
        phash=hasher.hash(img),
        colour_hash=colour_hash(img),
        object_phash=object_hash(img, hasher) if cfg.object_distance >= 0 else None,
    )


# --- the stage -----------------------------------------------------------------------------------


@contextmanager
def _timed(seconds: Counter[str], name: str) -> Iterator[None]:
    """Add the wall time of the block to ``seconds[name]`` and this thread's CPU time to
    ``seconds[name + "_cpu"]`` (the wall time includes waiting for the GIL the decoders hold)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        seconds[name] += time.perf_counter() - wall
        seconds[name + "_cpu"] += time.thread_time() - cpu


def _decoded_windows(
    store: DatasetStore,
    files: list[SourceFile],
    cfg: IngestConfig,
    store_ids: _StoreIds,
    seconds: Counter[str],
) -> Iterator[list[Prepared | Known | Reject]]:
    """The files in windows of ``batch_size``, in order: each read and hashed, its id found (or
    not) among the store's, the ones found read by key for their names, and decoded unless
    already a source.

    One window is decoded ahead while the caller writes the previous one.
    """
    pool = ThreadPoolExecutor(cfg.workers) if cfg.workers > 1 else None  # Pillow, hashlib release the GIL
    ahead: list | None = None
    try:
        for start in range(0, len(files), cfg.batch_size):
            chunk = files[start : start + cfg.batch_size]
            loaded = list(pool.map(load, chunk)) if pool else [load(f) for f in chunk]
            with _timed(seconds, "key_lookup"):
                ids = store_ids.present(sorted({x.source_id for x in loaded if isinstance(x, Loaded)}))
                names: dict[str, str] = {}
                if ids:
                    rows = store.read_arrow("sources", columns=["source_id", "original_name"], keys=ids)
                    names = dict(
                        zip(rows.column("source_id").to_pylist(), rows.column("original_name").to_pylist())
                    )
            window: list = []
            for x in loaded:
                if not isinstance(x, Loaded):
                    window.append(x)
                elif x.source_id in names:
                    window.append(Known(x.file, x.source_id, names[x.source_id]))
                else:
                    window.append(pool.submit(decode, x, cfg) if pool else decode(x, cfg))
            if ahead is not None:
                yield [x.result() if isinstance(x, Future) else x for x in ahead]
            ahead = window
        if ahead is not None:
            yield [x.result() if isinstance(x, Future) else x for x in ahead]
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)


def _record(store: DatasetStore, p: Prepared) -> dict:
    image_id, image_key = store.put_image(p.png)
    _, mask_key = store.put_image(p.mask_png)
    return {
        "source_id": p.source_id,
        "image_id": image_id,
        "image_key": image_key,
        "mask_key": mask_key,
        "mask_method": p.mask_method,
        "mask_coverage": p.mask_coverage,
        "width": p.width,
        "height": p.height,
        "mode": p.mode,
        "original_name": os.path.basename(p.file.path),
        "original_format": p.original_format,
        "original_mode": p.original_mode,
        "notes": p.notes,
        "phash": p.phash,
        "colour_hash": p.colour_hash,
        "object_phash": p.object_phash,
        "product": p.file.product,
        "ingested_at": now_iso(),
    }


class _StoreIds:
    """The source ids in the store when the call began: each index segment's id column, sorted, seen
    as fixed-width bytes (no copy): a window asks which of its ids are there with a binary search
    per segment, and only those few are read by key (for their original names). Ids added by the
    call are its own."""

    def __init__(self, columns: list[pa.Array]):
        self.sorted: list[np.ndarray] | None = []
        for arr in columns:
            if not len(arr):
                continue
            if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                arr = arr.cast(pa.string())
            lengths = pc.binary_length(arr)  # bytes, from the offsets alone (the ids stay unread)
            if arr.null_count or pc.min(lengths).as_py() != 64 or pc.max(lengths).as_py() != 64:
                self.sorted = None  # not all SHA-256 hex: every window is looked up by key instead
                return
            offsets = np.int64 if pa.types.is_large_string(arr.type) else np.int32  # read in place
            start = int(np.frombuffer(arr.buffers()[1], dtype=offsets)[arr.offset])
            self.sorted.append(np.frombuffer(arr.buffers()[2], dtype="S64", count=len(arr), offset=start))

    def present(self, ids: list[str]) -> list[str]:
        """The ``ids`` that may be in the store (exactly those, when the ids are SHA-256 hex)."""
        if self.sorted is None:
            return ids
        if not ids:
            return []
        q = np.array(ids, dtype="S64")
        hit = np.zeros(len(ids), dtype=bool)
        for ids_sorted in self.sorted:
            pos = np.minimum(np.searchsorted(ids_sorted, q), len(ids_sorted) - 1)
            hit |= ids_sorted[pos] == q
        return [i for i, h in zip(ids, hit) if h]


def _store_columns(
    store: DatasetStore, cfg: IngestConfig
) -> tuple[_StoreIds, HammingIndex, HammingIndex, SourceIndex]:
    """The persisted source index (:mod:`aescot.source_index`: read, or rebuilt from one scan of
    the projected columns) and what the call searches in it: the ids present when the call began,
    the near-duplicate index of their hashes, each labelled ``{"id": source id, "colour": colour
    signature}`` (null colour: a row stored before colour signatures, or the colour check off), and
    the index of their object hashes, labelled alike (rows stored before object hashes are left out)."""
    stored = load_source_index(store)
    index, object_index = HammingIndex(), HammingIndex()
    if cfg.near_duplicate_distance >= 0:
        searched = [("phash", index)] + [("object_phash", object_index)] * (cfg.object_distance >= 0)
        for column, into in searched:
            for groups, ids, colours in stored.hashes(column):
                if cfg.colour_distance < 0:
                    colours = pa.nulls(len(ids), pa.string())
                into.add_groups(groups, pa.StructArray.from_arrays([ids, colours], ["id", "colour"]))
    return _StoreIds(stored.sorted_ids()), index, object_index, stored


@dataclass(frozen=True)
class _Near:
    """The source a file is a near-duplicate of: its id, grey bits and colour difference in percent
    (None: compared on the grey hash alone), and whether the object hashes met (else the plain pHash)."""

    source_id: str
    bits: int
    colour: int | None
    framed: bool = False

    def detail(self, cfg: IngestConfig) -> str:
        if self.framed:
            grey = (
                f"object hash within {self.bits} bits of source {self.source_id[:12]}'s (the same object "
                "framed otherwise: a crop, a border, a shift or a resize)"
            )
        else:
            grey = f"perceptual hash within {self.bits} bits of source {self.source_id[:12]}"
        if cfg.colour_distance < 0:
            return grey
        if self.colour is None:
            return grey + " (it has no colour signature: compared on the grey hash alone)"
        return grey + f", colour signatures {self.colour}% apart"


def _index_hit(
    hits: list[tuple[dict, int]], colour: str, limit: int, framed: bool = False
) -> tuple[_Near | None, bool]:
    """The nearest of a file's index matches (grey-near sources, nearest first) whose colour
    is within ``limit`` too, and whether a grey-near source was passed over for its colour."""
    for label, d in hits:
        if colour_match(colour, label["colour"], limit):
            return _Near(str(label["id"]), d, colour_apart(colour, label["colour"], limit), framed), False
    return None, bool(hits)


def _object_colour(cfg: IngestConfig) -> int:
    """The colour limit of an object-hash match: ``object_colour_distance`` within ``colour_distance``
    (-1: off)."""
    return (
        cfg.colour_distance
        if cfg.colour_distance < 0
        else min(cfg.colour_distance, cfg.object_colour_distance)
    )


def _nearer(x: _Near | None, y: _Near | None) -> _Near | None:
    """The nearer of two matches; equally near, ``x`` (the plain one)."""
    return y if x is None or (y is not None and y.bits < x.bits) else x


def _near(
    index_hit: _Near | None, inner: list[tuple[int, int, _Near]], accepted: dict[int, str]
) -> _Near | None:
    """The nearest of a file's index hit and its in-window partners accepted before it (``(bits,
    slot, match)``, colours already matched, the match's source id left empty); equally near, the
    earlier source wins."""
    best = (index_hit.bits, -1, index_hit) if index_hit else None
    for d, i, m in inner:
        if i in accepted and (best is None or (d, i) < best[:2]):
            best = (d, i, replace(m, source_id=accepted[i]))
    return best[2] if best else None


def _window_pair(
    inner: list[list[tuple[int, int, _Near]]],
    recoloured: list[bool],
    colours: list[str],
    i: int,
    j: int,
    match: _Near,
    limit: int,
) -> None:
    """A grey-near pair of window slots (``j`` after ``i``; ``match``: its bits and hash): ``i`` is
    a partner of ``j`` when their colours are within ``limit``, else ``j`` is grey-near a recolour."""
    if colour_match(colours[i], colours[j], limit):
        colour = colour_apart(colours[i], colours[j], limit)
        inner[j].append((match.bits, i, replace(match, colour=colour)))
    else:
        recoloured[j] = True


def ingest(
    store: DatasetStore,
    inputs: Iterable[str],
    config: IngestConfig | None = None,
    progress: Callable[[int], None] | None = None,
    on_discovered: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest every image in ``inputs`` into ``store``; returns what happened.

    Files go in windows of ``batch_size``: each window's ids are looked up by key, its new files
    decoded, checked for near-duplicates against one index of the store's sources (built once
    per call from the persisted source index, extended after each batch commits) and against
    the window's earlier files (grey pHash within ``near_duplicate_distance``, then colour
    signature within ``colour_distance`` on those matches only), and its rows written in one commit. Images are written before the
    rows that reference them: a crash loses at most one batch of work, and a re-run completes it
    without duplicates.
    """
    cfg = config or IngestConfig()
    files, ignored = discover(inputs)
    report = IngestReport(ignored=ignored)
    if on_discovered:
        on_discovered(len(files))
    radius = cfg.near_duplicate_distance
    objects = radius >= 0 and cfg.object_distance >= 0
    with _timed(report.seconds, "index"):  # the ids come with the hashes, from the source index
        store_ids, index, object_index, stored = _store_columns(store, cfg)
    seen_now: dict[str, str] = {}  # sources added by this call: source id -> path
    batch: list[dict] = []
    pending: list[Reject] = []  # this window's rejects: written with (before) its sources

    def reject(r: Reject) -> None:
        report.rejects.append(r)
        pending.append(r)

    for window in _decoded_windows(store, files, cfg, store_ids, report.seconds):
        preps = [(k, x) for k, x in enumerate(window) if isinstance(x, Prepared)]
        slot = {k: j for j, (k, _) in enumerate(preps)}
        index_hits: list[_Near | None] = [None] * len(preps)
        inner: list[list[tuple[int, int, _Near]]] = [[] for _ in preps]
        recoloured = [False] * len(preps)  # grey-near a source of another colour
        if radius >= 0 and preps:
            with _timed(report.seconds, "index"):
                hashes = [p.phash for _, p in preps]
                colours = [p.colour_hash for _, p in preps]
                for j, hits in enumerate(index.search(hashes, radius)):
                    index_hits[j], recoloured[j] = _index_hit(hits, colours[j], cfg.colour_distance)
                for i, j, d in radius_search(hashes, None, radius).as_tuples():
                    _window_pair(inner, recoloured, colours, i, j, _Near("", d, None), cfg.colour_distance)
                framed = [(j, p.object_phash) for j, (_, p) in enumerate(preps) if p.object_phash]
                if objects and framed:
                    slots, objs = [j for j, _ in framed], [h for _, h in framed]
                    limit = _object_colour(cfg)
                    for j, hits in zip(slots, object_index.search(objs, cfg.object_distance)):
                        hit, passed = _index_hit(hits, colours[j], limit, framed=True)
                        index_hits[j] = _nearer(index_hits[j], hit)
                        recoloured[j] |= passed
                    for a, b, d in radius_search(objs, None, cfg.object_distance).as_tuples():
                        i, j = sorted((slots[a], slots[b]))
                        _window_pair(inner, recoloured, colours, i, j, _Near("", d, None, True), limit)
        accepted: dict[int, str] = {}  # slot in preps -> source id, for this window
        for k, item in enumerate(window):
            report.seen += 1
            if isinstance(item, Reject):
                reject(item)
            elif item.source_id in seen_now:
                reject(
                    Reject(
                        STAGE,
                        item.file.path,
                        "exact_duplicate",
                        f"same bytes as {seen_now[item.source_id]}",
                        item.source_id,
                    )
                )
            elif isinstance(item, Known):
                if item.original_name != os.path.basename(item.file.path):
                    # same bytes as a source made from another file: a duplicate, recorded as such
                    # (again) so that a run killed before writing this reject still accounts for it
                    reject(
                        Reject(
                            STAGE,
                            item.file.path,
                            "exact_duplicate",
                            f"same bytes as {item.original_name} (source {item.source_id[:12]})",
                            item.source_id,
                        )
                    )
                else:
                    report.already_present += 1
            elif radius >= 0 and (near := _near(index_hits[slot[k]], inner[slot[k]], accepted)):
                reject(Reject(STAGE, item.file.path, "near_duplicate", near.detail(cfg), near.source_id))
            else:
                report.colour_kept += recoloured[slot[k]]
                batch.append(_record(store, item))
                seen_now[item.source_id] = item.file.path
                accepted[slot[k]] = item.source_id
                report.added_ids.append(item.source_id)
            if progress:
                progress(1)
        # Rejects first: a kill between the two commits leaves a reject whose source the re-run
        # adds again, never a source whose duplicates were forgotten.
        record_rejects(store, pending)
        report.added += store.upsert("sources", batch)
        stored.extend(batch)  # after the commit: an index never lists a row the table lacks
        if radius >= 0 and batch:
            with _timed(report.seconds, "index"):
                index.add_many(
                    [r["phash"] for r in batch],
                    [{"id": r["source_id"], "colour": r["colour_hash"]} for r in batch],
                )
                framed_rows = [r for r in batch if r["object_phash"]]
                if objects and framed_rows:
                    object_index.add_many(
                        [r["object_phash"] for r in framed_rows],
                        [{"id": r["source_id"], "colour": r["colour_hash"]} for r in framed_rows],
                    )
        batch.clear()
        pending.clear()
    return report
