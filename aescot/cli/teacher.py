"""``aescot rationales`` (teacher chain-of-thought samples) and ``aescot filter`` (consistency filter)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, fail, open_store, progress_bar
from aescot.errors import StageFailed
from aescot.teacher.prompts import PROMPT_VERSION

ModeOption = Annotated[
    str,
    typer.Option(
        "--mode", help="blind (teacher chooses) or answer_driven (teacher explains the human answer)."
    ),
]
SamplesOption = Annotated[int, typer.Option("--samples", "-k", help="Samples per item (k).", min=1)]
VersionOption = Annotated[
    str, typer.Option("--prompt-version", help="Prompt folder under aescot/teacher/prompts.")
]

DROP_HELP = {
    "low_consistency": "too few samples agree with the human answer",
    "format_failure": "no sample could be parsed",
    "label_leak": "every consistent rationale reveals it was given the answer",
    "length": "every consistent rationale is too short or too long",
    "no_samples": "no finished sample",
}


def rationales_cmd(
    root: RootOption = DEFAULT_ROOT,
    mode: ModeOption = "blind",
    samples: SamplesOption = 4,
    prompt_version: VersionOption = PROMPT_VERSION,
    concurrency: Annotated[
        int | None, typer.Option(help="Requests in flight (env AESCOT_TEACHER_CONCURRENCY).")
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            help="Stop starting calls at this estimated USD (needs AESCOT_TEACHER_PRICE_*_PER_MTOK).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Start at most this many calls in this run.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Per-request timeout in seconds.")
    ] = None,
    image_max_side: Annotated[
        int | None, typer.Option(help="Downscale images sent to this longest side.")
    ] = None,
) -> None:
    """Ask the teacher for k rationales per labelled item; already answered samples are never asked again.

    The endpoint comes from the environment: AESCOT_TEACHER_BASE_URL, AESCOT_TEACHER_MODEL and
    AESCOT_TEACHER_API_KEY (or OPENAI_API_KEY).
    """
    from aescot.teacher.config import RationaleConfig, TeacherSettings
    from aescot.teacher.rationales import generate_rationales

    overrides = {"concurrency": concurrency, "timeout_s": timeout, "image_max_side": image_max_side}
    # errors (not configured, refused key, bad values) become one line and an exit code in one place:
    # aescot.cli.common.report_errors
    teacher = TeacherSettings(**{k: v for k, v in overrides.items() if v is not None})
    teacher.require()
    config = RationaleConfig(
        teacher=teacher,
        mode=mode,
        samples=samples,
        prompt_version=prompt_version,
        max_cost_usd=max_cost,
        limit=limit,
    )
    store = open_store(root)
    console.print(
        f"teacher [bold]{teacher.model}[/] at {teacher.base_url} — mode {mode}, k={samples}, "
        f"prompt {prompt_version}, concurrency {teacher.concurrency}"
    )
    with progress_bar("rationales") as bar:
        task = bar.task_ids[0]
        report = generate_rationales(store, config, progress=lambda n: bar.advance(task, n))
    console.print(
        f"[bold]rationales[/] {report.items_labelled} labelled items: {report.samples_cached} samples cached, "
        f"{report.calls} calls made ([green]{report.ok} parsed[/], {report.consistent} consistent, "
        f"[yellow]{report.format_failures} unparseable[/], [red]{report.failed} failed[/] — retried next run); "
        f"{report.prompt_tokens + report.completion_tokens} tokens, ~${report.cost_usd:.4f}, {report.elapsed_s:.1f}s"
    )
    if report.failed or report.format_failures:
        console.print(f"failures by cause: {report.failure_summary()}")
    if report.nothing_succeeded:
        raise StageFailed(
            f"no teacher call succeeded ({report.calls} calls: {report.failure_summary()}); nothing was "
            f"written to use, the failed samples are retried by the next run — check the endpoint at "
            f"{teacher.base_url}"
        )
    if report.calls_without_usage:
        console.print(
            f"[yellow]warning:[/] {report.calls_without_usage} replies had no token usage: their cost is "
            "not in the estimate and --max-cost cannot count it"
        )
    if report.stopped:
        console.print(
            f"[yellow]stopped early by --{'max-cost' if report.stopped == 'max_cost' else 'limit'}[/]: "
            f"{report.remaining} samples left for the next run"
        )
    if report.rejects:
        table = Table("item", "reason", "detail", title="items skipped", title_justify="left")
        for r in report.rejects:
            table.add_row(r.subject[:12], r.reason, r.detail)
        console.print(table)
    console.print(f"next: aescot filter --root {store.root} --min-consistency 0.8 -k {samples} --mode {mode}")


def filter_cmd(
    root: RootOption = DEFAULT_ROOT,
    min_consistency: Annotated[
        float,
        typer.Option(help="Keep items whose share of consistent samples is at least this.", min=0.0, max=1.0),
    ] = 0.8,
    samples: SamplesOption = 4,
    mode: ModeOption = "blind",
    prompt_version: VersionOption = PROMPT_VERSION,
    teacher_model: Annotated[
        str | None, typer.Option(help="Teacher model to filter (default: the only one).")
    ] = None,
    min_chars: Annotated[int, typer.Option(help="Shortest acceptable reasoning, in characters.")] = 200,
    max_chars: Annotated[int, typer.Option(help="Longest acceptable reasoning, in characters.")] = 12000,
    details: Annotated[bool, typer.Option("--details", help="List every decided item.")] = False,
) -> None:
    """Keep items whose teacher samples agree with the humans, and pick one rationale per kept item."""
    from aescot.teacher.config import FilterConfig
    from aescot.teacher.filter import FilterError, filter_rationales

    config = FilterConfig(
        min_consistency=min_consistency,
        samples=samples,
        mode=mode,
        prompt_version=prompt_version,
        teacher_model=teacher_model,
        min_chars=min_chars,
        max_chars=max_chars,
    )
    store = open_store(root)
    try:
        report = filter_rationales(store, config, keep_decisions=details)
    except FilterError as exc:
        fail(f"{exc} with --teacher-model")
        return
    if report.teacher_model is None:
        console.print(
            f"no rationales for prompt {prompt_version} in mode {mode} yet: run `aescot rationales` first"
        )
        return
    console.print(
        f"[bold]filter[/] {report.teacher_model}, prompt {prompt_version}, mode {mode}, "
        f"min consistency {min_consistency}: {report.decided} items decided, [green]{report.kept} kept[/], "
        f"[red]{sum(report.dropped.values())} dropped[/], {report.pending} pending (samples unfinished)"
    )
    if report.dropped:
        table = Table("dropped because", "items", "meaning", title_justify="left")
        for reason, n in report.dropped.most_common():
            table.add_row(reason, str(n), DROP_HELP.get(reason, ""))
        console.print(table)
    if details and report.decisions:
        table = Table("item", "decision", "consistency", "rationale", title_justify="left")
        for d in report.decisions:
            cons = "-" if d["consistency"] is None else f"{d['consistency']:.2f}"
            table.add_row(d["item_id"][:12], d["reason"], cons, (d["rationale_id"] or "-")[:12])
        console.print(table)
    console.print(f"{report.written} decisions written, {report.unchanged} unchanged (store: {store.root})")


def register(app: typer.Typer) -> None:
    app.command("rationales")(rationales_cmd)
    app.command("filter")(filter_cmd)
