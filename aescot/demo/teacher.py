"""The demo stand-in teacher: a real Chat Completions server on loopback that is *not a model*.

It answers the rationale prompts (and ``aescot eval``'s student question) by looking the
candidates up in the dataset and reading the defects the synthetic generator planted in their
``params`` — not the pixels — with noise: a subtle defect is misread in about a quarter of the
samples, an obvious one or a clean candidate rarely. So items with subtle defects tend to fail
the consistency filter and the others pass. Every reply says it comes from the stand-in, and the
model name is :data:`MODEL`.

It reaches the pipeline exactly as a real teacher does: ``AESCOT_TEACHER_BASE_URL`` /
``AESCOT_TEACHER_MODEL`` and the same ``openai`` client. Candidates are identified by the
``X-Aescot-Item-Id`` header the teacher client sends, or else (``aescot eval`` sends none) by
matching each image of the request to the stored candidate images (16x16 thumbnails).
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading

import numpy as np
import pyarrow.compute as pc
from PIL import Image

from aescot.demo.chat_server import ChatRequest, ChatServer, Reply
from aescot.ids import derive_id
from aescot.store import DatasetStore
from aescot.vocab import DIMENSION_INFO, LETTERS

MODEL = "aescot-demo-stand-in-teacher"
BANNER = (
    "[demo stand-in teacher, not a model: it reads the defects the synthetic generator planted, "
    "with noise; point AESCOT_TEACHER_BASE_URL at a real VLM for real rationales]"
)
MISREAD = {"subtle": 0.25, "obvious": 0.03, None: 0.02}  # chance a candidate is misjudged, by severity
_LABEL = {d.id: d.label.lower() for d in DIMENSION_INFO}


def _thumb(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data)).convert("L").resize((16, 16), Image.Resampling.BILINEAR)
    return np.asarray(img, np.float32).ravel()


class PlantedAnswers:
    """The planted truth of the candidates a request shows, looked up by item id (that item and its
    four candidates, read by key) or by image (nearest stored candidate thumbnail)."""

    def __init__(self, store: DatasetStore):
        self.store = store
        self._lock = threading.Lock()
        self._by_item: dict[str, list[dict | None]] = {}  # item id -> truth A-D (items asked for)
        self._index: tuple[list[str], np.ndarray] | None = None

    def refresh(self) -> None:
        """Forget what was read (the store changed)."""
        with self._lock:
            self._by_item = {}
            self._index = None

    def _truth(self, candidate_ids: list[str]) -> dict[str, dict]:
        rows = self.store.read(
            "candidates",
            ["candidate_id", "params", "known_acceptable"],
            keys=list(dict.fromkeys(candidate_ids)),
        )
        return {
            r["candidate_id"]: {
                **json.loads(r["params"]),
                "known_acceptable": r["known_acceptable"],
                "candidate_id": r["candidate_id"],
            }
            for r in rows
        }

    def by_item(self, item_id: str) -> list[dict | None]:
        with self._lock:
            if item_id not in self._by_item:
                items = self.store.read("items", ["item_id", "candidates"], keys=[item_id])
                if not items:  # not (yet) an item of this store: nothing planted to read, nothing kept
                    return [None] * len(LETTERS)
                ids = {c["letter"]: c["candidate_id"] for c in items[0]["candidates"]}
                truth = self._truth(list(ids.values()))
                self._by_item[item_id] = [truth.get(ids.get(L, "")) for L in LETTERS]
            return self._by_item[item_id]

    def by_images(self, images: list[bytes]) -> list[dict | None]:
        """Truth of the candidates shown (the last four images of the request)."""
        with self._lock:
            if self._index is None:
                # matching an image needs every candidate's thumbnail: two projected columns of the
                # items' candidates, built once per server (``aescot eval`` only)
                flat = pc.list_flatten(self.store.column("items", "candidates").combine_chunks())
                ids = pc.struct_field(flat, "candidate_id").to_pylist()
                keys = dict(zip(ids, pc.struct_field(flat, "image_key").to_pylist()))
                ids = sorted(keys)
                thumbs = np.stack([_thumb(self.store.read_bytes(keys[c])) for c in ids]) if ids else None
                self._index = (ids, thumbs)
            ids, thumbs = self._index
        found: list[str | None] = []
        for data in images[-len(LETTERS) :]:
            if thumbs is None:
                found.append(None)
                continue
            dist = np.abs(thumbs - _thumb(data)).mean(axis=1)
            k = int(dist.argmin())
            found.append(ids[k] if dist[k] < 12.0 else None)
        truth = self._truth([c for c in found if c])
        return [truth.get(c) if c else None for c in found]


def _decode(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def noisy_answer(truth: list[dict | None], rng: random.Random) -> tuple[dict, list[str]]:
    """The stand-in's answer for candidates A-D and one reasoning line per candidate."""
    acceptable, dims, lines = [], {}, []
    for letter, t in zip(LETTERS, truth):
        t = t or {}
        planted = list(t.get("dimensions") or [])
        severity = t.get("severity") if planted else None
        flip = rng.random() < MISREAD.get(severity, 0.02)
        if planted and not flip:
            dims[letter] = planted
            how = "a faint" if severity == "subtle" else "a clear"
            found = "; ".join(f"{_LABEL[d]} ({t.get('variants', {}).get(d, 'defect')})" for d in planted)
            lines.append(f"Candidate {letter}: {how} defect: {found}. Not acceptable.")
        elif not planted and flip:
            dims[letter] = ["lighting_shadow"]
            lines.append(f"Candidate {letter}: the shadow looks inconsistent with the light. Not acceptable.")
        else:
            dims[letter] = []
            acceptable.append(letter)
            lines.append(
                f"Candidate {letter}: product intact, shadow consistent with the light, well placed, "
                "plausible surroundings. Acceptable."
            )
    quality = {L: (t or {}).get("quality") or 0 for L, t in zip(LETTERS, truth)}
    ranked = sorted(acceptable, key=lambda L: -quality[L])
    best = ranked[0] if ranked else None
    lines.append(
        f"Best: {best}, the most faithful product in the most natural scene."
        if best
        else "No candidate is free of defects, so none is acceptable."
    )
    return {"acceptable": acceptable, "best": best, "dimensions": dims}, lines


def stand_in_responder(planted: PlantedAnswers):
    """The responder of the stand-in server (see the module docstring)."""

    def respond(req: ChatRequest) -> Reply:
        if req.item_id:
            truth = planted.by_item(req.item_id)
        else:
            truth = planted.by_images([_decode(u) for u in req.image_urls if u.startswith("data:")])
        key = req.item_id or derive_id("demo-eval", [t.get("candidate_id") if t else None for t in truth])
        rng = random.Random(derive_id("demo-teacher", key, req.sample_index or 0))
        answer, lines = noisy_answer(truth, rng)
        reasoning = BANNER + "\n" + "\n".join(lines)
        if req.wants_json_schema:
            return json.dumps({"reasoning": reasoning, "answer": answer})
        return f"<think>{reasoning}</think>\n<answer>{json.dumps(answer)}</answer>"

    return respond


def stand_in_teacher(store: DatasetStore) -> ChatServer:
    """The stand-in server (not started): ``with stand_in_teacher(store) as srv: srv.base_url``."""
    return ChatServer(stand_in_responder(PlantedAnswers(store)))
