"""A tiny random SAM (``SamModel`` + ``SamProcessor``) built from configs offline and saved to a folder.

It runs the real transformers code path of the model backend (``AutoModelForMaskGeneration`` and
``AutoProcessor.from_pretrained`` on a folder, safetensors weights, point prompts, post-processing)
in about 180 KB and well under a second on CPU. Its masks are random: plumbing only, never quality.

    python -m tests.masks.tiny_sam /tmp/tiny-sam   # from the repository root
"""

from __future__ import annotations

import sys
from pathlib import Path


def save_tiny_sam(folder: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    try:  # the torchvision-free image processor (no torchvision in this venv)
        from transformers import SamImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        from transformers import SamImageProcessor as ImageProcessor

    vision = SamVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=64,
        patch_size=8,
        output_channels=16,
        mlp_dim=64,
        global_attn_indexes=[1],
        window_size=4,
        num_pos_feats=8,
    )
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16
    )
    torch.manual_seed(seed)
    model = SamModel(
        SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    )
    processor = SamProcessor(ImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}))
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(save_tiny_sam(sys.argv[1] if len(sys.argv) > 1 else "tiny-sam"))
