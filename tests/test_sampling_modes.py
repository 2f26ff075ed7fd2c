"""The ``sampling`` modes: what each one decodes with, and what ``checkpoint`` refuses."""

from __future__ import annotations

import logging

import pytest

from crossmath.models.sampling_modes import DecodingRule, checkpoint_rule, decoding_rule
from crossmath.models.sampling_settings import SamplingSettings

CONFIG = dict(temperature=0.5, top_k=7, top_p=0.9, repetition_penalty=1.1)


def test_greedy_and_config_modes_never_read_the_checkpoint():
    shipped = {"do_sample": True, "temperature": 0.01, "top_k": 1, "repetition_penalty": 50.0}
    assert decoding_rule("greedy", checkpoint_config=shipped, **CONFIG) == DecodingRule(None, 1.1)
    assert decoding_rule("config", checkpoint_config=shipped, **CONFIG) == DecodingRule(
        SamplingSettings(0.5, 7, 0.9), 1.1)


def test_checkpoint_mode_fills_what_the_checkpoint_leaves_unset_as_transformers_does():
    rule = decoding_rule("checkpoint", checkpoint_config={"do_sample": True, "top_p": 0.95},
                         **CONFIG)
    assert rule == DecodingRule(SamplingSettings(temperature=1.0, top_k=50, top_p=0.95), 1.0)
    assert rule.describe() == {"do_sample": True, "temperature": 1.0, "top_k": 50, "top_p": 0.95,
                               "repetition_penalty": 1.0}


def test_fields_that_do_not_change_the_draw_are_ignored():
    shipped = {"do_sample": True, "temperature": 0.7, "eos_token_id": [1, 2], "pad_token_id": 0,
               "max_length": 32768, "transformers_version": "4.50.0", "num_beams": 1,
               "min_p": None, "renormalize_logits": True}
    assert checkpoint_rule(shipped) == DecodingRule(SamplingSettings(0.7, 50, 1.0), 1.0)


@pytest.mark.parametrize("field, value", [("no_repeat_ngram_size", 3), ("min_p", 0.05),
                                          ("num_beams", 4), ("stop_strings", ["</answer>"]),
                                          ("some_future_field", 1)])
def test_fields_that_change_the_draw_and_are_not_implemented_are_refused(field, value):
    with pytest.raises(ValueError, match=f"{field}.*sampling: config"):
        checkpoint_rule({"do_sample": True, field: value})


def test_a_greedy_checkpoint_decodes_greedily_with_its_penalty_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        rule = checkpoint_rule({"do_sample": False, "repetition_penalty": 1.05, "top_k": 20})
    assert rule == DecodingRule(None, 1.05) and not rule.is_sampled
    assert "identical" in caplog.text


def test_top_k_one_warns_that_samples_are_identical(caplog):
    """Qwen2.5-VL's shipped generation config."""
    with caplog.at_level(logging.WARNING):
        rule = checkpoint_rule({"do_sample": True, "top_k": 1, "top_p": 0.001,
                                "temperature": 0.1, "repetition_penalty": 1.05})
    assert rule.sampling == SamplingSettings(0.1, 1, 0.001) and rule.repetition_penalty == 1.05
    assert "top_k 1" in caplog.text


def test_bad_values_are_clear_errors():
    with pytest.raises(ValueError, match="sampling must be one of"):
        decoding_rule("nucleus", checkpoint_config=None, **CONFIG)
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        decoding_rule("greedy", checkpoint_config=None, **{**CONFIG, "repetition_penalty": 0.0})
    with pytest.raises(ValueError, match="temperature must be > 0"):
        decoding_rule("config", checkpoint_config=None, **{**CONFIG, "temperature": 0.0})
