"""The student question every export row asks: the teacher's versioned ``student_prompt()``.

One source of truth: the teacher writes rationales to answer exactly this question, and a trained
model is evaluated on it (``aescot eval``), so the export does not keep its own copy.
"""

from __future__ import annotations

from aescot.export.rows import IMAGE_PLACEHOLDER
from aescot.vocab import IMAGE_ORDER

N_IMAGES = len(IMAGE_ORDER)  # source, A, B, C, D


def student_prompt_text() -> str:
    """The prompt text with one ``<image>`` placeholder per image, in the order source, A, B, C, D."""
    from aescot.teacher.prompts import student_prompt

    text = student_prompt()
    found = text.count(IMAGE_PLACEHOLDER)
    if found != N_IMAGES:
        raise ValueError(
            f"the student prompt must hold {N_IMAGES} {IMAGE_PLACEHOLDER} placeholders, found {found}"
        )
    return text
