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
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from crossmath.core.dataset_ref import DatasetRef
from crossmath.metrics.probe import ProbeSummary, decomposition_metrics, score_probe
from crossmath.metrics.scorecard import Evaluation, evaluate_predictions
from crossmath.metrics.transcription import TRANSCRIBE
from crossmath.puzzle.consistency import Consistency
from crossmath.puzzle.model import Puzzle
from crossmath.puzzle.table import puzzles_to_table
from crossmath.tasks.crossmath.identity import data_identity, prompts_identity
from crossmath.tasks.crossmath.prediction_table import puzzle_prediction_table
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import PuzzleSet
from crossmath.tasks.prediction_table import PredictionTable
from crossmath.tasks.questions import Reference, data_label

PUZZLES_FILE = "puzzles.parquet"
CONSISTENT_PREFIX = "consistent/"  # the scorecard over the records lint passes, in MLflow
MODALITY_LETTERS = {"text": "T", "image": "I", "hybrid": "TI"}


@dataclass(frozen=True)
class PuzzleScores:
    """The scorecard of a CrossMath evaluation, and the probe's reading scores when it ran.

    On official records that lint flags, ``consistency`` says which they are and
    ``consistent`` holds the scorecard over the others (``consistent/...`` in MLflow), beside
    the scorecard over all of them (the release's protocol).
    """

    evaluation: Evaluation
    probe: ProbeSummary | None = None
    consistent: Evaluation | None = None
    consistency: Consistency | None = None

    def to_dict(self) -> dict[str, Any]:
        scores = self.evaluation.to_dict()
        if self.probe is not None:
            scores["probe"] = self.probe.to_dict()
        if self.consistency is not None:
            scores["consistency"] = self.consistency.to_dict()
        if self.consistent is not None:
            scores["consistent"] = self.consistent.to_dict()
        return scores

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PuzzleScores":
        """The scores back from ``metrics.json`` (``to_dict``)."""
        probe, consistent = data.get("probe"), data.get("consistent")
        consistency = data.get("consistency")
        return cls(Evaluation.from_dict(data),
                   None if probe is None else ProbeSummary.from_dict(probe),
                   None if consistent is None else Evaluation.from_dict(consistent),
                   None if consistency is None else Consistency.from_dict(consistency))

    def flat_metrics(self, model: str) -> dict[str, float]:
        flat = self.evaluation.flat_metrics(model)
        if self.probe is not None:
            flat.update(self.probe.flat_metrics(model))
            flat.update(decomposition_metrics(self.evaluation, model))
        if self.consistency is not None:
            flat["lint/n_flagged"] = float(len(self.consistency.flagged))
            flat["lint/oracle_ceiling"] = self.consistency.oracle_ceiling
        if self.consistent is not None:
            flat.update({f"{CONSISTENT_PREFIX}{name}": value
                         for name, value in self.consistent.flat_metrics(model).items()})
        return flat


@dataclass(frozen=True)
class OwnTranscriptions:
    """The probe's second round planned from any of the first round's predictions: each
    answered transcription asked back as text (``RequestPlan.own_transcription_units``)."""

    plan: RequestPlan
    puzzles: tuple[Puzzle, ...]

    def __call__(self, predictions: list[dict]) -> list[dict]:
        return self.plan.own_transcription_units(self.puzzles, predictions)


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
        data = {"name": self.data_name, "gold": data_identity(puzzles),
                "release_images": sorted(release_folders)}
        if self.puzzle_set.rendered_in_place:  # data.images=render drew some in their place
            data["rendered_in_place"] = [image for image, _ in self.puzzle_set.rendered_in_place]
        return {
            "data": data,
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

    def follow_ups(self, round_index: int) -> OwnTranscriptions | None:
        """The probe's second round follows the first transcription by transcription."""
        if round_index == 0 and self.plan.probes:
            return OwnTranscriptions(self.plan, tuple(self.puzzle_set.puzzles))
        return None

    def score(self, predictions: pa.Table) -> PuzzleScores:
        transcribed = pc.equal(predictions["modality"], TRANSCRIBE)
        solving = predictions.filter(pc.invert(transcribed))
        puzzles = self.puzzle_set.puzzles
        evaluation = evaluate_predictions(solving, puzzles_to_table(puzzles),
                                          samples=self.plan.samples)
        consistency = self.puzzle_set.consistency
        consistent = None
        if consistency is not None and consistency.flagged:
            flagged = consistency.flagged_ids
            kept = [puzzle for puzzle in puzzles if puzzle.puzzle_id not in flagged]
            if kept:
                consistent = evaluate_predictions(
                    solving.filter(pc.invert(pc.is_in(solving["puzzle_id"],
                                                      pa.array(sorted(flagged))))),
                    puzzles_to_table(kept), samples=self.plan.samples)
        probe = None
        if self.plan.probes:
            grids = {puzzle.puzzle_id: puzzle.grid for puzzle in puzzles}
            probe = score_probe(predictions.filter(transcribed), grids, self.plan.samples)
        return PuzzleScores(evaluation, probe, consistent, consistency)

    def reference(self) -> Reference:
        return Reference(PUZZLES_FILE, puzzles_to_table(self.puzzle_set.puzzles))

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
        return puzzle_prediction_table(predictions, self.puzzle_set, self.plan.styles,
                                       with_images)


def modalities_label(modalities: Sequence[str]) -> str:
    """The modalities as the paper writes them (``T,I,TI``), ``+probe`` with the perception
    probe, for a run's name."""
    letters = ",".join(MODALITY_LETTERS.get(m, m) for m in modalities if m != TRANSCRIBE)
    return letters + ("+probe" if TRANSCRIBE in modalities else "")
