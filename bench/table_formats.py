"""Delta Lake (deltalake) vs Lance (pylance) for the store's access pattern, side by side.

Why this exists: ``aescot/tables.py`` keeps the stage tables in Lance. This bench is the
reproducible measurement behind that choice (GitHub issue 13, "Cost follows the work"): the same
operations, on the same rows and the same batches, against both formats at two table sizes.

    .venv/bin/python bench/table_formats.py [--sizes 16384 131072] [--repeats 20] [--upserts 200]

It runs in its own virtual environment so the main install stays lean: on start it builds (or
reuses) ``.cache/venvs/table-formats`` (``.cache/`` is git-ignored) with ``deltalake==1.6.6
pylance==14.0.2 pyarrow==26.0.1 numpy`` through pip, then re-executes itself with that venv's
Python (same arguments). The venv is rebuilt only when the pins change (``pins.txt`` inside it).
Tables are written under a fresh temporary folder (``$TMPDIR``) that is removed at the end.

Rows are shaped like the ``sources`` table: ``source_id`` (64 hex chars, a sha256, so keys are
random and min/max file statistics cannot prune them), three string columns of about 200 bytes
together (random content, so compression does not shrink them away) and an int64 ``phash``.

For each size and each contender (``delta``; ``lance`` with a BTREE scalar index on the key, as
the store builds it; ``lance-noidx`` without the index, for information; ``lance-auto``, below):

* **base**: the table is bulk-written as 32 appends (32 commits, 32 data files / fragments), the
  Lance index is built, then
* **a. upsert**: a keyed upsert of a 32-row batch, 16 new keys + 16 existing keys with new
  content. Delta: ``merge(...).when_matched_update_all().when_not_matched_insert_all()``; Lance:
  ``merge_insert(key).when_matched_update_all().when_not_matched_insert_all()``.
* **b. read**: the 32 rows of a batch (existing keys) by key, projected to 3 columns. Lance:
  ``to_table(columns=..., filter=pc.field(key).isin(keys))``. Delta: ``QueryBuilder`` (its
  DataFusion engine) ``SELECT cols WHERE key IN (...)``, because ``to_pyarrow_dataset()`` with an
  ``isin`` filter fails once a merge has written files (they hold ``string_view`` columns and
  pyarrow 26 has no ``string_view`` comparison / ``is_in`` kernels: ArrowNotImplementedError).
* **c. anti-join**: only the key column (Delta: ``to_pyarrow_dataset().to_table(columns=[key])``,
  which works as it has no filter; Lance: ``to_table(columns=[key])``), anti-joined (pyarrow
  ``left anti``) with a 1k-key "done" list: the backlog query of ``DatasetStore.backlog``.

Every timed operation opens the table first (``DeltaTable(path)`` / ``lance.dataset(path)``),
as the store does per call, and each repeat uses a fresh batch; the figure is the median over
``--repeats``. The same three measurements are taken at three points:

* ``base``: after the bulk write (upsert = the first ``repeats`` upserts),
* ``+N``: after ``--upserts`` upserts without any compaction (upsert = the last ``repeats`` of
  them; the live/disk file counts are taken after the N-th),
* ``compact``: after an explicit compaction (Delta: ``optimize.compact()`` +
  ``vacuum(retention_hours=0, enforce_retention_duration=False)``; Lance:
  ``optimize.compact_files()`` + ``optimize.optimize_indices()`` +
  ``cleanup_old_versions(older_than=timedelta(0))``), then ``repeats`` further upserts.

``upsert ms`` is the median, ``(mean)`` the mean of the same upserts; the mean of all N upserts
before compaction is printed per contender below the table (the amortised cost, compactions
included for ``lance-auto``). The fourth contender, ``lance-auto``, runs Lance as the store
does: after an upsert that leaves more than 32 fragments it compacts files and index by itself
(and drops versions older than 15 minutes, none in a run this short), so its ``+N`` point is "N
upserts with the store's own maintenance", not "without compaction".

``live`` files are the data files the current version references (Delta: ``file_uris()``; Lance:
data + deletion files of its fragments); ``disk`` counts every file under the table folder (logs,
manifests, indexes and superseded data files included), ``disk MB`` their size. Every result is
checked (rows read, backlog size, final row count) so a fast wrong answer cannot pass. The machine
is noisy: read the ratios (128k/16k per format, Lance/Delta per size, same run), not the absolute
times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PINS = ("deltalake==1.6.6", "pylance==14.0.2", "pyarrow==26.0.1", "numpy")
REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "venvs" / "table-formats"
VENV_PY = VENV / "bin" / "python"


def ensure_venv() -> None:
    """Build (or reuse) the bench venv, then re-execute this file in it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    marker = VENV / "pins.txt"
    want = "\n".join(PINS) + "\n"
    if not (VENV_PY.exists() and marker.exists() and marker.read_text() == want):
        print(f"building {VENV} ({' '.join(PINS)}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(VENV_PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
            check=True,
        )
        marker.write_text(want)
    sys.stdout.flush()
    os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    ensure_venv()

# --- from here on: inside the bench venv -----------------------------------------------------------

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY = "source_id"
SCHEMA = pa.schema(
    [
        (KEY, pa.string()),
        ("original_name", pa.string()),
        ("uri", pa.string()),
        ("meta", pa.string()),
        ("phash", pa.int64()),
    ]
)
READ_COLUMNS = [KEY, "uri", "phash"]
BASE_FILES = 32
BATCH_NEW = 16
BATCH_OLD = 16
DONE_KEYS = 1000


# --- data ------------------------------------------------------------------------------------------


def hex_keys(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.bytes(32 * n)
    return np.array([raw[i : i + 32].hex() for i in range(0, 32 * n, 32)], dtype=object)


def rows(rng: np.random.Generator, keys: np.ndarray) -> pa.Table:
    """Rows for ``keys``: ~200 bytes of random strings plus an int64 phash."""
    n = len(keys)
    blob = rng.bytes(100 * n).hex()  # 200 hex chars per row
    names = [f"IMG_{blob[i * 200 : i * 200 + 24]}.jpg" for i in range(n)]
    uris = [f"s3://bucket/sources/{blob[i * 200 + 24 : i * 200 + 120]}" for i in range(n)]
    meta = [f'{{"w":1024,"h":768,"exif":"{blob[i * 200 + 120 : i * 200 + 200]}"}}' for i in range(n)]
    phash = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    return pa.Table.from_pydict(
        {KEY: list(keys), "original_name": names, "uri": uris, "meta": meta, "phash": phash}, SCHEMA
    )


class Workload:
    """One size's data and batch sequence, identical for every contender (fixed seeds)."""

    def __init__(self, n: int, repeats: int, upserts: int, seed: int):
        rng = np.random.default_rng(seed)
        self.base_keys = hex_keys(rng, n)
        self.base = rows(rng, self.base_keys)
        keys = list(self.base_keys)
        self.upsert_batches: list[pa.Table] = []
        for _ in range(upserts + repeats):  # upserts before compaction, then `repeats` after it
            old = [keys[i] for i in rng.choice(len(keys), BATCH_OLD, replace=False)]
            new = list(hex_keys(rng, BATCH_NEW))
            keys.extend(new)
            self.upsert_batches.append(rows(rng, np.array(old + new, dtype=object)))
        self.final_rows = len(keys)
        # read batches and done lists draw from the base keys, which exist at every point
        self.read_batches = [
            pa.array(self.base_keys[rng.choice(n, BATCH_OLD + BATCH_NEW, replace=False)].tolist())
            for _ in range(3 * repeats)
        ]
        self.done_lists = [
            pa.table({KEY: self.base_keys[rng.choice(n, DONE_KEYS, replace=False)].tolist()})
            for _ in range(3 * repeats)
        ]


# --- contenders ------------------------------------------------------------------------------------


def tree_files(path: str) -> tuple[int, float]:
    """Files under ``path`` and their size in MB."""
    n, size = 0, 0
    for top, _, files in os.walk(path):
        n += len(files)
        size += sum(os.path.getsize(os.path.join(top, f)) for f in files)
    return n, size / 1e6


class Delta:
    name = "delta"

    def __init__(self, path: str):
        self.path = path

    def create(self, base: pa.Table) -> None:
        from deltalake import write_deltalake

        step = -(-base.num_rows // BASE_FILES)
        for off in range(0, base.num_rows, step):
            write_deltalake(self.path, base.slice(off, step), mode="append")

    def _dt(self):
        from deltalake import DeltaTable

        return DeltaTable(self.path)

    def upsert(self, batch: pa.Table) -> None:
        (
            self._dt()
            .merge(batch, predicate=f"t.{KEY} = s.{KEY}", source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    def read(self, keys: pa.Array) -> pa.Table:
        # Not to_pyarrow_dataset(filter=isin): files written by merge hold string_view columns and
        # pyarrow 26 has no string_view kernels for the stats guarantee / is_in (ArrowNotImplementedError).
        # Delta's own engine (DataFusion) runs the same projected keyed filter.
        from deltalake import QueryBuilder

        in_list = ",".join(f"'{k}'" for k in keys.to_pylist())  # 64-hex keys: nothing to escape
        sql = f"SELECT {', '.join(READ_COLUMNS)} FROM t WHERE {KEY} IN ({in_list})"
        return pa.table(QueryBuilder().register("t", self._dt()).execute(sql).read_all())

    def key_column(self) -> pa.Table:
        return self._dt().to_pyarrow_dataset().to_table(columns=[KEY])

    def compact(self) -> None:
        dt = self._dt()
        dt.optimize.compact()
        dt = self._dt()
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)

    def live_files(self) -> int:
        return len(self._dt().file_uris())

    def count(self) -> int:
        return self._dt().to_pyarrow_dataset().count_rows()


class Lance:
    name = "lance"
    indexed = True

    def __init__(self, path: str):
        self.path = path

    def _ds(self):
        import lance

        return lance.dataset(self.path)

    def create(self, base: pa.Table) -> None:
        import lance

        step = -(-base.num_rows // BASE_FILES)
        for off in range(0, base.num_rows, step):
            lance.write_dataset(base.slice(off, step), self.path, mode="append" if off else "create")
        if self.indexed:
            self._ds().create_scalar_index(KEY, index_type="BTREE")

    def upsert(self, batch: pa.Table) -> None:
        self._ds().merge_insert(KEY).when_matched_update_all().when_not_matched_insert_all().execute(batch)

    def read(self, keys: pa.Array) -> pa.Table:
        return self._ds().to_table(columns=READ_COLUMNS, filter=pc.field(KEY).isin(keys))

    def key_column(self) -> pa.Table:
        return self._ds().to_table(columns=[KEY])

    def compact(self) -> None:
        self._ds().optimize.compact_files()
        if self.indexed:
            self._ds().optimize.optimize_indices()
        self._ds().cleanup_old_versions(older_than=timedelta(0), error_if_tagged_old_versions=False)

    def live_files(self) -> int:
        return sum(len(f.data_files()) + (f.deletion_file() is not None) for f in self._ds().get_fragments())

    def count(self) -> int:
        return self._ds().count_rows()


class LanceNoIndex(Lance):
    name = "lance-noidx"
    indexed = False


class LanceAuto(Lance):
    """Lance as ``aescot/tables.py`` runs it: an upsert that leaves more than 32 fragments compacts
    (files + index) and cleans versions older than 15 minutes (none, in a bench this short)."""

    name = "lance-auto"
    max_fragments = 32
    keep_for = timedelta(minutes=15)

    def upsert(self, batch: pa.Table) -> None:
        super().upsert(batch)
        if len(self._ds().get_fragments()) > self.max_fragments:
            self._ds().optimize.compact_files()
            self._ds().optimize.optimize_indices()
            self._ds().cleanup_old_versions(older_than=self.keep_for, error_if_tagged_old_versions=False)


CONTENDERS = {"delta": Delta, "lance": Lance, "lance-noidx": LanceNoIndex, "lance-auto": LanceAuto}


# --- measuring -------------------------------------------------------------------------------------


def timed_ms(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def median_ms(fns: list[Callable[[], object]], check: Callable[[object], None]) -> float:
    times = []
    for fn in fns:
        ms, out = timed_ms(fn)
        check(out)
        times.append(ms)
    return statistics.median(times)


def measure_point(t, w: Workload, point: int, repeats: int) -> tuple[float, float, int, tuple[int, float]]:
    """Median read-batch ms and anti-join ms, live and disk files, at the table's current state."""

    def check_read(keys: pa.Array):
        def check(out: pa.Table) -> None:
            if out.num_rows != len(keys) or set(out.column(KEY).to_pylist()) != set(keys.to_pylist()):
                raise AssertionError(f"{t.name}: read {out.num_rows} rows for {len(keys)} keys")

        return check

    reads = w.read_batches[point * repeats : (point + 1) * repeats]
    times = []
    for keys in reads:
        ms, out = timed_ms(lambda keys=keys: t.read(keys))
        check_read(keys)(out)
        times.append(ms)
    read_ms = statistics.median(times)

    rows_now = t.count()
    done = w.done_lists[point * repeats : (point + 1) * repeats]

    def antijoin(d: pa.Table) -> pa.Table:
        return t.key_column().join(d, keys=KEY, join_type="left anti", use_threads=False)

    def check_anti(out: pa.Table) -> None:
        if out.num_rows != rows_now - DONE_KEYS:
            raise AssertionError(f"{t.name}: backlog {out.num_rows}, want {rows_now - DONE_KEYS}")

    anti_ms = median_ms([lambda d=d: antijoin(d) for d in done], check_anti)
    return read_ms, anti_ms, t.live_files(), tree_files(t.path)


def run_contender(cls, w: Workload, root: str, repeats: int, upserts: int) -> dict[str, dict]:
    t = cls(os.path.join(root, cls.name))
    build_ms, _ = timed_ms(lambda: t.create(w.base))
    batches = iter(w.upsert_batches)

    def upserts_ms(k: int) -> list[float]:
        times = []
        for _ in range(k):
            batch = next(batches)
            times.append(timed_ms(lambda b=batch: t.upsert(b))[0])
        return times

    def point(index: int, up: list[float] | None) -> dict:
        read_ms, anti_ms, live, (disk, mb) = measure_point(t, w, index, repeats)
        out = {"read": read_ms, "anti": anti_ms, "live": live, "disk": disk, "mb": mb}
        return out | (upsert_figures(up) if up else {})

    def upsert_figures(up: list[float]) -> dict:
        return {"upsert": statistics.median(up), "upsert_mean": statistics.fmean(up)}

    res: dict[str, dict] = {}
    # base: reads on the bulk-written table, then the first `repeats` upserts
    res["base"] = point(0, None)
    first = upserts_ms(repeats)
    res["base"] |= upsert_figures(first)
    res["base"]["build_s"] = build_ms / 1000
    # +N upserts without compaction (lance-auto: with the store's own); the upsert figures are those
    # of the last `repeats` of them, and the mean over all N
    middle = upserts_ms(upserts - 2 * repeats)
    last = upserts_ms(repeats)
    res[f"+{upserts}"] = point(1, last)
    res[f"+{upserts}"]["all_mean"] = statistics.fmean(first + middle + last)
    # compaction, then reads and `repeats` more upserts
    compact_ms, _ = timed_ms(t.compact)
    res["compact"] = point(2, None)
    res["compact"] |= upsert_figures(upserts_ms(repeats))
    res["compact"]["compact_s"] = compact_ms / 1000
    if t.count() != w.final_rows:
        raise AssertionError(f"{t.name}: {t.count()} rows at the end, want {w.final_rows}")
    return res


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}" if b else "  n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16_384, 131_072])
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats per figure (median)")
    ap.add_argument("--upserts", type=int, default=200, help="upserts before compaction")
    ap.add_argument("--formats", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    args = ap.parse_args()
    if args.upserts < 2 * args.repeats:
        ap.error("--upserts must be at least twice --repeats")
    vers = ", ".join(f"{p} {metadata.version(p)}" for p in ("deltalake", "pylance", "pyarrow", "numpy"))
    print(f"python {sys.version.split()[0]}; {vers}; {os.cpu_count()} CPUs")
    print(
        f"rows like `sources` (64-hex key, ~200 B strings, int64 phash); base = {BASE_FILES} appends; "
        f"upsert = {BATCH_NEW} new + {BATCH_OLD} existing keys; read = {BATCH_OLD + BATCH_NEW} keys x "
        f"{len(READ_COLUMNS)} cols; anti-join = key column vs {DONE_KEYS} keys; median of {args.repeats}"
    )
    results: dict[tuple[str, int], dict] = {}
    t_all = time.perf_counter()
    for n in args.sizes:
        w = Workload(n, args.repeats, args.upserts, seed=n)
        for name in args.formats:
            root = tempfile.mkdtemp(prefix=f"aescot-bench-tf-{name}-{n}-")
            try:
                t0 = time.perf_counter()
                results[(name, n)] = run_contender(CONTENDERS[name], w, root, args.repeats, args.upserts)
                print(f"  {name} at {n} rows done in {time.perf_counter() - t0:.0f} s", flush=True)
            finally:
                shutil.rmtree(root, ignore_errors=True)
    print(f"total {time.perf_counter() - t_all:.0f} s\n")

    points = list(next(iter(results.values())))
    head = (
        f"{'format':<12} {'size':>7} {'point':<8} {'upsert ms':>9} {'(mean)':>7} {'read ms':>8} "
        f"{'anti ms':>8} {'live':>5} {'disk':>5} {'disk MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for (name, n), res in results.items():
        for p in points:
            r = res[p]
            print(
                f"{name:<12} {n:>7} {p:<8} {r['upsert']:>9.1f} {r['upsert_mean']:>7.1f} {r['read']:>8.1f} "
                f"{r['anti']:>8.1f} {r['live']:>5} {r['disk']:>5} {r['mb']:>8.1f}"
            )
    print()
    plus = f"+{args.upserts}"
    for (name, n), res in results.items():
        print(
            f"{name:<12} {n:>7}: bulk build {res['base']['build_s']:.1f} s, mean of all {args.upserts} "
            f"upserts {res[plus]['all_mean']:.1f} ms, compaction {res['compact']['compact_s']:.1f} s"
        )

    small, big = min(args.sizes), max(args.sizes)
    if small != big:
        print(f"\nratio {big}/{small} per format (1.00 = flat; {big / small:.0f} = linear in rows)")
        print(f"{'format':<12} {'point':<8} {'upsert':>6} {'read':>6} {'anti':>6}")
        for name in args.formats:
            for p in points:
                a, b = results[(name, big)][p], results[(name, small)][p]
                cells = " ".join(f"{ratio(a[c], b[c]):>6}" for c in ("upsert", "read", "anti"))
                print(f"{name:<12} {p:<8} {cells}")
    if "delta" in args.formats:
        print("\nratio X/delta per size (< 1: X is faster)")
        print(f"{'format':<12} {'size':>7} {'point':<8} {'upsert':>6} {'read':>6} {'anti':>6}")
        for name in args.formats:
            if name == "delta":
                continue
            for n in args.sizes:
                for p in points:
                    a, d = results[(name, n)][p], results[("delta", n)][p]
                    print(
                        f"{name:<12} {n:>7} {p:<8} {ratio(a['upsert'], d['upsert']):>6} "
                        f"{ratio(a['read'], d['read']):>6} {ratio(a['anti'], d['anti']):>6}"
                    )


if __name__ == "__main__":
    main()
