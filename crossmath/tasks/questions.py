"""What a task asks, apart from how it is asked: the seam between the tasks and the pipeline.

The dataflow (``crossmath.pipeline``) answers units of requests (``crossmath.core.requests``)
and knows nothing of what they are about. Every task of the registry (``registry``: CrossMath's
puzzles, MathVerse, MMMU) is a ``Task``: given what the run says (``AskContext``), it makes the
``Questions`` of one evaluation:

- the settings its identity hashes, the units of each round (a round r > 0 is planned from the
  answers of the rounds before it: the perception probe's second round, MathVerse's judge
  rounds), and the backend of a round another model answers (a judge);
- the scores of the predictions (``Scores``: what ``metrics.json`` and MLflow hold; how they
  read on the console and in the report is ``crossmath.summary.score_views``'s business,
  chosen by the scores' kind);
- what its data is for tracking (name, fingerprint, source), what the answers were scored
  against (``Reference``), and every prediction as a row a person can browse
  (``prediction_table``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import pyarrow as pa

from crossmath.core.dataset_ref import DatasetRef
from crossmath.drawing import Style
from crossmath.models.prompts import PromptSet
from crossmath.tasks.prediction_table import PredictionTable

# What a task may read of the run besides its own ``task`` options (``Task.reads``).
DATA, MODALITIES, STYLES = "data", "modalities", "styles"  # run options of those names
PROMPT_SET = "prompt_set"  # the prompt set of the evaluated model (its config's ``prompt``)
_DATA_ABBREVIATIONS = (("generated-", "gen-"), ("-seed", "-s"))


class Scores(Protocol):
    """The scores of one evaluation, as plain data."""

    def to_dict(self) -> dict[str, Any]:
        """Everything, for ``metrics.json``."""
        ...

    def flat_metrics(self, model: str) -> dict[str, float]:
        """Metric name -> value, for MLflow."""
        ...


class BackendRef(Protocol):
    """A backend as its identity knows it (``crossmath.pipeline.identity.BackendIdentity``)."""

    id: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class AskContext:
    """What a run gives a task to plan its questions from, its options already checked.

    ``options`` is the task's own group (``conf/task/<name>.yaml``, resolved); ``run`` holds
    the run options the task ``reads`` (``data``, ``modalities``, ``styles``), as given;
    ``styles`` maps each style as given (a name or a path) to the ``Style`` the door read, for
    a task that reads ``styles`` (empty otherwise); ``prompt_set`` is the evaluated model's
    prompt set, read at the door, when the task reads it. ``identify`` gives the identity of
    another model the task asks (a judge), on the run's inference resources.
    """

    options: Mapping[str, Any]
    run: Mapping[str, Any]
    samples: int
    backend_id: str
    styles: Mapping[str, Style]
    prompt_set: PromptSet | None
    identify: Callable[[Mapping[str, Any]], BackendRef]


@dataclass(frozen=True)
class Reference:
    """What the answers were scored against (puzzles, items), as the file ``name`` holds it."""

    name: str
    table: pa.Table


# The next round's units planned from some of this round's predictions (rows with at least
# request_id, puzzle_id, style, modality, sample, output, error): ``Questions.follow_ups``.
FollowUps = Callable[[list[dict]], list[dict]]


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

    def follow_ups(self, round_index: int) -> FollowUps | None:
        """When round ``round_index + 1`` is asked of the same model and each of its requests
        follows from one prediction of this round: a picklable function that plans them from
        any of this round's predictions, as ``units`` would. The inference actors then ask them
        right after the answers they follow. None: the next round waits for this one."""
        ...

    def score(self, predictions: pa.Table) -> Scores:
        """Score every round's predictions."""
        ...

    def reference(self) -> Reference:
        """What the answers were scored against (puzzles, items), as a table."""
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


class Task(Protocol):
    """An entry of the task registry: what ``task=<name>`` evaluates."""

    name: str
    reads: frozenset[str]  # what of the run it reads besides its options (DATA, ..., PROMPT_SET)

    def check(self, options: Mapping[str, Any], run: Mapping[str, Any], where: str = "task"
              ) -> None:
        """Raise ``ConfigError`` naming the first of its ``options`` (its group, resolved, at
        ``where``), or of the ``run`` options it reads, that cannot work."""
        ...

    def questions(self, context: AskContext) -> Questions:
        """The questions of one evaluation of this task."""
        ...

    def scores(self, data: Mapping[str, Any]) -> Scores:
        """Its scores back from ``metrics.json`` (``Scores.to_dict``)."""
        ...


def data_label(data_name: str) -> str:
    """A data name in short, for a run's name (``gen-mixed-n12-s0``)."""
    for long, short in _DATA_ABBREVIATIONS:
        data_name = data_name.replace(long, short)
    return data_name
