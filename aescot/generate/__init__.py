"""Candidate generation: the ``Generator`` interface, the synthetic, diffusers and latency (benchmark)
backends, the stage.

>>> from aescot.generate import GenerateConfig, generate_candidates
>>> report = generate_candidates(store, GenerateConfig(backend="synthetic"))
"""

from aescot.generate.base import GeneratedImage, GenerationError, Generator, SourceImage
from aescot.generate.diffusion import DiffusersConfig, DiffusersGenerator, ModelNotAvailable
from aescot.generate.latency import LatencyConfig, LatencyGenerator
from aescot.generate.stage import (
    GenerateConfig,
    GenerateReport,
    generate_candidates,
    make_generator,
    pending_source_ids,
    slot_seed,
)
from aescot.generate.synthetic import SyntheticConfig, SyntheticGenerator

__all__ = [
    "DiffusersConfig",
    "DiffusersGenerator",
    "GenerateConfig",
    "GenerateReport",
    "GeneratedImage",
    "GenerationError",
    "Generator",
    "LatencyConfig",
    "LatencyGenerator",
    "ModelNotAvailable",
    "SourceImage",
    "SyntheticConfig",
    "SyntheticGenerator",
    "generate_candidates",
    "make_generator",
    "pending_source_ids",
    "slot_seed",
]
