"""What an evaluation asks, apart from how it is asked: the seam of the main job.

The dataflow (``dataflow.run_pipeline``) answers units of requests and knows nothing of what
they are about. What to ask and how to score the answers is a ``Questions``:

- ``puzzle_questions.PuzzleQuestions``: CrossMath puzzles × modalities × styles × samples, in
  two rounds when the perception probe runs (its second round is planned from the first
  round's transcriptions);
- ``task_questions.TaskQuestions``: the items of a transfer task (MathVerse, MMMU), in three
  rounds when MathVerse's official judge runs (the judge model extracts, then scores).

Both hand the evaluation the settings its identity hashes, the units of each round, the
backend of a round that another model answers (a judge), and the scores of the predictions
(``Scores``: what ``metrics.json``, MLflow, the report and the console show).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from crossmath.pipeline.prediction_table import PredictionTable
from crossmath.tracking.dataset_ref import DatasetRef


class Scores(Protocol):
    """The scores of one evaluation, in every form it is shown."""

    def to_dict(self) -> dict[str, Any]:
        """Everything, for ``metrics.json``."""
        ...

    def flat_metrics(self, model: str) -> dict[str, float]:
        """Metric name -> value, for MLflow."""
        ...

    def console(self, model: str) -> str:
        """The lines printed at the end of a run."""
        ...

    def write_report(self, folder: Path, model: str) -> list[Path]:
        """``report.md`` and plots in ``folder``; returns the files written."""
        ...

    def headline(self, model: str) -> dict[str, float]:
        """The few numbers a reader wants first, under short names (``summary.headline``)."""
        ...


class Questions(Protocol):
    """What one evaluation asks, and how its answers are scored."""

    data_name: str  # names the results folder level and the MLflow run (``dataset`` tag)
    prompt_id: str  # recorded with every prediction
    n_rounds: int  # round r > 0 is planned from the predictions of the rounds before it

    def settings(self) -> dict[str, Any]:
        """What, besides the backend, the evaluation's identity hashes."""
        ...

    def tags(self) -> dict[str, str]:
        """MLflow tags that say what was asked."""
        ...

    def round_backend(self, round_index: int) -> tuple[dict[str, Any], str] | None:
        """The model config and prompt id of the model that answers round ``round_index``
        when it is not the evaluated one (a judge); None for the evaluated model."""
        ...

    def units(self, round_index: int, answered: pa.Table) -> list[dict]:
        """The units of round ``round_index``; ``answered`` holds the earlier rounds'
        predictions (latest attempts)."""
        ...

    def score(self, predictions: pa.Table) -> Scores:
        """Score every round's predictions."""
        ...

    def write_reference(self, folder: Path) -> Path:
        """What the answers were scored against (puzzles, items), as a parquet file."""
        ...

    def label_parts(self) -> list[str]:
        """What was asked, in a few characters a part, for the MLflow run's name."""
        ...

    def describe(self) -> str:
        """What was asked, as a phrase for the MLflow run's description."""
        ...

    def dataset(self) -> DatasetRef:
        """The data asked about: name, fingerprint, source (the run's dataset input)."""
        ...

    def prediction_table(self, predictions: pa.Table, with_images: bool = True
                         ) -> PredictionTable:
        """Every prediction as a row a person can browse, scored (``prediction_table``)."""
        ...
