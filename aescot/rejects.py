"""Rejects: whatever a stage refuses is kept with its reason, never silently dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aescot.ids import derive_id
from aescot.store import DatasetStore
from aescot.timeutil import now_iso


@dataclass(frozen=True)
class Reject:
    """One refused subject (a file path, a source/candidate/item id) and why."""

    stage: str
    subject: str
    reason: str
    detail: str
    related_id: str | None = None

    def record(self) -> dict:
        return {
            "reject_id": derive_id("reject", self.stage, self.subject, self.reason),
            "stage": self.stage,
            "subject": self.subject,
            "reason": self.reason,
            "detail": self.detail,
            "related_id": self.related_id,
            "at": now_iso(),
        }


def record_rejects(store: DatasetStore, rejects: list[Reject]) -> int:
    """Append rejects to the store (a re-run re-records the same ids; reads keep one)."""
    return store.upsert("rejects", [r.record() for r in rejects])


def count_reasons(rejects: list[Reject]) -> dict[str, int]:
    """How many rejects per reason code, sorted by reason (for summaries)."""
    return dict(sorted(Counter(r.reason for r in rejects).items()))
