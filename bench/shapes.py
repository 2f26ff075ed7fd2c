"""Model shapes the GPU benchmarks build with random weights: Qwen2.5-VL-3B and a tiny one.

Shared by ``infer_gpu.py`` and ``train_gpu.py`` so both measure the same model.
"""

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
