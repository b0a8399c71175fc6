"""The ``scores`` formats (Aes-R1 / RAPO): one row per scored candidate, from the annotators behind its label."""

from __future__ import annotations

import json
import re
import statistics

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from aescot.export import ExportConfig, export_dataset
from aescot.export.scores import SCORE_PROMPT, SCORE_QUESTION, candidate_sections
from aescot.export.splits import SPLITS
from aescot.store import DatasetStore
from aescot.teacher.parse import format_response
from aescot.vocab import LETTERS
from tests.export.demo_store import DemoSpec, build_demo_store

ANSWER = {
    "acceptable": ["B"],
    "best": "B",
    "dimensions": {"A": ["lighting_shadow"], "B": [], "C": [], "D": []},
}


def _rows(out, fmt: str) -> list[dict]:
    return [r for s in SPLITS if (out / fmt / s).is_dir() for r in pq.read_table(out / fmt / s).to_pylist()]


def test_one_row_per_scored_candidate_with_the_annotators_mean_and_spread(exported):
    store, out, summary = exported
    anns = {a["annotation_id"]: a for a in store.read("annotations")}
    labels = {lab["item_id"]: lab for lab in store.read("labels")}
    items = {i["item_id"]: i for i in store.read("items")}
    rows = _rows(out, "scores")
    assert len(rows) == 4 * len(labels) == summary.scores["candidates_scored"]
    spreads = 0
    for r in rows:
        raw = [anns[a]["scores"][r["letter"]] for a in labels[r["item_id"]]["annotation_ids"]]
        assert r["scores_raw"] == raw and r["n_scores"] == len(raw)
        assert r["score_mean"] == pytest.approx(statistics.fmean(raw))
        assert r["score"] == pytest.approx((statistics.fmean(raw) - 1) / 4) and 0 <= r["score"] <= 1
        assert r["score_std"] == pytest.approx(statistics.pstdev(raw) / 4)
        spreads += r["score_std"] > 0
        assert r["solution"] == f"<answer> {r['score']:.2f} </answer>"
        assert r["problem"] == SCORE_QUESTION and "<image>" not in r["problem"]
        cand = next(c for c in items[r["item_id"]]["candidates"] if c["letter"] == r["letter"])
        assert r["candidate_id"] == cand["candidate_id"]
        assert [im["bytes"] for im in r["image"]] == [
            store.read_bytes(items[r["item_id"]]["source_image_key"]),
            store.read_bytes(cand["image_key"]),
        ]
        assert [p["type"] for p in r["prompt"][0]["content"]] == ["image", "image", "text"]
        assert r["acceptable"] == (r["letter"] in labels[r["item_id"]]["acceptable"])
    assert spreads > 0  # the fixture has annotators who disagree


def test_the_rl_rows_load_as_aes_r1s_trainer_reads_them(exported):
    """Aes-R1's VLMGRPOTrainer reads ``prompt``, ``image`` (a list is taken as the images in order) and passes
    every other column, ``solution`` among them, to the reward functions."""
    _, out, _ = exported
    ds = datasets.load_dataset("parquet", data_files=str(out / "scores" / "train" / "*.parquet"))["train"]
    row = ds[0]
    assert all(isinstance(im, Image.Image) for im in row["image"]) and len(row["image"]) == 2
    assert re.fullmatch(r"<answer> \d\.\d\d </answer>", row["solution"])
    assert (
        row["prompt"][0]["role"] == "user"
        and row["prompt"][0]["content"][-1]["text"].strip() == SCORE_QUESTION
    )


def test_cold_start_rows_carry_the_candidates_own_rationale_section(exported):
    store, out, summary = exported
    kept = {s["item_id"]: s["rationale_id"] for s in store.read("selections") if s["kept"]}
    texts = {r["rationale_id"]: r["text"] for r in store.read("rationales")}
    rows = _rows(out, "scores_sft")
    assert rows and len(rows) == summary.scores["cold_start"] == sum(summary.rows["scores_sft"].values())
    assert {r["item_id"] for r in rows} == set(kept)  # the demo rationales all have clean sections
    for r in rows:
        user, reply = r["messages"]
        assert user == {"role": "user", "content": SCORE_PROMPT} and user["content"].count("<image>") == 2
        m = re.fullmatch(r"<think>(.+)</think><answer>(\d\.\d\d)</answer>", reply["content"], re.DOTALL)
        assert m and float(m.group(2)) == pytest.approx(r["score"], abs=0.005)
        assert r["rationale_id"] == kept[r["item_id"]]
        assert m.group(1) == candidate_sections(texts[r["rationale_id"]])[r["letter"]]
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["aescot_scores_sft_train"]["file_name"] == "scores_sft/train"
    card = (out / "README.md").read_text()
    assert "## Scores (Aes-R1 / RAPO)" in card and "no per-candidate teacher text" in card


def test_sections_of_a_rationale():
    walk = (
        "Candidate A: the shadow falls towards the lamp.\n"
        "Candidate B: clean; the label reads as in the source.\n"
        "Candidate C: fine.\n"
        "Candidate D: the box is cut off at the top.\n\n"
        "Comparing them, candidate B is the best."
    )
    got = candidate_sections(format_response(walk, ANSWER))
    assert got == {
        "A": "the shadow falls towards the lamp.",
        "B": "clean; the label reads as in the source.",
        "C": "fine.",
        "D": "the box is cut off at the top.",  # D stops at its paragraph: the comparison is not about D
    }
    # the demo stand-in teacher's walk: one line per candidate, then the choice on the next line
    lines = (
        "Stand-in teacher\nCandidate A: a clear defect. Not acceptable.\nCandidate B: intact. Acceptable.\n"
    )
    lines += "Candidate C: intact. Acceptable.\nCandidate D: intact. Acceptable.\nBest: B, the most faithful."
    assert candidate_sections(format_response(lines, ANSWER))["D"] == "intact. Acceptable."
    headings = "**A**: warped.\n### B) sharp.\n- C. fine.\nD: floats."
    assert candidate_sections(format_response(headings, ANSWER)) == {
        "A": "warped.",
        "B": "sharp.",
        "C": "fine.",
        "D": "floats.",
    }
    paragraphs = (
        "A:\nwarped box,\nlabel garbled.\nB:\nfine.\nC:\nfine.\nD:\nshadow off,\nfloats.\n\nB is best."
    )
    assert candidate_sections(format_response(paragraphs, ANSWER))["D"] == "shadow off,\nfloats."
    mixed = "Candidate A: worse than candidate C. Candidate B: ok. Candidate C: ok. Candidate D: ok."
    assert set(candidate_sections(format_response(mixed, ANSWER))) == {"B", "C", "D"}
    out_of_order = "Candidate B: ok. Candidate A: ok. Candidate C: ok. Candidate D: ok."
    assert candidate_sections(format_response(out_of_order, ANSWER)) == {}
    prose = "All four look alike; a shadow is off in the first."
    assert candidate_sections(format_response(prose, ANSWER)) == {}


def test_unscored_candidates_and_missing_annotations(tmp_path):
    """A candidate nobody scored has no row; a label whose annotations are missing is a reject, not a crash."""
    store = DatasetStore(tmp_path / "ds")
    build_demo_store(store, DemoSpec(n_items=6, seed=5))
    labels = store.read("labels")
    first, second = labels[0], labels[1]
    anns = {a["annotation_id"]: a for a in store.read("annotations")}
    # every annotator of the first item leaves A unscored (a new revision of each annotation)
    revised = [
        {**anns[a], "revision": 1, "scores": {**anns[a]["scores"], "A": None}}
        for a in first["annotation_ids"]
    ]
    store.upsert("annotations", revised)
    store.upsert("labels", [{**second, "annotation_ids": [*second["annotation_ids"], "ls:gone"]}])
    summary = export_dataset(store, ExportConfig(out=str(tmp_path / "out"), formats=["scores", "scores_sft"]))
    rows = _rows(tmp_path / "out", "scores")
    assert len(rows) == 4 * 6 - 1 - 4
    assert (first["item_id"], "A") not in {(r["item_id"], r["letter"]) for r in rows}
    assert second["item_id"] not in {r["item_id"] for r in rows}
    assert summary.scores["candidates_unscored"] == 1 and summary.reject_reasons == {"annotations_missing": 1}
    rejects = [r for r in store.read("rejects") if r["stage"] == "export"]
    assert [r["reason"] for r in rejects] == ["annotations_missing"] and "ls:gone" in rejects[0]["detail"]


def test_score_formats_follow_annotation_edits(tmp_path):
    """The spread can change while the mean does not (2,4 -> 3,3): the export must not skip as unchanged."""
    store = DatasetStore(tmp_path / "ds")
    build_demo_store(store, DemoSpec(n_items=6, seed=5))
    cfg = ExportConfig(out=str(tmp_path / "out"), formats=["scores"])
    assert not export_dataset(store, cfg).skipped and export_dataset(store, cfg).skipped
    ann = store.read("annotations")[0]
    letter = next(k for k in LETTERS if ann["scores"][k] is not None)
    store.upsert("annotations", [{**ann, "revision": 1, "updated_at": "2030-01-01T00:00:00Z"}])
    assert not export_dataset(store, cfg).skipped, f"edited {ann['annotation_id']} {letter}"


def test_cli_exports_the_score_formats(labelled, tmp_path):
    from typer.testing import CliRunner

    from aescot.cli.main import app

    store, _ = labelled
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["export", str(out), "--root", store.root, "-f", "scores", "-f", "scores_sft"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "plots") == [
        "scores",
        "scores_sft",
    ]
    assert "scores_sft" in result.output


def test_the_scores_prompt_renders_for_generation_in_trl(exported):
    """TRL's GRPOTrainer reads ``images``: rename ``image`` and its prompt renders with both images."""
    from tests import realparts
    from tests.export.test_trl_training_batch import _processor

    data_utils = realparts.optional("trl.data_utils", "dev")
    _, out, _ = exported
    ds = datasets.load_dataset("parquet", data_files=str(out / "scores" / "train" / "*.parquet"))["train"]
    row = ds.rename_column("image", "images")[0]
    proc = _processor()
    prompt = data_utils.prepare_multimodal_messages(row["prompt"], images=row["images"])
    inputs = proc.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["pixel_values"].shape[0] == 2
    assert (inputs["input_ids"] == proc.tokenizer.convert_tokens_to_ids("<image>")).sum().item() == 8
