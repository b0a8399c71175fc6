"""The dataset card: README.md (Hugging Face YAML header + tables) and PNG plots beside the Parquet."""

from __future__ import annotations

import io
import json
import posixpath
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aescot.export.features import LETTERS
from aescot.export.splits import DIMENSIONS, SPLITS, LeakReport, SplitPlan
from aescot.store import DatasetStore

if TYPE_CHECKING:
    from aescot.export.batch import BatchRows
    from aescot.export.config import ExportConfig, ExportSummary

FORMAT_TITLES = {
    "sft": "SFT, LLaMA-Factory sharegpt layout (`messages` with `<image>` placeholders + `images`)",
    "sft_trl": "SFT, TRL conversational vision layout (typed `messages` + `images`)",
    "rl": "RL / GRPO: `prompt`, `images` and verifiable ground truth",
    "verl": "RL for verl: `prompt` with `<image>` placeholders, `images`, `reward_model.ground_truth`",
    "pairs": "candidate preference pairs (chosen/rejected images) for reward models and image DPO",
    "scores": "Aes-R1 / RAPO RL: one row per scored candidate, `problem`, `solution` (`<answer> s </answer>`), "
    "`image` [source, candidate]",
    "scores_sft": "Aes-R1 cold start (LLaMA-Factory sharegpt): `messages` ending in "
    "`<think>rationale</think><answer>s</answer>`, `images`",
}
BINS = [i / 10 for i in range(11)]


def _bin(value: float) -> int:
    """The histogram bin of a value in [0, 1] (numpy's rule: the last bin holds 1.0)."""
    return min(max(bisect_right(BINS, value) - 1, 0), 9)


@dataclass
class CardStats:
    """What the card shows, summed a batch at a time as the export reads its rows (never whole tables)."""

    dim_counts: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    agreement_hist: list[int] = field(default_factory=lambda: [0] * 10)
    agreement_sum: Counter = field(default_factory=Counter)  # split -> sum of agreements
    agreement_n: Counter = field(default_factory=Counter)  # split -> labelled items
    consistency_hist: list[int] = field(default_factory=lambda: [0] * 10)
    reasons: Counter = field(default_factory=Counter)
    teachers: Counter = field(default_factory=Counter)  # (model, prompt version) -> items
    thresholds: set[float] = field(default_factory=set)
    generators: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # -> [candidates, param names]

    def add(self, store: DatasetStore, split: str, batch: list[str], rows: BatchRows) -> None:
        """Count one batch of planned items (rejected ones too: the card describes the planned set)."""
        cand_ids: list[str] = []
        for item_id in batch:
            label = rows.labels.get(item_id)
            if label is not None:
                for letter in LETTERS:
                    self.dim_counts[split].update(label["dimensions"][letter])
                self.agreement_hist[_bin(label["agreement"])] += 1
                self.agreement_sum[split] += label["agreement"]
                self.agreement_n[split] += 1
            sel = rows.selections.get(item_id)
            if sel is not None:
                if sel["consistency"] is not None:
                    self.consistency_hist[_bin(sel["consistency"])] += 1
                self.reasons[sel["reason"]] += 1
                self.teachers[(sel["teacher_model"], sel["prompt_version"])] += 1
                self.thresholds.add(sel["min_consistency"])
            item = rows.items.get(item_id)
            if item is not None:
                cand_ids += [c["candidate_id"] for c in item["candidates"]]
        if not cand_ids:
            return
        cands = store.read_arrow(
            "candidates", ["candidate_id", "generator", "model", "params"], keys=cand_ids
        )
        counts = cands.group_by(["generator", "model"], use_threads=False).aggregate(
            [("candidate_id", "count"), ("params", "distinct")]
        )
        for c in counts.to_pylist():
            entry = self.generators.setdefault((c["generator"], c["model"] or ""), [0, set()])
            entry[0] += c["candidate_id_count"]
            for text in c["params_distinct"]:
                try:
                    entry[1].update(json.loads(text))
                except (ValueError, TypeError):
                    continue

    def generator_rows(self) -> list[list[Any]]:
        """(generator, model, candidates, parameter names) of the exported items' candidates."""
        return [
            [gen, model or "-", n, ", ".join(sorted(keys))[:200]]
            for (gen, model), (n, keys) in sorted(self.generators.items())
        ]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _yaml(cfg: ExportConfig, summary: ExportSummary, bytes_per_format: dict[str, int]) -> str:
    """The card header. ``dataset_info`` carries the export fingerprint: `datasets` hashes it into its cache
    key, which otherwise depends only on the folder name and the file patterns, so two exports in folders of
    the same name (or one folder re-exported) would silently load each other's cached data."""
    lines = [
        "---",
        f"pretty_name: {json.dumps(cfg.pretty_name)}",
        f"license: {cfg.license}",
        "task_categories:",
        "- image-text-to-text",
        "tags:",
        "- aescot",
        "- image-screening",
        "- multimodal-reasoning",
        "dataset_info:",
    ]
    for fmt in cfg.formats:
        if summary.rows.get(fmt):
            lines += [
                f"- config_name: {fmt}",
                f"  description: aescot export {summary.fingerprint}",
                f"  download_size: {bytes_per_format.get(fmt, 0)}",
            ]
    lines.append("configs:")
    first = True
    for fmt in cfg.formats:
        splits = [s for s in SPLITS if summary.rows.get(fmt, {}).get(s)]
        if not splits:
            continue
        lines.append(f"- config_name: {fmt}")
        if first:
            lines.append("  default: true")
            first = False
        lines.append("  data_files:")
        for s in splits:
            lines += [f"  - split: {s}", f"    path: {fmt}/{s}/*.parquet"]
    lines.append("---")
    return "\n".join(lines)


def _plots(
    fs,
    out: str,
    dim_counts: dict[str, Counter],
    consistency: list[int],
    agreement: list[int],
    thresholds: list[float],
) -> list[str]:
    """The card's PNGs; ``consistency`` and ``agreement`` are 10-bin histograms over [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, name: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        fs.makedirs(posixpath.join(out, "plots"), exist_ok=True)
        with fs.open(posixpath.join(out, "plots", name), "wb") as fh:
            fh.write(buf.getvalue())
        written.append(f"plots/{name}")

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(SPLITS)
    for k, split in enumerate(SPLITS):
        ax.bar(
            [i + k * width for i in range(len(DIMENSIONS))],
            [dim_counts[split].get(d, 0) for d in DIMENSIONS],
            width,
            label=split,
        )
    ax.set_xticks([i + width for i in range(len(DIMENSIONS))], [d.replace("_", "\n") for d in DIMENSIONS])
    ax.set_ylabel("flawed candidates")
    ax.set_title("Defects per dimension and split")
    ax.legend()
    save(fig, "dimensions_per_split.png")

    for name, counts, title in (
        ("consistency_hist.png", consistency, "Teacher consistency per item"),
        ("agreement_hist.png", agreement, "Annotator agreement per item"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(BINS[:-1], bins=BINS, weights=counts, edgecolor="black")
        if name == "consistency_hist.png":
            for t in thresholds:
                ax.axvline(t, color="red", linestyle="--", label=f"min consistency {t:g}")
            if thresholds:
                ax.legend()
        ax.set_xlabel(title.split(" per")[0].lower())
        ax.set_ylabel("items")
        ax.set_title(title)
        save(fig, name)
    return written


def _provenance_section(summary: ExportSummary) -> list[str]:
    """Which table versions these files were built from, and the command that writes them again."""
    if not summary.export_id:
        return []
    when = f", first written {summary.created_at}" if summary.created_at else ""
    return [
        "## Provenance",
        "",
        (
            f"Export `{summary.export_id}`{when}, built from these versions of the store's tables (the store "
            f"keeps them under the tag `{summary.export_id}`). `aescot export FOLDER --root STORE --as-of "
            f"{summary.export_id}` writes these files again, byte for byte."
        ),
        "",
        _table(["table", "version"], [[t, v] for t, v in sorted(summary.versions.items())]),
        "",
    ]


def _scores_section(cfg: ExportConfig, summary: ExportSummary) -> list[str]:
    """What the score formats hold, and why the cold start has fewer rows than the RL stage."""
    if not {"scores", "scores_sft"} & set(cfg.formats):
        return []
    c = summary.scores
    scored, kept = c.get("candidates_scored", 0), c.get("scored_in_kept_items", 0)
    return [
        "## Scores (Aes-R1 / RAPO)",
        "",
        _table(
            ["scored candidates", "unscored candidates", "scored, in kept items", "cold-start rows"],
            [[scored, c.get("candidates_unscored", 0), kept, c.get("cold_start", 0)]],
        ),
        "",
        (
            "`score` is the mean 1-5 score of the annotators behind the label, mapped to [0, 1] as "
            "`(mean - 1) / 4`; `score_std` is their population standard deviation on the same scale "
            "(0 with one annotator); `scores_raw` keeps the 1-5 values. A candidate nobody scored has no row. "
            "Rewards: `aescot.rewards.absolute_score_reward` (Gaussian of the error, width 0.1) and "
            "`aescot.rewards.relative_score_reward` (RAPO's ranking fidelity over the batch)."
        ),
        "",
        (
            "Cold start: the store has no per-candidate teacher text; a kept item's rationale walks the "
            "four candidates in one text. `scores_sft` has a row only where that text has a section of its "
            "own for the candidate (headed by its letter, in the order A-D, naming no other candidate): "
            f"{c.get('cold_start', 0)} of the {kept} scored candidates in kept items "
            f"({c.get('no_section', 0)} without such a section), out of {scored} scored candidates."
        ),
        "",
    ]


def write_card(
    fs,
    out: str,
    cfg: ExportConfig,
    summary: ExportSummary,
    plan: SplitPlan,
    leak: LeakReport,
    stats: CardStats,
    prompt_text: str,
) -> None:
    """Write README.md, the plots and LLaMA-Factory's dataset_info.json into ``out``."""
    dim_counts = stats.dim_counts
    stratum_counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    thresholds = sorted(stats.thresholds)
    reasons, teachers = stats.reasons, stats.teachers
    generators = stats.generator_rows()
    split_of_group = {
        g: plan.split_of_source[s] for s, g in plan.group_of_source.items() if s in plan.split_of_source
    }
    for group, st in plan.stratum_of_group.items():
        stratum_counts[split_of_group[group]][st] += 1

    plots = (
        _plots(fs, out, dim_counts, stats.consistency_hist, stats.agreement_hist, thresholds)
        if cfg.plots
        else []
    )
    bytes_per_format: Counter = Counter()
    for rel in summary.files:
        bytes_per_format[rel.split("/")[0]] += fs.size(posixpath.join(out, rel))

    formats_present = [f for f in cfg.formats if summary.rows.get(f)]
    first_format = formats_present[0] if formats_present else "rl"
    parts = [
        _yaml(cfg, summary, bytes_per_format),
        "",
        f"# {cfg.pretty_name}",
        "",
        (
            "Image-screening data built with [aescot](https://aescot.dev): each item is a source photo of a health "
            "product and four candidates A-D generated from it; people labelled which candidates are acceptable, "
            "the best one and the defect dimensions of each flawed one; a teacher model wrote the chain-of-thought "
            "rationales kept for SFT (only those consistent with the people)."
        ),
        "",
        "## Licence",
        "",
        f"`{cfg.license}`"
        + (
            " — set the licence of your sources and generator with `--license` before publishing."
            if cfg.license == "other"
            else ""
        ),
        "",
        "## Files and rows",
        "",
        _table(
            ["config", "what", *SPLITS],
            [
                [f, FORMAT_TITLES[f], *[summary.rows.get(f, {}).get(s, 0) for s in SPLITS]]
                for f in formats_present
            ],
        ),
        "",
        (
            f"Images are {'embedded as bytes' if cfg.images == 'embed' else 'referenced by URI'} "
            "in the Hugging Face `Image` layout `{bytes, path}`; image lists are in the order source, A, B, C, D."
        ),
        "",
        "## Items per split and dimension",
        "",
        _table(
            ["split", "labelled items", *DIMENSIONS],
            [[s, summary.items.get(s, 0), *[dim_counts[s].get(d, 0) for d in DIMENSIONS]] for s in SPLITS],
        ),
        "",
        "Dimension columns count flawed candidates failing that dimension.",
        "",
        _table(
            ["split", *DIMENSIONS, "none"],
            [[s, *[stratum_counts[s].get(d, 0) for d in (*DIMENSIONS, "none")]] for s in SPLITS],
        ),
        "",
        "Source groups per stratum (the dimension a group's items fail most often).",
        "",
        "![defects per dimension](plots/dimensions_per_split.png)" if plots else "",
        "",
        "## Annotator agreement",
        "",
        _table(
            ["split", "items", "mean agreement"],
            [
                [s, stats.agreement_n[s], f"{stats.agreement_sum[s] / stats.agreement_n[s]:.3f}"]
                for s in SPLITS
                if stats.agreement_n[s]
            ],
        ),
        "",
        "Agreement: share of annotators whose best choice equals the consensus label.",
        "",
        "![agreement](plots/agreement_hist.png)" if plots else "",
        "",
        "## Teacher consistency and filter",
        "",
        _table(
            ["consistency bin", "items"],
            [
                [f"[{BINS[i]:.1f}, {BINS[i + 1]:.1f}{']' if i == 9 else ')'}", n]
                for i, n in enumerate(stats.consistency_hist)
            ],
        ),
        "",
        _table(["filter decision", "items"], [[r, n] for r, n in sorted(reasons.items())]),
        "",
        f"Minimum consistency: {', '.join(str(t) for t in thresholds) or '-'}.",
        "",
        "![consistency](plots/consistency_hist.png)" if plots else "",
        "",
        "## Generator and teacher settings",
        "",
        _table(["generator", "model", "candidates", "parameters"], generators)
        if generators
        else "No candidate records.",
        "",
        _table(
            ["teacher model", "prompt version", "items"],
            [[m, v, n] for (m, v), n in sorted(teachers.items())],
        )
        if teachers
        else "No teacher selections.",
        "",
        "## Splits",
        "",
        (
            f"Grouped by source: a source and its near-duplicates (perceptual-hash distance <= "
            f"{cfg.near_duplicate_bits} bits, transitively) share one split; stratified by each group's most "
            f"frequent defect dimension; seed {cfg.seed}; ratios {json.dumps(cfg.ratios)}. "
            f"{len(set(plan.group_of_source.values()))} source groups; {len(plan.conflicts)} split conflicts."
        ),
        "",
        f"Leak check on the written files: **{leak.summary()}**.",
        "",
        *_scores_section(cfg, summary),
        *_provenance_section(summary),
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("parquet", data_files={{"train": "{first_format}/train/*.parquet"}})',
        "# or, with this folder as a Hub repo or local path: load_dataset(path, name)",
        "```",
        "",
        (
            "LLaMA-Factory: `dataset_info.json` here registers `aescot_sft_<split>` (sharegpt, images); point "
            "`dataset_dir` at this folder. TRL: `SFTTrainer` on `sft_trl`, `GRPOTrainer` on `rl` with the "
            "reward functions in `aescot.rewards` (they read `acceptable`, `best`, `dimensions`)."
        ),
        "",
        "## The question",
        "",
        "```text",
        prompt_text,
        "```",
        "",
    ]
    with fs.open(posixpath.join(out, "README.md"), "w") as fh:
        fh.write("\n".join(parts))

    info = {}
    for s in SPLITS:
        for fmt in ("sft", "scores_sft"):  # the sharegpt-layout formats LLaMA-Factory reads
            if summary.rows.get(fmt, {}).get(s):
                info[f"aescot_{fmt}_{s}"] = {
                    "file_name": f"{fmt}/{s}",
                    "formatting": "sharegpt",
                    "columns": {"messages": "messages", "images": "images"},
                    "tags": {
                        "role_tag": "role",
                        "content_tag": "content",
                        "user_tag": "user",
                        "assistant_tag": "assistant",
                    },
                }
    with fs.open(posixpath.join(out, "dataset_info.json"), "w") as fh:
        fh.write(json.dumps(info, indent=1))
