"""A labelled dataset store built directly from valid records: for tests and benchmarks (not shipped).

Writes every table the export reads (sources, candidates, items, annotations, labels, rationales,
selections) with small PNG images stored content-addressed; each label's annotators' 1-5 scores average
to the label's score. Answers are drawn from a seeded RNG; rationale
texts use the student answer format ``<think>...</think><answer>{json}</answer>``.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

from aescot.export.features import LETTERS
from aescot.export.splits import DIMENSIONS
from aescot.ids import candidate_id, derive_id, item_id
from aescot.store import DatasetStore
from aescot.teacher.parse import format_response
from aescot.timeutil import now_iso


@dataclass
class DemoSpec:
    n_items: int = 20
    image_pool: int = 16  # distinct images reused across items (content addressing stores each once)
    image_side: int = 32
    kept_share: float = 0.7
    near_duplicate_every: int = 0  # every k-th source is a 2-bit phash variant of the one before (0 = none)
    seed: int = 0
    validate: bool = True
    annotations: bool = True  # write the per-annotator rows behind each label


def _png(rng: np.random.Generator, side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _answer(rnd: random.Random) -> dict:
    acceptable = sorted(rnd.sample(LETTERS, rnd.randint(0, 3)))
    dims = {
        k: ([] if k in acceptable else sorted(rnd.sample(DIMENSIONS, rnd.randint(1, 2)))) for k in LETTERS
    }
    return {
        "acceptable": acceptable,
        "best": rnd.choice(acceptable) if acceptable else None,
        "dimensions": dims,
    }


def rationale_text(answer: dict) -> str:
    """A well-formed rationale ending in the answer."""
    walk = " ".join(
        f"Candidate {k}: " + (", ".join(answer["dimensions"][k]) or "no defect") + "." for k in LETTERS
    )
    return format_response(walk, answer)


def _annotator_scores(mean: float, n: int, rnd: random.Random) -> list[int]:
    """``n`` integer 1-5 scores averaging exactly ``mean`` (an integer), spread out or not."""
    m = int(mean)
    spread = n >= 2 and 1 < m < 5 and rnd.random() < 0.5
    if not spread:
        return [m] * n
    return [m - 1, m + 1] + [m] * (n - 2)


def _annotations(
    iid: str, n: int, ans: dict, scores: dict, at: str, rnd: random.Random, k: int
) -> list[dict]:
    per_letter = {letter: _annotator_scores(scores[letter], n, rnd) for letter in LETTERS}
    return [
        {
            "annotation_id": f"ls:{k}:{a}",
            "revision": 0,
            "item_id": iid,
            "task_id": k,
            "annotator": f"annotator{a}",
            "status": "submitted",
            **ans,
            "scores": {letter: per_letter[letter][a] for letter in LETTERS},
            "lead_time_s": None,
            "created_at": at,
            "updated_at": at,
        }
        for a in range(n)
    ]


def build_demo_store(store: DatasetStore, spec: DemoSpec | None = None) -> dict[str, list[str]]:
    """Fill ``store`` with ``spec.n_items`` labelled items; returns the ids written per table."""
    spec = spec or DemoSpec()
    rng = np.random.default_rng(spec.seed)
    rnd = random.Random(spec.seed)
    spread_rnd = random.Random(spec.seed + 7919)  # its own stream: the other draws stay as they were
    pool = [store.put_image(_png(rng, spec.image_side)) for _ in range(spec.image_pool)]
    at = now_iso()
    sources, candidates, items, labels, rationales, selections = [], [], [], [], [], []
    annotations: list[dict] = []
    phash = None
    for n in range(spec.n_items):
        src_id = derive_id("demo-source", spec.seed, n)
        if spec.near_duplicate_every and n % spec.near_duplicate_every == 1 and phash is not None:
            phash = f"{int(phash, 16) ^ 0b101:016x}"  # 2 bits away from the previous source
        else:
            phash = f"{rnd.getrandbits(64):016x}"
        img_id, img_key = pool[n % len(pool)]
        sources.append(
            {
                "source_id": src_id,
                "image_id": img_id,
                "image_key": img_key,
                "mask_key": img_key,
                "mask_method": "segmented",
                "mask_coverage": 0.4,
                "width": spec.image_side,
                "height": spec.image_side,
                "mode": "RGB",
                "original_name": f"src{n}.png",
                "original_format": "PNG",
                "original_mode": "RGB",
                "notes": [],
                "phash": phash,
                "product": None,
                "ingested_at": at,
            }
        )
        cands = []
        for k, letter in enumerate(LETTERS):
            params = {"prompt": "on a marble counter", "steps": 4}
            cid = candidate_id(src_id, "synthetic", params, k)
            c_img, c_key = pool[(n + k + 1) % len(pool)]
            candidates.append(
                {
                    "candidate_id": cid,
                    "source_id": src_id,
                    "generator": "synthetic",
                    "model": None,
                    "params": json.dumps(params),
                    "seed": k,
                    "attempt": 0,
                    "image_id": c_img,
                    "image_key": c_key,
                    "width": spec.image_side,
                    "height": spec.image_side,
                    "phash": None,
                    "known_acceptable": None,
                    "known_dimensions": [],
                    "created_at": at,
                }
            )
            cands.append({"letter": letter, "candidate_id": cid, "image_key": c_key})
        iid = item_id(src_id, [c["candidate_id"] for c in cands])
        items.append(
            {
                "item_id": iid,
                "source_id": src_id,
                "source_image_key": img_key,
                "candidates": cands,
                "generator": "synthetic",
                "gold": False,
                "known_answer": None,
                "created_at": at,
            }
        )
        ans = _answer(rnd)
        n_ann = rnd.randint(1, 3)
        scores = {k: (5.0 if k == ans["best"] else 4.0 if k in ans["acceptable"] else 2.0) for k in LETTERS}
        if spec.annotations:
            annotations += _annotations(iid, n_ann, ans, scores, at, spread_rnd, n)
        labels.append(
            {
                "item_id": iid,
                **ans,
                "scores": scores,
                "method": "single" if n_ann == 1 else "majority",
                "n_annotations": n_ann,
                "agreement": round(rnd.choice([1.0, 2 / 3, 0.5]), 4),
                "annotation_ids": [f"ls:{n}:{a}" for a in range(n_ann)],
                "updated_at": at,
            }
        )
        kept = rnd.random() < spec.kept_share
        rid = derive_id("rationale", "teacher-x", "v1", "blind", iid, 0)
        rationales.append(
            {
                "rationale_id": rid,
                "item_id": iid,
                "teacher_model": "teacher-x",
                "prompt_version": "v1",
                "mode": "blind",
                "sample_index": 0,
                "text": rationale_text(ans),
                "parsed": ans,
                "format_ok": True,
                "error": None,
                "agreement": 1.0 if kept else 0.5,
                "consistent": kept,
                "prompt_tokens": 100,
                "completion_tokens": 80,
                "cost_usd": None,
                "created_at": at,
            }
        )
        selections.append(
            {
                "item_id": iid,
                "kept": kept,
                "reason": "kept" if kept else "low_consistency",
                "consistency": 1.0 if kept else 0.5,
                "min_consistency": 0.8,
                "rationale_id": rid if kept else None,
                "teacher_model": "teacher-x",
                "prompt_version": "v1",
                "n_samples": 1,
                "decided_at": at,
            }
        )
    for table, rows in (
        ("sources", sources),
        ("candidates", candidates),
        ("items", items),
        ("annotations", annotations),
        ("labels", labels),
        ("rationales", rationales),
        ("selections", selections),
    ):
        store.upsert(table, rows, validate=spec.validate)
    return {"sources": [s["source_id"] for s in sources], "items": [i["item_id"] for i in items]}
