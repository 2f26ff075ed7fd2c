"""CrossMath puzzles as the main job's questions: units per round, identity, scores.

Round 0 asks every request of the plan (``RequestPlan.units``): text, image, hybrid and, with
the perception probe, ``transcribe``. Round 1 runs only with the probe: each answered
transcription shown back as a text puzzle (``RequestPlan.own_transcription_units``). The
scores are the scorecard over the puzzle-solving requests (text, image, hybrid and T̂, with the
gaps T−TI, T−I, T−T̂ and T̂−I) and the probe's reading scores over the transcriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from crossmath.metrics.probe import ProbeSummary, decomposition_metrics, score_probe
from crossmath.metrics.scorecard import Evaluation, evaluate_predictions
from crossmath.metrics.transcription import TRANSCRIBE
from crossmath.pipeline.identity import data_identity, prompts_identity
from crossmath.pipeline.prediction_table import PredictionTable, puzzle_prediction_table
from crossmath.pipeline.requests import RequestPlan
from crossmath.pipeline.shards import write_table
from crossmath.pipeline.sources import PuzzleSet
from crossmath.puzzle.table import puzzles_to_table
from crossmath.summary.headline import crossmath_headline
from crossmath.summary.views import console_summary, write_report
from crossmath.tracking.datasets import DatasetRef
from crossmath.tracking.run_labels import data_label, modalities_label

PUZZLES_FILE = "puzzles.parquet"


@dataclass(frozen=True)
class PuzzleScores:
    """The scorecard of a CrossMath evaluation, and the probe's reading scores when it ran."""

    evaluation: Evaluation
    probe: ProbeSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        scores = self.evaluation.to_dict()
        if self.probe is not None:
            scores["probe"] = self.probe.to_dict()
        return scores

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PuzzleScores":
        """The scores back from ``metrics.json`` (``to_dict``)."""
        probe = data.get("probe")
        return cls(Evaluation.from_dict(data),
                   None if probe is None else ProbeSummary.from_dict(probe))

    def flat_metrics(self, model: str) -> dict[str, float]:
        flat = self.evaluation.flat_metrics(model)
        if self.probe is not None:
            flat.update(self.probe.flat_metrics(model))
            flat.update(decomposition_metrics(self.evaluation, model))
        return flat

    def console(self, model: str) -> str:
        return console_summary(self.evaluation, model, self.probe)

    def write_report(self, folder: Path, model: str) -> list[Path]:
        return write_report(self.evaluation, folder, model, self.probe).paths

    def headline(self, model: str) -> dict[str, float]:
        return crossmath_headline(self.evaluation, model)


class PuzzleQuestions:
    """The puzzles of ``puzzle_set`` asked as ``plan`` says, named ``data_name``."""

    def __init__(self, puzzle_set: PuzzleSet, plan: RequestPlan, data_name: str) -> None:
        self.puzzle_set = puzzle_set
        self.plan = plan
        self.data_name = data_name
        self.prompt_id = plan.prompt_id
        self.n_rounds = 2 if plan.probes else 1

    def settings(self) -> dict[str, Any]:
        release_folders = {str(Path(path).resolve().parent)
                           for path in self.puzzle_set.official_images.values()}
        puzzles, plan = self.puzzle_set.puzzles, self.plan
        return {
            "data": {"name": self.data_name, "gold": data_identity(puzzles),
                     "release_images": sorted(release_folders)},
            "plan": {"modalities": list(plan.modalities), "styles": plan.style_provenance,
                     "samples": plan.samples, "prompt_set": plan.prompt_id,
                     "prompts": prompts_identity(plan.layout(puzzle, modality).texts
                                                 for puzzle in puzzles
                                                 for modality in plan.modalities)},
        }

    def tags(self) -> dict[str, str]:
        return {"dataset": self.data_name, "dataset_fingerprint": self.puzzle_set.fingerprint}

    def round_backend(self, round_index: int) -> None:
        """Every round is the evaluated model's."""
        return None

    def units(self, round_index: int, answered: pa.Table) -> list[dict]:
        if round_index == 0:
            return self.plan.units(self.puzzle_set.puzzles, self.puzzle_set.official_images)
        transcriptions = answered.filter(pc.equal(answered["modality"], TRANSCRIBE))
        return self.plan.own_transcription_units(self.puzzle_set.puzzles,
                                                 transcriptions.to_pylist())

    def score(self, predictions: pa.Table) -> PuzzleScores:
        transcribed = pc.equal(predictions["modality"], TRANSCRIBE)
        evaluation = evaluate_predictions(predictions.filter(pc.invert(transcribed)),
                                          puzzles_to_table(self.puzzle_set.puzzles),
                                          samples=self.plan.samples)
        if not self.plan.probes:
            return PuzzleScores(evaluation)
        grids = {puzzle.puzzle_id: puzzle.grid for puzzle in self.puzzle_set.puzzles}
        return PuzzleScores(evaluation, score_probe(predictions.filter(transcribed), grids,
                                                    self.plan.samples))

    def write_reference(self, folder: Path) -> Path:
        path = folder / PUZZLES_FILE
        write_table(puzzles_to_table(self.puzzle_set.puzzles), str(path))
        return path

    def label_parts(self) -> list[str]:
        return [data_label(self.data_name), modalities_label(self.plan.modalities)]

    def describe(self) -> str:
        plan, puzzle_set = self.plan, self.puzzle_set
        images = (f", images in {len(plan.styles)} style(s) ({', '.join(plan.styles)})"
                  if any(modality != "text" for modality in plan.modalities) else "")
        return (f"{len(puzzle_set.puzzles)} puzzles of {self.data_name} (fingerprint "
                f"{puzzle_set.fingerprint}) as {', '.join(plan.modalities)}{images}, "
                f"{plan.samples} sample(s) each")

    def dataset(self) -> DatasetRef:
        return DatasetRef(self.data_name, self.puzzle_set.fingerprint, self.puzzle_set.source,
                          self.puzzle_set.source_type)

    def prediction_table(self, predictions: pa.Table, with_images: bool = True
                         ) -> PredictionTable:
        return puzzle_prediction_table(predictions, self.puzzle_set, with_images)
