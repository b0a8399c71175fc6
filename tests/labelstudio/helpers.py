"""Test data and annotator helpers: valid screening items with real PNGs, annotators who sign up
through Label Studio's invite link and use their own API token, as people would."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from PIL import Image, ImageDraw

from aescot.ids import candidate_id, derive_id, item_id
from aescot.labelstudio.mapping import answer_to_result
from aescot.store import DatasetStore
from aescot.timeutil import now_iso
from aescot.vocab import LETTERS


def colour(seed: int) -> tuple[int, int, int]:
    """The fill colour of :func:`png` for ``seed`` (how a browser test tells the images apart)."""
    return (seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256


def png(seed: int, size: int = 16) -> bytes:
    img = Image.new("RGB", (size, size), colour(seed))
    img.putpixel((seed % size, (seed // size) % size), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def answer(
    best: str | None,
    acceptable: list[str],
    dims: dict[str, list[str]] | None = None,
    scores: dict[str, int | None] | None = None,
) -> dict[str, Any]:
    out = {
        "acceptable": sorted(acceptable),
        "best": best,
        "dimensions": {L: (dims or {}).get(L, []) for L in LETTERS},
    }
    if scores is not None:
        out["scores"] = {L: scores.get(L) for L in LETTERS}
    return out


GOLD_ANSWER = answer(
    "B", ["B", "C"], {"A": ["appearance_deformation"], "D": ["lighting_shadow", "placement_layout"]}
)


def make_items(
    store: DatasetStore, n: int, gold: int = 0, image_pool: int = 25, size: int = 16
) -> list[dict[str, Any]]:
    """``n`` regular + ``gold`` gold items (known answer :data:`GOLD_ANSWER`), appended to ``items``.

    Item ``k`` shows image ``k % image_pool`` as its source and ``(k + j + 1) % image_pool`` as its j-th
    candidate (``size`` x ``size`` PNGs of :func:`colour`)."""
    keys = [store.put_image(png(i, size))[1] for i in range(image_pool)]
    items = []
    for k in range(n + gold):
        source_id = derive_id("test-source", k, uuid.uuid4().hex)
        cands = [
            {
                "letter": L,
                "candidate_id": candidate_id(source_id, "test", {}, j),
                "image_key": keys[(k + j + 1) % image_pool],
            }
            for j, L in enumerate(LETTERS)
        ]
        is_gold = k >= n
        items.append(
            {
                "item_id": item_id(source_id, [c["candidate_id"] for c in cands]),
                "source_id": source_id,
                "source_image_key": keys[k % image_pool],
                "candidates": cands,
                "generator": "test",
                "gold": is_gold,
                "known_answer": GOLD_ANSWER if is_gold else None,
                "created_at": now_iso(),
            }
        )
    store.upsert("items", items)
    return items


class Annotator:
    """A person who joined through the invite link and labels with their own token."""

    def __init__(self, url: str, email: str, token: str):
        self.url, self.email, self.token = url, email, token
        self.client = LabelStudio(base_url=url, api_key=token)

    def annotate(self, task_id: int, ans: dict[str, Any], lead_time: float = 7.5) -> int:
        return self.client.annotations.create(task_id, result=answer_to_result(ans), lead_time=lead_time).id

    def raw(self, task_id: int, result: list[dict]) -> int:
        return self.client.annotations.create(task_id, result=result).id

    def skip(self, task_id: int) -> int:
        return self.client.annotations.create(task_id, result=[], was_cancelled=True).id

    def edit(self, annotation_id: int, ans: dict[str, Any]) -> None:
        self.client.annotations.update(annotation_id, result=answer_to_result(ans))


def sign_up(
    url: str, admin_token: str, email: str | None = None, password: str = "annotator-pass-123"
) -> Annotator:
    email = email or f"ann-{uuid.uuid4().hex[:8]}@example.org"
    invite = httpx.get(f"{url}/api/invite", headers={"Authorization": f"Token {admin_token}"}).json()
    with httpx.Client(base_url=url, follow_redirects=True) as web:
        web.get(invite["invite_url"]).raise_for_status()
        r = web.post(
            invite["invite_url"],
            data={"email": email, "password": password, "csrfmiddlewaretoken": web.cookies["csrftoken"]},
            headers={"Referer": url + invite["invite_url"]},
        )
        r.raise_for_status()
        token = web.get("/api/current-user/token").json()["token"]
    return Annotator(url, email, token)


def admin(config) -> LabelStudio:
    return LabelStudio(base_url=config.url, api_key=config.api_key.get_secret_value())


def product_mask_png(size: int = 256, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """A product mask: an upright ellipse in the middle (``box``: its bounding box)."""
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse(box or (size // 4, size // 6, 3 * size // 4, 5 * size // 6), fill=255)
    return mask


def add_source(store: DatasetStore, item: dict[str, Any], mask: Image.Image | None = None) -> dict[str, Any]:
    """A ``sources`` row (as ingest writes it) for ``item``'s source: its photo and ``mask`` (default
    :func:`product_mask_png` at the photo's size) in the store."""
    import numpy as np

    from aescot.ids import sha256_bytes

    photo = store.read_bytes(item["source_image_key"])
    with Image.open(io.BytesIO(photo)) as img:
        size = img.size
    mask = mask or product_mask_png(size[0])
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    _, mask_key = store.put_image(buf.getvalue())
    row = {
        "source_id": item["source_id"],
        "image_id": sha256_bytes(photo),
        "image_key": item["source_image_key"],
        "mask_key": mask_key,
        "mask_method": "user",
        "mask_coverage": float((np.asarray(mask.convert("L")) > 127).mean()),
        "width": size[0],
        "height": size[1],
        "mode": "RGB",
        "original_name": f"{item['source_id'][:8]}.png",
        "original_format": "PNG",
        "original_mode": "RGB",
        "notes": [],
        "phash": "0" * 16,
        "product": None,
        "ingested_at": now_iso(),
    }
    store.upsert("sources", [row])
    return row


def s3_dataset(endpoint: str, bucket: str, config: Any) -> tuple[Any, DatasetStore, Any]:
    """A bucket on the S3 server at ``endpoint`` (moto's test keys), a dataset at ``s3://bucket/ds``
    and ``config`` (a LabelStudioConfig) with the S3 storage settings Label Studio presigns with:
    ``(boto3 client, store, config)``."""
    from pydantic import SecretStr

    from tests.s3 import moto_client

    s3 = moto_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    store = DatasetStore(
        f"s3://{bucket}/ds",
        storage_options={
            "key": "test",
            "secret": "test",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        },
    )
    config = config.model_copy(
        update={
            "s3_endpoint": endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": SecretStr("test"),
            "s3_secret_access_key": SecretStr("test"),
        }
    )
    return s3, store, config
