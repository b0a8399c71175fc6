"""The model backend: a promptable segmentation model loaded by id through ``transformers``.

Any model that ``AutoModelForMaskGeneration`` + ``AutoProcessor`` load natively (no remote code): the
SAM family, e.g. ``facebook/sam-vit-base`` or the small ``Zigeng/SlimSAM-uniform-77``, or a local
folder written by ``save_pretrained``. The prompt says "the thing in the middle, not the border": a
positive point at the image centre and a negative point in each corner of the border band. Of the
model's candidate masks (SAM gives three granularities) the best-scored one that passes the same
checks as the classical masks wins. torch and transformers are imported here only, when it is used;
a loaded model is kept per (id, device) for the process.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from aescot.errors import ConfigError
from aescot.masks.base import (
    Mask,
    MaskConfig,
    MaskError,
    binary_image,
    check_coverage,
    check_parts,
    check_separation,
    keep_main_parts,
    work_copy,
)

METHOD = "model"
CHECK_SIDE = 384  # the checks run on a copy of the candidate masks at most this large


class MaskModelNotAvailable(ConfigError, RuntimeError):
    """The mask model cannot be loaded here; the message says how to fix it."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_model_available(model_id: str) -> str:
    """Fail fast (no network, no from_pretrained) when ``model_id`` cannot be loaded: "local" or "hub"."""
    path = Path(model_id).expanduser()
    looks_like_path = model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MaskModelNotAvailable(
                f"mask model folder {model_id!r} has no config.json: point model_id at the folder that "
                "save_pretrained() wrote for the model and its processor"
            )
        return "local"
    if looks_like_path:
        raise MaskModelNotAvailable(
            f"no mask model folder at {str(path)!r}: check the path, or give a hub id such as "
            "'facebook/sam-vit-base'"
        )
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return "hub"
    if _offline():
        raise MaskModelNotAvailable(
            f"mask model {model_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"download it first (`hf download {model_id}`), or give a local folder written by save_pretrained()"
        )
    return "hub"


@functools.lru_cache(maxsize=2)
def load_model(model_id: str, device: str):
    """``(model, processor)`` from ``from_pretrained`` (safetensors only), once per process and device."""
    check_model_available(model_id)
    from transformers import AutoModelForMaskGeneration, AutoProcessor

    from aescot.generate.diffusion import resolve_device

    device, _ = resolve_device(device)
    try:
        processor = AutoProcessor.from_pretrained(model_id)
        model = AutoModelForMaskGeneration.from_pretrained(model_id, use_safetensors=True)
    except (OSError, ValueError, KeyError) as exc:
        raise MaskModelNotAvailable(
            f"cannot load mask model {model_id!r} with AutoModelForMaskGeneration/AutoProcessor "
            f"(a SAM-family model and its processor are needed): {exc}"
        ) from exc
    if not hasattr(processor, "post_process_masks"):
        raise MaskModelNotAvailable(
            f"{model_id!r}: its processor {type(processor).__name__} has no post_process_masks; "
            "give a promptable segmentation model (SAM family)"
        )
    return model.to(device).eval(), processor, device


def prompt(size: tuple[int, int], cfg: MaskConfig) -> tuple[list[list[float]], list[int]]:
    """Points in image coordinates and their labels: the centre (1) and the band's four corners (0)."""
    w, h = size
    b = max(1.0, min(w, h) * cfg.border_fraction / 2)
    points = [[w / 2, h / 2], [b, b], [w - 1 - b, b], [b, h - 1 - b], [w - 1 - b, h - 1 - b]]
    return points, [1, 0, 0, 0, 0]


def model_masks(img: Image.Image, cfg: MaskConfig) -> tuple[np.ndarray, np.ndarray]:
    """The model's candidate masks, ``(k, h, w)`` bool at the source size, and their scores ``(k,)``."""
    import torch

    if not cfg.model_id:
        raise MaskModelNotAvailable("backend='model' needs model_id (a hub id or a save_pretrained folder)")
    model, processor, device = load_model(cfg.model_id, cfg.model_device)
    rgb = img.convert("RGB")
    points, labels = prompt(rgb.size, cfg)
    inputs = processor(images=rgb, input_points=[[points]], input_labels=[[labels]], return_tensors="pt")
    sizes = inputs.pop("original_sizes")
    reshaped = inputs.pop("reshaped_input_sizes", None)
    with torch.inference_mode():
        out = model(**{k: v.to(device) for k, v in inputs.items()}, multimask_output=True)
    extra = {} if reshaped is None else {"reshaped_input_sizes": reshaped}
    masks = processor.post_process_masks(out.pred_masks.cpu(), sizes, **extra)[0]  # (objects, k, h, w)
    masks = np.asarray(masks[0], dtype=bool)
    scores = out.iou_scores.float().cpu().numpy().reshape(-1)[: len(masks)]
    return masks, scores


def segment_model(img: Image.Image, cfg: MaskConfig) -> Mask:
    masks, scores = model_masks(img, cfg)
    rgb = work_copy(img, CHECK_SIDE)
    first: MaskError | None = None
    for i in np.argsort(-scores):
        small = np.asarray(binary_image(masks[i]).resize((rgb.shape[1], rgb.shape[0]))) > 127
        fg, parts = keep_main_parts(small)
        try:
            check_coverage(fg, METHOD, cfg)
            check_parts(fg, parts, METHOD, cfg)
            check_separation(rgb, fg, METHOD, cfg)
        except MaskError as exc:
            first = first or exc
            continue
        full, _ = keep_main_parts(masks[i])
        return Mask(binary_image(full), METHOD, float(full.mean()), [f"model_score_{scores[i]:.2f}"])
    assert first is not None
    raise MaskError(first.reason, f"none of the model's {len(masks)} masks passes: {first.detail}")
