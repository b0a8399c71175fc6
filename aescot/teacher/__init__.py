"""Teacher rationales (AesCoT) and the consistency filter.

Public pieces (see ``aescot/teacher/README.md``):

* prompts: :func:`aescot.teacher.prompts.student_prompt`, versioned files under ``prompts/``;
* parsing: :func:`aescot.teacher.parse.parse_answer` (raises ``AnswerFormatError``);
* agreement: :func:`aescot.teacher.agreement.answer_agreement`;
* images: :func:`aescot.teacher.images.image_data_url`;
* stage steps: :func:`aescot.teacher.rationales.generate_rationales` and
  :func:`aescot.teacher.filter.filter_rationales`.
"""

from aescot.teacher.agreement import Agreement, answer_agreement
from aescot.teacher.images import image_data_url
from aescot.teacher.parse import AnswerFormatError, parse_answer
from aescot.teacher.prompts import student_prompt

__all__ = [
    "Agreement",
    "AnswerFormatError",
    "answer_agreement",
    "image_data_url",
    "parse_answer",
    "student_prompt",
]
