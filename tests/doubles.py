"""Backends that misbehave on purpose, know the answers, or talk like a model without being one.

``SlowBackend`` answers like the oracle after a delay per request, so a run can be stopped
halfway. ``CrashingBackend`` kills its own worker process on its first batch (once per marker
file), as an out-of-memory kill or a lost node would, so Ray's actor restart is tested for real. ``FailingImageOracle``
fails the requests that show one image while an outage file exists, as a backend fails
requests it cannot read, until the cause is gone.

For the transfer tasks, ``AnswerKeyBackend`` answers every item with its gold answer (a run
must score 100%; chance is the real ``RandomBackend``, which reads a request's option letters).
It learns about an item from an *item key*, a JSON file that ``write_item_key`` writes from the
loaded items, keyed by each prompt's content key: a backend sees only the prompt, hashes it the
same way, and finds the item, whatever request ids the pipeline uses.

``JudgeDouble`` plays MathVerse's two-stage judge by rule, so the judge rounds run offline.

For the perception probe, ``CopyGridBackend`` transcribes perfectly (it reads the request's grid)
and ``SwappedNumbersBackend`` swaps two numbers as it copies; both answer puzzles as the oracle.

``BrokenBackend`` raises from ``generate``, as a backend with a bug would. ``WordsBackend``
answers in words, one token each, honouring token caps and keyed sampling as a real model does.

``RecordingEngine`` stands in for vLLM's engine behind the real vllm backend
(``recording_engine`` makes one from a model config).

``FlatCostBackend`` (a call costs the same whatever it holds) lives in the package,
``crossmath.models.flat_cost``: the benchmarks use it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from crossmath.metrics.answers import answer_block
from crossmath.metrics.transcription import TRANSCRIBE
from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.baselines import OracleBackend, _RuleBackend
from crossmath.models.contract import BackendContract, always_greedy
from crossmath.models.sampling_modes import DecodingRule
from crossmath.models.sampling_settings import SamplingSettings
from crossmath.puzzle.grid import Grid, Position, is_number_token, parse_markdown_grid
from crossmath.tasks import TaskItem, prompt_key
from crossmath.tasks.transfer.final_answer import final_answer_span
from crossmath.tasks.transfer.freeform import answers_match
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE


class _Slow:
    delay_s: float

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        time.sleep(self.delay_s * len(requests))
        return super().generate(requests)  # type: ignore[misc]


class SlowBackend(_Slow, OracleBackend):
    def __init__(self, name: str = "slow-oracle", delay_s: float = 0.05) -> None:
        super().__init__(name)
        self.delay_s = delay_s


class FailingImageOracle(OracleBackend):
    """The oracle, except that requests showing the image in the file ``image`` fail (as an
    image that will not decode does) while a file named ``outage`` exists in the temp folder
    (a name, not a path: a path would be hashed into the evaluation's identity by content)."""

    def __init__(self, image: str, outage: str, name: str = "failing-image-oracle") -> None:
        super().__init__(name)
        self.image = Path(image).read_bytes()
        self.outage = Path(tempfile.gettempdir()) / outage

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        failing = {r.request_id for r in requests
                   if self.outage.exists() and self.image in r.prompt.images}
        answers = {r.request_id: r for r in
                   super().generate([r for r in requests if r.request_id not in failing])}
        return [answers.get(r.request_id) or ModelResponse(
                    r.request_id, "", error="UnidentifiedImageError: cannot identify image file")
                for r in requests]


class CrashingBackend(OracleBackend):
    def __init__(self, marker: str, name: str = "crashing-oracle") -> None:
        super().__init__(name)
        self.marker = Path(marker)

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the process dies mid-batch, without cleanup
        return super().generate(requests)


def write_item_key(items: Iterable[TaskItem], path: str | Path,
                   answers: Mapping[str, str] | None = None) -> Path:
    """The item key of ``items``: content key -> the answer to give: ``answers[item id]``
    where given, else the gold letters of a choice (joined by ", ") or the first gold."""
    key = {item.content_key: {"answer": (answers or {}).get(item.item_id, _gold_answer(item))}
           for item in items}
    Path(path).write_text(json.dumps(key, indent=1), encoding="utf-8")
    return Path(path)


def _gold_answer(item: TaskItem) -> str:
    return ", ".join(item.gold) if item.question_type == MULTIPLE_CHOICE else item.gold[0]


def answer_key_replies(items: Iterable[TaskItem], folder: str | Path,
                       answers: Mapping[str, str] | None = None) -> list[str]:
    """What ``AnswerKeyBackend`` replies to each item's prompt, in order, its item key written
    into ``folder``."""
    items = list(items)
    key = write_item_key(items, Path(folder) / "key.json", answers)
    requests = [ModelRequest(f"r{i}", item.prompt, modality="image")
                for i, item in enumerate(items)]
    return [reply.output for reply in AnswerKeyBackend(str(key)).generate(requests)]


def _read_item_key(path: str | Path) -> dict[str, dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


ANSWER_KEY_PREAMBLE = "From the answer key.\n"


class AnswerKeyBackend(_RuleBackend):
    """Answers each transfer item with its gold answer in answer tags; a prompt missing from
    the key (one built differently from the key's items) gets no answer."""

    def __init__(self, item_key: str, name: str = "answer-key") -> None:
        self.name = name
        self.key = _read_item_key(item_key)

    def answer(self, request: ModelRequest) -> str:
        entry = self.key.get(prompt_key(request.prompt))
        if entry is None:
            return "This prompt is not in my answer key."
        return ANSWER_KEY_PREAMBLE + answer_block([entry["answer"]])


class JudgeDouble(_RuleBackend):
    """Plays MathVerse's judge by rule, for tests of the judge rounds (not of any judge's
    verdicts): an extraction prompt (ending ``Model response: '<reply>'`` and ``Extracted
    Answer: ``) is answered with the reply's final answer span (``null`` without one); a
    scoring prompt (ending with the ``[Standard Answer]`` and ``[Model_answer]`` lines) with
    ``Judgement: 1`` when the two answers match by our free-form rule or as letters, else
    ``Judgement: 0``. Any other prompt gets a reply that is neither."""

    contract = BackendContract(greedy=always_greedy)

    def __init__(self, name: str = "judge-double") -> None:
        self.name = name

    def answer(self, request: ModelRequest) -> str:
        prompt = request.prompt.texts[-1]
        if prompt.endswith("Extracted Answer: "):
            reply = prompt.rsplit("Model response: '", 1)[1][: -len("'\nExtracted Answer: ")]
            return f"Extracted Answer: {final_answer_span(reply) or 'null'}"
        if "[Standard Answer]: " in prompt and prompt.rstrip().endswith("Judgement:"):
            tail = prompt.rsplit("[Standard Answer]: ", 1)[1]
            gold, extracted = tail.split("\n[Model_answer] : ", 1)
            extracted = extracted.rsplit("\nJudgement:", 1)[0]
            return f"Judgement: {int(_same_answer(extracted, gold))}"
        return "I do not know how to judge this."


def _same_answer(extracted: str, gold: str) -> bool:
    letters = [re.sub(r"[^A-Z]", "", text) for text in (extracted, gold)]
    if re.fullmatch(r"\(?[A-Z]\)?|[A-Z](\s*[,\n]\s*[A-Z])+", gold.strip()):
        return letters[0] == letters[1]
    return answers_match(extracted, gold)


class CopyGridBackend(OracleBackend):
    """Transcribes perfectly: a ``transcribe`` request is answered with the request's own grid
    (read from the request, not the image: a test of the probe's plumbing), every other request
    as the oracle answers it."""

    def __init__(self, name: str = "copy-grid") -> None:
        super().__init__(name)

    def answer(self, request: ModelRequest) -> str:
        if request.modality != TRANSCRIBE:
            return super().answer(request)
        grid = self.transcribe(parse_markdown_grid(request.grid_markdown))
        return f"The grid, copied:\n<answer>\n{grid.to_markdown(as_written=True)}\n</answer>"

    def transcribe(self, grid: Grid) -> Grid:
        return grid


class SwappedNumbersBackend(CopyGridBackend):
    """Transcribes with one misreading: the values of the grid's first two given numbers that
    differ (row-major) swapped, so exactly two number cells are wrong."""

    def __init__(self, name: str = "swapped-numbers") -> None:
        super().__init__(name)

    def transcribe(self, grid: Grid) -> Grid:
        first, second = swapped_cells(grid)
        return grid.with_values({first: int(grid[second]), second: int(grid[first])})


def swapped_cells(grid: Grid) -> tuple[Position, Position]:
    """The two cells ``SwappedNumbersBackend`` swaps."""
    numbers = [p for p in grid.positions() if is_number_token(grid[p])]
    first = numbers[0]
    return first, next(p for p in numbers[1:] if grid[p] != grid[first])


class BrokenBackend(OracleBackend):
    """Raises on every batch, with a message a test can look for."""

    def __init__(self, message: str = "the backend is broken", name: str = "broken") -> None:
        super().__init__(name)
        self.message = message

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        raise RuntimeError(self.message)


WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")


class WordsBackend:
    """A model that says ``length`` words, one token each, then stops.

    Like ``HFBackend``: ``max_new_tokens`` is its own limit, a request's ``max_new_tokens`` caps
    it further, an answer cut at the limit has ``finish_reason="length"``, and ``rule`` says
    how it decodes (``sampling`` "greedy" or "config"). Greedy, the words depend on the prompt
    only; sampling, on the request id only (as keyed sampling does), so equal ids give equal
    answers in any batch. With ``request_sampling`` a request's own sampling decides (as the
    hf backend does): its words depend on the request id and its draw.
    """

    def __init__(self, name: str = "words", length: int = 12, max_new_tokens: int = 64,
                 sampling: str = "greedy", temperature: float = 1.0, top_p: float = 1.0,
                 request_sampling: bool = False) -> None:
        self.name = name
        self.length = length
        self.max_new_tokens = max_new_tokens
        self.rule = DecodingRule(None if sampling == "greedy"
                                 else SamplingSettings(temperature, 0, top_p))
        self.request_sampling = request_sampling

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        return [self._answer(request) for request in requests]

    def _answer(self, request: ModelRequest) -> ModelResponse:
        draw = self.rule.sampling
        if self.request_sampling and request.sampling is not None:
            draw = self.rule.for_request(request.sampling.temperature, request.sampling.top_p,
                                         request.sampling.top_k)
        key = f"{request.request_id}@{draw}" if draw is not None else repr(request.prompt)
        digest = hashlib.sha256(key.encode()).digest()
        limit = min(self.max_new_tokens, request.max_new_tokens or self.max_new_tokens)
        said = [WORDS[digest[i % len(digest)] % len(WORDS)] for i in range(min(self.length, limit))]
        n_prompt = sum(len(text.split()) for text in request.prompt.texts) + len(request.prompt.images)
        return ModelResponse(request.request_id, " ".join(said), n_prompt, len(said),
                             finish_reason="length" if self.length > limit else "stop")


class FailingStage:
    """A Ray Data stage that fails as a pipeline stage can: in its constructor (the actor dies
    while starting) or on its first batch."""

    def __init__(self, error: Exception, in_constructor: bool = False) -> None:
        if in_constructor:
            raise error
        self.error = error

    def __call__(self, batch):
        raise self.error


class RecordingEngine:
    """vLLM's engine as the vllm backend sees it (``vllm_backend.Engine``), without vLLM.

    It records what each request hands the engine (vLLM's prompt dict, the ``SamplingParams``
    arguments, the adapter) and answers it in ``WORDS`` (as many as the request's
    ``max_tokens``, cut at ``length``), after ``delay_s`` times 1, 2 or 3 (by request id), so
    that requests end out of order as they do in continuous batching. A request whose prompt
    contains ``refuse`` is refused as vLLM refuses one (a ``ValueError``). With ``log`` set,
    each request appends a JSON line when submitted and one when finished (any process).
    """

    def __init__(self, arguments: dict, delay_s: float = 0.0, length: int = 6,
                 refuse: str | None = None, log: str | None = None) -> None:
        self.arguments = arguments
        self.delay_s, self.length, self.refuse = delay_s, length, refuse
        self.log = Path(log) if log else None
        self.received: list[dict] = []

    async def answer(self, prompt: dict, sampling: dict, request_id: str, adapter: str | None):
        import asyncio

        from crossmath.models.vllm_backend import Finished

        self.received.append({"request_id": request_id, "prompt": prompt, "sampling": sampling,
                              "adapter": adapter})
        self._log("submitted", request_id)
        if self.refuse and self.refuse in prompt["prompt"]:
            raise ValueError(f"prompt of {request_id} refused")
        digest = hashlib.sha256(request_id.encode()).digest()
        await asyncio.sleep(self.delay_s * (1 + digest[0] % 3))
        said = [WORDS[digest[i % len(digest)] % len(WORDS)]
                for i in range(min(self.length, sampling["max_tokens"]))]
        self._log("finished", request_id)
        return Finished(" ".join(said), len(prompt["prompt"].split()), len(said),
                        "length" if self.length >= sampling["max_tokens"] else "stop")

    def shutdown(self) -> None:
        pass

    def _log(self, event: str, request_id: str) -> None:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"event": event, "request_id": request_id,
                                         "at": time.time(), "pid": os.getpid()}) + "\n")


def recording_engine(**settings):
    """A ``RecordingEngine`` factory with ``settings``: what a model config's ``engine`` names
    (``{_target_: tests.doubles.recording_engine, delay_s: 0.2, log: ...}``)."""
    return lambda arguments: RecordingEngine(arguments, **settings)
