"""aescot: build image-screening datasets (sources, 4 generated candidates, human labels,
teacher rationales) for training multimodal models.

The stages live in submodules (``aescot.ingest``, ``aescot.generate``, ``aescot.labelstudio``,
``aescot.teacher``, ``aescot.export``) over one :class:`~aescot.store.DatasetStore`. GRPO reward
functions with TRL's signature are importable from here::

    from aescot import screening_reward, format_reward
    GRPOTrainer(..., reward_funcs=[screening_reward, format_reward])
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DatasetStore": "aescot.store",
    "format_reward": "aescot.rewards",
    "acceptable_reward": "aescot.rewards",
    "best_reward": "aescot.rewards",
    "dimension_reward": "aescot.rewards",
    "screening_reward": "aescot.rewards",
    "make_screening_reward": "aescot.rewards",
}

__all__ = ["__version__", *_LAZY]  # noqa: PLE0604 (names are the lazy table's string keys)


def __getattr__(name: str) -> Any:  # PEP 562: keep `import aescot` light
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aescot' has no attribute {name!r}")
