"""Model shapes the GPU benchmarks build with random weights: Qwen2.5-VL-3B and a tiny one.

Shared by ``infer_gpu.py`` and ``train_gpu.py`` so both measure the same model.
"""

from typing import Any

from transformers import Qwen2_5_VLConfig

# Qwen2.5-VL-3B-Instruct's published config (text and vision tower); vocabulary 151,936.
QWEN25_VL_3B = {
    "text": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                 num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                 max_position_embeddings=128000, rms_norm_eps=1e-6,
                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                  "mrope_section": [16, 24, 24]}),
    "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                   out_hidden_size=2048, patch_size=14, spatial_merge_size=2,
                   temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
                   tokens_per_second=2),
    "tie_word_embeddings": True,
}
TINY = {
    "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=None, max_position_embeddings=4096,  # vocab None: the tokenizer's
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                  "mrope_section": [2, 3, 3]}),
    "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                   patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                   fullatt_block_indexes=[1]),
    "tie_word_embeddings": False,
}

# Qwen2.5-VL-3B's structure (depths, head counts, windows, vocabulary) at a fraction of its widths:
# the same operator calls per step as the real shape, at a cost a CPU can profile.
QWEN25_VL_3B_NARROW = {
    "text": {**QWEN25_VL_3B["text"], "hidden_size": 256, "intermediate_size": 512,
             "rope_parameters": {**QWEN25_VL_3B["text"]["rope_parameters"], "mrope_section": [2, 3, 3]}},
    "vision": {**QWEN25_VL_3B["vision"], "hidden_size": 128, "intermediate_size": 256,
               "out_hidden_size": 256},
    "tie_word_embeddings": True,
}


def qwen25_vl_config(dims: dict, tokenizer: Any) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config of the given shape whose special token ids are ``tokenizer``'s."""
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config={**dims["text"], "vocab_size": dims["text"]["vocab_size"] or len(tokenizer),
                     "eos_token_id": ids("<|im_end|>"), "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.pad_token_id},
        vision_config=dims["vision"],
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=dims["tie_word_embeddings"],
    )
