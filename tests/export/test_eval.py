"""`aescot eval` against a real loopback Chat Completions server; the random baseline's maths."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aescot.demo.chat_server import ChatRequest, chat_server, wrong_answer
from aescot.eval import EvalConfig, evaluate, random_baseline, score
from aescot.export import ExportConfig, export_dataset
from aescot.store import DatasetStore
from aescot.teacher.images import image_data_url
from tests.export.demo_store import DemoSpec, build_demo_store

NONE = {"acceptable": [], "best": None, "dimensions": {k: [] for k in "ABCD"}}


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """An export whose every item is in the test split; images unique per item so replies can key on them."""
    root = tmp_path_factory.mktemp("eval")
    store = DatasetStore(root / "ds")
    build_demo_store(store, DemoSpec(n_items=12, image_pool=20, seed=9))
    export_dataset(
        store,
        ExportConfig(out=str(root / "out"), formats=["rl"], ratios={"train": 0, "validation": 0, "test": 1}),
    )
    items = {i["item_id"]: i for i in store.read("items")}
    labels = {
        lab["item_id"]: {k: lab[k] for k in ("acceptable", "best", "dimensions")}
        for lab in store.read("labels")
    }
    by_source_url = {
        image_data_url(store.read_bytes(items[i]["source_image_key"]), max_side=768): i for i in items
    }
    return root / "out", labels, by_source_url


def _responder(labels, by_source_url, wrong: set[str], garbage: set[str]):
    def respond(req: ChatRequest):
        item = by_source_url[req.image_urls[0]]
        assert len(req.image_urls) == 5 and "Candidate D:" in req.text
        if item in garbage:
            return "I would rather not say."
        return wrong_answer(labels[item]) if item in wrong else labels[item]

    return respond


def test_eval_scores_a_model_beside_the_random_baseline(test_split, monkeypatch):
    out, labels, by_url = test_split
    items = sorted(labels)
    wrong, garbage = set(items[:3]), {items[3]}
    monkeypatch.setenv("AESCOT_EVAL_API_KEY", "sk-eval-secret-123")
    with chat_server(_responder(labels, by_url, wrong, garbage), api_key="sk-eval-secret-123") as srv:
        report = evaluate(EvalConfig(data=str(out), base_url=srv.base_url, model="student", concurrency=4))
        assert srv.calls == 12
    m = report.model_metrics
    assert report.n_items == 12 and report.errors == {"format": 1}
    assert m.format_rate == pytest.approx(11 / 12)
    assert m.best_accuracy == pytest.approx(8 / 12)  # wrong_answer always moves the best
    assert 8 / 12 <= m.acceptable_credit < 11 / 12
    assert report.random_baseline.best_accuracy < m.best_accuracy
    table = report.table()
    assert "| best choice accuracy |" in table and "random" in table and "lighting_shadow" in table


def test_cli_eval_writes_reports_without_the_key(test_split, tmp_path, monkeypatch):
    from aescot.cli.main import app

    out, labels, by_url = test_split
    monkeypatch.setenv("AESCOT_EVAL_API_KEY", "sk-eval-secret-456")
    with chat_server(_responder(labels, by_url, set(), set()), api_key="sk-eval-secret-456") as srv:
        result = CliRunner().invoke(
            app,
            [
                "eval",
                str(out),
                "--base-url",
                srv.base_url,
                "--model",
                "m",
                "--output",
                str(tmp_path / "rep"),
                "--limit",
                "5",
            ],
        )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["n_items"] == 5 and report["model_metrics"]["best_accuracy"] == 1.0
    for f in (tmp_path / "rep").iterdir():
        assert "sk-eval-secret" not in f.read_text()
    assert "sk-eval-secret" not in result.output


def test_cli_eval_says_what_to_configure(tmp_path, monkeypatch):
    from aescot.cli.main import app

    monkeypatch.delenv("AESCOT_EVAL_BASE_URL", raising=False)
    result = CliRunner().invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "--base-url" in result.output


def test_http_failures_score_zero_and_the_run_goes_on(test_split):
    out, labels, by_url = test_split
    with chat_server(_responder(labels, by_url, set(), set())) as srv:
        srv.fail_next("500", times=2)
        report = evaluate(
            EvalConfig(data=str(out), base_url=srv.base_url, model="m", concurrency=1, max_retries=0)
        )
    assert report.errors == {"http": 2} and report.model_metrics.best_accuracy == pytest.approx(10 / 12)


def test_random_baseline_is_exact():
    rb = random_baseline([NONE])
    assert rb.best_accuracy == pytest.approx(1 / 16)  # only the empty set says "none"
    assert rb.acceptable_credit == pytest.approx(1 / 16) and rb.acceptable_exact == pytest.approx(1 / 16)
    assert rb.dimension_jaccard == pytest.approx(1 / 2**16)  # all 16 pairs unflagged
    one = {
        "acceptable": ["A"],
        "best": "A",
        "dimensions": {"A": [], "B": ["lighting_shadow"], "C": [], "D": []},
    }
    rb = random_baseline([one])
    # best: subsets holding A (8 of 16), A drawn with prob 1/|S|: sum over them of 1/|S| / 16
    assert rb.best_accuracy == pytest.approx((1 + 3 / 2 + 3 / 3 + 1 / 4) / 16)
    assert rb.acceptable_credit == pytest.approx(
        1 / 16
    )  # only {A} earns credit: {} gets 0/1, others are wrong
    assert rb.per_dimension["lighting_shadow"]["accuracy"] == pytest.approx(0.5)


def test_score_counts_unparseable_as_zero():
    truth = {"acceptable": ["B"], "best": "B", "dimensions": {k: [] for k in "ABCD"}}
    m = score([truth, None], [truth, truth])
    assert (
        m.best_accuracy == 0.5
        and m.format_rate == 0.5
        and m.per_dimension["lighting_shadow"]["accuracy"] == 1.0
    )


def test_eval_retries_and_scrubs_through_the_shared_client(test_split):
    """Eval calls the endpoint through the teacher's client: a 500 is retried, a refused key is this
    item's error (the run goes on) and its text never carries the key."""
    out, labels, by_url = test_split
    with chat_server(_responder(labels, by_url, set(), set()), api_key="sk-right") as srv:
        srv.fail_next("500", times=1)
        ok = evaluate(
            EvalConfig(
                data=str(out), base_url=srv.base_url, model="m", api_key="sk-right", concurrency=1, limit=3
            )
        )
        refused = evaluate(
            EvalConfig(data=str(out), base_url=srv.base_url, model="m", api_key="sk-wrong-777", limit=2)
        )
    assert ok.errors == {} and ok.model_metrics.best_accuracy == 1.0
    assert refused.errors == {"http": 2}
    assert all("401" in p["error"] and "sk-wrong-777" not in p["error"] for p in refused.predictions)
