from typer.testing import CliRunner

from aescot.cli.main import app
from tests.awkward import make_awkward_corpus

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "ingest" in result.output and "status" in result.output


def test_ingest_prints_a_summary_and_rerun_adds_nothing(tmp_path):
    expected = make_awkward_corpus(tmp_path / "in")
    n_bad = sum(1 for r in expected.values() if r)
    root = str(tmp_path / "ds")
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--root", root])
    assert result.exit_code == 0, result.output
    assert f"{len(expected) - n_bad} added" in result.output and f"{n_bad} rejected" in result.output
    assert "decompression-bomb" in result.output and "not_an_image" in result.output
    again = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--root", root])
    assert "0 added" in again.output

    status = runner.invoke(app, ["status", "--root", root], env={"COLUMNS": "200"})
    assert status.exit_code == 0
    line = next(line for line in status.output.splitlines() if line.startswith("│ sources"))
    assert f"│ {len(expected) - n_bad} " in line
    assert "rejected at ingest" in status.output


def test_ingest_colour_distance_option(tmp_path):
    """Two boxes of one shape in red and blue: two sources by default (and the summary says why),
    one with --colour-distance -1 (the grey pHash alone)."""
    from tests.test_ingest import BLUE, RED, _box, _png_bytes

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "blue.png").write_bytes(_png_bytes(_box(BLUE)))
    (tmp_path / "in" / "red.png").write_bytes(_png_bytes(_box(RED)))
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--root", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output and "another colour" in result.output
    grey = runner.invoke(
        app, ["ingest", str(tmp_path / "in"), "--root", str(tmp_path / "b"), "--colour-distance", "-1"]
    )
    assert grey.exit_code == 0, grey.output
    assert "1 added" in grey.output and "near_duplicate" in grey.output


def test_ingest_object_distance_option(tmp_path):
    """A product shot and a copy with 2 % cut off each side: one source by default (the object hashes
    meet), two with --object-distance -1 (the plain pHash only)."""
    from aescot.samples import render_product_shot
    from tests.test_ingest import _cropped, _png_bytes

    img, _ = render_product_shot(4, 256)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(_png_bytes(img))
    (tmp_path / "in" / "b-crop.png").write_bytes(_png_bytes(_cropped(img, 0.02)))
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "in"), "--root", str(tmp_path / "a")], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "near_duplicate" in result.output and "object hash" in result.output
    plain = runner.invoke(
        app, ["ingest", str(tmp_path / "in"), "--root", str(tmp_path / "b"), "--object-distance", "-1"]
    )
    assert plain.exit_code == 0, plain.output
    assert "2 added" in plain.output
