"""The benchmark's child processes: the faust passthrough, the Redis proxy, and what we read
from them (progress over HTTP, memory from /proc)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modfleet.bench.cores import Cores, affinity, pin
from modfleet.bench.redis_proxy import read_counters
from modfleet.errors import FatalError
from modfleet.settings import Settings
from modfleet.stack.dev import START_TIMEOUT_S, settings_env
from modfleet.stack.services import free_port, stop_process, wait_for_port


@dataclass(frozen=True)
class Child:
    proc: subprocess.Popen[bytes]
    log_path: Path
    base_url: str  # http://host:port of its web server
    cpus: tuple[int, ...] = ()  # the CPUs its threads may run on, once placed

    def placed(self, cores: Cores | None) -> Child:
        """Pinned to the measured cores when the benchmark splits them; with its CPUs read back."""
        if cores is not None:
            pin(self.proc.pid, cores.measured)
        return dataclasses.replace(self, cpus=tuple(sorted(affinity(self.proc.pid))))

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as response:
        data = json.loads(response.read())
    assert isinstance(data, dict)
    return data


def prometheus_totals(base_url: str) -> dict[str, float]:
    """Every sample of the worker's /metrics summed over its labels, by sample name."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=2) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_and_labels, _, value = line.rpartition(" ")
        name = name_and_labels.split("{", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def wait_until(
    progress: Callable[[], float],
    target: float,
    child: Child,
    timeout_s: float,
    what: str,
    every_s: float = 0.25,
) -> None:
    """Poll ``progress`` until it reaches ``target``.

    Each poll is an HTTP request the measured process answers; rendering /metrics costs the
    worker a few milliseconds, so a stage under measurement is polled once a second.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise FatalError(f"{what} exited with {child.proc.returncode}:\n{child.tail()}")
        with contextlib.suppress(OSError):
            if progress() >= target:
                return
        time.sleep(every_s)
    raise FatalError(f"{what} did not reach {target:.0f} within {timeout_s:.0f} s:\n{child.tail()}")


def wait_healthy(child: Child, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    def up() -> float:
        return 1.0 if get_json(f"{child.base_url}/health").get("status") == "ok" else 0.0

    wait_until(up, 1, child, timeout_s, what)


@contextlib.contextmanager
def faust_passthrough(
    settings: Settings, source: str, log: Path, cores: Cores | None = None
) -> Iterator[Child]:
    """The passthrough on ``settings`` (broker, group, decisions topic as its sink, batching,
    fetch wait, compression), passed as the MODFLEET_* environment a worker gets."""
    port = free_port()
    command = [sys.executable, "-m", "modfleet.bench.faust_passthrough", source, str(port)]
    with _child(command, log, {**os.environ, **settings_env(settings)}) as proc:
        child = Child(proc, log, f"http://127.0.0.1:{port}")
        wait_healthy(child, "the faust passthrough")
        yield child.placed(cores)


@dataclass(frozen=True)
class RedisProxy:
    port: int
    counters_path: Path
    pid: int  # its CPU is the benchmark's, not the worker's: reported apart

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def counters(self) -> dict[str, int]:
        return read_counters(self.counters_path)


@contextlib.contextmanager
def redis_proxy(upstream_port: int) -> Iterator[RedisProxy]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="modfleet-bench-proxy-") as tmp:
        counters, log = Path(tmp) / "counters", Path(tmp) / "proxy.log"
        counters.write_bytes(b"")
        command = [
            sys.executable, "-m", "modfleet.bench.redis_proxy",
            str(port), str(upstream_port), str(counters),
        ]  # fmt: skip
        with _child(command, log) as proc:
            wait_for_port(port, proc, "the Redis proxy", log, timeout_s=20)
            yield RedisProxy(port, counters, proc.pid)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise FatalError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def _child(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        stop_process(proc, timeout_s=20)
