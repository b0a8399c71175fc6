import pyarrow as pa
import pytest

from aescot.contracts import ContractError, arrow_schema, contract_names, problems, validate

DIMS = {"A": [], "B": ["lighting_shadow"], "C": [], "D": ["appearance_deformation", "placement_layout"]}
SCORES = {"A": 5, "B": 2, "C": None, "D": 1}
H = "ab" * 32


def annotation(**over):
    rec = {
        "annotation_id": "labelstudio:1",
        "revision": 0,
        "item_id": H,
        "task_id": 7,
        "annotator": "ann-1",
        "status": "submitted",
        "acceptable": ["A", "C"],
        "best": "A",
        "dimensions": DIMS,
        "scores": SCORES,
        "lead_time_s": 12.5,
        "created_at": "2026-11-22T06:00:00+00:00",
        "updated_at": "2026-11-22T06:00:00+00:00",
    }
    rec.update(over)
    return rec


def test_every_contract_maps_to_an_arrow_schema():
    names = contract_names()
    assert {"source", "candidate", "screening_item", "annotation", "rationale", "export_row"} <= set(names)
    for name in names:
        schema = arrow_schema(name)
        assert isinstance(schema, pa.Schema) and len(schema) > 3


def test_valid_annotation_passes_and_empty_acceptable_set_is_allowed():
    assert validate("annotation", annotation()) is not None
    validate("annotation", annotation(acceptable=[], best=None))


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"best": "E"}, "best: 'E' is not one of"),
        ({"acceptable": ["A", "A"]}, "acceptable: ['A', 'A'] has non-unique elements"),
        ({"dimensions": {**DIMS, "B": ["blurry"]}}, "dimensions/B/0: 'blurry' is not one of"),
        ({"scores": {**SCORES, "A": 6}}, "scores/A: 6 is greater than the maximum of 5"),
        ({"best": "B"}, "best: 'B' is not in the acceptable set ['A', 'C']"),
        ({"best": None}, "best: null but the acceptable set ['A', 'C'] is not empty"),
        ({"annotator": ""}, "annotator: '' should be non-empty"),
        ({"extra": 1}, "Additional properties are not allowed ('extra' was unexpected)"),
    ],
)
def test_wrong_annotation_is_rejected_with_a_readable_message(change, needle):
    with pytest.raises(ContractError) as info:
        validate("annotation", annotation(**change))
    assert needle in str(info.value)
    assert str(info.value).startswith("annotation record is invalid: ")


def test_missing_field_is_named():
    rec = annotation()
    del rec["item_id"]
    assert problems("annotation", rec) == ["(record): 'item_id' is a required property"]


def test_unknown_contract_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown contract 'nope'"):
        validate("nope", {})


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"item_id": "not-a-hash"},  # a $ref into defs.schema.json
        {"created_at": "yesterday"},  # a $ref with a format
        {"dimensions": {**DIMS, "B": ["blurry"]}},  # a $ref inside defs.schema.json ("#/$defs/...")
        {"scores": {**SCORES, "A": 6}, "best": "E", "task_id": "7"},
    ],
)
def test_inlined_references_give_the_same_verdicts_and_messages(change):
    """The validator runs on the contract with its $refs inlined (for speed); it must say exactly
    what a validator following the references says."""
    from jsonschema import Draft202012Validator, FormatChecker

    from aescot.contracts import _registry, _validator, load_schema

    following = Draft202012Validator(
        load_schema("annotation"), registry=_registry(), format_checker=FormatChecker()
    )
    rec = annotation(**change)

    def said(v):
        return sorted((list(map(str, e.absolute_path)), e.message) for e in v.iter_errors(rec))

    assert said(_validator("annotation")) == said(following)
    assert bool(change) == bool(said(following))
