"""Entry point of the ``aescot`` command. Each area registers its commands here."""

from __future__ import annotations

from aescot.cli import sources
from aescot.cli.common import App

app = App(
    name="aescot",
    help="Build image-screening datasets: ingest sources, generate candidates, label them in Label Studio, "
    "add teacher rationales, filter and export Parquet for SFT/RL.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: rich-formatted help costs ~0.16 s of start-up (typer.rich_utils imports rich.markdown)
    pretty_exceptions_show_locals=False,
)

sources.register(app)
__import__("aescot.cli.doctor", fromlist=["register"]).register(app)  # doctor, repair (issue 16)
__import__("aescot.cli.store", fromlist=["register"]).register(app)  # compact, migrate (issue 13)
__import__("aescot.cli.export", fromlist=["register"]).register(app)  # export, eval (issue 6)
__import__("aescot.cli.teacher", fromlist=["register"]).register(app)  # rationales, filter (issue 5)
__import__("aescot.cli.generate", fromlist=["register"]).register(app)  # generate, dedupe (issue 3)
__import__("aescot.cli.labelstudio", fromlist=["register"]).register(
    app
)  # labelstudio, push, collect, agreement (issue 4)

if __name__ == "__main__":  # pragma: no cover
    app()
