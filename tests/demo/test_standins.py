"""The demo stand-ins on their own: simulated answers obey the answer rules and err at their rate,
the stand-in teacher's noise follows the planted severity, and a Prefect API that cannot start
in time becomes one line with the fix."""

from __future__ import annotations

import random

import pytest

from aescot.demo.annotators import simulated_answer
from aescot.demo.teacher import BANNER, MODEL, PlantedAnswers, noisy_answer, stand_in_teacher
from aescot.vocab import LETTERS, answer_problems
from flows.prefect_api import PrefectUnavailable, ensure_prefect_api

PLANTED = {
    "acceptable": ["A", "C"],
    "best": "C",
    "dimensions": {
        "A": [],
        "B": ["lighting_shadow", "placement_layout"],
        "C": [],
        "D": ["appearance_deformation"],
    },
    "scores": {"A": 4, "B": 1, "C": 5, "D": 3},
}
DETAIL = {"A": {}, "B": {"severity": "obvious"}, "C": {}, "D": {"severity": "subtle"}}


def test_simulated_answers_are_valid_and_err_at_their_rate():
    rng = random.Random(0)
    careful = [simulated_answer(PLANTED, DETAIL, 0.0, rng) for _ in range(50)]
    assert all(
        {k: a[k] for k in ("acceptable", "best", "dimensions")}
        == {k: PLANTED[k] for k in ("acceptable", "best", "dimensions")}
        for a in careful
    )
    hasty = [simulated_answer(PLANTED, DETAIL, 0.2, rng) for _ in range(400)]
    assert all(not answer_problems(a) for a in hasty)
    for a in hasty:  # a flawed candidate always has a dimension, an acceptable one none
        assert all(bool(a["dimensions"][L]) != (L in a["acceptable"]) for L in LETTERS)
    missed_subtle = sum("D" in a["acceptable"] for a in hasty) / len(hasty)
    missed_obvious = sum("B" in a["acceptable"] for a in hasty) / len(hasty)
    assert 0.6 < missed_subtle < 0.95 and missed_obvious < 0.35  # 4x the rate for subtle defects


def test_stand_in_misreads_subtle_defects_more_and_says_what_it_is():
    truth = [
        {"dimensions": [], "quality": 4},
        {"dimensions": ["lighting_shadow"], "severity": "obvious", "quality": 2},
        {"dimensions": [], "quality": 5},
        {"dimensions": ["appearance_deformation"], "severity": "subtle", "quality": 3},
    ]
    rng = random.Random(1)
    answers = [noisy_answer(truth, rng)[0] for _ in range(400)]
    assert all(not answer_problems(a) for a in answers)
    right = [a["acceptable"] == ["A", "C"] and a["best"] == "C" for a in answers]
    assert 0.6 < sum(right) / len(right) < 0.85
    assert sum("D" in a["acceptable"] for a in answers) > 4 * sum("B" in a["acceptable"] for a in answers)
    assert "demo stand-in teacher" in BANNER


def test_prefect_api_that_cannot_start_in_time_is_one_line_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    with pytest.raises(PrefectUnavailable) as err:
        ensure_prefect_api()
    msg = str(err.value)
    assert "\n" not in msg and "2 tries" in msg
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in msg and "prefect server start" in msg


def test_stand_in_server_finds_the_candidates_from_the_images_alone(store, tmp_path):
    """`aescot eval` sends no item header: the stand-in matches each image to a stored candidate."""
    import openai

    from aescot.generate import GenerateConfig, generate_candidates
    from aescot.ingest import IngestConfig, ingest
    from aescot.items import build_items, planted_answers
    from aescot.samples import write_sample_sources
    from aescot.teacher.images import image_data_url
    from aescot.teacher.parse import parse_response

    ingest(store, [str(write_sample_sources(tmp_path / "in", n=3, size=128))], IngestConfig())
    generate_candidates(store, GenerateConfig())
    build_items(store)
    planted = planted_answers(store)
    with stand_in_teacher(store) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="none", max_retries=0)
        for item in store.read("items"):
            keys = [item["source_image_key"], *(c["image_key"] for c in item["candidates"])]
            content = [{"type": "text", "text": "Which candidates are acceptable?"}] + [
                {"type": "image_url", "image_url": {"url": image_data_url(store.read_bytes(k))}} for k in keys
            ]
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": content}], temperature=0
            )
            parsed = parse_response(reply.choices[0].message.content)
            assert parsed.reasoning.startswith(BANNER)
            truth = planted[item["item_id"]]
            # noise aside, the answer is about these candidates: every flagged defect is a planted one
            for letter in LETTERS:
                assert set(parsed.answer["dimensions"][letter]) <= set(truth["dimensions"][letter]) | {
                    "lighting_shadow"
                }
        assert srv.calls == 3
    answers = PlantedAnswers(store)
    answers.refresh()
    for item in store.read("items"):
        shown = [store.read_bytes(c["image_key"]) for c in item["candidates"]]
        found = [t["candidate_id"] for t in answers.by_images(shown)]
        assert found == [c["candidate_id"] for c in item["candidates"]]
