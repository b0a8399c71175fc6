"""Filter decisions: thresholds, drop reasons, the rationale picked, idempotence."""

import pytest

from aescot.demo.chat_server import oracle, rationale_text
from aescot.teacher.config import FilterConfig
from aescot.teacher.filter import FilterError, decide, filter_rationales, leaks_label
from aescot.teacher.parse import format_response
from aescot.teacher.rationales import generate_rationales

from .conftest import make_config

E = {"A": [], "B": [], "C": [], "D": []}
HUMAN = {
    "acceptable": ["A", "B"],
    "best": "A",
    "dimensions": {**E, "C": ["lighting_shadow"], "D": ["placement_layout"]},
}
LONG = "Candidate A looks faithful to the source in shape, light, placement and surroundings. " * 4


def sample(i, answer=HUMAN, reasoning=LONG, error=None, parsed=True):
    return {
        "rationale_id": f"r{i}",
        "sample_index": i,
        "error": error,
        "format_ok": parsed and error is None,
        "parsed": answer if parsed and error is None else None,
        "text": format_response(reasoning, answer) if parsed else "garbage",
    }


WRONG_BEST = {**HUMAN, "best": "B"}
CFG = FilterConfig(min_consistency=0.8, samples=5, min_chars=100)


def test_consistency_at_the_threshold_is_kept():
    samples = [sample(i) for i in range(4)] + [sample(4, WRONG_BEST)]
    d = decide(samples, HUMAN, CFG)
    assert d == {"kept": True, "reason": "kept", "consistency": 0.8, "rationale_id": "r0", "n_samples": 5}


def test_below_threshold_is_dropped():
    samples = [sample(i) for i in range(3)] + [sample(3, WRONG_BEST), sample(4, WRONG_BEST)]
    d = decide(samples, HUMAN, CFG)
    assert (d["kept"], d["reason"], d["consistency"], d["rationale_id"]) == (
        False,
        "low_consistency",
        0.6,
        None,
    )


def test_unparseable_samples_count_against_consistency():
    samples = [sample(i) for i in range(4)] + [sample(4, parsed=False)]
    assert decide(samples, HUMAN, CFG)["consistency"] == 0.8
    samples = [sample(i) for i in range(3)] + [sample(3, parsed=False), sample(4, parsed=False)]
    assert decide(samples, HUMAN, CFG)["reason"] == "low_consistency"


def test_all_unparseable_is_a_format_failure():
    d = decide([sample(i, parsed=False) for i in range(5)], HUMAN, CFG)
    assert d["reason"] == "format_failure" and d["consistency"] is None


def test_label_leak_removes_samples_and_drops_when_none_left():
    leaky = "As the annotator chose, " + LONG
    samples = [sample(i, reasoning=leaky) for i in range(5)]
    assert decide(samples, HUMAN, CFG)["reason"] == "label_leak"
    samples[3] = sample(3)
    d = decide(samples, HUMAN, CFG)
    assert d["kept"] and d["rationale_id"] == "r3"


@pytest.mark.parametrize(
    "text",
    [
        "the annotators preferred B",
        "Given the ground truth,",
        "the verified answer says",
        "According to the label, A",
        "We are told that A is best",
        "human label: A",
    ],
)
def test_leak_patterns(text):
    assert leaks_label(text, CFG.leak_patterns)


@pytest.mark.parametrize(
    "text", ["the label on the bottle is garbled", "the answer is A", "the printed text is crisp"]
)
def test_no_false_leaks(text):
    assert leaks_label(text, CFG.leak_patterns) is None


def test_length_bounds():
    samples = [sample(i, reasoning="short") for i in range(5)]
    assert decide(samples, HUMAN, CFG)["reason"] == "length"
    samples = [sample(i, reasoning="x" * 20000) for i in range(5)]
    assert decide(samples, HUMAN, CFG)["reason"] == "length"


def test_pick_best_dimension_agreement_then_score_then_shorter_then_index():
    half_dims = {**HUMAN, "dimensions": {**E, "C": ["lighting_shadow"]}}  # misses D's defect
    samples = [
        sample(0, half_dims),
        sample(1, half_dims),
        sample(2),
        sample(3, reasoning=LONG + " more"),
        sample(4),
    ]
    assert decide(samples, HUMAN, CFG)["rationale_id"] == "r2"  # full dims; r2/r4 tie -> lowest index
    samples = [
        sample(0, half_dims),
        sample(1, reasoning=LONG + " and a longer tail"),
        sample(2, half_dims),
        sample(3),
        sample(4, half_dims),
    ]
    d = decide(samples, HUMAN, CFG)
    assert d["rationale_id"] == "r3" and d["consistency"] == 1.0  # shorter reasoning wins the tie


def _run(store, server, answers, k=3, wrong=None, **cfg):
    server.responder = oracle(answers, wrong=wrong)
    generate_rationales(store, make_config(server, samples=k, **cfg))


def test_filter_writes_selections_and_a_rerun_writes_nothing(labelled, server):
    store, answers = labelled
    ids = sorted(answers)
    # item 0: 1 of 3 samples wrong (0.67 < 0.8); item 1: all wrong; others consistent
    wrong = {(ids[0], 2), (ids[1], 0), (ids[1], 1), (ids[1], 2)}
    _run(store, server, answers, wrong=wrong)
    report = filter_rationales(store, FilterConfig(samples=3))
    assert (report.decided, report.kept, dict(report.dropped)) == (6, 4, {"low_consistency": 2})
    sel = {s["item_id"]: s for s in store.read("selections")}
    assert sel[ids[0]]["consistency"] == pytest.approx(2 / 3) and not sel[ids[0]]["kept"]
    assert (
        sel[ids[2]]["kept"] and sel[ids[2]]["rationale_id"] and sel[ids[2]]["teacher_model"] == "test-teacher"
    )

    again = filter_rationales(store, FilterConfig(samples=3))
    assert again.written == 0 and again.unchanged == 6
    looser = filter_rationales(store, FilterConfig(samples=3, min_consistency=0.6))
    assert looser.written == 6 and looser.kept == 5  # the threshold is part of each decision


def test_items_with_unfinished_samples_wait(labelled, server):
    store, answers = labelled
    server.responder = oracle(answers)
    server.fail_next("500", times=4)
    generate_rationales(store, make_config(server, samples=2, teacher={"concurrency": 1}))
    report = filter_rationales(store, FilterConfig(samples=2))
    assert report.pending == 1 and report.decided == 5
    assert filter_rationales(store, FilterConfig(samples=3)).pending == 6  # k larger than what was sampled


def test_a_changed_label_changes_the_decision(labelled, server):
    store, answers = labelled
    _run(store, server, answers, k=2)
    filter_rationales(store, FilterConfig(samples=2))
    first = min(answers)
    label = next(r for r in store.read("labels") if r["item_id"] == first)
    human = answers[first]
    label.update(acceptable=["D"], best="D") if human["best"] != "D" else label.update(
        acceptable=["C"], best="C"
    )
    store.upsert("labels", [label])
    report = filter_rationales(store, FilterConfig(samples=2))
    assert report.written == 1 and report.dropped["low_consistency"] == 1


def test_several_models_need_a_choice(labelled, server):
    store, answers = labelled
    _run(store, server, answers, k=1)
    _run(store, server, answers, k=1, teacher={"model": "other"})
    with pytest.raises(FilterError, match="several"):
        filter_rationales(store, FilterConfig(samples=1))
    assert filter_rationales(store, FilterConfig(samples=1, teacher_model="other")).kept == 6


def test_nothing_to_filter(store):
    report = filter_rationales(store, FilterConfig())
    assert report.teacher_model is None and report.decided == 0


def test_the_test_teachers_rationale_passes_the_default_length():
    assert FilterConfig().min_chars <= len(rationale_text(HUMAN)) <= FilterConfig().max_chars
