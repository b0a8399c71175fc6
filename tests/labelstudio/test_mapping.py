"""Result JSON <-> answers, task data, and the labeling config's control names (no server)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from aescot.labelstudio import LabelStudioConfig
from aescot.labelstudio.assets import guidelines_html, label_config
from aescot.labelstudio.mapping import (
    DIMENSIONS,
    ITEM_FIELD,
    LETTERS,
    ResultError,
    answer_to_result,
    result_to_answer,
    task_data,
)
from tests.labelstudio.helpers import answer, make_items


def test_answer_round_trips_through_result_json():
    full = answer("C", ["A", "C"], {"B": ["lighting_shadow", "placement_layout"]}, {"A": 3, "C": 5})
    back = result_to_answer(answer_to_result(full))
    assert back == {**full, "scores": {"A": 3, "B": None, "C": 5, "D": None}}
    none = result_to_answer(answer_to_result(answer(None, [])))
    assert (none["best"], none["acceptable"]) == (None, [])


@pytest.mark.parametrize(
    "result, message",
    [
        ([], "no best candidate"),
        ([{"from_name": "best", "value": {"choices": ["B"]}}], "best must be acceptable"),
        (
            [
                {"from_name": "best", "value": {"choices": ["none"]}},
                {"from_name": "acceptable", "value": {"choices": ["A"]}},
            ],
            "'none acceptable'",
        ),
        ([{"from_name": "best", "value": {"choices": ["E"]}}], "best must be one of"),
        (
            [
                {"from_name": "best", "value": {"choices": ["none"]}},
                {"from_name": "defects_A", "value": {"choices": ["ugly"]}},
            ],
            "unknown dimensions",
        ),
        (
            [
                {"from_name": "best", "value": {"choices": ["none"]}},
                {"from_name": "score_A", "value": {"rating": 9}},
            ],
            "not 1-5",
        ),
    ],
)
def test_unusable_results_are_refused_with_a_reason(result, message):
    with pytest.raises(ResultError, match=message):
        result_to_answer(result)


def test_task_data_reveals_nothing_but_the_item_and_its_images(store):
    gold = make_items(store, 0, gold=1)[0]
    data = task_data(gold, store, f"local:{store.root}/images", store.local_path("."))
    assert set(data) == {ITEM_FIELD, "source", *LETTERS}
    assert all(v.startswith("/data/local-files/?d=images/") for k, v in data.items() if k != ITEM_FIELD)
    assert data[ITEM_FIELD] == gold["item_id"]
    assert not any(w in repr(data).lower() for w in ("gold", "known", "answer", "acceptable"))


def test_object_store_items_reference_the_bucket_for_presigning(store):
    item = make_items(store, 1)[0]
    data = task_data(item, store, "s3:bucket/ds/images", None)
    assert data["A"] == f"s3://bucket/ds/images/{item['candidates'][0]['image_key'][len('images/') :]}"


def test_labeling_config_controls_match_the_parser():
    root = ET.fromstring(label_config(LabelStudioConfig()))
    names = {el.get("name"): el for el in root.iter() if el.get("name")}
    assert {
        "source",
        "acceptable",
        "best",
        *(f"img_{L}" for L in LETTERS),
        *(f"defects_{L}" for L in LETTERS),
        *(f"score_{L}" for L in LETTERS),
    } <= set(names)
    for L in LETTERS:
        aliases = [c.get("alias") for c in names[f"defects_{L}"].iter("Choice")]
        assert aliases == list(DIMENSIONS)
    assert [c.get("alias") for c in names["best"].iter("Choice")] == [*LETTERS, "none"]
    hotkeys = [el.get("hotkey") for el in root.iter() if el.get("hotkey")]
    assert len(hotkeys) == len(set(hotkeys)) == 25


def test_guidelines_explain_every_dimension_and_hotkey():
    html = guidelines_html(LabelStudioConfig())
    for dim in DIMENSIONS:
        assert dim in html
    assert "<table>" in html and "Ctrl+Enter" in html
