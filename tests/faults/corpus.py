"""The operator's corpus (issue 16), small: products, exact and near copies, and bad files."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from aescot.samples import render_product_shot
from aescot.store import DatasetStore


def make_operator_corpus(folder: Path, products: int = 20, size: int = 96) -> dict[str, str | None]:
    """Write the corpus; returns {file name: expected reject reason, or None for a source}.

    Copies sort after their originals (``zz-``), so in a killed run their rejects are the last
    thing decided, the case where they used to be lost.
    """
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    shots = {}
    for i in range(products):
        img, _ = render_product_shot(1000 + i, size)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        shots[i] = (img, buf.getvalue())
        (folder / f"p-{i:02d}.png").write_bytes(buf.getvalue())
        expected[f"p-{i:02d}.png"] = None
    for i in [i for i in (1, 5, 9, 13) if i < products]:
        (folder / f"zz-copy-of-{i:02d}.png").write_bytes(shots[i][1])
        expected[f"zz-copy-of-{i:02d}.png"] = "exact_duplicate"
    for i in [i for i in (2, 6) if i < products]:
        buf = io.BytesIO()
        shots[i][0].save(buf, format="JPEG", quality=80)
        (folder / f"zz-near-{i:02d}.jpg").write_bytes(buf.getvalue())
        expected[f"zz-near-{i:02d}.jpg"] = "near_duplicate"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    (folder / "tiny.png").write_bytes(buf.getvalue())
    expected["tiny.png"] = "too_small"
    (folder / "empty.png").write_bytes(b"")
    expected["empty.png"] = "empty_file"
    (folder / "notes.png").write_bytes(b"not a picture\n")
    expected["notes.png"] = "not_an_image"
    return expected


def accounted(store: DatasetStore, expected: dict[str, str | None]) -> dict[str, str | None]:
    """How the store accounts for each input: 'source', a reject reason, or None (lost)."""
    sources = {s["original_name"] for s in store.read("sources", columns=["original_name"])}
    rows = store.read("rejects", columns=["stage", "subject", "reason"])
    rejects = {Path(r["subject"]).name: r["reason"] for r in rows if r["stage"] == "ingest"}
    return {name: "source" if name in sources else rejects.get(name) for name in expected}


def want(expected: dict[str, str | None]) -> dict[str, str]:
    return {name: reason or "source" for name, reason in expected.items()}
