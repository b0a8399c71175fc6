import pytest

from aescot.teacher.parse import AnswerFormatError, format_response, parse_answer, parse_response

EMPTY = {"A": [], "B": [], "C": [], "D": []}


def test_think_answer_json():
    text = (
        "<think>A looks fine. B has a shadow to the left although light comes from the left.</think>\n"
        '<answer>{"acceptable": ["C", "a"], "best": "a", "dimensions": {"B": ["lighting_shadow"]}}</answer>'
    )
    parsed = parse_response(text)
    assert parsed.answer == {
        "acceptable": ["A", "C"],
        "best": "A",
        "dimensions": {**EMPTY, "B": ["lighting_shadow"]},
    }
    assert parsed.reasoning.startswith("A looks fine")


def test_answer_in_code_fence_and_last_block_wins():
    text = (
        '<think>first draft</think><answer>{"acceptable": [], "best": null}</answer>\n'
        'on reflection:\n<answer>```json\n{"acceptable": ["D"], "best": "D"}\n```</answer>'
    )
    assert parse_answer(text)["best"] == "D"


def test_key_value_lines():
    text = (
        "<think>...</think><answer>\nacceptable: A, C\nbest: C\n"
        "B: lighting_shadow, placement-layout\nD: appearance deformation\n</answer>"
    )
    ans = parse_answer(text)
    assert ans["acceptable"] == ["A", "C"] and ans["best"] == "C"
    assert ans["dimensions"]["B"] == ["lighting_shadow", "placement_layout"]
    assert ans["dimensions"]["D"] == ["appearance_deformation"]


def test_structured_json_wrapper_and_bare():
    wrapped = '{"reasoning": "B is warped", "answer": {"acceptable": [], "best": null, "dimensions": {"B": ["appearance_deformation"]}}}'
    parsed = parse_response(wrapped)
    assert parsed.reasoning == "B is warped" and parsed.answer["acceptable"] == []
    assert parse_answer('{"acceptable": "A", "best": "A"}')["acceptable"] == ["A"]


def test_none_acceptable_words():
    assert parse_answer("<answer>acceptable: none\nbest: none</answer>") == {
        "acceptable": [],
        "best": None,
        "dimensions": EMPTY,
    }


def test_dimensions_in_canonical_order():
    ans = parse_answer(
        '<answer>{"acceptable": [], "best": null, "dimensions": '
        '{"A": ["extension_rationality", "appearance_deformation"]}}</answer>'
    )
    assert ans["dimensions"]["A"] == ["appearance_deformation", "extension_rationality"]


def test_round_trip_format_response():
    ans = {"acceptable": ["B"], "best": "B", "dimensions": {**EMPTY, "A": ["placement_layout"]}}
    text = format_response("because", ans)
    assert parse_response(text).answer == ans and parse_response(text).reasoning == "because"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("I think A is best.", "no_answer"),
        ("<answer>{not json}</answer>", "bad_json"),
        ('<answer>{"acceptable": ["E"], "best": null}</answer>', "bad_letter"),
        ('<answer>{"acceptable": ["A"], "best": "B"}</answer>', "inconsistent"),
        ('<answer>{"acceptable": ["A"], "best": null}</answer>', "inconsistent"),
        (
            '<answer>{"acceptable": [], "best": null, "dimensions": {"A": ["blurry"]}}</answer>',
            "bad_dimension",
        ),
        ('<answer>{"best": "A"}</answer>', "missing_key"),
        ("<answer>[1, 2]</answer>", "bad_line"),
        ("<answer>acceptable: A</answer>", "missing_key"),
        ('<answer>{"acceptable": ["A"], "best": "A", "dimensions": ["A"]}</answer>', "bad_dimensions"),
    ],
)
def test_format_errors_are_clear(text, reason):
    with pytest.raises(AnswerFormatError) as info:
        parse_answer(text)
    assert info.value.reason == reason
    assert str(info.value).startswith(reason)


def test_reasoning_without_opening_think_tag():
    parsed = parse_response('B is tilted.</think>\n<answer>{"acceptable": ["A"], "best": "A"}</answer>')
    assert parsed.reasoning == "B is tilted." and parsed.answer["best"] == "A"
