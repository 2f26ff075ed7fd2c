"""The vLLM backend: vLLM's async engine inside the inference actor, answers as they finish.

One ``VLLMBackend`` holds one engine (``AsyncLLM``: the scheduler and the model in a process
of their own, tensor parallel over ``tensor_parallel_size`` GPUs). Requests go to the engine
the moment they arrive and each comes back when it ends, so the engine's continuous batching
keeps its ``max_num_seqs`` slots busy: a request that ends frees its slot for the next one,
from this call or from the next call the inference stage has already submitted
(``crossmath.pipeline.engine_stage``). Nothing waits for a call's longest answer.

The protocol is the hf backend's (``crossmath.models.vllm_protocol`` maps it): the chat
template rendered by the same code with the same thinking switch, the same ``sampling`` modes
(``checkpoint`` refusing what it cannot honour), one seed per request from its identity, the
same image bounds, the adapter served through vLLM's LoRA support. What differs (no batch
invariance, unmerged adapters) is in docs/vllm.md.

The engine runs on an event loop of the backend's own (a thread), so the backend answers from
any thread or event loop: ``answers`` (async, as they finish) for the pipeline, ``generate``
(the ``Backend`` protocol, all at once) for everything else. A request the engine refuses (a
prompt longer than ``max_model_len``, ...) gets its ``error``; an engine that dies raises.

vLLM is optional (``pip install '.[vllm]'``): it is imported when the first engine is built.
The module itself imports neither vLLM nor torch: the driver reads the backend's ``contract``
from it before any model loads; torch and transformers are imported by the constructor, in
the inference actor.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from crossmath.models.base import ModelRequest, ModelResponse, Prompt
from crossmath.models.config import AUTO_DTYPES, sampling_mode_is_greedy
from crossmath.models.contract import BackendContract
from crossmath.models.hf import chat_prompt_text, decode_png
from crossmath.models.openai_backend import request_seed
from crossmath.models.vllm_protocol import (
    ADAPTER_ID,
    ADAPTER_NAME,
    VLLM_EXTRA,
    engine_arguments,
    image_bounds,
    sampling_fields,
)
from crossmath.models.weights import Checkpoint


@dataclass(frozen=True)
class Finished:
    """What the engine returns for one request, in the backend's terms."""

    text: str
    n_prompt_tokens: int
    n_output_tokens: int
    finish_reason: str | None


class Engine(Protocol):
    """What the backend needs of an engine: vLLM's, or a recording fake in tests."""

    async def answer(self, prompt: dict[str, Any], sampling: dict[str, Any], request_id: str,
                     adapter: str | None) -> Finished:
        """One request to its end: ``prompt`` is vLLM's prompt dict, ``sampling`` the
        ``SamplingParams`` arguments, ``adapter`` the LoRA folder every request carries."""
        ...

    def shutdown(self) -> None: ...


class VLLMEngine:
    """vLLM's ``AsyncLLM``, built from ``AsyncEngineArgs`` arguments."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        try:
            from vllm import SamplingParams
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.lora.request import LoRARequest
            from vllm.sampling_params import RequestOutputKind
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as error:
            raise ImportError(f"the vllm backend needs vLLM ({error}): {VLLM_EXTRA}") from error
        self._sampling_params, self._lora_request = SamplingParams, LoRARequest
        self._final_only = RequestOutputKind.FINAL_ONLY
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**arguments))

    async def answer(self, prompt: dict[str, Any], sampling: dict[str, Any], request_id: str,
                     adapter: str | None) -> Finished:
        params = self._sampling_params(**sampling, output_kind=self._final_only)
        lora = self._lora_request(ADAPTER_NAME, ADAPTER_ID, adapter) if adapter else None
        final = None
        async for output in self.engine.generate(prompt, params, request_id, lora_request=lora):
            final = output
        if final is None or not final.outputs:
            raise RuntimeError(f"vLLM returned no output for request {request_id}")
        completion = final.outputs[0]
        return Finished(completion.text, len(final.prompt_token_ids or ()),
                        len(completion.token_ids), completion.finish_reason)

    def shutdown(self) -> None:
        self.engine.shutdown()


class VLLMBackend:
    """A checkpoint served by vLLM's engine, answering with the hf backend's protocol."""

    contract = BackendContract(
        call_sequences="max_num_seqs", answer_tokens="max_new_tokens",
        image_pixels=("min_pixels", "max_pixels"), auto_dtype=True,
        # How many sequences share the engine's batch, over how many GPUs, in how much memory
        # (vLLM promises no batch invariance; docs/vllm.md says what that means for a rerun),
        # and where a model built on first use (model: {_target_: ...}) is kept.
        non_shaping=frozenset({"max_num_seqs", "tensor_parallel_size", "gpu_memory_utilization",
                               "cache_dir"}),
        weights=Checkpoint("model"), greedy=sampling_mode_is_greedy, streams_answers=True,
        requires=("vllm", VLLM_EXTRA))

    def __init__(
        self,
        model: str | Path,
        name: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        max_num_seqs: int = 256,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int = 1024,
        sampling: str = "greedy",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        enable_thinking: bool | None = None,
        adapter: str | Path | None = None,
        seed: int | None = 0,
        engine_args: dict[str, Any] | None = None,
        engine: Callable[[dict[str, Any]], Engine] = VLLMEngine,
    ) -> None:
        """
        Args:
            model: a checkpoint folder, or a hub id already in the local cache.
            name: recorded with every prediction; defaults to the folder's name.
            dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU, as the hf backend) or a name.
            tensor_parallel_size: GPUs the engine spreads the model over (give the actor as
                many: ``resources.infer_gpus``).
            max_num_seqs: sequences the engine decodes at once; the pipeline plans calls of
                this many requests.
            max_model_len: prompt plus answer, in tokens; None: the checkpoint's.
            gpu_memory_utilization: the share of GPU memory (on vLLM's CPU build: of RAM) the
                engine takes for weights and KV cache.
            min_pixels, max_pixels: image resize bounds; ``None`` keeps the checkpoint's.
            max_new_tokens, sampling, temperature, top_k, top_p, repetition_penalty,
                enable_thinking: as the hf backend's (``crossmath.models.hf.HFBackend``).
            adapter: a PEFT LoRA adapter folder, served by vLLM's LoRA support.
            seed: with the request id, each sampled request's seed; None sends none (then
                the engine's own randomness decides, and a rerun does not repeat answers).
            engine_args: more ``AsyncEngineArgs`` by vLLM's names (``enforce_eager``,
                ``max_num_batched_tokens``, ``kv_cache_memory_bytes``...).
            engine: builds the engine from its arguments (tests pass a recording fake).
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        from crossmath.models.sampling_modes import decoding_rule  # torch: here, in the actor

        self.model_path = str(model)
        self.name = name or Path(self.model_path).name
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        image_bounds(min_pixels, max_pixels)  # both or neither, checked before the engine starts
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        self.enable_thinking = enable_thinking
        self.adapter = str(adapter) if adapter else None
        self.seed = seed
        self.renderer = _chat_renderer(self.model_path)
        self.rule = decoding_rule(sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  repetition_penalty=repetition_penalty,
                                  checkpoint_config=_shipped_generation(self.model_path))
        self._stop_ids = _stop_token_ids(self.model_path, self.renderer)
        self.dtype = _resolved_dtype(dtype)
        self.engine_arguments = engine_arguments(
            model=self.model_path, dtype=self.dtype, tensor_parallel_size=tensor_parallel_size,
            max_num_seqs=max_num_seqs, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, seed=seed, min_pixels=min_pixels,
            max_pixels=max_pixels, adapter=self.adapter, extra=engine_args)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-backend",
                                        daemon=True)
        self._thread.start()
        try:
            self.engine = self._on_loop(_build(engine, self.engine_arguments)).result()
        except BaseException:
            self._stop_loop()
            raise

    def describe(self) -> dict[str, Any]:
        """The settings that shape the answers, for the run's record."""
        return {
            "name": self.name, "model": self.model_path, "engine": "vllm", "dtype": self.dtype,
            "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
            "max_new_tokens": self.max_new_tokens, "sampling": self.sampling,
            "decoding": self.rule.describe(), "stop_token_ids": self._stop_ids,
            "enable_thinking": self.enable_thinking, "adapter": self.adapter, "seed": self.seed,
            "engine_arguments": self.engine_arguments,
        }

    # ----------------------------------------------------------------------------------------
    async def answers(self, requests: Sequence[ModelRequest]) -> AsyncIterator[ModelResponse]:
        """Each request's response as soon as it ends (in the order they end), from any event
        loop; all of them are submitted to the engine at once."""
        pending = {asyncio.wrap_future(self._on_loop(self._answer(request)))
                   for request in requests}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    yield finished.result()
        finally:
            for future in pending:  # the caller stopped early: the engine need not go on
                future.cancel()

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        """One response per request, in order (the ``Backend`` protocol)."""
        futures = [self._on_loop(self._answer(request)) for request in requests]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Shut the engine down and stop the backend's event loop."""
        if self._thread.is_alive():
            self.engine.shutdown()
            self._stop_loop()

    # ----------------------------------------------------------------------------------------
    async def _answer(self, request: ModelRequest) -> ModelResponse:
        """One request, run on the backend's loop; a request the engine refuses gets its error,
        an engine that fails raises."""
        started = time.perf_counter()
        try:
            prompt, sampling = self._prompt(request), self._sampling(request)
        except ValueError as error:
            return ModelResponse(request.request_id, "", error=f"bad request: {error}")
        try:
            finished = await self.engine.answer(prompt, sampling, request.request_id,
                                                self.adapter)
        except (ValueError, TypeError) as error:  # vLLM's refusal of this request's input
            return ModelResponse(request.request_id, "", error=f"{type(error).__name__}: {error}",
                                 latency_s=time.perf_counter() - started)
        if finished.finish_reason not in ("stop", "length"):
            return ModelResponse(request.request_id, "", latency_s=time.perf_counter() - started,
                                 error=f"the engine ended the request: {finished.finish_reason}")
        return ModelResponse(request.request_id, finished.text, finished.n_prompt_tokens,
                             finished.n_output_tokens, time.perf_counter() - started,
                             finish_reason=finished.finish_reason)

    def _prompt(self, request: ModelRequest) -> dict[str, Any]:
        """vLLM's prompt: the chat-templated text and, where the prompt shows them, its images
        (the template's image placeholders, expanded by vLLM's processor)."""
        prompt: Prompt = request.prompt
        text = chat_prompt_text(self.renderer, prompt, self.enable_thinking)
        if not prompt.images:
            return {"prompt": text}
        return {"prompt": text,
                "multi_modal_data": {"image": [decode_png(png) for png in prompt.images]}}

    def _sampling(self, request: ModelRequest) -> dict[str, Any]:
        cap = self.max_new_tokens
        if request.max_new_tokens is not None:
            if request.max_new_tokens < 1:
                raise ValueError(f"max_new_tokens must be at least 1, got "
                                 f"{request.max_new_tokens}")
            cap = min(cap, request.max_new_tokens)
        seed = None
        if self.rule.is_sampled and self.seed is not None:
            seed = request_seed(self.seed, request.request_id)
        return sampling_fields(self.rule, cap, self._stop_ids, seed)

    def _on_loop(self, work: Awaitable[Any]) -> Future:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


async def _build(engine: Callable[[dict[str, Any]], Engine], arguments: dict[str, Any]) -> Engine:
    """The engine, built on the backend's loop (vLLM binds its output handler to it)."""
    return engine(arguments)


def _resolved_dtype(dtype: str) -> str:
    """``auto`` as the hf backend resolves it (the backend identity assumes the same)."""
    if dtype != "auto":
        return dtype
    import torch

    return AUTO_DTYPES["cuda" if torch.cuda.is_available() else "cpu"]


def _chat_renderer(model_path: str) -> Any:
    """What renders the chat template: the checkpoint's processor (image-only, as the hf backend
    loads it) for a VLM, its tokenizer for a text model."""
    from transformers import AutoTokenizer

    from crossmath.models.processor import load_processor

    try:
        return load_processor(model_path)
    except ValueError:  # no processor class for this model type: a text model
        return AutoTokenizer.from_pretrained(model_path)


def _shipped_generation(model_path: str) -> dict[str, Any]:
    """The checkpoint's generation config as a diff against transformers' defaults (what the
    hf backend's ``checkpoint`` mode reads); empty when it ships none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path).to_diff_dict()
    except OSError:
        return {}


def _stop_token_ids(model_path: str, renderer: Any) -> list[int]:
    """The generation config's EOS ids and the tokenizer's, as the hf backend stops."""
    from transformers import GenerationConfig

    from crossmath.models.checkpoint_loading import stop_token_ids

    try:
        generation = GenerationConfig.from_pretrained(model_path)
    except OSError:
        generation = GenerationConfig()
    return stop_token_ids(SimpleNamespace(generation_config=generation),
                          getattr(renderer, "tokenizer", renderer))
