"""The API key never reaches a log line, a stored record or file, or a report."""

import logging

from aescot.demo.chat_server import oracle
from aescot.teacher.rationales import generate_rationales

from .conftest import SECRET, make_config


def test_api_key_is_not_in_logs_records_or_files(labelled, server, caplog):
    store, answers = labelled
    caplog.set_level(logging.DEBUG)  # every logger, openai and httpx included, at its most verbose
    server.responder = oracle(answers)
    server.fail_next("500", times=3)
    server.fail_next("429", times=1, retry_after=0.05)
    config = make_config(server, samples=2, teacher={"max_attempts": 2, "concurrency": 1})
    report = generate_rationales(store, config)
    assert report.calls == 12 and report.failed >= 1  # failures went through the error paths too
    assert all(
        r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests
    )  # it was really used

    assert caplog.records, "expected debug logging to have happened"
    assert SECRET not in caplog.text
    assert (
        SECRET not in repr(report) and SECRET not in repr(config) and SECRET not in config.model_dump_json()
    )
    for key in store.list_keys(""):
        assert SECRET.encode() not in store.read_bytes(key), key
    for row in store.read("rationales"):
        assert SECRET not in str(row)
