"""The run summary: a markdown table of counts per stage, rejects, agreement and consistency."""

from __future__ import annotations

from typing import Any

from aescot.status import status_report
from aescot.store import DatasetStore


def summary_markdown(store: DatasetStore, run: dict[str, Any]) -> str:
    """Markdown for the Prefect artifact: what this run did, then the store's totals.

    The totals are ``aescot status``'s own report (:func:`~aescot.status.status_report`: the quick file
    check, counts, missing images), which also leaves the status cache behind, so the first ``aescot
    status`` after a run is answered without importing Lance."""
    report = status_report(store)
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
    for stage, count, detail in report["stages"]:
        lines.append(f"| {stage} | {count} | {detail} |")
    if report["missing_images"]:
        missing = f"**{report['missing_images']} referenced images are missing**"
        lines += [
            "",
            f"{missing} (e.g. `{report['missing_example']}`): run `aescot doctor --root {store.root}`.",
        ]
    return "\n".join(lines) + "\n"
