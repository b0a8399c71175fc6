"""The demo from an empty root, twice, as a newcomer runs it (`python -m flows.demo`, what
`scripts/demo.sh` executes): a real Label Studio on a free port, the ephemeral Prefect API,
simulated annotators through the label stream, the stand-in teacher on loopback, the filter,
the export and `aescot eval`. The second run must repeat nothing."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from aescot.items import planted_answers
from aescot.labelstudio.server import ServerNotFound, find_binary, stop_server
from aescot.store import DatasetStore

REPO = Path(__file__).resolve().parents[2]
GOLD_SHARE = 0.2
pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*/*.parquet"))


@pytest.fixture
def demo_env(tmp_path):
    try:
        find_binary()
    except ServerNotFound as exc:
        if os.environ.get("AESCOT_REQUIRE_LABEL_STUDIO") == "1" or os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(f"no Label Studio server: {exc}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "AESCOT_TEACHER_"))}
    env.pop("PREFECT_API_URL", None)
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), COLUMNS="160", HF_HUB_OFFLINE="1")
    root = tmp_path / "demo-data"
    yield env, root
    stop_server(root / ".labelstudio")


def _demo(env: dict, root: Path, port: int) -> tuple[str, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "flows.demo", "--root", str(root), "--port", str(port), "--samples", "20"]
        + ["--gold-share", str(GOLD_SHARE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out, json.loads((root / "demo-summary.json").read_text())


def test_demo_first_run_end_to_end_then_second_run_repeats_nothing(demo_env):
    env, root = demo_env
    port = _free_port()
    out, first = _demo(env, root, port)
    print(f"first run: {first['wall_s']} s {first['times']}")

    # the whole job ran on real server data
    assert first["tasks_pushed"] == 20 and first["annotations_submitted"] == 60
    assert first["rationale_calls"] > 0 and first["export_changed"]
    export = root / "export"
    sft, rl = _rows(export / "sft"), _rows(export / "rl")
    assert sft > 0 and rl >= sft
    store = DatasetStore(root)
    kept = {r["item_id"] for r in store.read("selections") if r["kept"]}
    sft_items = {
        r
        for f in (export / "sft").glob("*/*.parquet")
        for r in pq.read_table(f).column("item_id").to_pylist()
    }
    assert sft_items and sft_items <= kept  # SFT rows are items that passed the filter
    # printed: alpha per field, filter keep/drop with reasons, card, plots, login, switches
    assert re.search(r"best\s+│?\s*-?\d\.\d{3}", out), out[-4000:]
    assert "Krippendorff" in out and "acceptable" in out
    m = re.search(r"Filter --min-consistency 0\.8: (\d+) decided, (\d+) kept, (\d+) dropped \((.+)\)", out)
    assert m and int(m.group(2)) > 0 and int(m.group(3)) > 0 and "low_consistency" in m.group(4), out[-4000:]
    assert str(export / "README.md") in out and "plots/" in out
    assert f"http://127.0.0.1:{port}" in out and "password" in out
    # a person who logs in still gets tasks from the label stream (overlap = simulated annotators + 1)
    project_id = DatasetStore(root).read("labelstudio_tasks")[0]["project_id"]
    admin = json.loads((root / ".labelstudio" / "aescot-credentials.json").read_text())["token"]
    nxt = httpx.get(
        f"http://127.0.0.1:{port}/api/projects/{project_id}/next",
        headers={"Authorization": f"Token {admin}"},
        timeout=60,
    )
    assert nxt.status_code == 200 and "aescot_item" in nxt.json()["data"]
    assert "vllm serve" in out and "AESCOT_MODEL=" in out and "--annotators 0" in out
    assert "demo stand-in" in out
    # the stand-in is named in the rationales and the card
    texts = [r["text"] for r in store.read("rationales")]
    assert texts and all("demo stand-in teacher" in t for t in texts if t)
    assert "aescot-demo-stand-in-teacher" in (export / "README.md").read_text()
    # aescot eval ran on a non-empty test split against the stand-in
    assert first["eval"]["n_items"] > 0 and first["eval"]["model"] == "aescot-demo-stand-in-teacher"
    # variety: items with 0 and with 2+ acceptable candidates; gold only at the configured share
    planted = planted_answers(store)
    sizes = [len(a["acceptable"]) for a in planted.values()]
    assert 0 in sizes and any(n >= 2 for n in sizes)
    items = store.read("items", columns=["item_id", "gold"])
    gold = sum(i["gold"] for i in items)
    assert abs(gold / len(items) - GOLD_SHARE) <= 0.05 and 0 < gold < len(items)
    # every table a whole run writes is known to doctor and repair (its key, schema and rebuild
    # command): a table its module forgot to list would be checked by name only
    from aescot.doctor import REBUILD
    from aescot.store import register_all_tables

    written = {p.name.removesuffix(".lance") for p in (root / "tables").glob("*.lance")}
    known = register_all_tables()
    assert written and written <= set(known), written - set(known)
    assert set(known) <= set(REBUILD), set(known) - set(REBUILD)

    tasks_before = store.count("labelstudio_tasks")
    rationales_before = store.count("rationales")
    sft_before = sorted(p.name for p in (export / "sft").glob("*/*.parquet"))
    out2, second = _demo(env, root, port)
    print(f"second run: {second['wall_s']} s {second['times']}")
    assert (second["tasks_pushed"], second["annotations_submitted"], second["teacher_requests"]) == (0, 0, 0)
    assert second["rationale_calls"] == 0 and not second["export_changed"]
    assert "Second run: nothing repeated" in out2
    assert store.count("labelstudio_tasks") == tasks_before and store.count("rationales") == rationales_before
    assert sorted(p.name for p in (export / "sft").glob("*/*.parquet")) == sft_before
    assert _rows(export / "sft") == sft
