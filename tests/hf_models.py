"""Tiny VLMs and real prompts for the tests of the hf backend and its decode loop."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from crossmath.models.base import ModelRequest
from crossmath.models.config import backend_arguments
from crossmath.models.hf import HFBackend
from crossmath.models.prompts import puzzle_request
from crossmath.puzzle.records import read_official_jsonl

REPO = Path(__file__).resolve().parents[1]


def official_requests(jsonl: Path, n: int = 9) -> list[ModelRequest]:
    """``n`` real puzzles of the official sample, modalities in turn (text, image, hybrid):
    prompts of different lengths and images of different sizes."""
    made = []
    for i, record in enumerate(read_official_jsonl(jsonl)[:n]):
        modality = ("text", "image", "hybrid")[i % 3]
        made.append(puzzle_request(
            f"{record.name}-{i}", modality, record.fields["markdown_table"],
            image=None if modality == "text" else record.image_blank_path.read_bytes(),
        ))
    return made


def tiny_backend(tiny_path: Path, **options) -> HFBackend:
    """The backend with the settings of ``conf/model/tiny-random.yaml``, on ``tiny_path``,
    ``options`` overriding the config's keys."""
    config = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "tiny-random.yaml"))
    arguments = {k: v for k, v in backend_arguments(config).items() if k != "_target_"}
    return HFBackend(**{**arguments, "model": tiny_path, **options})


class NoStop:
    """A logits processor that forbids the stop tokens: random weights then decode to the cap."""

    def __init__(self, stop_ids: list[int]) -> None:
        self.stop_ids = stop_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, self.stop_ids] = float("-inf")
        return scores


def build_tiny_qwen3_vl(tiny_path: Path, folder: Path) -> Path:
    """A tiny random Qwen3-VL (the family of Qwen3.5's vision path) with the tiny model's
    tokenizer, saved as a checkpoint folder."""
    from transformers import AutoTokenizer, Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen3_vl import Qwen3VLProcessor

    from crossmath.models.processor import image_only
    from crossmath.models.tiny import CHAT_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    ids = tokenizer.convert_tokens_to_ids
    image_processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, min_pixels=4 * 32 * 32,
                                               max_pixels=64 * 32 * 32)
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [4, 2, 2], "mrope_interleaved": True},
                         eos_token_id=ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, deepstack_visual_indexes=[0], num_position_embeddings=64),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    image_only(Qwen3VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                 chat_template=CHAT_TEMPLATE).save_pretrained(folder)
    return folder
