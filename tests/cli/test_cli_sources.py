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
