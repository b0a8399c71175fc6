"""The export loads in `datasets` with images decoding, in TRL's and LLaMA-Factory's layouts; it is
idempotent, leak-free, and records bad items instead of crashing."""

from __future__ import annotations

import json

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from aescot.export import ExportConfig, check_export, export_dataset
from aescot.export.features import FORMATS
from aescot.export.prompt import student_prompt_text
from aescot.export.splits import SPLITS
from aescot.store import DatasetStore
from aescot.teacher.parse import parse_answer
from tests import realparts
from tests.export.demo_store import DemoSpec, build_demo_store


def _load(out, fmt: str) -> datasets.DatasetDict:
    files = {s: str(out / fmt / s / "*.parquet") for s in SPLITS if (out / fmt / s).is_dir()}
    return datasets.load_dataset("parquet", data_files=files)


def test_every_format_loads_with_images_decoding(exported):
    _, out, summary = exported
    assert summary.leak_ok and not summary.skipped
    for fmt in FORMATS:
        dd = _load(out, fmt)
        assert {s: dd[s].num_rows for s in dd} == {s: n for s, n in summary.rows[fmt].items()}, fmt
        row = dd["train"][0]
        if "images" in row:
            images = row["images"]
        elif "image" in row:  # scores: [source, candidate] under the key Aes-R1's trainer reads
            images = row["image"]
        else:
            images = [row["source_image"], row["chosen_image"], row["rejected_image"]]
        assert all(isinstance(im, Image.Image) and im.size == (32, 32) for im in images), fmt


def test_images_are_source_then_a_to_d(exported):
    store, out, _ = exported
    items = {i["item_id"]: i for i in store.read("items")}
    t = pq.read_table(out / "rl" / "train", columns=["item_id", "images"]).to_pylist()[0]
    item = items[t["item_id"]]
    keys = [item["source_image_key"]] + [c["image_key"] for c in item["candidates"]]
    assert [im["bytes"] for im in t["images"]] == [store.read_bytes(k) for k in keys]


def test_sft_is_kept_items_with_their_rationale_and_rl_is_every_labelled_item(exported, labelled):
    store, out, summary = exported
    kept = {s["item_id"]: s for s in store.read("selections") if s["kept"]}
    rationales = {r["rationale_id"]: r["text"] for r in store.read("rationales")}
    sft = _load(out, "sft")
    seen = set()
    for split in sft:
        for row in sft[split].remove_columns("images"):
            assert row["item_id"] in kept and row["split"] == split
            assert row["messages"][1]["content"] == rationales[kept[row["item_id"]]["rationale_id"]]
            parse_answer(row["messages"][1]["content"])  # the assistant turn ends in a parseable answer
            seen.add(row["item_id"])
    assert seen == set(kept)
    assert sum(summary.rows["rl"].values()) == len(labelled[1]["items"])


def test_sharegpt_layout_matches_llamafactory(exported):
    """LLaMA-Factory 0.9.5 pins datasets<=4.0 and transformers<=5.6, so it cannot be installed beside this
    stack; this checks what its sharegpt converter and mm_plugin require (docs: data/README.md)."""
    _, out, _ = exported
    info = json.loads((out / "dataset_info.json").read_text())
    entry = info["aescot_sft_train"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {
        "messages": "messages",
        "images": "images",
    }
    assert (out / entry["file_name"]).is_dir()
    ds = datasets.load_dataset("parquet", data_files=str(out / entry["file_name"] / "*.parquet"))["train"]
    tags = entry["tags"]
    for row in ds:
        msgs = row[entry["columns"]["messages"]]
        # SharegptDatasetConverter: odd turns user, even turns assistant, an even number of turns
        assert [m[tags["role_tag"]] for m in msgs] == [tags["user_tag"], tags["assistant_tag"]]
        # mm_plugin._validate_input: one <image> placeholder per image
        n_placeholders = sum(m[tags["content_tag"]].count("<image>") for m in msgs)
        assert n_placeholders == len(row["images"]) == 5


@pytest.mark.parametrize("fmt,column", [("sft_trl", "messages"), ("rl", "prompt")])
def test_trl_prepares_multimodal_messages(exported, fmt, column):
    trl_data = realparts.optional("trl.data_utils", "dev")
    _, out, _ = exported
    row = _load(out, fmt)["train"][0]
    assert trl_data.is_conversational(row)
    msgs = trl_data.prepare_multimodal_messages(row[column], images=row["images"])
    filled = [p["image"] for p in msgs[0]["content"] if p["type"] == "image"]
    assert filled == row["images"]
    text = "".join(p["text"] for p in msgs[0]["content"] if p["type"] == "text")
    assert "<image>" not in text and "Candidate D:" in text


def test_images_by_uri_load_and_decode(labelled, tmp_path):
    store, _ = labelled
    summary = export_dataset(
        store, ExportConfig(out=str(tmp_path / "uri"), images="uri", formats=["rl", "pairs"], seed=3)
    )
    raw = pq.read_table(tmp_path / "uri" / "rl" / "train", columns=["images"]).to_pylist()[0]["images"]
    assert all(v["bytes"] is None and v["path"].startswith(store.root) for v in raw)
    row = _load(tmp_path / "uri", "rl")["train"][0]
    assert all(isinstance(im, Image.Image) for im in row["images"])
    assert sorted(summary.rows) == ["pairs", "rl"] and not (tmp_path / "uri" / "sft").exists()
    export_dataset(store, ExportConfig(out=str(tmp_path / "uri"), images="uri", formats=["rl"], seed=3))
    assert not (tmp_path / "uri" / "pairs").exists()  # the folder is one snapshot: no stale format left


def test_rerun_with_unchanged_inputs_rewrites_nothing(exported):
    store, out, summary = exported
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    again = export_dataset(store, ExportConfig(out=str(out), seed=3))
    assert again.skipped and again.rows == summary.rows
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


def test_card_and_plots(exported):
    _, out, summary = exported
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "license: other" in card and "config_name: rl" in card
    for needle in (
        "appearance_deformation",
        "Teacher consistency",
        "teacher-x",
        "synthetic",
        "no leak",
        "mean agreement",
    ):
        assert needle in card, needle
    for png in ("dimensions_per_split.png", "consistency_hist.png", "agreement_hist.png"):
        with Image.open(out / "plots" / png) as im:
            assert im.format == "PNG" and im.size[0] > 100
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == summary.fingerprint and manifest["leak"]["ok"]


def test_leak_check_on_written_files(exported):
    store, out, _ = exported
    report = check_export(str(out), store)
    assert report.ok and report.n_items == 40
    # near-duplicate sources (every third one) share a split
    phash = {s["source_id"]: s["phash"] for s in store.read("sources")}
    rl = pq.read_table(out / "rl", columns=["source_id", "split"]).to_pylist()
    split_of = {r["source_id"]: r["split"] for r in rl}
    ids = sorted(phash)
    near = [
        (a, b) for a in ids for b in ids if a < b and (int(phash[a], 16) ^ int(phash[b], 16)).bit_count() <= 8
    ]
    assert near and all(split_of[a] == split_of[b] for a, b in near)


def test_leak_check_catches_a_moved_row(exported, tmp_path):
    import shutil

    store, out, _ = exported
    leaky = tmp_path / "leaky"
    shutil.copytree(out, leaky)
    test_file = next((leaky / "rl" / "test").glob("*.parquet"))
    row = pq.read_table(test_file).slice(0, 1).to_pylist()
    row[0]["split"] = "test"
    table = pq.read_table(next((leaky / "rl" / "train").glob("*.parquet")))
    import pyarrow as pa

    pq.write_table(
        pa.concat_tables([table, pa.Table.from_pylist(row, schema=table.schema)]),
        leaky / "rl" / "train" / "extra.parquet",
    )
    report = check_export(str(leaky), store)
    assert not report.ok and report.sources_in_several_splits


def test_bad_items_are_recorded_and_the_rest_exported(tmp_path):
    store = DatasetStore(tmp_path / "ds")
    ids = build_demo_store(store, DemoSpec(n_items=12, seed=5))
    victim = store.read("items")[0]
    victim["candidates"][2]["image_key"] = "images/00/lost.png"  # an image that is not in the store
    store.upsert("items", [victim])
    kept = next(s for s in store.read("selections") if s["kept"] and s["item_id"] != victim["item_id"])
    store.upsert(
        "selections", [{**kept, "rationale_id": "f" * 64}]
    )  # kept with a rationale that does not exist
    other = next(
        s
        for s in store.read("selections")
        if s["kept"] and s["item_id"] not in (victim["item_id"], kept["item_id"])
    )
    rat = next(r for r in store.read("rationales") if r["rationale_id"] == other["rationale_id"])
    store.upsert("rationales", [{**rat, "text": "<think>looks fine</think> A is best"}])  # no answer block
    summary = export_dataset(store, ExportConfig(out=str(tmp_path / "out")))
    assert summary.reject_reasons == {"image_missing": 1, "rationale_missing": 1, "rationale_unparseable": 1}
    rejects = {r["subject"]: r for r in store.read("rejects")}
    assert rejects[victim["item_id"]]["reason"] == "image_missing"
    assert rejects[kept["item_id"]]["reason"] == "rationale_missing"
    assert "no_answer" in rejects[other["item_id"]]["detail"]
    assert sum(summary.items.values()) == len(ids["items"]) - 1
    assert sum(summary.rows["rl"].values()) == len(ids["items"]) - 1  # the item without a rationale is in RL


def test_splits_are_remembered_when_data_grows(tmp_path):
    store = DatasetStore(tmp_path / "ds")
    build_demo_store(store, DemoSpec(n_items=30, seed=2))
    first = export_dataset(store, ExportConfig(out=str(tmp_path / "out")))
    split_of = {r["item_id"]: r["split"] for r in pq.read_table(tmp_path / "out" / "rl").to_pylist()}
    build_demo_store(store, DemoSpec(n_items=60, seed=2))  # same first 30 items, 30 new ones
    second = export_dataset(store, ExportConfig(out=str(tmp_path / "out")))
    assert not second.skipped and sum(second.items.values()) == 60 > sum(first.items.values())
    now = {r["item_id"]: r["split"] for r in pq.read_table(tmp_path / "out" / "rl").to_pylist()}
    assert all(now[i] == s for i, s in split_of.items())


def test_prompt_is_the_teachers_student_question(exported):
    _, out, _ = exported
    row = pq.read_table(out / "rl" / "train", columns=["problem"]).to_pylist()[0]
    assert row["problem"] == student_prompt_text()


def test_cli_export(labelled, tmp_path):
    from typer.testing import CliRunner

    from aescot.cli.main import app

    store, _ = labelled
    args = [
        "export",
        str(tmp_path / "cli"),
        "--root",
        store.root,
        "-f",
        "rl",
        "-f",
        "sft",
        "--images",
        "uri",
        "--license",
        "cc-by-4.0",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "no leak" in first.output and "rl" in first.output
    assert "license: cc-by-4.0" in (tmp_path / "cli" / "README.md").read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "nothing rewritten" in again.output
    bad = CliRunner().invoke(app, [*args, "--images", "inline"])
    assert bad.exit_code == 2 and "images" in bad.output


def test_cli_export_without_labels_says_what_to_do(tmp_path):
    from typer.testing import CliRunner

    from aescot.cli.main import app

    (tmp_path / "empty" / "tables").mkdir(parents=True)  # a dataset without labels (no root: "no dataset")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "out"), "--root", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no labelled items" in result.output


def test_every_rl_row_satisfies_the_export_row_contract(exported):
    from aescot.contracts import arrow_schema, validate_many
    from aescot.export.features import features

    _, out, _ = exported
    rows = pq.read_table(out / "rl").to_pylist()
    for r in rows:
        r["images"] = [{"path": im["path"]} for im in r["images"]]
    assert len(validate_many("export_row", rows)) == 40
    contract, written = arrow_schema("export_row"), features("rl").arrow_schema
    assert contract.names == written.names
    assert all(contract.field(n).type == written.field(n).type for n in contract.names if n != "images")


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_folder_loads_by_config_name(exported, fmt):
    """`load_dataset(<export folder>, <format>)` reads the card's YAML configs: point a trainer at the folder."""
    _, out, summary = exported
    dd = datasets.load_dataset(str(out), fmt)
    assert {s: dd[s].num_rows for s in dd} == summary.rows[fmt]


def test_export_to_an_fsspec_filesystem(labelled):
    import fsspec

    store, _ = labelled
    summary = export_dataset(store, ExportConfig(out="memory://aescot-export", formats=["rl"], seed=3))
    fs = fsspec.filesystem("memory")
    files = sorted(fs.glob("/aescot-export/rl/*/*.parquet"))
    assert len(files) == 3 and summary.leak_ok and fs.exists("/aescot-export/README.md")
    with fs.open(files[0], "rb") as fh:
        assert pq.read_table(fh).num_rows == summary.rows["rl"][files[0].split("/")[-2]]
    assert not [p for p in fs.find("/aescot-export") if ".staging-" in p]
    assert export_dataset(store, ExportConfig(out="memory://aescot-export", formats=["rl"], seed=3)).skipped


def test_two_exports_in_same_named_folders_do_not_share_the_datasets_cache(tmp_path):
    """`datasets` keys its cache on the folder name and the card's YAML; the fingerprint in `dataset_info`
    keeps a second export from silently loading the first one's cached rows."""
    counts = []
    for seed, n in ((21, 8), (22, 12)):
        store = DatasetStore(tmp_path / f"s{seed}" / "ds")
        build_demo_store(store, DemoSpec(n_items=n, seed=seed))
        export_dataset(
            store, ExportConfig(out=str(tmp_path / f"s{seed}" / "out"), formats=["rl"], ratios={"train": 1})
        )
        dd = datasets.load_dataset(str(tmp_path / f"s{seed}" / "out"), "rl")
        counts.append(dd["train"].num_rows)
    assert counts == [8, 12]
