"""The Hugging Face backend: any image-text-to-text model, batched, through transformers.

How a call to ``generate`` runs:

1. Each request's prompt is rendered with the model's chat template. Requests that differ only
   in their ``sample`` index share one prompt entry.
2. Prompt entries are sorted by their length in tokens (text plus image tokens, the latter
   computed from the image size without running the image processor), longest first, so each
   batch holds similar lengths (little padding) and an out-of-memory shows up on the first batch.
3. Batches are padded on the left and decoded together. Greedy decoding answers each shared
   prompt once and copies the answer to its samples (they would be identical); sampling decodes
   the samples of a prompt as ``num_return_sequences`` of one entry. transformers still expands
   the prompt before prefill, so this saves tokenising and image processing, not prefill compute.
4. A CUDA out-of-memory halves ``batch_size`` (kept for later calls) and retries the same
   prompts; any other failure of a batch retries its prompts one by one, and a prompt that still
   fails gets ``error`` on its responses. Nothing already answered is lost.

``batch_size`` counts sequences decoded together (prompts times samples), which is what memory
scales with. ``latency_s`` is the wall time of the ``generate`` call that answered the request.
"""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from crossmath.models.attention import SDPA_GQA, register_sdpa_gqa
from crossmath.models.base import ModelRequest, ModelResponse, Prompt
from crossmath.models.processor import load_processor
from crossmath.models.prompts import chat_messages

log = logging.getLogger(__name__)

LogitsProcessorFactory = Callable[[], list]

# Checkpoints ship generation defaults (Qwen2.5-VL: top_k=1, repetition_penalty=1.05) that
# transformers applies to every option left unset. Pinned here, so that only the run's config
# shapes the answers; ``generation_kwargs`` may set them again.
NEUTRAL_GENERATION = {"repetition_penalty": 1.0}
NEUTRAL_SAMPLING = {"top_k": 0}  # 0 = no top-k cut


def load_pretrained_model(path: str | Path, dtype: torch.dtype,
                          attn_implementation: str | None) -> torch.nn.Module:
    """A checkpoint as the backend loads it; crossmath's ``sdpa_gqa`` is registered first."""
    if attn_implementation == SDPA_GQA:
        register_sdpa_gqa()
    return AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, attn_implementation=attn_implementation
    )


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


@dataclass(frozen=True)
class _Generation:
    output: str
    n_prompt_tokens: int
    n_output_tokens: int
    latency_s: float
    finish_reason: str


class HFBackend:
    """A transformers ``AutoModelForImageTextToText`` with its processor, answering in batches."""

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
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        enable_thinking: bool | None = None,
        batch_size: int = 8,
        adapter: str | Path | None = None,
        seed: int = 0,
        generation_kwargs: dict[str, Any] | None = None,
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
            enable_thinking: passed to the chat template when not ``None`` (Qwen3 family).
            batch_size: sequences decoded together; halved on CUDA out-of-memory.
            adapter: a PEFT LoRA adapter folder, merged into the weights after loading.
            generation_kwargs: extra ``generate`` options (``top_k``, ``cache_implementation``,
                ...); the checkpoint's own generation defaults are not used (``NEUTRAL_*``).
            logits_processor_factory: builds fresh logits processors for each ``generate`` call
                (benchmarks use it to force output lengths).
            processor: the processor of an already built ``model``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if (min_pixels is None) != (max_pixels is None):
            raise ValueError("set both min_pixels and max_pixels, or neither")
        built = isinstance(model, torch.nn.Module)
        if built and processor is None:
            raise ValueError("a model passed already built needs its processor")
        self.model_path = type(model).__name__ if built else str(model)
        self.name = name or Path(self.model_path).name
        self.device = torch.device(_resolve_device(device))
        self.dtype = model.dtype if built else _resolve_dtype(dtype, self.device)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature, self.top_p = temperature, top_p
        self.enable_thinking = enable_thinking
        self.batch_size = batch_size
        self.adapter = str(adapter) if adapter else None
        self.seed = seed
        self.generation_kwargs = {**NEUTRAL_GENERATION, **(generation_kwargs or {})}
        self.logits_processor_factory = logits_processor_factory

        self.attn_implementation = attn_implementation
        self.processor = processor if built else load_processor(self.model_path)
        self.tokenizer = self.processor.tokenizer
        if built:
            if attn_implementation == SDPA_GQA:
                register_sdpa_gqa()
            loaded = model
            if attn_implementation is not None:
                loaded.set_attn_implementation(attn_implementation)
        else:
            loaded = load_pretrained_model(self.model_path, self.dtype, attn_implementation)
        if self.adapter:
            loaded = _merge_adapter(loaded, self.adapter)
        self.model = loaded.to(self.device).eval()
        self._stop_ids = _stop_token_ids(self.model, self.tokenizer)
        self._pad_id = self.tokenizer.pad_token_id
        if self._pad_id is None:
            self._pad_id = self._stop_ids[0]

    def describe(self) -> dict[str, Any]:
        """The settings that shape the answers, for the run's record."""
        return {
            "name": self.name, "model": self.model_path,
            "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device),
            "attn_implementation": self.attn_implementation,
            "image_processor": type(self.processor.image_processor).__name__,
            "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
            "max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
            "temperature": self.temperature, "top_p": self.top_p,
            "enable_thinking": self.enable_thinking, "batch_size": self.batch_size,
            "adapter": self.adapter, "seed": self.seed, "generation_kwargs": self.generation_kwargs,
        }

    # ----------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        responses: list[ModelResponse | None] = [None] * len(requests)
        entries = self._prompt_entries(requests, responses)
        if self.do_sample:
            torch.manual_seed(self.seed)
        by_returns: dict[int, list[_PromptEntry]] = defaultdict(list)
        for entry in entries:
            by_returns[len(entry.members) if self.do_sample else 1].append(entry)
        for n_return, group in sorted(by_returns.items()):
            group.sort(key=lambda e: e.n_tokens_estimate, reverse=True)
            for entry, result in self._answer(group, n_return):
                for rank, index in enumerate(entry.members):
                    request_id = requests[index].request_id
                    if isinstance(result, str):
                        responses[index] = ModelResponse(request_id, "", error=result)
                    else:
                        made = result[rank if self.do_sample else 0]
                        responses[index] = ModelResponse(
                            request_id, made.output, made.n_prompt_tokens, made.n_output_tokens,
                            made.latency_s, finish_reason=made.finish_reason,
                        )
        assert all(r is not None for r in responses), "a request was left unanswered"
        return responses  # type: ignore[return-value]

    def _prompt_entries(
        self, requests: Sequence[ModelRequest], responses: list[ModelResponse | None]
    ) -> list[_PromptEntry]:
        """Distinct prompts with their requests; a request that cannot be shown gets its error."""
        entries: dict[Prompt, _PromptEntry] = {}
        for index, request in enumerate(requests):
            try:
                if request.prompt not in entries:
                    entries[request.prompt] = self._entry(request.prompt)
            except Exception as error:  # a bad request, never a crash of the batch
                responses[index] = ModelResponse(request.request_id, "", error=_describe(error))
                continue
            entries[request.prompt].members.append(index)
        return list(entries.values())

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
    def _answer(
        self, entries: list[_PromptEntry], n_return: int
    ) -> Iterator[tuple[_PromptEntry, list[_Generation] | str]]:
        """Each entry with its ``n_return`` generations, or with an error message."""
        pending = deque(entries)
        while pending:
            per_batch = max(1, self.batch_size // n_return)
            chunk = [pending.popleft() for _ in range(min(per_batch, len(pending)))]
            try:
                results = self._generate_batch(chunk, n_return)
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
            if len(chunk) == 1:
                yield chunk[0], (f"out of memory with a single prompt: {failure}"
                                 if out_of_memory else failure)
            elif out_of_memory:
                self.batch_size = max(1, len(chunk) // 2) * n_return
                log.warning("CUDA out of memory at %d prompts x %d samples; batch_size now %d",
                            len(chunk), n_return, self.batch_size)
                pending.extendleft(reversed(chunk))
            else:  # find the prompt at fault by retrying each alone
                log.warning("batch of %d prompts failed (%s); retrying one by one",
                            len(chunk), failure)
                for entry in chunk:
                    yield from self._answer([entry], n_return)

    @torch.inference_mode()
    def _generate_batch(self, chunk: list[_PromptEntry], n_return: int) -> list[list[_Generation]]:
        images = [image for entry in chunk for image in entry.images]
        inputs = self.processor(
            text=[entry.text for entry in chunk],
            images=images or None,
            padding=True,
            padding_side="left",
            return_tensors="pt",
            **image_size_kwargs(self.min_pixels, self.max_pixels),
        ).to(self.device)
        n_prompt = inputs["attention_mask"].sum(dim=1).tolist()
        options: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_return_sequences": n_return,
            "pad_token_id": self._pad_id,
        }
        if self.do_sample:
            options.update(NEUTRAL_SAMPLING, temperature=self.temperature, top_p=self.top_p)
        options.update(self.generation_kwargs)
        if self.logits_processor_factory is not None:
            options["logits_processor"] = self.logits_processor_factory()
        started = time.perf_counter()
        sequences = self.model.generate(**inputs, **options)
        latency = time.perf_counter() - started
        new_tokens = sequences[:, inputs["input_ids"].shape[1]:].tolist()
        results = []
        for i in range(len(chunk)):
            generations = []
            for tokens in new_tokens[i * n_return:(i + 1) * n_return]:
                tokens = _until_stop(tokens, self._stop_ids)
                stopped = bool(tokens) and tokens[-1] in self._stop_ids
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                generations.append(_Generation(text, int(n_prompt[i]), len(tokens), latency,
                                               "stop" if stopped else "length"))
            results.append(generations)
        return results


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use 'auto' or a torch dtype name (bfloat16)")
    return resolved


def _merge_adapter(model: torch.nn.Module, adapter: str) -> torch.nn.Module:
    """Load a PEFT adapter onto ``model`` and fold it into the weights (plain model back)."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"adapter {adapter!r}: no adapter_config.json there")
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def _stop_token_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model has no end-of-sequence token configured")
    return ids


def _until_stop(tokens: list[int], stop_ids: list[int]) -> list[int]:
    """The generated tokens up to and including the first stop token (padding dropped)."""
    for position, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:position + 1]
    return tokens


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
