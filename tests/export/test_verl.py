"""The ``verl`` export loads in verl's own ``RLHFDataset``; its reward runs through ``load_reward_manager``.

verl (0.9.1, from PyPI) runs in its own venv (``.cache/venvs/verl-0.9.1``: the CPU torch wheel, verl
without its distributed extras, and the few packages its dataset and reward modules import); the
reward plug-in is found the way a user configures it, ``custom_reward_function.path`` = the file, with
the repository on ``PYTHONPATH`` instead of a full aescot install.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aescot.integrations.verl_reward import compute_score
from aescot.vocab import IMAGE_ORDER
from tests.venvs import cached_venv

REPO = Path(__file__).resolve().parents[2]
VERL = "0.9.1"
# verl's own pins where it has them (transformers <5.11); what its dataset/reward modules import
VERL_ENV = [
    ["torch==2.13.0"],
    ["--no-deps", f"verl=={VERL}"],
    ["transformers>=5.5.3,<5.11,!=5.6.0", "datasets", "omegaconf", "hydra-core", "pillow", "numpy",
     "pandas", "tensordict>=0.8,<=0.10,!=0.9.0", "codetiming", "dill", "packaging", "ray", "aiohttp"],
]  # fmt: skip

SCRIPT = r"""
import json, sys, tempfile
import numpy as np
import torch
from omegaconf import OmegaConf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlavaProcessor, PreTrainedTokenizerFast
try:
    from transformers import CLIPImageProcessorPil as ImageProcessor
except ImportError:
    from transformers import CLIPImageProcessor as ImageProcessor
from verl import DataProto
from verl.trainer.ppo.reward import load_reward_manager
from verl.utils.dataset.rl_dataset import RLHFDataset

files, reward_path = json.loads(sys.argv[1]), sys.argv[2]
# a byte-level tokenizer with no merges: tiny, and it decodes any response text exactly
alphabet = pre_tokenizers.ByteLevel.alphabet()
vocab = {c: i for i, c in enumerate(["<pad>", "<image>", *sorted(alphabet)])}
tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tk.decoder = decoders.ByteLevel()
tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", additional_special_tokens=["<image>"])
processor = LlavaProcessor(image_processor=ImageProcessor(size={"shortest_edge": 28},
                           crop_size={"height": 28, "width": 28}), tokenizer=tok, patch_size=14,
                           vision_feature_select_strategy="default", chat_template="{{ messages }}")
config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": tempfile.mkdtemp()})
ds = RLHFDataset(data_files=files, tokenizer=tok, config=config, processor=processor)
row = ds[0]
parts = row["raw_prompt"][0]["content"]
kinds = [p["type"] for p in parts]
sizes = [list(p["image"].size) for p in parts if p["type"] == "image"]

cfg = OmegaConf.create({"reward": {
    "custom_reward_function": {"path": reward_path, "name": "compute_score", "reward_kwargs": {}},
    "reward_manager": {"source": "register", "name": "naive"},
}})
manager = load_reward_manager(cfg, tok)
gt = row["reward_model"]["ground_truth"]

def score(text):
    ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
    data = DataProto.from_dict(
        tensors={"responses": ids, "attention_mask": torch.ones_like(ids)},
        non_tensors={"data_source": np.array([row["data_source"]], dtype=object),
                     "reward_model": np.array([row["reward_model"]], dtype=object),
                     "extra_info": np.array([dict(row["extra_info"])], dtype=object)},
    )
    out = manager.loop.run_until_complete(manager.run_single(data))  # the loop verl gave the manager
    return {"score": out["reward_score"], **out["reward_extra_info"]}

right = score("<think>walk the four dimensions</think><answer>" + gt + "</answer>")
wrong = score("no answer here")
print(json.dumps({"rows": len(ds), "kinds": kinds, "sizes": sizes, "style": row["reward_model"]["style"],
                  "ability": row["ability"], "extra_info": dict(row["extra_info"]), "right": right,
                  "wrong": wrong, "manager": type(manager).__name__}, default=str))
"""


def _verl_python() -> Path:
    return cached_venv(f"verl-{VERL}", VERL_ENV)


@pytest.mark.slow
def test_verl_reads_the_export_and_loads_the_reward(exported):
    _, out, summary = exported
    files = sorted(str(p) for p in (out / "verl" / "train").glob("*.parquet"))
    assert files, "no verl train files"
    reward = REPO / "aescot" / "integrations" / "verl_reward.py"
    done = subprocess.run(
        [str(_verl_python()), "-c", SCRIPT, json.dumps(files), str(reward)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        },
    )
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["rows"] == summary.rows["verl"]["train"]
    # one image part per <image>, in the order source, A, B, C, D, each decoded
    assert got["kinds"].count("image") == len(IMAGE_ORDER) and all(w > 0 for w, _ in got["sizes"])
    assert (got["style"], got["ability"]) == ("rule", "image_screening")
    assert got["extra_info"]["split"] == "train" and got["extra_info"]["index"] == 0
    assert got["manager"] == "NaiveRewardManager"
    assert got["right"]["score"] == pytest.approx(1.0) and got["right"]["format"] == 1.0
    assert got["wrong"]["score"] == 0.0 and got["wrong"]["parsed"] == 0.0


def test_reward_contract_without_verl():
    truth = {
        "acceptable": ["A", "C"],
        "best": "A",
        "dimensions": {"B": ["lighting_shadow"], "D": ["placement_layout"]},
    }
    gt = json.dumps(truth)
    right = compute_score("aescot/image_screening", f"<think>ok</think><answer>{gt}</answer>", gt)
    assert right["score"] == pytest.approx(1.0) and right["format"] == 1.0
    half = json.dumps({**truth, "acceptable": ["A"]})
    partial = compute_score("aescot/image_screening", f"<think>ok</think><answer>{half}</answer>", gt)
    assert partial["acceptable"] == 0.5 and partial["score"] == pytest.approx(0.75)
    empty_think = compute_score("x", f"<think> \n </think><answer>{gt}</answer>", gt, format_weight=0.5)
    assert empty_think["format"] == 0.0 and empty_think["score"] == pytest.approx(0.5)
