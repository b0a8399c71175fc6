"""The exported SFT rows go through TRL's own vision collator into a (tiny, random) LLaVA model's loss.

Everything is built offline: a word-level tokenizer with LLaVA's ``<image>`` token, the PIL CLIP image
processor, ``LlavaProcessor`` with a minimal chat template, and a LLaVA model from small configs.
"""

from __future__ import annotations

import torch

from tests import realparts

trl_sft = realparts.optional("trl.trainer.sft_trainer", "dev")

SPECIALS = ["<pad>", "<image>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _processor():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlavaProcessor, PreTrainedTokenizerFast
    from transformers.models.clip import CLIPImageProcessorPil

    words = ["[UNK]", *SPECIALS, "Candidate", "A", "B", "C", "D", "acceptable", "best"]
    tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="[UNK]",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<image>"},
        additional_special_tokens=SPECIALS[1:],
    )
    images = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    return LlavaProcessor(
        image_processor=images,
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        chat_template=TEMPLATE,
        num_additional_image_tokens=1,
    )


def test_sft_trl_rows_collate_and_train_a_tiny_llava(exported):
    import datasets
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    _, out, _ = exported
    ds = datasets.load_dataset("parquet", data_files=str(out / "sft_trl" / "train" / "*.parquet"))["train"]
    proc = _processor()
    batch = trl_sft.DataCollatorForVisionLanguageModeling(processor=proc)([ds[0], ds[1]])
    image_token = proc.tokenizer.convert_tokens_to_ids("<image>")
    assert batch["pixel_values"].shape[0] == 10  # 2 rows x (source + A-D)
    assert (batch["input_ids"] == image_token).sum(dim=1).tolist() == [20, 20]  # 5 images x 4 patches each

    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
        text_config=LlamaConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=len(proc.tokenizer),
        ),
        image_token_id=image_token,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config)
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()  # a training step's gradient flows from the exported text and pixels


def test_rl_prompt_renders_for_generation(exported):
    """GRPOTrainer fills the prompt's image parts and renders it with the processor's chat template."""
    import datasets
    from trl.data_utils import prepare_multimodal_messages

    _, out, _ = exported
    row = datasets.load_dataset("parquet", data_files=str(out / "rl" / "train" / "*.parquet"))["train"][0]
    proc = _processor()
    prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
    inputs = proc.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["pixel_values"].shape[0] == 5
    assert (inputs["input_ids"] == proc.tokenizer.convert_tokens_to_ids("<image>")).sum().item() == 20
