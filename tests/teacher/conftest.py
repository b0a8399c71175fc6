"""Fixtures: a store holding labelled screening items (tiny real PNGs), and a loopback chat server."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from aescot.demo.chat_server import chat_server
from aescot.ids import derive_id
from aescot.ids import item_id as make_item_id
from aescot.teacher.config import RationaleConfig, TeacherSettings
from aescot.timeutil import now_iso
from aescot.vocab import DIMENSIONS as DIMS
from aescot.vocab import LETTERS

SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"


def _png(rng: random.Random, size=(96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3))).save(buf, "PNG")
    return buf.getvalue()


def random_answer(rng: random.Random) -> dict:
    acceptable = sorted(rng.sample(LETTERS, rng.randrange(0, 3)))
    dims = {
        k: ([] if k in acceptable else sorted(rng.sample(DIMS, rng.randrange(1, 3)), key=DIMS.index))
        for k in LETTERS
    }
    return {
        "acceptable": acceptable,
        "best": rng.choice(acceptable) if acceptable else None,
        "dimensions": dims,
    }


def add_labelled_items(store, n: int, seed: int = 0) -> dict[str, dict]:
    """Write ``n`` items (source + A-D images) with consensus labels; returns {item_id: answer}."""
    rng = random.Random(seed)
    items, labels, answers = [], [], {}
    for i in range(n):
        _, src_key = store.put_image(_png(rng))
        source_id = derive_id("source-test", seed, i)
        cands = []
        for letter in LETTERS:
            _, key = store.put_image(_png(rng))
            cands.append(
                {"letter": letter, "candidate_id": derive_id("cand-test", seed, i, letter), "image_key": key}
            )
        iid = make_item_id(source_id, [c["candidate_id"] for c in cands])
        items.append(
            {
                "item_id": iid,
                "source_id": source_id,
                "source_image_key": src_key,
                "candidates": cands,
                "generator": "test",
                "gold": False,
                "known_answer": None,
                "created_at": now_iso(),
            }
        )
        answer = random_answer(rng)
        answers[iid] = answer
        labels.append(
            {
                "item_id": iid,
                **answer,
                "scores": {k: None for k in LETTERS},
                "method": "single",
                "n_annotations": 1,
                "agreement": 1.0,
                "annotation_ids": [f"ann-{i}"],
                "updated_at": now_iso(),
            }
        )
    store.upsert("items", items)
    store.upsert("labels", labels)
    return answers


@pytest.fixture
def labelled(store):
    """(store, {item_id: human answer}) with 6 labelled items."""
    return store, add_labelled_items(store, 6)


@pytest.fixture
def server():
    """A loopback Chat Completions server requiring the test key; set ``server.responder`` per test."""
    with chat_server(api_key=SECRET) as srv:
        yield srv


def make_config(server, **overrides) -> RationaleConfig:
    teacher = {
        "base_url": server.base_url,
        "model": "test-teacher",
        "api_key": SECRET,
        "concurrency": 4,
        "timeout_s": 2.0,
        "retry_initial_wait_s": 0.01,
        "retry_max_wait_s": 0.5,
        "max_attempts": 4,
        "image_max_side": 32,
        "price_input_per_mtok": 1.0,
        "price_output_per_mtok": 4.0,
    }
    teacher.update(overrides.pop("teacher", {}))
    return RationaleConfig(teacher=TeacherSettings(**teacher), **overrides)
