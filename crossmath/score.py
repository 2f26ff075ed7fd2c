"""Score the release's prediction logs: ``python -m crossmath.score data=FILE.jsonl preds='P_run_*.log'``.

Prints a table per run and per difficulty, then, as its last line, the release's summary as
JSON (``micro_acc``, ``macro_acc``, ``step1_correct_rate`` … ``step4+_correct_rate``, each
``{"mean": percent, "std": percent}``), so numbers from the release's own scripts and ours
can be compared line for line. A bad file exits with status 2 and a message naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from crossmath.core.errors import ConfigError
from crossmath.metrics.release_logs import ReleaseScore, release_value, score_release_logs
from crossmath.runtime.entry import command
from crossmath.settings.score import ScoreSettings

_COLUMNS = {"macro_acc": "macro", "micro_acc": "micro", "step1_correct_rate": "step1",
            "step2_correct_rate": "step2", "step3_correct_rate": "step3",
            "step4+_correct_rate": "step4+", "answer_rate": "tagged"}


def format_release_score(score: ReleaseScore) -> str:
    """A human summary: one row per run, mean ± std overall and per difficulty (percent)."""
    keys = list(_COLUMNS)
    header = f"{'':<24}" + "".join(f"{_COLUMNS[key]:>16}" for key in keys)
    lines = [f"{len(score.runs)} run(s) of {score.n_puzzles} puzzles from {score.data_path}", header]
    for run in score.runs:
        cells = "".join(f"{100 * release_value(run.overall, key):>16.2f}" for key in keys)
        covered = run.overall.n_items
        label = run.path.name if covered == score.n_puzzles else f"{run.path.name} ({covered}/{score.n_puzzles})"
        lines.append(f"{_shorten(label, 24):<24}{cells}")
    for label, difficulty in [("mean ± std", None)] + [(d, d) for d in score.difficulties()]:
        cells = "".join(f"{format(score.stat(key, difficulty), '.2f'):>16}" for key in keys)
        lines.append(f"{_shorten(label, 24):<24}{cells}")
    lines.append("step rates pool every blank of that depth; a depth without blanks reads 0, as in the release")
    return "\n".join(lines)


def full_summary(score: ReleaseScore) -> dict:
    """The summary with run counts, answer rate, every run and every difficulty (fractions per run)."""
    def values(difficulty: str | None = None) -> dict:
        return {key: score.stat(key, difficulty).to_dict() for key in _COLUMNS}

    per_run = [{"file": str(run.path), "n_puzzles": run.overall.n_items,
                **{key: release_value(run.overall, key) for key in _COLUMNS}} for run in score.runs]
    return {
        "num_runs": len(score.runs), "num_examples": score.n_puzzles, **values(),
        "per_difficulty": {d: values(d) for d in score.difficulties()}, "per_run": per_run,
    }


def _shorten(text: str, width: int) -> str:
    return text if len(text) < width else "…" + text[-(width - 2):]


@command("crossmath.score", config_name="score", door=ScoreSettings.from_config,
         config_path="pkg://crossmath.conf.score")
def main(cfg: DictConfig) -> None:
    settings = ScoreSettings.as_given(cfg)  # its files' problems are named as scoring meets them
    try:
        score = score_release_logs(settings.data, settings.preds,
                                   allow_partial=settings.allow_partial)
    except OSError as error:  # a file named by data or preds that cannot be read
        raise ConfigError(str(error.filename or settings.data),
                          error.strerror or str(error)) from None
    print(format_release_score(score))
    if settings.save_json:
        Path(settings.save_json).write_text(json.dumps(full_summary(score), indent=2) + "\n",
                                            encoding="utf-8")
        print(f"full summary written to {settings.save_json}")
    print(json.dumps(score.summary()))


if __name__ == "__main__":
    main()
