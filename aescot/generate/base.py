"""The generator interface: one method, ``generate``, turns a source and seeds into images."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from aescot.errors import InputError


@dataclass(frozen=True)
class SourceImage:
    """What a generator gets for one source: the normalised image and its product mask (L, 255 = product)."""

    source_id: str
    image: Image.Image
    mask: Image.Image
    product: str | None = None


@dataclass
class GeneratedImage:
    """One generated candidate before it is stored.

    ``params`` holds everything, besides the seed, needed to regenerate it bit-for-bit.
    ``known_acceptable``/``known_dimensions`` are ground truth when the generator knows it.
    """

    image: Image.Image
    seed: int
    params: dict[str, Any]
    known_acceptable: bool | None = None
    known_dimensions: list[str] = field(default_factory=list)


class GenerationError(InputError, RuntimeError):
    """A generator cannot work on one source; ``reason`` is a stable code for the rejects table."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class Generator(ABC):
    """A candidate generator. Subclasses set ``name`` and implement :meth:`generate`."""

    name: str = "generator"
    model: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change what it produces (part of the generation group's id)."""
        return {}

    @abstractmethod
    def generate(self, source: SourceImage, slots: list[int], seeds: list[int]) -> list[GeneratedImage]:
        """One image per ``(slot, seed)``; slot ``k`` is the k-th of the source's candidates.

        The same source, slots and seeds must give the same pixels.
        """
