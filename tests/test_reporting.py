"""Markdown report and PNG plots from an evaluation, for one run and for several."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmath.metrics import Evaluation, evaluate_predictions
from crossmath.summary.views import (
    compare_runs,
    console_summary,
    markdown_report,
    plot_accuracy,
    write_report,
)

STYLES = ("original", "noborder", "beige", "altstyle")


def _evaluation(model: str, accuracy: dict[str, float], seed: int, modalities=("text", "image", "hybrid")) -> Evaluation:
    rng = random.Random(seed)
    puzzles, preds = [], []
    for i in range(30):
        n = rng.randint(3, 9)
        gold = [str(rng.randint(0, 99)) for _ in range(n)]
        puzzles.append({"puzzle_id": f"p{i}", "answer": gold, "steps": [rng.randint(1, 5) for _ in range(n)],
                        "difficulty": ("easy", "medium", "hard")[i % 3]})
        for modality in modalities:
            for style in (["original"] if modality == "text" else STYLES):
                for sample in range(3):
                    pred = [t if rng.random() < accuracy[modality] else "?" for t in gold]
                    preds.append({"puzzle_id": f"p{i}", "model": model, "modality": modality,
                                  "style": style, "sample": sample, "pred": pred})
    return evaluate_predictions(preds, puzzles, seed=0, n_resamples=500)


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    return _evaluation("tiny", {"text": 0.95, "image": 0.4, "hybrid": 0.8}, seed=1)


def _row(markdown: str, *leading: str) -> list[str]:
    prefix = "| " + " | ".join(leading) + " |"
    (line,) = [line for line in markdown.splitlines() if line.startswith(prefix)]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_markdown_report_tables_hold_the_numbers(evaluation: Evaluation) -> None:
    text = markdown_report(evaluation)
    assert text.startswith("# crossmath report: tiny")
    # 30 puzzles, not the 30 x 4 (puzzle, style) pairs the pooled image group scores.
    assert "\n30 puzzles, 3 sample(s) per request; answers read by the release's rule" in text
    group = evaluation.group("tiny", "image", "beige")
    cells = _row(text, "image", "beige", f"{group.macro:.1f}")
    assert cells[2:4] == [f"{group.macro:.1f}", f"{group.micro:.1f}"]
    assert cells[7] == f"{group.step('step4+'):.1f}"
    assert _row(text, "hybrid", "all", "hard")[3] == f"{evaluation.group('tiny', 'hybrid', 'all', 'hard').macro:.1f}"
    cells = _row(text, "T-I", "noborder")
    for cell, metric in zip(cells[2:5], ("macro_acc", "micro_acc", "lenient_macro_acc")):
        e = evaluation.gap("tiny", "T-I", metric, "noborder").estimate
        assert cell.startswith(f"{e.gap:+.1f} [{e.ci_low:+.1f}, {e.ci_high:+.1f}], p=")
    assert cells[5] == "30"
    assert "## Modality gaps" in text and "## Accuracy by difficulty" in text


def test_answer_format_table_sits_beside_accuracy(evaluation: Evaluation) -> None:
    text = markdown_report(evaluation)
    group = evaluation.group("tiny", "image", "beige")
    diagnostics = group.diagnostics()
    format_table = text[text.index("## Answer format"):text.index("## Accuracy by difficulty")]
    cells = _row(format_table, "image", "beige")
    names = ("answer_tag_rate", "wrong_count_rate", "non_integer_rate", "error_rate",
             "lenient_macro_acc", "lenient_micro_acc")
    assert cells[2:] == [f"{diagnostics[name]:.1f}" for name in names]
    assert diagnostics["non_integer_rate"].mean > 50  # the "?" guesses of the image modality
    assert f"| image | beige | {group.macro:.1f} |" in text  # the accuracy row is still there
    summary = console_summary(evaluation)
    assert f"| image | beige | {cells[2]} | {cells[3]} |" in summary
    assert "gap T-I lenient macro: " in summary


def test_a_report_of_an_evaluation_saved_without_diagnostics(evaluation: Evaluation) -> None:
    legacy = dataclasses.replace(
        evaluation, groups=tuple(dataclasses.replace(g, formats=()) for g in evaluation.groups),
        answer_rule="after_thinking")
    text = markdown_report(legacy)
    assert "## Answer format" not in text and "answer format" not in console_summary(legacy)
    assert "once the thinking is removed (not the release's rule)" in text


def _assert_real_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # something was drawn, not a blank canvas


def test_write_report_writes_markdown_and_three_plots(evaluation: Evaluation, tmp_path: Path) -> None:
    files = write_report(evaluation, tmp_path / "report")
    assert files.markdown.read_text(encoding="utf-8") == markdown_report(evaluation)
    assert [p.name for p in files.paths] == ["report.md", "accuracy.png", "steps.png", "gaps.png"]
    for path in files.paths[1:]:
        _assert_real_png(path)


def test_text_only_run_has_no_gap_plot(tmp_path: Path) -> None:
    text_only = _evaluation("t", {"text": 0.9}, seed=2, modalities=("text",))
    files = write_report(text_only, tmp_path)
    assert files.gap_plot is None and not (tmp_path / "gaps.png").exists()
    assert "Modality gaps" not in files.markdown.read_text(encoding="utf-8")


def test_plot_with_several_models_needs_a_model(evaluation: Evaluation, tmp_path: Path) -> None:
    both = Evaluation(evaluation.groups + _evaluation("other", {"text": 0.5, "image": 0.5, "hybrid": 0.5}, 3).groups, ())
    with pytest.raises(ValueError, match="name a model"):
        plot_accuracy(both, tmp_path / "a.png")
    _assert_real_png(plot_accuracy(both, tmp_path / "a.png", model="other"))


def test_compare_runs_tabulates_models_by_modality_with_gaps(evaluation: Evaluation, tmp_path: Path) -> None:
    weaker = _evaluation("small", {"text": 0.7, "image": 0.1, "hybrid": 0.5}, seed=4)
    result = compare_runs({"big-run": evaluation, "small-run": weaker}, tmp_path, metric="micro_acc")
    assert result.markdown_path.read_text(encoding="utf-8") == result.markdown
    for label, ev in (("big-run", evaluation), ("small-run", weaker)):
        model = ev.models()[0]
        cells = _row(result.markdown, label)
        assert cells[1:4] == [f"{ev.group(model, m).micro:.1f}" for m in ("text", "image", "hybrid")]
        assert cells[4].startswith(f"{ev.gap(model, 'T-TI', 'micro_acc').estimate.gap:+.1f} (")
        assert cells[5].startswith(f"{ev.gap(model, 'T-I', 'micro_acc').estimate.gap:+.1f} (")
    _assert_real_png(result.plot_path)
    assert "Answers read by the release's rule" in result.markdown
    with pytest.raises(ValueError, match="one of macro_acc, micro_acc, lenient_macro_acc"):
        compare_runs({"a": evaluation}, tmp_path, metric="answer_rate")


def test_compare_runs_says_when_runs_read_answers_differently(evaluation: Evaluation, tmp_path: Path) -> None:
    other = dataclasses.replace(evaluation, answer_rule="after_thinking")
    result = compare_runs({"new": evaluation, "old": other}, tmp_path, metric="lenient_macro_acc")
    assert "do not compare** (release: new; after_thinking: old)" in result.markdown
    cells = _row(result.markdown, "new")
    assert cells[2] == f"{evaluation.group('tiny', 'image').metric('lenient_macro_acc'):.1f}"
