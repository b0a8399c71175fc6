"""``aescot generate`` (candidates + items) and ``aescot dedupe`` (set-wide near-duplicate report)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, fail, open_store, progress_bar

# the near-duplicate options generate and dedupe share
ThresholdOption = Annotated[
    int | None,
    typer.Option(help="Hamming distance counted as a near-duplicate [default: the dedupe stage's]."),
]
ColourThresholdOption = Annotated[
    int | None,
    typer.Option(
        help="A grey-near pair counts only if its colour signatures are at most this many percent apart "
        "(another colour: another image; -1: the grey hash alone) [default: the dedupe stage's, measured].",
        min=-1,
    ),
]


def _given(**options: object) -> dict[str, object]:
    """The options a person set (None: keep the config's own default)."""
    return {k: v for k, v in options.items() if v is not None}


def generate_cmd(
    root: RootOption = DEFAULT_ROOT,
    backend: Annotated[
        str,
        typer.Option(
            help="synthetic (known defects, no model), diffusers, or latency (a benchmark stand-in for a "
            "GPU: waits --seconds-per-call, writes small synthetic images)."
        ),
    ] = "synthetic",
    model: Annotated[
        str | None, typer.Option(help="diffusers: hub id or local folder of an inpainting pipeline.")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="diffusers: background (keep the product) or outpaint.")
    ] = "background",
    size: Annotated[int, typer.Option(help="diffusers: longest side of generated images.")] = 512,
    steps: Annotated[int, typer.Option(help="diffusers: inference steps.")] = 30,
    guidance: Annotated[float, typer.Option(help="diffusers: guidance scale.")] = 7.5,
    strength: Annotated[float, typer.Option(help="diffusers: strength.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="diffusers: images per pipeline call.")] = 4,
    device: Annotated[str, typer.Option(help="diffusers: auto, cuda, mps or cpu.")] = "auto",
    seconds_per_call: Annotated[
        float, typer.Option(help="latency: seconds each generator call waits, as a GPU call would.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Base seed every candidate seed derives from.")] = 0,
    threshold: ThresholdOption = None,
    colour_threshold: ColourThresholdOption = None,
    max_regenerations: Annotated[int, typer.Option(help="New seeds tried per near-duplicate candidate.")] = 3,
    source: Annotated[list[str] | None, typer.Option(help="Only these source ids (repeatable).")] = None,
) -> None:
    """Generate 4 candidates per source (skipping sources already done), dedupe them, build items A-D."""
    from pydantic import ValidationError

    from aescot.dedupe.hashing import DedupeConfig
    from aescot.generate import DiffusersConfig, GenerateConfig, LatencyConfig, generate_candidates
    from aescot.items import build_items

    if backend not in ("synthetic", "diffusers", "latency"):
        fail(f"unknown backend {backend!r}: use synthetic, diffusers or latency")
    store = open_store(root)
    try:
        diff = DiffusersConfig(
            mode=mode,
            size=size,
            steps=steps,
            guidance_scale=guidance,
            strength=strength,
            batch_size=batch_size,
            device=device,
            **({"model": model} if model else {}),
        )
        cfg = GenerateConfig(
            backend=backend,
            diffusers=diff,
            latency=LatencyConfig(seconds_per_call=seconds_per_call),
            base_seed=seed,
            dedupe=DedupeConfig(
                **_given(threshold=threshold, colour_threshold=colour_threshold),
                max_regenerations=max_regenerations,
            ),
        )
    except ValidationError as exc:
        fail(
            "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        )
    todo = len(source) if source else store.count("sources")
    with progress_bar(f"generate ({backend})", total=todo) as bar:  # ModelNotAvailable: a ConfigError
        report = generate_candidates(
            store, cfg, source_ids=source, progress=lambda n: bar.advance(bar.task_ids[0], n)
        )
    items = build_items(store, source)
    console.print(
        f"[bold]generate[/] {report.sources} sources: [green]{report.generated} generated[/] "
        f"({report.candidates} candidates, {report.regenerations} regenerated as near-duplicates), "
        f"{report.skipped} already done, {report.incomplete} incomplete"
    )
    console.print(
        f"[bold]items[/] {items.built} built ({items.gold} gold), {items.already_built} already there"
    )
    rejects = report.rejects + items.rejects
    if rejects:
        table = Table("stage", "subject", "reason", "detail", title="rejected", title_justify="left")
        for r in rejects[:50]:
            table.add_row(r.stage, r.subject[:24], r.reason, r.detail)
        console.print(table)
        if len(rejects) > 50:
            console.print(f"... and {len(rejects) - 50} more (see the rejects table)")


def dedupe_cmd(
    root: RootOption = DEFAULT_ROOT,
    threshold: ThresholdOption = None,
    colour_threshold: ColourThresholdOption = None,
    method: Annotated[str, typer.Option(help="phash, dhash, ahash or whash.")] = "phash",
    hash_size: Annotated[int, typer.Option(help="8 (64-bit) or 16 (256-bit).")] = 8,
) -> None:
    """Report near-duplicates across the whole set (between sources and candidates of different sources)."""
    from pydantic import ValidationError

    from aescot.dedupe.hashing import DedupeConfig
    from aescot.dedupe.report import near_duplicate_report

    store = open_store(root)
    try:
        cfg = DedupeConfig(
            **_given(threshold=threshold, colour_threshold=colour_threshold),
            method=method,
            hash_size=hash_size,
        )
    except ValidationError as exc:
        fail(
            "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        )
    report = near_duplicate_report(store, cfg)
    console.print(
        f"[bold]dedupe[/] {report.candidates} candidates + {report.sources} sources "
        f"({report.hashed} hashed now), threshold {cfg.threshold}, colour threshold {cfg.colour_threshold}%: "
        + (", ".join(f"{n} {k}" for k, n in sorted(report.pairs.items())) or "no near-duplicate pairs")
        + f"; {report.new_pairs} new in table near_duplicates"
    )
    if report.examples:
        table = Table("kind", "a", "b", "bits", title="near-duplicates", title_justify="left")
        for e in report.examples:
            table.add_row(e["kind"], e["a_id"][:12], e["b_id"][:12], str(e["distance"]))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)
    app.command("dedupe")(dedupe_cmd)
