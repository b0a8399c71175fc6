"""Content addressing: every id is a SHA-256 of bytes or of a canonical JSON of its inputs.

Same input, same id, so re-runs and retries cannot create duplicates.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of raw bytes (the id of an image or any blob)."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """A stable JSON text: sorted keys, no whitespace, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def derive_id(kind: str, *parts: Any) -> str:
    """Id of a derived record, e.g. ``derive_id("candidate", source_id, generator, params, seed)``."""
    return sha256_bytes(canonical_json([kind, *parts]).encode("utf-8"))


def candidate_id(source_id: str, generator: str, params: dict[str, Any], seed: int) -> str:
    """A candidate's id follows from (source id, generator, its parameters, seed)."""
    return derive_id("candidate", source_id, generator, params, int(seed))


def item_id(source_id: str, candidate_ids: list[str]) -> str:
    """A screening item's id follows from its source and its ordered candidates A-D."""
    return derive_id("item", source_id, list(candidate_ids))
