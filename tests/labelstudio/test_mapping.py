"""Result JSON <-> answers, task data, and the labeling config's control names (no server)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from aescot.labelstudio import LabelStudioConfig
from aescot.labelstudio.assets import (
    annotation_dir,
    guideline_pictures,
    guidelines_html,
    guidelines_markdown,
    label_config,
)
from aescot.labelstudio.labeling import OUTLINE_KEY, SOURCE_KEY, hotkeys, screening_config
from aescot.labelstudio.mapping import (
    DIMENSIONS,
    ITEM_FIELD,
    LETTERS,
    ResultError,
    answer_to_result,
    result_to_answer,
    task_data,
)
from aescot.vocab import DIMENSION_INFO
from tests.labelstudio.helpers import answer, make_items

FLAWS = {"B": ["lighting_shadow", "placement_layout"], "D": ["extension_rationality"]}
ALL_FLAWED = {L: ["appearance_deformation"] for L in LETTERS}


def _region(name, choices, to="img_A"):
    return {"from_name": name, "to_name": to, "type": "choices", "value": {"choices": choices}}


def test_answer_round_trips_through_result_json():
    full = answer("C", ["A", "C"], FLAWS, {"A": 3, "C": 5})
    result = answer_to_result(full)
    assert {
        r["from_name"]: r["value"]["choices"] for r in result if r["from_name"].startswith("verdict_")
    } == {
        "verdict_A": ["acceptable"],
        "verdict_B": ["flawed"],
        "verdict_C": ["acceptable"],
        "verdict_D": ["flawed"],
    }
    back = result_to_answer(result)
    assert back == {**full, "scores": {"A": 3, "B": None, "C": 5, "D": None}}
    none = result_to_answer(answer_to_result(answer(None, [], ALL_FLAWED)))
    assert (none["best"], none["acceptable"]) == (None, [])


def test_first_release_results_are_still_read():
    legacy = [
        _region("acceptable", ["A", "C"], "source"),
        _region("best", ["C"], "source"),
        _region("defects_B", ["lighting_shadow"], "img_B"),
    ]
    back = result_to_answer(legacy)
    assert (back["acceptable"], back["best"], back["dimensions"]["B"], back["dimensions"]["D"]) == (
        ["A", "C"],
        "C",
        ["lighting_shadow"],
        [],  # that page let a candidate be neither acceptable nor given a defect
    )


@pytest.mark.parametrize(
    "given, message",
    [
        (answer("B", ["A", "C"], FLAWS), "the best must be acceptable"),
        (answer(None, ["A"], {L: ["lighting_shadow"] for L in "BCD"}), "'none acceptable' but ['A']"),
        (answer("A", ["A"], {"B": ["lighting_shadow"]}), "C is flawed but no defect dimension is given"),
        (answer("A", ["A"], {**ALL_FLAWED}), "A is acceptable but has defects ['appearance_deformation']"),
    ],
)
def test_answers_breaking_the_rules_are_refused_naming_each_problem(given, message):
    with pytest.raises(ResultError, match=re.escape(message)):
        result_to_answer(answer_to_result(given))


@pytest.mark.parametrize(
    "result, message",
    [
        ([], "no best candidate"),
        (
            [_region("best", ["A"], "source"), _region("verdict_A", ["acceptable"])],
            "no verdict .* for B, C, D",
        ),
        ([_region("best", ["none"], "source"), _region("verdict_A", ["maybe"])], "verdict_A must be"),
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
    assert set(data) == {ITEM_FIELD, SOURCE_KEY, OUTLINE_KEY, *LETTERS}
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
    assert set(names) == {
        "source",
        "best",
        *(f"{kind}_{L}" for kind in ("img", "verdict", "defects", "score") for L in LETTERS),
    }
    # the control keeps its name (results say to_name "source"); it shows the outlined source
    assert names["source"].get("value") == f"${OUTLINE_KEY}" and "source" not in (SOURCE_KEY, OUTLINE_KEY)
    assert [c.get("alias") for c in names["best"].iter("Choice")] == [*LETTERS, "none"]
    for L in LETTERS:
        verdict, defects = names[f"verdict_{L}"], names[f"defects_{L}"]
        assert verdict.get("required") == defects.get("required") == "true"
        assert [c.get("alias") for c in verdict.iter("Choice")] == ["acceptable", "flawed"]
        assert [c.get("alias") for c in defects.iter("Choice")] == list(DIMENSIONS)
        assert [c.get("value") for c in defects.iter("Choice")] == [d.label for d in DIMENSION_INFO]
        # the defects are offered, and required, only once the candidate is marked flawed
        assert (defects.get("visibleWhen"), defects.get("whenTagName"), defects.get("whenChoiceValue")) == (
            "choice-selected",
            f"verdict_{L}",
            "Flawed",
        )
    keys = hotkeys()
    pressed = [el.get("hotkey") for el in root.iter() if el.get("hotkey")]
    assert len(pressed) == len(set(pressed)) == 5 + len(LETTERS) * (2 + len(DIMENSIONS))
    for name, by_value in keys.items():
        assert {c.get("alias"): c.get("hotkey") for c in names[name].iter("Choice")} == by_value


def test_committed_labeling_config_is_the_generated_one():
    committed = (annotation_dir() / "screening.xml").read_text(encoding="utf-8")
    assert committed == screening_config(), "run: .venv/bin/python scripts/render_annotation.py"


def test_guidelines_explain_every_dimension_with_a_picture_and_every_hotkey():
    md = guidelines_markdown(LabelStudioConfig())
    pictures = guideline_pictures(LabelStudioConfig())
    assert list(pictures) == [f"examples/{d}.png" for d in DIMENSIONS]
    for path in pictures.values():
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = guidelines_html(LabelStudioConfig(), lambda ref: f"/served/{ref}")
    assert all(f'<img src="/served/examples/{d}.png"' in html for d in DIMENSIONS)
    assert "<table>" in html and "Ctrl+Enter" in html
    # the keyboard table says what the page does
    rows = dict(re.findall(r"^\| (`.+?`) \| (.+?) \|$", md, re.MULTILINE))
    keys = hotkeys()

    def row(action: str) -> list[str]:
        cell = next(k for k, v in rows.items() if v.startswith(action))
        return re.findall(r"`([^`]+)`", cell)

    assert row("A, B, C, D acceptable") == [keys[f"verdict_{L}"]["acceptable"] for L in LETTERS]
    assert row("A, B, C, D flawed") == [keys[f"verdict_{L}"]["flawed"] for L in LETTERS]
    for L in LETTERS:
        assert row(f"defects of {L}") == [keys[f"defects_{L}"][d] for d in DIMENSIONS]
    assert row("best") == [*(keys["best"][L] for L in LETTERS), keys["best"]["none"]]
