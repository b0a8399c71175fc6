"""The rationale stage end to end against the loopback server: cache, retries, guards, rejects."""

import pytest

from aescot.demo.chat_server import echo_given_answer, garbage, oracle
from aescot.teacher.config import RationaleConfig
from aescot.teacher.rationales import generate_rationales, rationale_id

from .conftest import add_labelled_items, make_config


def test_k_samples_per_item_then_a_rerun_makes_zero_calls(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    config = make_config(server, samples=3)
    report = generate_rationales(store, config)
    assert (report.calls, report.ok, report.consistent, report.failed) == (18, 18, 18, 0)
    assert report.cost_usd > 0 and report.prompt_tokens > 0
    rows = store.read("rationales")
    assert len(rows) == 18 and all(r["format_ok"] and r["consistent"] and r["agreement"] == 1.0 for r in rows)
    assert {(r["item_id"], r["sample_index"]) for r in rows} == {(i, s) for i in answers for s in range(3)}
    assert all(r["text"].startswith("<think>") and "</answer>" in r["text"] for r in rows)
    ids = {r["rationale_id"] for r in rows}
    assert rationale_id("test-teacher", "v1", "blind", next(iter(answers)), 0) in ids

    calls = server.calls
    again = generate_rationales(store, config)
    assert server.calls == calls and again.calls == 0 and again.samples_cached == 18
    assert len(store.read("rationales")) == 18  # nothing appended

    more = generate_rationales(store, make_config(server, samples=4))  # raising k asks only for the new index
    assert more.calls == 6 and more.samples_cached == 18


def test_images_are_sent_downscaled_in_order(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    generate_rationales(
        store, make_config(server, samples=1, teacher={"image_max_side": 24}), item_ids=list(answers)[:1]
    )
    [req] = server.requests
    assert len(req.image_urls) == 5 and all(u.startswith("data:image/jpeg;base64,") for u in req.image_urls)
    import io

    from PIL import Image

    from aescot.teacher.images import decode_data_url

    assert max(Image.open(io.BytesIO(decode_data_url(req.image_urls[0]))).size) == 24


def test_disagreeing_samples_are_recorded_with_their_agreement(labelled, server):
    store, answers = labelled
    first = min(answers)
    server.responder = oracle(answers, wrong={(first, 1)})
    generate_rationales(store, make_config(server, samples=2))
    row = next(r for r in store.read("rationales") if r["item_id"] == first and r["sample_index"] == 1)
    assert row["format_ok"] and row["consistent"] is False and row["agreement"] < 1.0


def test_failed_calls_are_recorded_and_retried_next_run(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    server.fail_next("500", times=8)  # two calls exhaust their 4 attempts each (concurrency 1)
    config = make_config(server, samples=2, teacher={"concurrency": 1})
    report = generate_rationales(store, config)
    assert report.failed == 2 and report.ok == 10
    failed = [r for r in store.read("rationales") if r["error"]]
    assert len(failed) == 2 and all("HTTP 500" in r["error"] and r["consistent"] is None for r in failed)

    before = server.calls
    retry = generate_rationales(store, config)
    assert retry.calls == 2 and retry.ok == 2 and server.calls - before == 2
    assert not any(r["error"] for r in store.read("rationales")) and store.count("rationales") == 12


def test_unparseable_output_is_kept_as_format_failure_and_not_retried(labelled, server):
    store, _ = labelled
    server.responder = garbage
    config = make_config(server, samples=1)
    report = generate_rationales(store, config)
    assert report.format_failures == 6 and report.ok == 0
    row = store.read("rationales")[0]
    assert row["format_ok"] is False and row["error"] is None and row["format_error"].startswith("no_answer")
    assert row["consistent"] is False and row["text"] == "I cannot help with screening these images."
    assert generate_rationales(store, config).calls == 0


def test_structured_json_replies_are_stored_as_think_answer_text(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    generate_rationales(store, make_config(server, samples=1))
    assert all(r.wants_json_schema for r in server.requests)
    assert all(r["text"].startswith("<think>Candidate A") for r in store.read("rationales"))


def test_limit_guard_then_resume(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    report = generate_rationales(store, make_config(server, samples=2, limit=5))
    assert report.calls == 5 and server.calls == 5 and report.stopped == "limit"
    rest = generate_rationales(store, make_config(server, samples=2))
    assert rest.calls == 7 and rest.samples_cached == 5 and store.count("rationales") == 12


def test_cost_guard_stops_before_the_budget(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    one = generate_rationales(store, make_config(server, samples=1), item_ids=[min(answers)]).cost_usd
    budget = one * 4.5
    report = generate_rationales(store, make_config(server, samples=3, max_cost_usd=budget))
    assert report.stopped == "max_cost"
    assert 2 <= report.calls <= 5 and report.cost_usd <= budget * 1.2


def test_cost_guard_needs_prices(server):
    with pytest.raises(ValueError, match="PRICE"):
        make_config(server, max_cost_usd=1.0, teacher={"price_input_per_mtok": 0, "price_output_per_mtok": 0})


def test_unreadable_images_are_rejected_and_the_run_goes_on(store, server):
    answers = add_labelled_items(store, 3)
    bad = min(answers)
    item = next(i for i in store.read("items") if i["item_id"] == bad)
    store.write_bytes(item["candidates"][2]["image_key"], b"truncated")
    missing = sorted(answers)[1]
    item2 = next(i for i in store.read("items") if i["item_id"] == missing)
    store.fs.rm(str(store.local_path(item2["source_image_key"])))
    server.responder = oracle(answers)
    report = generate_rationales(store, make_config(server, samples=2))
    assert report.ok == 2
    rejects = {r["subject"]: r for r in store.read("rejects")}
    assert rejects[bad]["reason"] == "image_unreadable" and rejects[bad]["stage"] == "rationales"
    assert rejects[missing]["reason"] == "image_missing"


def test_label_without_item_is_rejected(store, server):
    answers = add_labelled_items(store, 1)
    orphan = {**store.read("labels")[0], "item_id": "f" * 64}
    store.upsert("labels", [orphan])
    server.responder = oracle(answers)
    report = generate_rationales(store, make_config(server, samples=1))
    assert report.ok == 1 and [r.reason for r in report.rejects] == ["item_missing"]


def test_answer_driven_sends_the_label_blind_does_not(labelled, server):
    store, answers = labelled
    server.responder = echo_given_answer
    report = generate_rationales(store, make_config(server, samples=1, mode="answer_driven"))
    assert report.consistent == 6
    assert all("verified answer" in r.text for r in server.requests)
    rows = store.read("rationales")
    assert {r["mode"] for r in rows} == {"answer_driven"}
    server.reset()
    server.responder = oracle(answers)
    generate_rationales(store, make_config(server, samples=1, mode="blind"))
    assert server.calls == 6 and not any("verified answer" in r.text for r in server.requests)
    assert store.count("rationales") == 12  # the mode is part of the sample's id


def test_a_changed_model_or_prompt_version_is_a_different_cache_key(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    generate_rationales(store, make_config(server, samples=1))
    other = make_config(server, samples=1, teacher={"model": "other-teacher"})
    assert generate_rationales(store, other).calls == 6


def test_not_configured(store):
    from aescot.teacher.config import TeacherNotConfigured, TeacherSettings

    with pytest.raises(TeacherNotConfigured):
        generate_rationales(store, RationaleConfig(teacher=TeacherSettings(base_url=None, model=None)))


def test_works_from_inside_a_running_event_loop(labelled, server):
    import asyncio

    store, answers = labelled
    server.responder = oracle(answers)

    async def flow():
        return generate_rationales(store, make_config(server, samples=1))

    assert asyncio.run(flow()).ok == 6


def test_answer_driven_samples_are_asked_again_when_the_label_changes(labelled, server):
    from aescot.teacher.config import FilterConfig
    from aescot.teacher.filter import filter_rationales

    store, answers = labelled
    server.responder = echo_given_answer
    config = make_config(server, samples=2, mode="answer_driven")
    generate_rationales(store, config)
    assert generate_rationales(store, config).calls == 0
    first = min(answers)
    label = next(r for r in store.read("labels") if r["item_id"] == first)
    label.update(
        acceptable=["A", "D"], best="D", dimensions={"A": [], "B": ["lighting_shadow"], "C": [], "D": []}
    )
    store.upsert("labels", [label])
    assert filter_rationales(store, FilterConfig(samples=2, mode="answer_driven", min_chars=50)).pending == 1
    again = generate_rationales(store, config)
    assert again.calls == 2 and again.consistent == 2  # only the relabelled item, explaining its new answer
    report = filter_rationales(store, FilterConfig(samples=2, mode="answer_driven", min_chars=50))
    assert report.pending == 0 and report.kept == 6


def test_an_endpoint_that_starts_refusing_stops_the_run_and_keeps_what_finished(labelled, server):
    from aescot.demo.chat_server import oracle as make_oracle
    from aescot.teacher.client import TeacherFatalError

    store, answers = labelled
    answer = make_oracle(answers)

    def revoke_after_three(req):
        if server.calls >= 3:
            server.api_key = "revoked"
        return answer(req)

    server.responder = revoke_after_three
    with pytest.raises(TeacherFatalError, match="refused"):
        generate_rationales(store, make_config(server, samples=2, teacher={"concurrency": 1}))
    assert store.count("rationales") == 3 and server.unauthorized == 1


def test_replies_without_usage_are_counted_not_priced(store):
    from aescot.demo.chat_server import chat_server

    answers = add_labelled_items(store, 2)
    with chat_server(oracle(answers), send_usage=False) as srv:
        report = generate_rationales(store, make_config(srv, samples=1))
    assert report.ok == 2 and report.calls_without_usage == 2 and report.cost_usd == 0
    assert all(r["cost_usd"] is None and r["prompt_tokens"] is None for r in store.read("rationales"))
