"""`aescot rationales` and `aescot filter` end to end against the loopback server."""

from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.demo.chat_server import chat_server, oracle

from .conftest import SECRET, add_labelled_items

runner = CliRunner()
UNSET = {
    "AESCOT_TEACHER_BASE_URL": None,
    "AESCOT_TEACHER_MODEL": None,
    "AESCOT_TEACHER_API_KEY": None,
    "OPENAI_API_KEY": None,
}


def test_without_an_endpoint_the_cli_says_what_to_configure(tmp_path):
    result = runner.invoke(
        app, ["rationales", "--root", str(tmp_path / "ds")], env={**UNSET, "COLUMNS": "300"}
    )
    assert result.exit_code == 2
    for var in ("AESCOT_TEACHER_BASE_URL", "AESCOT_TEACHER_MODEL", "AESCOT_TEACHER_API_KEY"):
        assert var in result.output


def test_rationales_then_filter(store, tmp_path):
    answers = add_labelled_items(store, 4)
    wrong_item = min(answers)
    with chat_server(oracle(answers, wrong=lambda i, s: i == wrong_item), api_key=SECRET) as srv:
        env = {
            **UNSET,
            "AESCOT_TEACHER_BASE_URL": srv.base_url,
            "AESCOT_TEACHER_MODEL": "cli-teacher",
            "OPENAI_API_KEY": SECRET,
            "AESCOT_TEACHER_PRICE_INPUT_PER_MTOK": "2.5",
            "AESCOT_TEACHER_PRICE_OUTPUT_PER_MTOK": "10",
            "COLUMNS": "300",
        }
        args = ["rationales", "--root", store.root, "-k", "2", "--concurrency", "4", "--image-max-side", "32"]
        first = runner.invoke(app, args, env=env)
        assert first.exit_code == 0, first.output
        assert "8 calls made" in first.output and "6 consistent" in first.output and "$0.0" in first.output
        again = runner.invoke(app, args, env=env)
        assert "8 samples cached, 0 calls made" in again.output and srv.calls == 8

        limited = runner.invoke(app, [*args[:4], "3", "--limit", "1"], env=env)
        assert "1 calls made" in limited.output and "stopped early by --limit" in limited.output
        assert SECRET not in first.output + again.output + limited.output

    result = runner.invoke(
        app,
        ["filter", "--root", store.root, "--min-consistency", "0.8", "-k", "2", "--details"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert "4 items decided" in result.output and "3 kept" in result.output and "1 dropped" in result.output
    assert "low_consistency" in result.output and "4 decisions written" in result.output
    rerun = runner.invoke(app, ["filter", "--root", store.root, "-k", "2"], env={"COLUMNS": "300"})
    assert "0 decisions written, 4 unchanged" in rerun.output


def test_filter_before_any_rationale(tmp_path):
    (tmp_path / "ds" / "tables").mkdir(parents=True)  # a dataset, but no rationales yet
    result = runner.invoke(app, ["filter", "--root", str(tmp_path / "ds")])
    assert result.exit_code == 0 and "run `aescot rationales` first" in result.output


def test_bad_key_is_reported_without_the_key(store):
    add_labelled_items(store, 1)
    with chat_server(api_key="the-right-one") as srv:
        env = {
            **UNSET,
            "AESCOT_TEACHER_BASE_URL": srv.base_url,
            "AESCOT_TEACHER_MODEL": "m",
            "AESCOT_TEACHER_API_KEY": SECRET,
            "COLUMNS": "300",
        }
        result = runner.invoke(app, ["rationales", "--root", store.root, "-k", "1"], env=env)
    assert result.exit_code == 2 and "refused" in result.output and SECRET not in result.output
