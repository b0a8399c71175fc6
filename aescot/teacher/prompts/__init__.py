"""Versioned prompt files and the chat messages built from them.

The texts live in ``prompts/<version>/*.md`` (see the README there); this module only
loads them and fills in images and, in answer-driven mode, the human answer.

>>> from aescot.teacher.prompts import student_prompt, IMAGE_PLACEHOLDER
>>> student_prompt().count(IMAGE_PLACEHOLDER)
5
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any, Literal

from aescot.errors import ConfigError
from aescot.vocab import IMAGE_ORDER

PROMPT_VERSION = "v1"
"""The prompt version used unless another is asked for."""

IMAGE_PLACEHOLDER = "<image>"
"""Where an image goes in a prompt text."""

"""The order of the images in every prompt: the source photo, then candidates A-D."""

Mode = Literal["blind", "answer_driven"]
MODES: tuple[str, ...] = ("blind", "answer_driven")

_DIR = Path(__file__).parent


class PromptError(ConfigError, ValueError):
    """A prompt version or file does not exist, or a prompt is filled in wrongly."""


def versions() -> list[str]:
    """The prompt versions available (folder names)."""
    return sorted(p.name for p in _DIR.iterdir() if p.is_dir() and (p / "student.md").is_file())


@cache
def load(name: str, version: str = PROMPT_VERSION) -> str:
    """The text of ``<version>/<name>.md`` without its trailing newline."""
    path = _DIR / version / f"{name}.md"
    if not path.is_file():
        known = ", ".join(versions())
        raise PromptError(f"no prompt file {name}.md for version {version!r} (versions: {known})")
    return path.read_text(encoding="utf-8").rstrip("\n")


def fingerprint(version: str = PROMPT_VERSION) -> dict[str, str]:
    """SHA-256 of every file of a version, to detect edits of a released version."""
    folder = _DIR / version
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.md"))}


def student_prompt(version: str = PROMPT_VERSION) -> str:
    """The question a trained (student) model is asked.

    It holds five :data:`IMAGE_PLACEHOLDER` markers, in the order of :data:`IMAGE_ORDER`
    (source, A, B, C, D), and asks for the ``<think>..</think><answer>{json}</answer>`` format
    that :func:`aescot.teacher.parse.parse_answer` reads.
    """
    text = load("student", version)
    if text.count(IMAGE_PLACEHOLDER) != len(IMAGE_ORDER):
        raise PromptError(f"student.md of {version} must hold {len(IMAGE_ORDER)} {IMAGE_PLACEHOLDER} markers")
    return text


@dataclass(frozen=True)
class TeacherPrompt:
    """A teacher request before images are attached: system text and user text with placeholders."""

    version: str
    mode: str
    system: str
    user: str

    def messages(self, image_urls: Sequence[str]) -> list[dict[str, Any]]:
        """Chat Completions messages with the images (data URLs or http URLs) in placeholder order."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": content_parts(self.user, image_urls)},
        ]


def teacher_prompt(
    mode: str, answer: dict[str, Any] | None = None, version: str = PROMPT_VERSION
) -> TeacherPrompt:
    """The teacher's prompt: the student question plus the blind or answer-driven instructions.

    ``answer`` (acceptable, best, dimensions) is required in ``answer_driven`` mode and refused
    in ``blind`` mode, so a blind request can never carry the label by mistake.
    """
    if mode not in MODES:
        raise PromptError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    question = student_prompt(version)
    if mode == "blind":
        if answer is not None:
            raise PromptError("blind mode must not be given the human answer")
        extra = load("blind", version)
    else:
        if answer is None:
            raise PromptError("answer_driven mode needs the human answer")
        shown = {k: answer[k] for k in ("acceptable", "best", "dimensions")}
        extra = Template(load("answer_driven", version)).substitute(
            answer=json.dumps(shown, ensure_ascii=False)
        )
    return TeacherPrompt(version, mode, load("system", version), f"{question}\n\n{extra}")


def content_parts(text: str, image_urls: Sequence[str]) -> list[dict[str, Any]]:
    """Split ``text`` at :data:`IMAGE_PLACEHOLDER` and interleave ``image_url`` parts."""
    pieces = text.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(image_urls):
        raise PromptError(
            f"prompt has {len(pieces) - 1} image placeholders but {len(image_urls)} images were given"
        )
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(image_urls):
            parts.append({"type": "image_url", "image_url": {"url": image_urls[i]}})
    return parts
