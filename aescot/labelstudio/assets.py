"""The files annotators see: the labeling config (generated from the vocabulary) and the guidelines
(``annotation/``), with their example pictures."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from pathlib import Path

from markdown_it import MarkdownIt

from aescot.labelstudio.config import LabelStudioConfig


def annotation_dir() -> Path:
    """Packaged copy in a wheel (``aescot/_annotation``), else the repository's ``annotation/``."""
    packaged = Path(__file__).resolve().parent.parent / "_annotation"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "annotation"


def label_config(config: LabelStudioConfig) -> str:
    """``label_config_path`` when set, else the page generated from :mod:`aescot.vocab`
    (``annotation/screening.xml`` is a committed copy of it, checked by a test)."""
    if config.label_config_path:
        return config.label_config_path.read_text(encoding="utf-8")
    from aescot.labelstudio.labeling import screening_config

    return screening_config()


def guidelines_markdown(config: LabelStudioConfig) -> str:
    return (config.guidelines_path or annotation_dir() / "guidelines.md").read_text(encoding="utf-8")


def _picture_refs(markdown: str) -> list[str]:
    """The pictures a markdown text shows, by reference as written, each once, in order."""
    return list(dict.fromkeys(re.findall(r"!\[[^\]]*\]\(([^)\s]+)", markdown)))


def guideline_pictures(config: LabelStudioConfig) -> dict[str, Path]:
    """Every local picture the guidelines show: its reference as written -> the file."""
    base = (config.guidelines_path or annotation_dir() / "guidelines.md").parent
    return {
        ref: base / ref
        for ref in _picture_refs(guidelines_markdown(config))
        if "://" not in ref and not ref.startswith("data:")
    }


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def guidelines_html(config: LabelStudioConfig, picture_src: Callable[[str], str] | None = None) -> str:
    """Guidelines rendered for Label Studio's instructions panel (raw HTML in the markdown is not passed).

    ``picture_src`` maps a picture's reference as written to the URL the page loads it from (for the
    project: a URL Label Studio serves); without it, references are left as written. The rendering is
    a pure function of the text and those URLs, kept for the process (every push checks the project's
    settings; parsing the guidelines was 4 % of a 1k-task push).
    """
    text = guidelines_markdown(config)
    urls = tuple((ref, picture_src(ref)) for ref in _picture_refs(text)) if picture_src is not None else ()
    return _render_guidelines(text, urls)


@functools.lru_cache(maxsize=16)
def _render_guidelines(text: str, urls: tuple[tuple[str, str], ...]) -> str:
    # HTML void tags without "/>": Label Studio stores the instructions through bleach, which drops the
    # slash, and a stored text that differs from ours would count as a change on every run
    md = MarkdownIt("commonmark", {"html": False, "xhtmlOut": False}).enable("table")
    tokens = md.parse(text)
    src = dict(urls)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                ref = str(child.attrGet("src"))
                child.attrSet("src", src.get(ref, ref))
    return md.renderer.render(tokens, md.options, {})
