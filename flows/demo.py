"""The README demo: the whole job on the embedded defaults, offline.

    python -m flows.demo [--root demo-data] [--sources DIR ...] [--samples 12] [--port 8080]

First run: renders sample product shots (procedural, with masks), starts a local Label Studio
for the dataset (SQLite, data in <root>/.labelstudio, local files served from the dataset only),
runs ``build-screening-set`` on an ephemeral Prefect API (synthetic candidates; a diffusers model
when ``AESCOT_MODEL`` is set), pushes the items and prints where annotators log in.
Later runs collect what people labelled and carry on: teacher rationales when
``AESCOT_TEACHER_BASE_URL``/``AESCOT_TEACHER_MODEL`` are set, the filter, and the Parquet export.
An existing Label Studio is used instead when ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY`` are set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="demo-data", help="dataset root (default: ./demo-data)")
    ap.add_argument(
        "--sources", nargs="*", default=None, help="your own photos/manifests instead of the samples"
    )
    ap.add_argument("--samples", type=int, default=12, help="sample shots to render on the first run")
    ap.add_argument("--port", type=int, default=8080, help="port of the local Label Studio")
    ap.add_argument("--no-labelstudio", action="store_true", help="generate only; no Label Studio")
    args = ap.parse_args(argv)

    from aescot.labelstudio.server import ServerNotFound, ServerStartError, local_server_config, start_server
    from aescot.samples import write_sample_sources
    from aescot.status import stage_counts
    from aescot.store import DatasetStore
    from flows.build_screening_set import build_screening_set

    root = Path(args.root).resolve()
    store = DatasetStore(root)
    sources = args.sources
    if sources is None:
        incoming = root / "incoming"
        manifest = incoming / "manifest.csv"
        if not manifest.exists():
            write_sample_sources(incoming, n=args.samples, size=384)
            console.print(f"rendered {args.samples} sample product shots into {incoming}")
        sources = [str(manifest)]

    use_ls = not args.no_labelstudio
    login = None
    if use_ls and not os.environ.get("LABEL_STUDIO_URL"):
        cfg = local_server_config(root, port=args.port)
        console.print("starting Label Studio (the first start initialises its database: about a minute)...")
        try:
            server = start_server(cfg)
        except (ServerNotFound, ServerStartError) as exc:
            console.print(f"[red]error:[/] {exc}")
            return 2
        creds = json.loads((cfg.data_dir / "aescot-credentials.json").read_text())
        login = (server.url, creds["username"], creds["password"])

    model = os.environ.get("AESCOT_MODEL")
    result = build_screening_set(
        root=str(root),
        sources=sources,
        labelstudio=use_ls,
        generator="diffusers" if model else "synthetic",
        model=model,
    )

    table = Table("stage", "count", "detail", title=f"dataset {root}", title_justify="left")
    for row in stage_counts(store):
        table.add_row(row.stage, str(row.count), row.detail)
    console.print(table)
    if login:
        url, user, password = login
        console.print(f"\n[bold]Label Studio:[/] {url}   user [bold]{user}[/]   password [bold]{password}[/]")
        console.print("Open the 'aescot screening' project, label some tasks, then run this command again.")
        console.print(f"Stop the server with: .venv/bin/aescot labelstudio stop --root {root}")
    export = result.get("export")
    if isinstance(export, dict) and export.get("out"):
        console.print(
            f"[bold]Export:[/] {export['out']} (Parquet for SFT / RL / pairs, dataset card README.md)"
        )
    if "skipped" in str(result.get("rationales")):
        console.print(
            "No teacher: set AESCOT_TEACHER_BASE_URL, AESCOT_TEACHER_MODEL and AESCOT_TEACHER_API_KEY "
            "(any OpenAI-compatible endpoint) for rationales and the SFT export."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
