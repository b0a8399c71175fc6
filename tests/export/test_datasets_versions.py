"""Every export format loads, images decoding to PIL, in the ``datasets`` versions trainers pin.

LLaMA-Factory pins ``datasets<=4.0``; verl and EasyR1 run whatever their image has. Each version runs
in its own small venv (``datasets`` + pillow, built once under ``.cache/venvs``), reading the files the
export wrote, exactly as a trainer would: ``load_dataset("parquet", data_files=...)``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aescot.export.features import FORMATS
from tests.venvs import cached_venv

pytestmark = pytest.mark.slow

VERSIONS = ("3.6.0", "4.0.0")  # the oldest a trainer pins, the first with `List`; the newest is .venv's own

READER = r"""
import json, sys
import datasets
from PIL import Image

out = {"version": datasets.__version__, "formats": {}}
for fmt, files in json.loads(sys.argv[1]).items():
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    row = ds[0]
    images = [v for k, v in row.items() if "image" in k]
    flat = [i for v in images for i in (v if isinstance(v, list) else [v])]
    chat = row.get("messages") or row.get("prompt")
    out["formats"][fmt] = {
        "rows": len(ds),
        "images": len(flat),
        "all_pil": all(isinstance(i, Image.Image) and i.size[0] > 0 for i in flat),
        "chat_is_list_of_dicts": chat is None or isinstance(chat, str)
        or (isinstance(chat, list) and all(isinstance(m, dict) and "role" in m for m in chat)),
        "features": sorted(ds.features),
    }
print(json.dumps(out))
"""


def _venv(version: str) -> Path:
    """A venv with only ``datasets==version`` and pillow."""
    return cached_venv(f"datasets-{version}", [[f"datasets=={version}", "pillow"]])


def _files(out: Path) -> dict[str, list[str]]:
    found = {fmt: sorted(str(p) for p in (out / fmt).rglob("*.parquet")) for fmt in FORMATS}
    return {fmt: files for fmt, files in found.items() if files}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_format_loads_in_an_old_datasets(exported, version):
    _, out, summary = exported
    files = _files(out)
    assert set(files) == set(FORMATS), f"formats missing from the export: {set(FORMATS) - set(files)}"
    python = _venv(version)
    done = subprocess.run(
        [str(python), "-c", READER, json.dumps(files)],
        capture_output=True,
        text=True,
        check=False,
        env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["version"] == version
    for fmt, got in report["formats"].items():
        assert got["rows"] == sum(summary.rows[fmt].values()), (fmt, got)
        assert got["images"] >= 1 and got["all_pil"], (fmt, got)
        assert got["chat_is_list_of_dicts"], (fmt, got)


def test_the_metadata_never_names_a_type_old_datasets_lack(exported):
    import pyarrow.parquet as pq

    _, out, _ = exported
    for files in _files(out).values():
        meta = pq.read_schema(files[0]).metadata[b"huggingface"].decode()
        assert '"List"' not in meta and '"LargeList"' not in meta, meta[:300]
