"""The export's declared inputs and outputs: :class:`ExportConfig` (what to write) and
:class:`ExportSummary` (what a run did). Kept apart from the stage so the card can read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from aescot.export.features import FORMATS
from aescot.export.splits import SPLITS

Format = Literal["sft", "sft_trl", "rl", "verl", "pairs", "scores", "scores_sft"]


class ExportConfig(BaseModel):
    """What to export and how."""

    out: str = Field(description="output folder or fsspec URI")
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS))
    images: Literal["embed", "uri"] = Field(
        "embed", description="embed image bytes, or reference the store URI"
    )
    seed: int = 0
    ratios: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    near_duplicate_bits: int = Field(
        8, ge=0, description="phash Hamming distance under which sources are grouped"
    )
    resplit: bool = Field(False, description="forget remembered split assignments and assign afresh")
    rows_per_shard: int = Field(10_000, ge=1)
    row_group_rows: int = Field(256, ge=1)
    row_group_bytes: int = Field(64 * 1024 * 1024, ge=1)
    batch_size: int = Field(
        1024, ge=1, description="items whose rows are read by key and converted per batch (not in the output)"
    )
    license: str = Field("other", description="licence field of the dataset card (an SPDX id or 'other')")
    pretty_name: str = "aescot image screening"
    plots: bool = True
    force: bool = Field(False, description="rebuild even when the inputs are unchanged")

    @field_validator("ratios")
    @classmethod
    def _known_splits(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(SPLITS)
        if unknown or any(x < 0 for x in v.values()) or sum(v.values()) <= 0:
            raise ValueError(f"ratios need keys among {SPLITS}, non-negative with a positive sum; got {v}")
        return {s: v[s] for s in SPLITS if s in v}  # one order, however given (it is printed in the card)

    def fingerprint_part(self) -> dict[str, Any]:
        return self.model_dump(exclude={"out", "force", "plots", "batch_size"})

    def recorded(self) -> dict[str, Any]:
        """The settings that shape the files (not where they go, ``force``, nor the read batch size, which
        changes no byte): what the manifest and the store's ``exports`` table keep, and what ``--as-of``
        exports with again."""
        return self.model_dump(exclude={"out", "force", "batch_size"})


@dataclass
class ExportSummary:
    """What an export run did."""

    out: str
    skipped: bool  # inputs and config unchanged since the last export: nothing rewritten
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # format -> split -> rows
    items: dict[str, int] = field(default_factory=dict)  # split -> labelled items exported
    rejects: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    split_conflicts: int = 0
    scores: dict[str, int] = field(default_factory=dict)  # scored candidates, cold-start sections, ...
    leak_ok: bool = True
    leak_summary: str = ""
    fingerprint: str = ""
    files: list[str] = field(default_factory=list)
    export_id: str = ""  # the store tag naming the table versions read: cite it, or pass it to --as-of
    versions: dict[str, int] = field(default_factory=dict)  # table -> version read
    created_at: str | None = None  # when this export id was first written (from the store, not the clock)
    as_of: str | None = None  # the --as-of reference this run read at (None: the live store)
