import pytest
from typer.testing import CliRunner

from aescot.cli.main import app


@pytest.mark.slow  # end-to-end, > 10 s on 2 cores
def test_generate_then_dedupe_on_an_ingested_store(ingested, tiny_pipeline_dir):
    root = ingested.root
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "--root", root])
    assert res.exit_code == 0, res.output
    assert "5 generated" in res.output and "5 built (1 gold)" in res.output  # gold at the default share
    res = runner.invoke(app, ["generate", "--root", root])
    assert res.exit_code == 0 and "5 already done" in res.output
    res = runner.invoke(
        app,
        [
            "generate",
            "--root",
            root,
            "--backend",
            "diffusers",
            "--model",
            str(tiny_pipeline_dir),
            "--size",
            "64",
            "--steps",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert ingested.count("candidates") == 40 and ingested.count("items") == 10
    res = runner.invoke(app, ["dedupe", "--root", root])
    assert res.exit_code == 0, res.output
    assert "40 candidates + 5 sources" in res.output


def test_missing_model_is_a_one_line_error(ingested, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(
        app,
        ["generate", "--root", ingested.root, "--backend", "diffusers", "--model", "nobody/no-such-model"],
    )
    assert res.exit_code == 2
    assert "HF_HUB_OFFLINE" in res.output


def test_bad_options_are_one_line_errors(ingested):
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "--root", ingested.root, "--mode", "sideways"])
    assert res.exit_code == 2 and "--mode" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["dedupe", "--root", ingested.root, "--hash-size", "12"])
    assert res.exit_code == 2 and "--hash-size" in res.output


def test_a_store_that_cannot_be_written_is_exit_3_and_no_reject(ingested, monkeypatch):
    from aescot.store import DatasetStore

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetStore, "put_image", full_disk)
    res = CliRunner().invoke(app, ["generate", "--root", ingested.root])
    assert res.exit_code == 3, res.output
    assert "No space left on device" in res.output and "re-run to resume" in res.output
    assert "Traceback" not in res.output and ingested.count("rejects") == 0
