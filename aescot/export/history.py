"""What an export read and how, kept so that ``aescot export --as-of TAG`` can write the same files again.

An export pins its inputs before it reads anything: the current version of each table it reads
(:func:`input_tables`) is tagged in the store with the export's id, and every read goes through
``store.at(id)``. The id is derived from those versions and the settings
(:func:`export_id`), so the same data exported with the same settings has the same id, and a tag
can never name two different snapshots. Tags protect their versions from the store's clean-up.

After a normal export the store's ``exports`` table keeps one row per id: the settings, the
versions, the fingerprint and the time it first ran. ``--as-of TAG`` takes the settings and the
time from that row and the rows from the tagged versions; nothing in the output comes from the
clock, so the files are byte for byte those of the first export. An as-of export writes nothing
to the store (no tags, no split assignments, no rejects, no row here).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from aescot.export.splits import SPLITS_TABLE
from aescot.ids import canonical_json, sha256_bytes
from aescot.store import DatasetStore, TableSpec, register_table

if TYPE_CHECKING:
    from aescot.export.config import ExportConfig

EXPORTS_TABLE = register_table(
    TableSpec(
        "exports",
        ("export_id",),
        schema=pa.schema(
            [
                pa.field("export_id", pa.string()),
                pa.field("created_at", pa.string()),
                pa.field("fingerprint", pa.string()),
                pa.field("versions", pa.string()),  # JSON {table: version}
                pa.field("config", pa.string()),  # JSON of the settings (ExportConfig.recorded())
                pa.field("out", pa.string()),  # where it was first written (information only)
            ]
        ),
    )
)

INPUTS = ("labels", "items", "selections", "rationales", "sources", "candidates")
SCORE_FORMATS = frozenset({"scores", "scores_sft"})
EXPORT_ID = re.compile(r"^export-[0-9a-f]{16}$")


def input_tables(cfg: ExportConfig) -> list[str]:
    """The tables an export with these settings reads (and so pins and cites)."""
    names = list(INPUTS)
    if SCORE_FORMATS & set(cfg.formats):
        names.append("annotations")
    if not cfg.resplit:
        names.append(SPLITS_TABLE.name)  # the remembered split assignments
    return names


def export_id(versions: dict[str, int], cfg: ExportConfig) -> str:
    """The id (and store tag) of an export: a hash of the table versions it reads and its settings."""
    digest = sha256_bytes(canonical_json({"versions": versions, "config": cfg.recorded()}).encode())
    return f"export-{digest[:16]}"


def pinned_versions(store: DatasetStore, cfg: ExportConfig) -> dict[str, int]:
    """The versions of the input tables that exist in ``store`` (current, or pinned for a view)."""
    wanted = set(input_tables(cfg))
    return {t: v for t, v in sorted(store.table_versions().items()) if t in wanted}


def recorded(store: DatasetStore, eid: str) -> dict[str, Any] | None:
    """The ``exports`` row of an export id (read from the live store), or None."""
    if not EXPORT_ID.match(eid):
        return None
    rows = store.read(EXPORTS_TABLE.name, keys=[eid])
    if not rows:
        return None
    row = rows[0]
    return {**row, "versions": json.loads(row["versions"]), "config": json.loads(row["config"])}


def record(
    store: DatasetStore,
    eid: str,
    created_at: str,
    fingerprint: str,
    versions: dict[str, int],
    cfg: ExportConfig,
) -> None:
    """Keep an export's settings under its id (the first run's row stays: its time is the export's)."""
    if recorded(store, eid) is not None:
        return
    store.upsert(
        EXPORTS_TABLE.name,
        [
            {
                "export_id": eid,
                "created_at": created_at,
                "fingerprint": fingerprint,
                "versions": canonical_json(versions),
                "config": json.dumps(cfg.recorded()),
                "out": cfg.out,
            }
        ],
    )


def iso_ref(ref: str) -> str | None:
    """``ref`` as a UTC ISO time when it is one (naive times are UTC), else None."""
    try:
        when = datetime.fromisoformat(ref)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")
