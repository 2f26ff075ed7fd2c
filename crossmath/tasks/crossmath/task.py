"""CrossMath as a task of the registry: ``task=crossmath`` (the default) asks the puzzles the
run's ``data`` names, in its ``modalities`` and ``styles``, with the model's prompt set."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from crossmath.core.errors import ConfigError
from crossmath.settings.checks import modality_names, name_list
from crossmath.tasks.crossmath.options import check_data_options
from crossmath.tasks.crossmath.questions import PuzzleQuestions, PuzzleScores
from crossmath.tasks.crossmath.requests import PLAN_MODALITIES, RequestPlan
from crossmath.tasks.crossmath.sources import load_puzzles
from crossmath.tasks.questions import DATA, MODALITIES, PROMPT_SET, STYLES, AskContext

log = logging.getLogger(__name__)


class CrossMathTask:
    """CrossMath's own puzzles: generated or the release's, each asked in every modality."""

    name = "crossmath"
    reads = frozenset({DATA, MODALITIES, STYLES, PROMPT_SET})

    def check(self, options: Mapping[str, Any], run: Mapping[str, Any], where: str = "task"
              ) -> None:
        """The run's ``modalities``, ``styles`` (one at least, for a request shown an image;
        their files are read by the door, ``RunSettings.from_config``, once) and ``data``; its
        own group holds only its name."""
        modalities = modality_names(run[MODALITIES], known=PLAN_MODALITIES)
        styles = name_list(run[STYLES], STYLES)
        if not styles and any(m != "text" for m in modalities):
            raise ConfigError(STYLES, "is empty, but image, hybrid and transcribe requests "
                                      "need a style")
        check_data_options(run[DATA])

    def questions(self, context: AskContext) -> PuzzleQuestions:
        """The puzzles (a warning for each record skipped as flagged, for the records lint
        flags and for release images drawn in their place), asked as the plan says."""
        run = context.run
        modalities, styles = list(run[MODALITIES]), context.styles
        pictured = any(modality != "text" for modality in modalities)
        puzzle_set = load_puzzles(run[DATA], styles if pictured else {})
        for line in puzzle_set.flagged:
            log.warning("skipped flagged record %s", line)
        if puzzle_set.consistency is not None and puzzle_set.consistency.flagged:
            log.warning(puzzle_set.consistency.summary())
        if puzzle_set.rendered_in_place:
            log.warning("data.images=render: %d release image(s) drawn by crossmath in their "
                        "place: %s", len(puzzle_set.rendered_in_place),
                        "; ".join(why for _, why in puzzle_set.rendered_in_place))
        plan = RequestPlan(modalities, styles, context.samples, context.prompt_set,
                           context.backend_id)
        return PuzzleQuestions(puzzle_set, plan, run[DATA]["name"])

    def scores(self, data: Mapping[str, Any]) -> PuzzleScores:
        return PuzzleScores.from_dict(data)
