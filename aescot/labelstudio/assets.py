"""The files annotators see: the labeling config and the guidelines (``annotation/``)."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from aescot.labelstudio.config import LabelStudioConfig


def annotation_dir() -> Path:
    """Packaged copy in a wheel (``aescot/_annotation``), else the repository's ``annotation/``."""
    packaged = Path(__file__).resolve().parent.parent / "_annotation"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "annotation"


def label_config(config: LabelStudioConfig) -> str:
    return (config.label_config_path or annotation_dir() / "screening.xml").read_text(encoding="utf-8")


def guidelines_markdown(config: LabelStudioConfig) -> str:
    return (config.guidelines_path or annotation_dir() / "guidelines.md").read_text(encoding="utf-8")


def guidelines_html(config: LabelStudioConfig) -> str:
    """Guidelines rendered for Label Studio's instructions panel (raw HTML in the markdown is not passed)."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(guidelines_markdown(config))
