"""A tiny Qwen2.5-VL with random weights, built locally in seconds: the test and demo model.

It is a real checkpoint folder (config, safetensors, tokenizer, image processor, chat template)
written with ``save_pretrained``, so the hf backend loads it exactly as it loads a downloaded
model. Nothing is downloaded: the tokenizer is a byte-level BPE trained here with ``tokenizers``
on a small generated corpus (the prompt set's own wording, markdown grids, answers), and the
weights come from a fixed seed. Its answers are noise; what it exercises is the code path:
chat template, image token expansion, multimodal rope with left padding, batched generation.

The processor is saved through ``crossmath.models.processor.image_only`` (no video processor;
see that module for why), under the usual ``Qwen2_5_VLProcessor`` name.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template

# Bump when anything below changes what gets built: the cache folder is keyed by it.
TINY_VERSION = "1"
DEFAULT_CACHE = Path("~/.cache/crossmath").expanduser()

# Qwen2-VL family special tokens, in the order the family numbers them after the BPE vocab.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
VOCAB_SIZE = 1024  # BPE merges fill what the 256 bytes and the special tokens leave
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 64 * 28 * 28  # at most 64 image tokens: keeps CPU generation fast

# Qwen-style turns; ``enable_thinking=false`` pre-fills an empty thinking block as Qwen3 does.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and not enable_thinking -%}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif -%}{%- endif -%}"
)


def tiny_model_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or DEFAULT_CACHE).expanduser() / f"tiny-random-{TINY_VERSION}"


def build_tiny_random(cache_dir: str | Path | None = None) -> Path:
    """The tiny model's folder, built on first use and reused while complete.

    The folder is written under a temporary name and renamed at the end, so an interrupted
    build never leaves a half checkpoint that later runs would trust.
    """
    return _build_once(tiny_model_dir(cache_dir), _write_checkpoint)


def _build_once(target: Path, write: Callable[[Path], None]) -> Path:
    """``target``, written by ``write`` unless a complete checkpoint is there already."""
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_checkpoint(folder: Path) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_5_vl import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from crossmath.models.processor import image_only

    tokenizer = _tokenizer()
    token_id = tokenizer.convert_tokens_to_ids
    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    processor = image_only(Qwen2_5_VLProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,  # head_dim 16
            "num_key_value_heads": 2,  # grouped-query attention, as in the real models
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [2, 3, 3]},  # sums to head_dim / 2
            "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id("<|im_end|>"),
            "pad_token_id": token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,  # must equal the text hidden size
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    _save_random(Qwen2_5_VLForConditionalGeneration, config, config.text_config, folder)
    processor.save_pretrained(folder)
    (folder / "crossmath_tiny.json").write_text(
        json.dumps({"version": TINY_VERSION, "seed": 0}, indent=2) + "\n", encoding="utf-8"
    )


def _tokenizer():
    """The tiny models' tokenizer: the locally trained BPE, Qwen's special tokens, left padding."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>",
                              "vision_eos_token": "<|vision_end|>"},
    )


def _write_text_checkpoint(folder: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = _tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    token_id = tokenizer.convert_tokens_to_ids
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,  # vLLM's CPU attention kernels refuse smaller heads
        max_position_embeddings=4096,
        bos_token_id=token_id("<|endoftext|>"),
        eos_token_id=token_id("<|im_end|>"),
        pad_token_id=token_id("<|endoftext|>"),
        tie_word_embeddings=False,
    )
    _save_random(Qwen2ForCausalLM, config, config, folder)
    tokenizer.save_pretrained(folder)
    (folder / "crossmath_tiny.json").write_text(
        json.dumps({"version": TINY_VERSION, "seed": 0, "kind": "text"}, indent=2) + "\n",
        encoding="utf-8")


def _save_random(model_class: type, config: Any, text_config: Any, folder: Path) -> None:
    """A model of ``config`` with weights from a fixed seed, saved with its end and pad tokens."""
    import torch

    torch.manual_seed(0)
    model = model_class(config).eval()
    model.generation_config.eos_token_id = text_config.eos_token_id
    model.generation_config.pad_token_id = text_config.pad_token_id
    model.save_pretrained(folder)


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    return bpe


def _corpus(n_grids: int = 200, seed: int = 0) -> list[str]:
    """Text like what the model will see and say: the prompt wording, grids, answers."""
    template = load_prompt_template(DEFAULT_PROMPT)
    rng = random.Random(seed)
    texts = [template.rules, template.text, template.image, template.hybrid]
    cells = ["+", "-", "×", "÷", "=", "?", " "]
    for _ in range(n_grids):
        width = rng.randint(5, 11)
        rows = []
        for _ in range(rng.randint(5, 11)):
            row = [str(rng.randint(0, 250)) if rng.random() < 0.4 else rng.choice(cells)
                   for _ in range(width)]
            rows.append("| " + " | ".join(row) + " |")
        texts.append("\n".join(rows))
        answer = " ".join(str(rng.randint(0, 250)) for _ in range(rng.randint(3, 15)))
        thought = f"so the blank is {rng.randint(0, 99)}"
        texts.append(f"<think>\n{thought}\n</think>\n<answer>{answer}</answer>")
    return texts


def tiny_text_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or DEFAULT_CACHE).expanduser() / f"tiny-text-{TINY_VERSION}"


def build_tiny_text(cache_dir: str | Path | None = None) -> Path:
    """A tiny Qwen2 text model with random weights, built on first use: the engine test model.

    Same tokenizer and chat template as the tiny VLM, so prompts and thinking switch are the
    same; a text-only architecture because vLLM's CPU build cannot load the Qwen-VL models
    without torchvision, and head size 64 because its CPU attention refuses 16 (docs/vllm.md).
    """
    return _build_once(tiny_text_dir(cache_dir), _write_text_checkpoint)
