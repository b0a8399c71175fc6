"""Regenerate a stored candidate from what the store recorded, and check it is bit-for-bit the same.

The candidate's group row holds the generator settings; its params hold the seed, the slot and,
for diffusers, the seeds and slots of the pipeline call it came from (a batch is reproduced as
a batch, because batched float math is only reproducible as such) plus device type and dtype.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow.compute as pc
from PIL import Image

from aescot.generate.base import Generator
from aescot.generate.diffusion import DiffusersConfig, DiffusersGenerator
from aescot.generate.groups import GROUPS
from aescot.generate.latency import LatencyConfig, LatencyGenerator
from aescot.generate.stage import SOURCE_COLUMNS, load_source
from aescot.generate.synthetic import SyntheticConfig, SyntheticGenerator
from aescot.ids import sha256_bytes
from aescot.images import encode_png
from aescot.store import DatasetStore


@dataclass
class Reproduction:
    candidate_id: str
    image: Image.Image
    identical: bool  # same PNG bytes, hence the same image id, as the stored candidate


def generator_for(group: dict, params: dict, device: str | None = None) -> Generator:
    """The generator a group was made with (device/dtype from the candidate unless ``device`` is given)."""
    fp = json.loads(group["config"])["generator"]
    if group["generator"] == "synthetic":
        return SyntheticGenerator(SyntheticConfig(plan=fp["plan"]))
    if group["generator"] == "latency":  # the same pixels without the wait
        return LatencyGenerator(LatencyConfig(seconds_per_call=0, size=fp["size"]))
    if group["generator"] == "diffusers":
        cfg = DiffusersConfig(
            **fp,
            device=device or params.get("device_type", "auto"),
            dtype=params.get("dtype", "auto"),
            batch_size=max(1, len(params.get("batch_seeds", [1]))),
        )
        return DiffusersGenerator(cfg)
    raise ValueError(f"no known generator {group['generator']!r} to reproduce with")


def reproduce_candidate(
    store: DatasetStore, candidate_id: str, generator: Generator | None = None, device: str | None = None
) -> Reproduction:
    """Run the recorded generation of ``candidate_id`` again and compare with the stored image."""
    found = store.read(
        "candidates", ["candidate_id", "source_id", "params", "seed", "image_id"], keys=[candidate_id]
    )
    if not found:
        raise KeyError(f"no candidate {candidate_id}")
    cand = found[0]
    # the candidate's group is one of its source's groups (a filter on the ledger, not a whole read)
    groups = store.read(
        GROUPS.name,
        ["group_id", "generator", "config", "candidate_ids"],
        where=pc.field("source_id") == cand["source_id"],
    )
    group = next((g for g in groups if candidate_id in g["candidate_ids"]), None)
    if group is None:
        raise KeyError(f"candidate {candidate_id} belongs to no finished generation group")
    params = json.loads(cand["params"])
    source_rows = store.read("sources", SOURCE_COLUMNS, keys=[cand["source_id"]])
    if not source_rows:
        raise KeyError(f"candidate {candidate_id}: its source {cand['source_id']} is not in the store")
    source = load_source(store, source_rows[0])
    generator = generator or generator_for(group, params, device)
    slots = params.get("batch_slots", [params["slot"]])
    seeds = params.get("batch_seeds", [cand["seed"]])
    images = generator.generate(source, slots, seeds)
    image = images[seeds.index(cand["seed"])].image
    return Reproduction(candidate_id, image, sha256_bytes(encode_png(image)) == cand["image_id"])
