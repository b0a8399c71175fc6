"""A teacher that fails every call, and one that echoes the request headers (the API key) back."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.teacher.rationales import generate_rationales
from tests.teacher.conftest import SECRET, add_labelled_items, chat_server, make_config

# the loopback chat server's module, wherever the test helpers live
_chat = sys.modules[chat_server.__module__]
rationale_text, Failure = _chat.rationale_text, _chat.Failure
runner = CliRunner()


def _env(srv) -> dict[str, str]:
    return {
        "AESCOT_TEACHER_BASE_URL": srv.base_url,
        "AESCOT_TEACHER_MODEL": "test-teacher",
        "AESCOT_TEACHER_API_KEY": SECRET,
        "AESCOT_TEACHER_MAX_ATTEMPTS": "2",
        "AESCOT_TEACHER_RETRY_INITIAL_WAIT_S": "0.01",
        "AESCOT_TEACHER_TIMEOUT_S": "5",
        "COLUMNS": "300",
    }


def test_rationales_exits_non_zero_with_failures_by_cause_when_every_call_fails(store):
    add_labelled_items(store, 3)
    with chat_server(responder=lambda req: Failure("500"), api_key=SECRET) as srv:
        result = runner.invoke(app, ["rationales", "--root", store.root, "-k", "2"], env=_env(srv))
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "failures by cause: 6 InternalServerError (HTTP 500)" in out, out
    assert "error: no teacher call succeeded (6 calls: 6 InternalServerError (HTTP 500))" in out, out
    assert SECRET not in result.output


def test_rationales_exits_0_when_some_calls_succeed(store):
    answers = add_labelled_items(store, 3)
    first = min(answers)

    def respond(req):
        return Failure("500") if req.item_id == first else answers[req.item_id]

    with chat_server(responder=respond, api_key=SECRET) as srv:
        result = runner.invoke(app, ["rationales", "--root", store.root, "-k", "1"], env=_env(srv))
    assert result.exit_code == 0, result.output
    assert "failures by cause: 1 InternalServerError (HTTP 500)" in " ".join(result.output.split())


def _echo(answers):
    """Reply with the request headers: unparseable for odd samples, inside a valid rationale for even."""

    def respond(req):
        headers = json.dumps(req.headers)
        if (req.sample_index or 0) % 2:
            return f"Request headers were: {headers}"
        ans = answers[req.item_id]
        return f"<think>Headers: {headers}\n{rationale_text(ans)}</think>\n<answer>{json.dumps(ans)}</answer>"

    return respond


def test_api_key_echoed_by_the_endpoint_is_scrubbed_from_every_stored_text(store, tmp_path):
    answers = add_labelled_items(store, 4)
    with chat_server(responder=_echo(answers), api_key=SECRET) as srv:
        report = generate_rationales(store, make_config(srv, samples=2))
        assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in srv.requests)  # it was sent
    assert report.calls == 8 and report.ok == 4 and report.format_failures == 4
    rows = store.read("rationales")
    assert any("***" in r["text"] for r in rows)  # the echo was stored, the key was not
    for key in store.list_keys(""):
        assert SECRET.encode() not in store.read_bytes(key), key

    from aescot.export.run import ExportConfig, export_dataset

    export_dataset(store, ExportConfig(out=str(tmp_path / "export")))
    files = [p for p in (tmp_path / "export").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
