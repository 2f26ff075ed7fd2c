"""recipe=paper: the study's numbers are what the composed configs say, row by row of the table
in docs/training.md ("The paper's recipe"), and every row names its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
ROW = re.compile(r"^\| (SFT|GRPO|both) \| (.+?) \| (.+?) \| `(.+?)` \| (.+?) \|$")


def _recipe_rows() -> list[tuple[str, str, str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The paper's recipe"):]
    section = section[:section.index("\n## ", 3)]
    return [m.groups() for line in section.splitlines() if (m := ROW.match(line))]


def _value(text: str):
    """A table cell as the config holds it: a number (``2e-5`` too), null, or a word."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return yaml.safe_load(text)


def _compose(*overrides: str):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_the_recipe_table_lists_the_study_numbers_with_sources() -> None:
    rows = _recipe_rows()
    settings = {(stage, key) for stage, _, _, key, _ in rows}
    assert {("SFT", "train.lr"), ("SFT", "train.epochs"), ("SFT", "train.lora.rank"),
            ("GRPO", "grpo.rollouts"), ("GRPO", "train.lr"), ("GRPO", "grpo.steps"),
            ("GRPO", "grpo.max_completion_tokens"), ("GRPO", "train.lora.rank"),
            ("GRPO", "grpo.reward.step_weights"), ("both", "dataset.sources")} <= settings
    assert all(re.search(r"\[[IPSH]\]|ours", source) for *_, source in rows)


@pytest.mark.parametrize("model", ["tiny-random", "qwen3.5-9b"])
def test_recipe_paper_composes_to_the_table_over_any_preset(model) -> None:
    methods = {"SFT": "sft", "GRPO": "grpo"}
    composed = {method: OmegaConf.to_container(_compose(f"model={model}", "recipe=paper", f"method={method}"))
                for method in methods.values()}
    for stage, _, value, key, _ in _recipe_rows():
        for method in ([methods[stage]] if stage in methods else list(methods.values())):
            got = composed[method]
            for part in key.split("."):
                got = got[part]
            expected = _value(value)
            assert (expected in got if isinstance(got, list) else got == expected), (stage, key, got)


def test_the_defaults_are_the_study_numbers_without_a_recipe() -> None:
    """The shipped defaults equal the recipe's numbers (a model without presets)."""
    sft, grpo = _compose("model=qwen3.5-9b"), _compose("model=qwen3.5-9b", "method=grpo")
    assert (sft.train.lr, sft.train.epochs, sft.train.lora.rank) == (2e-5, 2, 16)
    assert (grpo.train.lr, grpo.grpo.rollouts, grpo.grpo.steps, grpo.grpo.max_completion_tokens) == (
        1e-6, 4, 200, 6000)
    assert sft.train.lora.target_modules == "auto" and sft.train.gradient_checkpointing is True
    assert list(_compose("model=qwen3.5-9b", "recipe=paper").dataset.sources) == ["crossmath-train"]
