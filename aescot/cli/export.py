"""``aescot export`` and ``aescot eval``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aescot.cli.common import DEFAULT_ROOT, RootOption, console, fail, open_store
from aescot.vocab import EXPORT_FORMATS as FORMATS
from aescot.vocab import SPLITS

SETTINGS = (
    "fmt",
    "images",
    "seed",
    "train",
    "validation",
    "test",
    "near_duplicate_bits",
    "resplit",
    "license",
    "rows_per_shard",
)


def export_cmd(
    ctx: typer.Context,
    out: Annotated[str, typer.Argument(help="Output folder or fsspec URI (s3://bucket/ds-v1).")],
    root: RootOption = DEFAULT_ROOT,
    fmt: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help=f"Repeatable; default all: {', '.join(FORMATS)}."),
    ] = None,
    images: Annotated[
        str, typer.Option(help="'embed' image bytes, or 'uri' to reference the store.")
    ] = "embed",
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    train: Annotated[float, typer.Option(help="Train share.")] = 0.8,
    validation: Annotated[float, typer.Option(help="Validation share.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test share.")] = 0.1,
    near_duplicate_bits: Annotated[
        int, typer.Option(help="Sources within this phash distance share a split.")
    ] = 8,
    resplit: Annotated[bool, typer.Option(help="Forget remembered splits and assign afresh.")] = False,
    license: Annotated[str, typer.Option("--license", help="Licence field of the dataset card.")] = "other",
    rows_per_shard: Annotated[int, typer.Option(help="Rows per Parquet file.")] = 10_000,
    force: Annotated[bool, typer.Option(help="Rebuild even if nothing changed.")] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Write an earlier export again, byte for byte: the export id it printed (its settings are "
            "reused), or an ISO time (with these settings). Reads only; the store is left as it is.",
        ),
    ] = None,
) -> None:
    """Export labelled items as Parquet for SFT, RL and preference pairs, with grouped splits and a card.

    SFT takes the items the filter kept, with their rationale; RL and pairs take every labelled item.
    Re-running with unchanged inputs does nothing. Each export tags the table versions it read with its
    id (printed at the end, kept in the manifest and the card): --as-of ID writes it again.
    """
    from pydantic import ValidationError

    from aescot.export import ExportConfig, export_dataset
    from aescot.export.history import recorded

    store = open_store(root) if as_of else None  # an as-of export id carries its settings
    record = recorded(store, as_of) if store is not None and as_of else None
    if record is not None:
        given = [n for n in SETTINGS if ctx.get_parameter_source(n).name == "COMMANDLINE"]
        if given:
            flags = ", ".join("--" + ("format" if n == "fmt" else n.replace("_", "-")) for n in given)
            fail(f"--as-of {as_of} writes that export with its recorded settings; drop {flags}")
    try:
        if record is not None:
            cfg = ExportConfig(**record["config"], out=out, force=force)
        else:
            cfg = ExportConfig(
                out=out,
                formats=fmt or list(FORMATS),
                images=images,
                seed=seed,
                ratios={"train": train, "validation": validation, "test": test},
                near_duplicate_bits=near_duplicate_bits,
                resplit=resplit,
                license=license,
                rows_per_shard=rows_per_shard,
                force=force,
            )
    except ValidationError as exc:
        fail("; ".join(f"{'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    from aescot.doctor import require_healthy

    store = store or open_store(root)
    require_healthy(store)
    if as_of is None and not store.count("labels"):
        fail(f"no labelled items in {store.root}: collect labels from Label Studio first")
    from aescot.errors import StoreError
    from aescot.export.run import AsOfError

    try:
        summary = export_dataset(store, cfg, as_of=as_of)
    except (AsOfError, StoreError) as exc:
        if as_of is None:
            raise
        fail(str(exc))
    if summary.skipped:
        console.print(f"[bold]export[/] unchanged since the last export: nothing rewritten ({out})")
    table = Table("format", *SPLITS, title=f"export — {out}", title_justify="left")
    for f, per in summary.rows.items():
        table.add_row(f, *[str(per.get(s, 0)) for s in SPLITS])
    console.print(table)
    console.print(("[green]" if summary.leak_ok else "[red]") + summary.leak_summary)
    if summary.rejects:
        console.print(
            f"[red]{summary.rejects} rejected[/]: "
            + ", ".join(f"{r} {n}" for r, n in sorted(summary.reject_reasons.items()))
            + (" (see the rejects table)" if as_of is None else " (as-of: not recorded)")
        )
    if summary.export_id:
        versions = ", ".join(f"{t} v{v}" for t, v in sorted(summary.versions.items()))
        where = f"as of {as_of}: " if as_of else ""
        console.print(f"{where}export [bold]{summary.export_id}[/] read {versions}", soft_wrap=True)
        again = (
            summary.export_id
            if as_of is None or as_of == summary.export_id
            else f"{as_of} (and these options)"
        )
        console.print(
            f"write it again: aescot export NEW_FOLDER --root {store.root} --as-of {again}", soft_wrap=True
        )
    if not summary.leak_ok:
        raise typer.Exit(1)


def eval_cmd(
    data: Annotated[str, typer.Argument(help="An export folder (its rl/<split> Parquet is read).")],
    base_url: Annotated[
        str, typer.Option(envvar="AESCOT_EVAL_BASE_URL", help="OpenAI-compatible base URL.")
    ] = "",
    model: Annotated[str, typer.Option(envvar="AESCOT_EVAL_MODEL", help="Model name at that endpoint.")] = "",
    split: Annotated[str, typer.Option(help="Split to score.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Score at most this many items.")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 8,
    max_side: Annotated[int, typer.Option(help="Downscale images to this longest side.")] = 768,
    output: Annotated[
        str | None, typer.Option(help="Folder for report.json, report.md, predictions.jsonl.")
    ] = None,
) -> None:
    """Score an OpenAI-compatible multimodal model on the export's test split, beside a random baseline.

    The API key is read from AESCOT_EVAL_API_KEY or OPENAI_API_KEY (never from the command line).
    """
    from aescot.eval import EvalConfig, evaluate, write_report

    if not base_url or not model:
        fail(
            "set --base-url and --model (or AESCOT_EVAL_BASE_URL / AESCOT_EVAL_MODEL); the key comes from "
            "AESCOT_EVAL_API_KEY or OPENAI_API_KEY"
        )
    cfg = EvalConfig(
        data=data,
        base_url=base_url,
        model=model,
        split=split,
        limit=limit,
        concurrency=concurrency,
        max_side=max_side,
    )
    try:
        report = evaluate(cfg)
    except FileNotFoundError as exc:
        fail(str(exc))
    console.print(report.table())
    if report.errors:
        console.print("failed replies: " + ", ".join(f"{k} {n}" for k, n in sorted(report.errors.items())))
    if output:
        write_report(report, output)
        console.print(f"report: {output}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("eval")(eval_cmd)
