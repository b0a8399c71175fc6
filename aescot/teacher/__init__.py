"""Teacher rationales (AesCoT) and the consistency filter.

Public pieces (see ``aescot/teacher/README.md``):

* prompts: :func:`aescot.teacher.prompts.student_prompt`, versioned files under ``prompts/``;
* parsing: :func:`aescot.teacher.parse.parse_answer` (raises ``AnswerFormatError``);
* agreement: :func:`aescot.teacher.agreement.answer_agreement`;
* images: :func:`aescot.teacher.images.image_data_url`;
* stage steps: :func:`aescot.teacher.rationales.generate_rationales` and
  :func:`aescot.teacher.filter.filter_rationales`.
"""

from importlib import import_module
from typing import Any

_LAZY = {  # PEP 562: importing a submodule (e.g. the prompt version for the CLI) loads only that one
    "Agreement": "aescot.teacher.agreement",
    "answer_agreement": "aescot.teacher.agreement",
    "image_data_url": "aescot.teacher.images",
    "AnswerFormatError": "aescot.teacher.parse",
    "parse_answer": "aescot.teacher.parse",
    "student_prompt": "aescot.teacher.prompts",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 (the lazy table's string keys)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aescot.teacher' has no attribute {name!r}")
