"""The generation ledger: one row per (source, generator settings) once its candidates are final.

A source is done for a generator when its group row exists; the row is written after the
group's candidate rows, so a crash in between only makes the next run regenerate the same
seeds into the same candidate ids (keyed upserts keep one row each).
"""

from __future__ import annotations

import pyarrow as pa

from aescot.store import TableSpec, register_table

GROUPS = register_table(
    TableSpec(
        "generation_groups",
        ("group_id",),
        schema=pa.schema(
            [
                pa.field("group_id", pa.string()),
                pa.field("source_id", pa.string()),
                pa.field("generator", pa.string()),
                pa.field("model", pa.string()),
                pa.field(
                    "config", pa.string()
                ),  # JSON text: generator fingerprint, base seed, dedupe settings
                pa.field("candidate_ids", pa.list_(pa.string())),  # final candidates, by slot
                pa.field(
                    "failed_slots", pa.list_(pa.int64())
                ),  # slots still near-duplicate after every retry
                pa.field("regenerations", pa.int64()),
                pa.field("finished_at", pa.string()),
            ]
        ),
    )
)
