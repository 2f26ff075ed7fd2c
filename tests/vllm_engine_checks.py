"""Checks of the vllm backend against vLLM's real engine, run by ``test_vllm_engine.py`` with
the vLLM environment's Python (vLLM pins its own torch and transformers):

    python tests/vllm_engine_checks.py CHECKPOINT WORKDIR   # prints one JSON line

On one engine (one start: the slow part on a CPU), serving a LoRA adapter built here with
non-zero B weights (``crossmath.train``'s format: PEFT's ``save_pretrained``):

- greedy answers through the engine with the adapter, beside transformers' greedy answers of
  the same chat-templated prompts with the adapter merged and without it;
- sampled answers (the backend's rule switched to ``config``; sampling is per request): three
  samples of one prompt, then the same requests again in another batch.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

PROMPTS = ("| 3 | + | ? | = | 7 |", "| ? | × | 2 | = | 8 |", "| 9 | - | 4 | = | ? |")
NEW_TOKENS = 12
CPU_ENGINE = {"enforce_eager": True, "kv_cache_memory_bytes": 64 * 2**20,
              "enable_chunked_prefill": False, "max_num_batched_tokens": 2048}


def build_adapter(checkpoint: Path, folder: Path) -> Path:
    """A rank-8 LoRA on every projection of the language model, B drawn at random (PEFT starts
    B at zero, which would leave the model unchanged)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))
    generator = torch.Generator().manual_seed(1)
    for name, weight in peft.named_parameters():
        if "lora_B" in name:
            weight.data = torch.randn(weight.shape, generator=generator) * 0.5
    peft.save_pretrained(folder)
    return folder


def transformers_greedy(checkpoint: Path, texts: list[str], adapter: Path | None) -> list[str]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    answers = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return answers


def main(checkpoint: Path, work: Path) -> dict:
    from crossmath.models.base import ModelRequest, Prompt
    from crossmath.models.hf import chat_prompt_text
    from crossmath.models.sampling_modes import decoding_rule
    from crossmath.models.vllm_backend import VLLMBackend

    adapter = build_adapter(checkpoint, work / "adapter")
    backend = VLLMBackend(checkpoint, dtype="float32", max_num_seqs=8, max_model_len=2048,
                          gpu_memory_utilization=0.05, max_new_tokens=NEW_TOKENS,
                          sampling="greedy", adapter=adapter, seed=0, engine_args=CPU_ENGINE)
    try:
        requests = [ModelRequest(f"greedy-{i}", Prompt((text,))) for i, text in enumerate(PROMPTS)]
        texts = [chat_prompt_text(backend.renderer, r.prompt, None) for r in requests]
        served = backend.generate(requests)
        backend.rule = decoding_rule("config", temperature=1.0, top_k=0, top_p=0.95,
                                     repetition_penalty=1.0, checkpoint_config=None)
        samples = [ModelRequest(f"sampled/{s}", Prompt((PROMPTS[0],)), sample=s) for s in range(3)]
        together = backend.generate(samples)
        others = [replace(r, request_id=f"other-{i}") for i, r in enumerate(requests)]
        apart = backend.generate([samples[2], *others, samples[0]])
    finally:
        backend.close()
    return {
        "served_with_adapter": [r.output for r in served],
        "errors": [r.error for r in served + together + apart if r.error],
        "finish_reasons": [r.finish_reason for r in served],
        "prompt_tokens": [r.n_prompt_tokens for r in served],
        "transformers_with_adapter": transformers_greedy(checkpoint, texts, adapter),
        "transformers_base": transformers_greedy(checkpoint, texts, None),
        "transformers_prompt_tokens": [len(backend.renderer(t, add_special_tokens=False)
                                           ["input_ids"]) for t in texts],
        "samples": [r.output for r in together],
        "samples_again": {r.request_id: r.output for r in apart
                          if r.request_id.startswith("sampled/")},
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
