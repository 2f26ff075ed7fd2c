"""What a model config's ``sampling`` option means: the decoding rule the hf backend applies.

Three modes:

- ``greedy``: argmax; samples of one prompt are identical.
- ``config``: sampling with the config's own ``temperature``, ``top_k`` and ``top_p``.
- ``checkpoint``: the checkpoint's ``generation_config.json`` as shipped, with transformers'
  defaults for what it leaves unset (``top_k`` 50 when sampling, as ``generate`` does). This is
  the CrossMath release's protocol. Every field that changes the next-token distribution is
  honoured exactly or refused: a run must not claim the checkpoint's decoding while silently
  doing something else.

``repetition_penalty`` applies in every mode (the checkpoint's own in ``checkpoint`` mode); in
``greedy`` and ``config`` modes nothing the checkpoint ships ever leaks in.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping

from crossmath.models.sampling_settings import SamplingSettings

log = logging.getLogger(__name__)

SamplingMode = Literal["greedy", "config", "checkpoint"]
SAMPLING_MODES: tuple[str, ...] = ("greedy", "config", "checkpoint")

# What transformers' ``generate`` uses for a field the checkpoint leaves unset.
TRANSFORMERS_DEFAULTS = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
                         "repetition_penalty": 1.0}

# Fields of a generation config that never change which token a row draws next: token ids
# (the stop ids are read separately), length limits (the backend's ``max_new_tokens`` rules),
# switches of speed, output format and bookkeeping, and beam-search-only settings (beams
# themselves are refused below).
_NOT_SHAPING = frozenset({
    "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id",
    "max_length", "max_new_tokens", "max_time", "use_cache", "cache_implementation",
    "cache_config", "max_cache_len", "compile_config", "disable_compile", "prefill_chunk_size",
    "low_memory", "output_attentions", "output_hidden_states", "output_scores", "output_logits",
    "return_dict_in_generate", "num_return_sequences", "transformers_version", "_from_model_config",
    "length_penalty", "early_stopping", "renormalize_logits", "remove_invalid_values",
    "num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold",
    "assistant_lookbehind", "target_lookbehind", "is_assistant",
})
# Distribution-shaping fields at the value that leaves the distribution alone.
_NEUTRAL = {
    "min_length": 0, "min_new_tokens": 0, "num_beams": 1, "num_beam_groups": 1,
    "diversity_penalty": 0.0, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
    "min_p": 0.0, "top_h": None, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0, "exponential_decay_length_penalty": None,
    "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
    "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None,
    "guidance_scale": None, "stop_strings": None, "penalty_alpha": None, "constraints": None,
    "force_words_ids": None, "watermarking_config": None, "token_healing": None,
}
_HONOURED = frozenset(TRANSFORMERS_DEFAULTS)


@dataclass(frozen=True)
class DecodingRule:
    """How each row's next token is chosen: ``sampling`` None means argmax."""

    sampling: SamplingSettings | None
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def is_sampled(self) -> bool:
        return self.sampling is not None

    def for_request(self, temperature: float | None = None, top_p: float | None = None,
                    top_k: int | None = None) -> SamplingSettings | None:
        """The draw of one request that sets its own ``temperature``, ``top_p`` or ``top_k``
        (None: this rule's; with a greedy rule, the plain sampling defaults); None is argmax
        (``temperature`` 0). ``top_k`` -1 means no cut, as in vLLM."""
        base = self.sampling or SamplingSettings()
        if temperature is None:
            temperature = base.temperature if self.sampling else 0.0
        if temperature == 0:
            return None
        return SamplingSettings(float(temperature),
                                base.top_k if top_k is None else max(0, int(top_k)),
                                base.top_p if top_p is None else float(top_p))

    def describe(self) -> dict[str, Any]:
        """Every setting of the rule, resolved (for the run's record and request identity)."""
        sampling = asdict(self.sampling) if self.sampling else None
        return {"do_sample": self.is_sampled, **(sampling or {}),
                "repetition_penalty": self.repetition_penalty}


def decoding_rule(mode: str, *, temperature: float, top_k: int, top_p: float,
                  repetition_penalty: float,
                  checkpoint_config: Mapping[str, Any] | None) -> DecodingRule:
    """The rule of one ``sampling`` mode.

    ``checkpoint_config`` is the checkpoint's generation config as a diff against transformers'
    defaults (``GenerationConfig.to_diff_dict()``); only ``checkpoint`` mode reads it, and
    only ``config`` mode reads ``temperature``, ``top_k`` and ``top_p``.
    """
    if mode == "greedy":
        return DecodingRule(None, repetition_penalty)
    if mode == "config":
        return DecodingRule(SamplingSettings(temperature, top_k, top_p), repetition_penalty)
    if mode == "checkpoint":
        return checkpoint_rule(checkpoint_config or {})
    raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {mode!r}")


def checkpoint_rule(shipped: Mapping[str, Any]) -> DecodingRule:
    """The rule a checkpoint's generation config asks for; a field we cannot honour is an error."""
    refused = {name: value for name, value in shipped.items() if _changes_the_draw(name, value)}
    if refused:
        raise ValueError(
            "sampling: checkpoint cannot reproduce the checkpoint's generation config exactly: "
            f"it sets {refused}, which this backend does not implement; use sampling: config "
            "(with temperature, top_k, top_p, repetition_penalty) instead"
        )
    settings = {name: TRANSFORMERS_DEFAULTS[name] if shipped.get(name) is None else shipped[name]
                for name in TRANSFORMERS_DEFAULTS}
    penalty = float(settings["repetition_penalty"])
    if not settings["do_sample"]:
        log.warning("sampling: checkpoint: the checkpoint decodes greedily (do_sample false); "
                    "every sample of a prompt will be identical")
        return DecodingRule(None, penalty)
    if settings["top_k"] == 1:
        log.warning("sampling: checkpoint: the checkpoint samples with top_k 1, which is greedy; "
                    "every sample of a prompt will be identical")
    return DecodingRule(SamplingSettings(float(settings["temperature"]), int(settings["top_k"] or 0),
                                         float(settings["top_p"])), penalty)


def _changes_the_draw(name: str, value: Any) -> bool:
    """Whether a field the rule does not implement would change the next-token distribution;
    a field this module does not know is assumed to."""
    if value is None or name in _NOT_SHAPING or name in _HONOURED:
        return False
    return name not in _NEUTRAL or value != _NEUTRAL[name]
