"""``aescot generate`` and ``aescot dedupe`` take the colour threshold of the near-duplicate rule."""

from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.dedupe import DEFAULT_COLOUR_THRESHOLD
from aescot.samples import write_sample_sources

runner = CliRunner()


def test_colour_threshold_options_reach_the_dedupe_config(tmp_path):
    from aescot.dedupe.report import DEDUPE_HASHES
    from aescot.store import open_store

    manifest = write_sample_sources(tmp_path / "in", n=2, size=64)
    root = str(tmp_path / "ds")
    assert runner.invoke(app, ["ingest", str(manifest), "--root", root]).exit_code == 0
    gen = runner.invoke(app, ["generate", "--root", root, "--colour-threshold", "-1"])
    assert gen.exit_code == 0, gen.output
    bad = runner.invoke(app, ["generate", "--root", root, "--colour-threshold", "-2"])
    assert bad.exit_code != 0
    default = runner.invoke(app, ["dedupe", "--root", root])
    assert default.exit_code == 0, default.output
    assert f"colour threshold {DEFAULT_COLOUR_THRESHOLD}%" in default.output
    grey = runner.invoke(app, ["dedupe", "--root", root, "--colour-threshold", "-1"])
    assert grey.exit_code == 0 and "colour threshold -1%" in grey.output, grey.output
    rows = open_store(root).read(DEDUPE_HASHES.name, columns=["colour_threshold", "colour_hash"])
    by = {}
    for r in rows:
        by.setdefault(r["colour_threshold"], []).append(r["colour_hash"])
    assert set(by) == {DEFAULT_COLOUR_THRESHOLD, -1} and len(by[-1]) == len(by[DEFAULT_COLOUR_THRESHOLD])
    assert all(by[DEFAULT_COLOUR_THRESHOLD]) and not any(by[-1])  # the grey check needs no colour
