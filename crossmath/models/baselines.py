"""Two reference backends that bracket every real model: the solver's ceiling and chance.

Both answer the way a model does (a short line, then ``<answer>…</answer>`` when they
answer), so their predictions go through the same extraction and scoring as a VLM's.

- ``OracleBackend`` reads the text grid with the symbolic solver. It answers only when the
  grid has exactly one consistent solution, and never for requests that show the image alone
  (``image``, and the probe's ``transcribe``): it has no eyes. On text it is the ceiling of
  what the text modality allows.
- ``RandomBackend`` guesses every blank uniformly in the puzzle's value range, seeded from
  the request id, so a rerun gives the same guesses: the chance floor. On a transfer task's
  multiple-choice question it picks one of the option letters the same way.

Neither imports torch; both are cheap enough to run anywhere.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Sequence

from crossmath.metrics.answers import answer_block
from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.contract import BackendContract, always_greedy
from crossmath.puzzle.grid import BLANK, Grid, GridFormatError, Position, parse_markdown_grid
from crossmath.puzzle.solver import propagate, search_solutions

# Request kinds whose prompt shows the image without the grid as text.
IMAGE_ONLY = ("image", "transcribe")


class _RuleBackend:
    """A backend whose reply to each request is a pure function of that request: no weights,
    no capacity to fill (calls of a few hundred requests), and (unless a subclass says it
    ignores the sample index) samples that differ."""

    contract = BackendContract()
    name: str

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        responses = []
        for request in requests:
            started = time.perf_counter()
            output = self.answer(request)
            responses.append(
                ModelResponse(request.request_id, output, latency_s=time.perf_counter() - started)
            )
        return responses

    def answer(self, request: ModelRequest) -> str:
        raise NotImplementedError


class OracleBackend(_RuleBackend):
    """The symbolic solver as a model: exact on uniquely solvable text grids, silent otherwise."""

    contract = BackendContract(greedy=always_greedy)  # its reply ignores the sample index

    def __init__(self, name: str = "oracle") -> None:
        self.name = name

    def answer(self, request: ModelRequest) -> str:
        """The reply to one request: the unique solution in an answer tag, or why there is none."""
        if request.modality in IMAGE_ONLY:
            return "I can only read the text grid, and this request shows an image only."
        try:
            grid = parse_markdown_grid(request.grid_markdown)
        except GridFormatError as error:
            return f"The text grid cannot be read ({error}), so I give no answer."
        return solution_reply(grid)


def solution_reply(grid: Grid, asked: Sequence[Position] | None = None) -> str:
    """What the solver says about ``grid``: the values of the ``asked`` cells (the grid's
    blanks unless given) in an answer tag when the grid has exactly one solution, else why it
    gives no answer. Unknowns not asked are solved for too, but not answered."""
    asked = grid.blanks if asked is None else asked
    if not asked:
        return "The grid has no blank cells, so there is nothing to answer."
    result = search_solutions(grid, limit=2)
    if result.status == "multiple":
        return "The grid has more than one solution, so I give no answer."
    if result.status == "none":
        return (f"The grid has no consistent solution ({_why_unsolvable(grid)}), "
                "so I give no answer.")
    solution = result.solutions[0]
    return "The grid has exactly one solution.\n" + answer_block([solution[p] for p in asked])


def _why_unsolvable(grid: Grid) -> str:
    contradiction = propagate(grid).contradiction
    if contradiction is not None:
        return str(contradiction)
    return "every assignment of the blanks breaks some equation"


class RandomBackend(_RuleBackend):
    """Uniform guesses in the request's value range: what a model scores by chance.

    Each guess is drawn from a generator seeded by ``(seed, request_id)``, so it is the same
    in every rerun and on every worker, whatever the batch or order.
    """

    # Each sample has its own request id, hence its own guesses: _RuleBackend's contract.

    def __init__(self, name: str = "random", seed: int = 0) -> None:
        self.name = name
        self.seed = seed

    def answer(self, request: ModelRequest) -> str:
        rng = random.Random(self._seed_for(request.request_id))
        if request.options:
            return "A random guess.\n" + answer_block([rng.choice(request.options)])
        n_blanks = request.n_blanks or request.grid_markdown.count(BLANK)
        if n_blanks == 0:
            return "I cannot tell how many blanks the puzzle has, so I give no answer."
        low, high = sorted(_value_range(request))
        guesses = [rng.randint(low, high) for _ in range(n_blanks)]
        return "A random guess.\n" + answer_block(guesses)

    def _seed_for(self, request_id: str) -> int:
        digest = hashlib.sha256(f"{self.seed}\x00{request_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big")


def _value_range(request: ModelRequest) -> tuple[int, int]:
    """The request's range, or (when it carries none) the span of the grid's given numbers."""
    if tuple(request.value_range) != (0, 0):
        return request.value_range
    try:
        given = parse_markdown_grid(request.grid_markdown).known_values().values()
    except GridFormatError:
        given = ()
    return (min(given), max(given)) if given else (0, 0)
