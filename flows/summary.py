"""The run summary: a markdown table of counts per stage, rejects, agreement and consistency."""

from __future__ import annotations

from typing import Any

from aescot.status import stage_counts
from aescot.store import DatasetStore


def summary_markdown(store: DatasetStore, run: dict[str, Any]) -> str:
    """Markdown for the Prefect artifact: what this run did, then the store's totals."""
    lines = ["# build-screening-set", "", "## This run", "", "| step | result |", "| --- | --- |"]
    for step, value in run.items():
        lines.append(f"| {step} | {value} |")
    lines += [
        "",
        f"## Store totals (`{store.root}`)",
        "",
        "| stage | count | detail |",
        "| --- | ---: | --- |",
    ]
    for row in stage_counts(store):
        lines.append(f"| {row.stage} | {row.count} | {row.detail} |")
    return "\n".join(lines) + "\n"
