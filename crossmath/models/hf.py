"""The Hugging Face backend: any image-text-to-text model, batched, through transformers.

How a call to ``generate`` runs:

1. Each request's prompt is rendered with the model's chat template. Requests that differ only
   in their ``sample`` index share one prompt entry.
2. Each entry becomes the rows to decode: one per request when sampling (each with its own key,
   ``sequence_key(seed, request_id)``, so its text depends on nothing else), one per entry when
   decoding greedily (its samples would be identical; shorter caps are cut from it). A row's
   cap is its request's ``max_new_tokens`` (never above the backend's).
3. Rows are sorted by prompt length in tokens (text plus image tokens, the latter computed from
   the image size without running the image processor), longest first, so a batch holds
   similar lengths (little padding) and an out-of-memory shows up on the first batch; then by
   cap. ``batch_size`` rows are decoded together (``crossmath.models.decoding``): each distinct
   prompt of the batch is prefilled once, its rows continue it, and rows leave the batch when
   they stop or reach their cap.
4. A CUDA out-of-memory halves ``batch_size`` (kept for later calls) and retries the same rows;
   any other failure of a batch retries its prompts one by one, and a prompt that still fails
   gets ``error`` on its responses. Nothing already answered is lost.

``latency_s`` is the wall time of the batch that answered the request. How tokens are chosen
is the ``sampling`` mode (``crossmath.models.sampling_modes``).

The module itself is light (no torch, no transformers): the driver imports it to read the
backend's ``contract`` before any model loads. torch, transformers and the decode loop are
imported where the backend is built and runs (its constructor and the methods that decode),
in the inference actor.
"""

from __future__ import annotations

import io
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from PIL import Image

from crossmath.models.base import ModelRequest, ModelResponse, Prompt, first_stop
from crossmath.models.config import SDPA_GQA, sampling_mode_is_greedy
from crossmath.models.contract import BackendContract
from crossmath.models.prompts import chat_messages
from crossmath.models.sequence_keys import sequence_key
from crossmath.models.weights import Checkpoint

if TYPE_CHECKING:  # annotations only: torch and transformers load where the backend is built
    import torch

    from crossmath.models.decoding import DecodeStats, LogitsProcessorFactory, RowOutput
    from crossmath.models.sampling_settings import SamplingSettings

log = logging.getLogger(__name__)


def chat_prompt_text(processor: Any, prompt: Prompt, enable_thinking: bool | None) -> str:
    """The chat-templated text of one user turn, ready for the assistant's answer."""
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return processor.apply_chat_template(
        chat_messages(prompt), add_generation_prompt=True, tokenize=False, **kwargs
    )


def image_size_kwargs(min_pixels: int | None, max_pixels: int | None) -> dict[str, Any]:
    """The processor's resize bounds; none keeps the checkpoint's own."""
    if min_pixels is None:
        return {}
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}


def decode_png(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


@dataclass
class _PromptEntry:
    """One distinct prompt and the requests (by index) that asked it."""

    text: str
    images: list[Image.Image]
    members: list[int] = field(default_factory=list)
    n_tokens_estimate: int = 0


@dataclass
class _Row:
    """One sequence to decode and the requests (by index) whose answer it is."""

    entry: _PromptEntry
    members: list[int]
    cap: int
    key: int = 0
    draw: SamplingSettings | None = None  # None: argmax


@dataclass(frozen=True)
class _Decoded:
    output: RowOutput
    n_prompt_tokens: int
    latency_s: float


class HFBackend:
    """A transformers ``AutoModelForImageTextToText`` with its processor, answering in batches.

    A request's own ``sampling`` (a server client's ``temperature``, ``top_p``, ``top_k``) is
    honoured row by row (``request_sampling``), as are its ``stop`` strings.
    """

    contract = BackendContract(
        call_sequences="batch_size", answer_tokens="max_new_tokens",
        image_pixels=("min_pixels", "max_pixels"), auto_dtype=True,
        non_shaping=frozenset({
            "batch_size",  # sequences decoded together: the answers are the same in any batch
            "device",  # where it runs; what that does to "auto" dtype is resolved (auto_dtype)
            "cache_dir",  # where a model built on first use (model: {_target_: ...}) is kept
        }),
        weights=Checkpoint("model"), greedy=sampling_mode_is_greedy)
    request_sampling = True

    def __init__(
        self,
        model: str | Path | torch.nn.Module,
        name: str | None = None,
        dtype: str = "auto",
        attn_implementation: str | None = SDPA_GQA,
        device: str = "auto",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int = 1024,
        sampling: str = "greedy",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        enable_thinking: bool | None = None,
        batch_size: int = 8,
        adapter: str | Path | None = None,
        seed: int = 0,
        shared_prefill: bool = True,
        kv_cache: str = "dynamic",
        compile: bool = False,
        logits_processor_factory: LogitsProcessorFactory | None = None,
        processor: Any = None,
    ) -> None:
        """
        Args:
            model: a local checkpoint folder or a hub id already in the local cache; or a model
                already built (benchmarks), which then needs ``processor`` and keeps its dtype.
            name: recorded with every prediction; defaults to the folder's name.
            dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU) or a torch dtype name.
            attn_implementation: ``"sdpa_gqa"`` (see ``attention``), or any transformers name.
            device: ``"auto"`` (CUDA if available, else CPU) or a torch device string.
            min_pixels, max_pixels: image resize bounds; ``None`` keeps the checkpoint's.
            max_new_tokens: the most tokens of any answer; a request may ask for fewer.
            sampling: ``greedy``, ``config`` (sampling with ``temperature``, ``top_k``,
                ``top_p``; top_k 0 = no cut) or ``checkpoint`` (the checkpoint's own
                generation config; see ``sampling_modes``).
            repetition_penalty: transformers' repetition penalty (1 = none), in ``greedy`` and
                ``config`` modes; ``checkpoint`` mode takes the checkpoint's.
            enable_thinking: passed to the chat template when not ``None`` (Qwen3 family).
            batch_size: sequences decoded together; halved on CUDA out-of-memory.
            adapter: a PEFT LoRA adapter folder, merged into the weights after loading.
            seed: with the request id, the key of every sampled sequence.
            shared_prefill: prefill each prompt once for all its samples (else once per sample).
            kv_cache: ``dynamic`` (grows each step) or ``static`` (preallocated, bucketed sizes).
            compile: ``torch.compile`` the decode step (CUDA graphs); needs ``kv_cache: static``.
            logits_processor_factory: builds fresh logits processors for each batch, applied
                before the token is chosen (benchmarks and tests use it).
            processor: the processor of an already built ``model``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if (min_pixels is None) != (max_pixels is None):
            raise ValueError("set both min_pixels and max_pixels, or neither")
        import torch  # the heavy machinery, here in the actor (see the module's docstring)

        from crossmath.models.checkpoint_loading import (
            load_pretrained_model,
            merge_adapter,
            resolve_device,
            resolve_dtype,
            set_attention,
            stop_token_ids,
        )
        from crossmath.models.decoding import Decoder
        from crossmath.models.processor import load_processor
        from crossmath.models.sampling_modes import decoding_rule

        built = isinstance(model, torch.nn.Module)
        if built and processor is None:
            raise ValueError("a model passed already built needs its processor")
        self.model_path = type(model).__name__ if built else str(model)
        self.name = name or Path(self.model_path).name
        self.device = torch.device(resolve_device(device))
        self.dtype = model.dtype if built else resolve_dtype(dtype, self.device)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        self.enable_thinking = enable_thinking
        self.batch_size = batch_size
        self.adapter = str(adapter) if adapter else None
        self.seed = seed
        self.shared_prefill = shared_prefill

        self.attn_implementation = attn_implementation
        self.processor = processor if built else load_processor(self.model_path)
        self.tokenizer = self.processor.tokenizer
        loaded = set_attention(model, attn_implementation) if built else \
            load_pretrained_model(self.model_path, self.dtype, attn_implementation)
        if self.adapter:
            loaded = merge_adapter(loaded, self.adapter)
        self.model = loaded.to(self.device).eval()
        self.rule = decoding_rule(
            sampling, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=repetition_penalty,
            checkpoint_config=self.model.generation_config.to_diff_dict(),
        )
        self._stop_ids = stop_token_ids(self.model, self.tokenizer)
        self.decoder = Decoder(self.model, self._stop_ids, self.rule, kv_cache=kv_cache,
                               compile=compile, logits_processor_factory=logits_processor_factory)
        self.last_stats: list[DecodeStats] = []  # one per batch of the last ``generate`` call

    def describe(self) -> dict[str, Any]:
        """The settings that shape the answers, for the run's record (and request identity)."""
        return {
            "name": self.name, "model": self.model_path,
            "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device),
            "attn_implementation": self.attn_implementation,
            "image_processor": type(self.processor.image_processor).__name__,
            "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
            "max_new_tokens": self.max_new_tokens, "sampling": self.sampling,
            "decoding": self.rule.describe(), "stop_token_ids": self._stop_ids,
            "enable_thinking": self.enable_thinking, "batch_size": self.batch_size,
            "adapter": self.adapter, "seed": self.seed, "shared_prefill": self.shared_prefill,
            "kv_cache": self.decoder.kv_cache, "compile": self.decoder.compiled,
        }

    # ----------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        responses: list[ModelResponse | None] = [None] * len(requests)
        self.last_stats = []
        rows = self._rows(requests, self._prompt_entries(requests, responses))
        rows.sort(key=lambda row: (row.entry.n_tokens_estimate, row.cap), reverse=True)
        for row, result in self._answer(rows):
            for index in row.members:
                request = requests[index]
                if isinstance(result, str):
                    responses[index] = ModelResponse(request.request_id, "", error=result)
                else:
                    responses[index] = self._response(request, result, self._cap(request))
        assert all(r is not None for r in responses), "a request was left unanswered"
        return responses  # type: ignore[return-value]

    def _prompt_entries(
        self, requests: Sequence[ModelRequest], responses: list[ModelResponse | None]
    ) -> list[_PromptEntry]:
        """Distinct prompts with their requests; a request that cannot be shown gets its error."""
        entries: dict[Prompt, _PromptEntry] = {}
        for index, request in enumerate(requests):
            try:
                if request.max_new_tokens is not None and request.max_new_tokens < 1:
                    raise ValueError(f"max_new_tokens must be at least 1, got "
                                     f"{request.max_new_tokens}")
                if request.prompt not in entries:
                    entries[request.prompt] = self._entry(request.prompt)
            except Exception as error:  # a bad request, never a crash of the batch
                responses[index] = ModelResponse(request.request_id, "", error=_describe(error))
                continue
            entries[request.prompt].members.append(index)
        return list(entries.values())

    def _rows(self, requests: Sequence[ModelRequest], entries: list[_PromptEntry]) -> list[_Row]:
        """The sequences to decode: one per sampled request (its key and draw), one per
        prompt for its greedy requests."""
        rows = []
        for entry in entries:
            greedy = []
            for i in entry.members:
                draw = self._draw(requests[i])
                if draw is None:
                    greedy.append(i)
                else:
                    rows.append(_Row(entry, [i], self._cap(requests[i]),
                                     sequence_key(self.seed, requests[i].request_id), draw))
            if greedy:
                rows.append(_Row(entry, greedy, max(self._cap(requests[i]) for i in greedy)))
        return rows

    def _draw(self, request: ModelRequest) -> SamplingSettings | None:
        """How the request's tokens are drawn: the backend's rule, or the request's own."""
        if request.sampling is None:
            return self.rule.sampling
        return self.rule.for_request(request.sampling.temperature, request.sampling.top_p,
                                     request.sampling.top_k)

    def _cap(self, request: ModelRequest) -> int:
        if request.max_new_tokens is None:
            return self.max_new_tokens
        return min(request.max_new_tokens, self.max_new_tokens)

    def _response(self, request: ModelRequest, decoded: _Decoded, cap: int) -> ModelResponse:
        """A request's answer: its row's tokens up to the request's own cap (a row decoded for
        a longer cap stopped, if at all, beyond this one: a stop token ends the row)."""
        tokens = decoded.output.tokens[:cap]
        stopped = decoded.output.stopped and len(tokens) == len(decoded.output.tokens)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if request.stop and (cut := first_stop(text, request.stop)) is not None:
            tokens = tokens[:self._tokens_until(tokens, text[:cut])]
            text, stopped = text[:cut], True
        return ModelResponse(request.request_id, text, decoded.n_prompt_tokens, len(tokens),
                             decoded.latency_s, finish_reason="stop" if stopped else "length")

    def _tokens_until(self, tokens: list[int], text: str) -> int:
        """How many of ``tokens`` it takes to write ``text`` and the stop string after it:
        the fewest whose decoding is longer than ``text`` (the token the stop string starts in
        counts, as a model that stops there has generated it)."""
        low, high = 0, len(tokens)
        while low < high:
            middle = (low + high) // 2
            if len(self.tokenizer.decode(tokens[:middle], skip_special_tokens=True)) > len(text):
                high = middle
            else:
                low = middle + 1
        return low

    def _entry(self, prompt: Prompt) -> _PromptEntry:
        text = chat_prompt_text(self.processor, prompt, self.enable_thinking)
        n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        images = [decode_png(png) for png in prompt.images]
        for image in images:
            n_tokens += self._n_image_tokens(image) - 1  # each placeholder expands
        return _PromptEntry(text=text, images=images, n_tokens_estimate=n_tokens)

    def _n_image_tokens(self, image: Image.Image) -> int:
        image_processor = self.processor.image_processor
        bounds = {} if self.min_pixels is None else {
            "min_pixels": self.min_pixels, "max_pixels": self.max_pixels}
        patches = image_processor.get_number_of_image_patches(image.height, image.width, bounds)
        return patches // image_processor.merge_size**2

    # ----------------------------------------------------------------------------------------
    def _answer(self, rows: list[_Row]) -> Iterator[tuple[_Row, _Decoded | str]]:
        """Each row with its decoded output, or with an error message."""
        import torch

        pending = deque(rows)
        while pending:
            chunk = [pending.popleft() for _ in range(min(self.batch_size, len(pending)))]
            try:
                results = self._decode_rows(chunk)
            except torch.OutOfMemoryError as error:
                failure, out_of_memory = str(error), True
            except Exception as error:
                failure, out_of_memory = _describe(error), False
            else:
                yield from zip(chunk, results)
                continue
            # Handled after the except block: its traceback would keep the batch's tensors alive.
            if out_of_memory:
                _release_cuda_memory()
            by_prompt: dict[int, list[_Row]] = {}
            for row in chunk:
                by_prompt.setdefault(id(row.entry), []).append(row)
            if out_of_memory and len(chunk) > 1:
                self.batch_size = max(1, len(chunk) // 2)
                log.warning("CUDA out of memory at %d sequences; batch_size now %d",
                            len(chunk), self.batch_size)
                pending.extendleft(reversed(chunk))
            elif out_of_memory or len(by_prompt) == 1:
                message = f"out of memory with a single sequence: {failure}" \
                    if out_of_memory else failure
                yield from ((row, message) for row in chunk)
            else:  # find the prompt at fault by retrying each alone
                log.warning("batch of %d prompts failed (%s); retrying one by one",
                            len(by_prompt), failure)
                for group in by_prompt.values():
                    yield from self._answer(group)

    def _decode_rows(self, rows: list[_Row]) -> list[_Decoded]:
        """Decode one batch of rows; each distinct prompt is prefilled once (``shared_prefill``)."""
        from crossmath.models.decoding import RowPlan

        started = time.perf_counter()
        prompts: dict[int, int] = {}  # id(entry) or row number -> prompt index
        entries: list[_PromptEntry] = []
        plans = []
        for number, row in enumerate(rows):
            name = id(row.entry) if self.shared_prefill else number
            if name not in prompts:
                prompts[name] = len(entries)
                entries.append(row.entry)
            plans.append(RowPlan(prompts[name], row.cap, row.key, row.draw))
        images = [image for entry in entries for image in entry.images]
        inputs = self.processor(
            text=[entry.text for entry in entries],
            images=images or None,
            padding=True,
            padding_side="left",
            return_tensors="pt",
            **image_size_kwargs(self.min_pixels, self.max_pixels),
        ).to(self.device)
        n_prompt = inputs["attention_mask"].sum(dim=1).tolist()
        outputs, stats = self.decoder.decode(inputs, plans)
        self.last_stats.append(stats)
        if stats.compile_s:
            log.info("decode step compiled for shapes %s", stats.compile_s)
        latency = time.perf_counter() - started
        return [_Decoded(output, int(n_prompt[plan.prompt]), latency)
                for output, plan in zip(outputs, plans)]


def _release_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
