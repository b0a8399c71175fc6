"""A latency-bound backend for benchmarks: each call waits as long as a GPU call would, then writes
small images.

What a real GPU backend costs the orchestrator is mostly *waiting*: the process hands a batch to the
device and blocks until it comes back, holding no CPU and (in torch) no GIL. ``LatencyGenerator``
reproduces exactly that: ``generate`` sleeps ``seconds_per_call + seconds_per_image * images`` (a
``time.sleep``, which releases the GIL), then renders its candidates with the synthetic backend's
renderer on the source shrunk to ``size`` pixels, so the store, dedupe, items and everything
downstream get real, deterministic, small images with planted answers. It lets a cluster set-up
(Dask workers, GPU slots, retries) be measured and faulted on machines without a GPU.

The wait is not part of what it produces: changing ``seconds_per_call`` does not make a generated
source "new" again; changing ``size`` does.
"""

from __future__ import annotations

import time
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

from aescot.generate.base import GeneratedImage, Generator, SourceImage
from aescot.generate.synthetic import SyntheticConfig, SyntheticGenerator


class LatencyConfig(BaseModel):
    """How long a call takes and how large its images are."""

    seconds_per_call: float = Field(
        0.5, ge=0, le=600, description="seconds every generate call waits (one GPU batch: a source's slots)"
    )
    seconds_per_image: float = Field(0.0, ge=0, le=600, description="seconds added per image in the call")
    size: int = Field(64, ge=32, le=1024, description="longest side of the images written")


class LatencyGenerator(Generator):
    """Sleeps the configured GPU time per call, then renders small synthetic candidates."""

    name = "latency"
    model = None

    def __init__(self, config: LatencyConfig | None = None):
        self.config = config or LatencyConfig()
        self._renderer = SyntheticGenerator(SyntheticConfig())

    def fingerprint(self) -> dict[str, Any]:
        return {"size": self.config.size, "renderer": self._renderer.fingerprint(), "version": 1}

    def wait_seconds(self, images: int) -> float:
        """How long one call producing ``images`` images waits."""
        return self.config.seconds_per_call + self.config.seconds_per_image * images

    def generate(self, source: SourceImage, slots: list[int], seeds: list[int]) -> list[GeneratedImage]:
        time.sleep(self.wait_seconds(len(slots)))  # the device's time: no CPU, GIL released
        out = self._renderer.generate(_shrunk(source, self.config.size), slots, seeds)
        for g in out:
            g.params = dict(g.params, size=self.config.size)
        return out


def _shrunk(source: SourceImage, size: int) -> SourceImage:
    """The source with its longest side at most ``size`` (mask resized with it, nearest)."""
    w, h = source.image.size
    scale = size / max(w, h)
    if scale >= 1:
        return source
    dims = (max(1, round(w * scale)), max(1, round(h * scale)))
    return SourceImage(
        source.source_id,
        source.image.resize(dims, Image.Resampling.LANCZOS),
        source.mask.resize(dims, Image.Resampling.NEAREST),
        source.product,
    )
