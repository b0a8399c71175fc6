"""Demo stand-ins: what lets ``bash scripts/demo.sh`` run the whole job offline on one laptop.

* :mod:`aescot.demo.annotators` — simulated annotators: real Label Studio users (signed up through
  the invite link, each with its own token) who take tasks from the label stream and submit
  annotations over the HTTP API as a browser does, answering from the synthetic generator's
  planted answers with a per-annotator error rate;
* :mod:`aescot.demo.teacher` — the *demo stand-in teacher*: a real Chat Completions server on
  loopback that reads the planted defects from the store (not the pixels), with noise, so some
  items pass the consistency filter and some fail;

None of this is used by the pipeline itself: each stand-in is replaced by the real thing with one
setting (see :data:`SWITCHES`).
"""

from __future__ import annotations

SWITCHES: dict[str, str] = {
    "generator": "a diffusion model: HF_HUB_OFFLINE=0 AESCOT_MODEL=stable-diffusion-v1-5/stable-diffusion-inpainting "
    "bash scripts/demo.sh --root demo-real (any diffusers inpainting model id or local folder)",
    "teacher": "a real VLM: AESCOT_TEACHER_BASE_URL=http://localhost:8000/v1 AESCOT_TEACHER_MODEL="
    "Qwen/Qwen2.5-VL-7B-Instruct bash scripts/demo.sh --root demo-real (any OpenAI-compatible endpoint, e.g. "
    "`vllm serve Qwen/Qwen2.5-VL-7B-Instruct`)",
    "annotators": "real people: bash scripts/demo.sh --annotators 0, then share the Label Studio "
    "invite link (Organization > Add People) and run the demo again after they label",
}
"""How to swap each stand-in for the real thing, one line each (printed by the demo)."""
