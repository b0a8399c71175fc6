import json

import pytest

from aescot.teacher import prompts
from aescot.teacher.prompts import (
    IMAGE_PLACEHOLDER,
    PromptError,
    content_parts,
    student_prompt,
    teacher_prompt,
)


def test_student_prompt_has_five_images_in_order():
    text = student_prompt()
    assert text.count(IMAGE_PLACEHOLDER) == 5
    order = [
        text.index(s) for s in ("Source photo", "Candidate A", "Candidate B", "Candidate C", "Candidate D")
    ]
    assert order == sorted(order)
    for dim in ("appearance_deformation", "lighting_shadow", "placement_layout", "extension_rationality"):
        assert dim in text


def test_blind_prompt_never_carries_an_answer():
    p = teacher_prompt("blind")
    assert "verified answer" not in p.user
    with pytest.raises(PromptError):
        teacher_prompt("blind", answer={"acceptable": [], "best": None, "dimensions": {}})


def test_answer_driven_prompt_embeds_the_answer_as_json():
    answer = {
        "acceptable": ["B"],
        "best": "B",
        "dimensions": {"A": ["lighting_shadow"], "B": [], "C": [], "D": []},
        "scores": {"A": 2.0},
    }
    p = teacher_prompt("answer_driven", answer=answer)
    shown = json.dumps({k: answer[k] for k in ("acceptable", "best", "dimensions")})
    assert shown in p.user and "scores" not in p.user
    with pytest.raises(PromptError):
        teacher_prompt("answer_driven")


def test_messages_interleave_images_in_placeholder_order():
    urls = [f"data:image/png;base64,{i}" for i in range(5)]
    msgs = teacher_prompt("blind").messages(urls)
    assert msgs[0]["role"] == "system"
    images = [p["image_url"]["url"] for p in msgs[1]["content"] if p["type"] == "image_url"]
    assert images == urls
    with pytest.raises(PromptError):
        content_parts(student_prompt(), urls[:4])


def test_unknown_version_or_mode():
    with pytest.raises(PromptError):
        student_prompt("v999")
    with pytest.raises(PromptError):
        teacher_prompt("cheat")


def test_released_prompt_files_are_unchanged():
    lock = json.loads((prompts._DIR / "released.json").read_text())
    for version, hashes in lock.items():
        assert prompts.fingerprint(version) == hashes, (
            f"prompt version {version} was edited: add a new version"
        )
