"""The benchmark's parts that need no running fleet: RESP counting, the corpus, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from modfleet.bench import corpus
from modfleet.bench.cpu import Cpu
from modfleet.bench.redis_proxy import _command_name, _Stream
from modfleet.bench.report import BenchResult, Latency, RedisTrips, Soak, Stage
from modfleet.bench.runner import _reading_html
from modfleet.bench.windows import Window
from modfleet.errors import ModfleetError
from modfleet.ingest.decode import Post, Record, decode
from modfleet.normalise import normalise
from modfleet.policy import load_policy
from modfleet.settings import Settings

_REQUESTS = (
    b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$8\r\nredis-py\r\n"
    b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n"
    # A value of CR LF CR LF: bulk strings are read by length, never by line.
    b"*6\r\n$4\r\nEVAL\r\n$3\r\nlua\r\n$1\r\n1\r\n$1\r\nk\r\n$4\r\n\r\n\r\n\r\n$2\r\n60\r\n"
)
# +OK, an MGET answer (a value and a nil), an error, a nil array, a RESP3 map, an integer.
_REPLIES = b"+OK\r\n*2\r\n$2\r\nab\r\n$-1\r\n-ERR x\r\n*-1\r\n%1\r\n+a\r\n:1\r\n:1\r\n"


def test_resp_values_are_counted_however_the_bytes_are_split() -> None:
    for data, count in ((_REQUESTS, 3), (_REPLIES, 6)):
        for cut in range(len(data)):
            stream = _Stream()
            assert stream.feed(data[:cut]) + stream.feed(data[cut:]) == count


def test_a_round_trip_is_named_by_its_first_command() -> None:
    stream = _Stream()
    stream.feed(_REQUESTS)
    assert _command_name(stream.first) == b"CLIENT"
    stream.feed(b"*2\r\n$4\r\nmget\r\n$1\r\na\r\n")
    assert _command_name(stream.first) == b"MGET"


def test_the_corpus_is_unique_valid_posts() -> None:
    texts = corpus.texts(2000)
    assert len(set(texts)) == len(texts)
    assert not set(texts) & set(corpus.texts(2000, run="other-"))
    values = corpus.posts(texts, "p")
    endless = corpus.endless("q")
    values += [next(endless) for _ in range(100)]
    posts = [decode(Record("posts", 0, i, None, None, v)) for i, v in enumerate(values)]
    assert all(isinstance(p, Post) for p in posts)
    assert len({p.post_id for p in posts if isinstance(p, Post)}) == len(values)


def test_the_html_corpus_reads_as_the_plain_one_does_and_its_pack_reads_html(
    tmp_path: Path,
) -> None:
    # --html measures the same posts as a platform that writes HTML stores them.
    plain, written = corpus.texts(50, run="h"), corpus.texts(50, run="h", as_html=True)
    for text, html in zip(plain, written, strict=True):
        read = normalise(html, 20_000, text_format="html").text
        assert (
            read == normalise(f"{text} @bench (https://example.social/@bench) & friends", 9**9).text
        )
    endless = corpus.endless("h", as_html=True)
    assert decode(Record("posts", 0, 0, None, None, next(endless))).text.startswith("<p>")
    settings = _reading_html(Settings(), tmp_path)
    pack = load_policy(settings.policy_path)
    assert pack.text.format == "html"
    assert pack.gate is None  # its golden set lies beside the original
    with pytest.raises(ModfleetError, match="one pack file"):
        _reading_html(Settings(policy_path=tmp_path), tmp_path)


def _result(soak: bool) -> BenchResult:
    result = BenchResult(
        {"posts": 1000, "batch_max": 256, "batch_within_s": 0.05, "partitions": 12},
        {"cpus": 2, "cpu_model": "test", "load_before": "0.1/0.1", "load_after": "0.2/0.1"},
    )
    for key, rate in {"a": 40_000, "b": 6000, "c": 5000, "d": 3000, "e": 20_000}.items():
        result.stages[key] = Stage(1000, 1000 / rate, rate)
    result.redis["c"] = RedisTrips(4, 6, 2, 6, 4)
    result.redis["d"] = RedisTrips(4, 10, 2, 1000, 4)
    result.stages["b"].cpu = Cpu(999, 0.16, {"stage": 95.0, "broker": 40.0})
    result.stages["c"].cpu = Cpu(999, 0.2, {"stage": 150.5, "broker": 42.0, "redis_proxy": 20.0})
    result.latency["worker"] = Latency(1500, 12, 100, 100, 40, 90, 95)
    result.latency["faust_passthrough"] = Latency(1500, 12, 100, 100, 40, 60, 70)
    if soak:
        samples = [(0.0, 100_000), (600.0, 105_000)]
        cpu = {"stage": 97.0, "broker": 12.0, "rest": 95.0}
        windows = [Window(0, 45_000, 40, 80, 90, cpu), Window(30, 45_000, 900, 3000, 3100)]
        lat = Latency(1500, 600, 900_000, 900_000, 45, 95, 120, 30, windows, cpu)
        result.soak = Soak(10, 900_000, 100_000, 105_000, samples, lat)
        faust = Latency(1500, 600, 900_000, 900_000, 30, 50, 60, 30, windows[:1])
        result.soak_faust = Soak(10, 900_000, 50_000, 50_000, samples, faust)
    return result


def test_goals_ratios_and_json() -> None:
    result = _result(soak=True)
    result.config["external_broker"] = True
    ratios = result.ratios()
    assert ratios["c_over_b"] == 5000 / 6000
    assert ratios["floor_b_e"] == 1 / (1 / 6000 + 1 / 20_000)
    assert result.redis["c"].per_batch == 1.0  # upkeep (connection set-up) is not a batch's
    assert ratios["redis_round_trips_per_batch"] == 2.0
    # p50 40 vs 40 ms passes 1.2; soak p99 95 vs 50 ms misses 1.5
    assert [g.verdict for g in result.goals()] == ["PASS", "MISS", "PASS", "PASS", "PASS", "MISS"]
    assert ratios["soak_p99_worker_over_faust"] == 95 / 50
    data = result.to_json()
    assert data["soak"]["growth_pct"] == 5.0
    assert data["our_cost_us_per_post"] == 55.5
    assert data["stages"]["c"]["cpu"]["us_per_post"]["stage"] == 150.5
    assert data["soak"]["latency"]["windows"][1]["p99_ms"] == 3000
    assert {g["verdict"] for g in data["goals"]} == {"PASS", "MISS"}
    table = result.table()
    assert "(d) modfleet worker, 0% hits" in table
    assert "p99    90 ms" in table
    assert "soak: 900,000 posts at 1,500/s, p50 45 ms" in table
    assert "our cost: (c) worker 150.5 - (b) faust passthrough 95.0 = 55.5 CPU µs/post" in table
    assert "redis proxy 20.0" in table


def test_the_table_shows_each_stages_cpu_next_to_its_rate() -> None:
    lines = _result(soak=False).table().splitlines()
    (b,) = (line for line in lines if line.startswith("(b)"))
    assert b.split()[-3:] == ["95.0", "faust", "40.0"]
    (d,) = (line for line in lines if line.startswith("(d)"))
    assert d.split()[-2:] == ["-", "-"]  # not measured: said so, not zero


def test_soak_windows_are_side_by_side_and_keep_their_place_in_time() -> None:
    table = _result(soak=True).table()
    soak = table[table.index("soak (30 s windows") :].splitlines()
    head = ["p50", "p99", "max", "cpu%", "brk%", "rest%"]
    assert soak[1].split() == ["sent", "from", "|", "worker", *head, "|", "faust", *head]
    # rest%: how busy the broker's side of the machine was (95%: starved, whatever the broker's
    # own share), next to the process's and the broker's shares.
    worker_0 = ["45,000", "40", "80", "90", "97", "12", "95"]
    assert soak[2].split() == ["0s", "|", *worker_0, "|", *worker_0]
    # The faust run has no second window: an empty cell, not the worker's numbers shifted.
    assert soak[3].split() == ["30s", "|", "45,000", "900", "3000", "3100", "|"]
    assert soak[3].index("|", 10) == soak[2].index("|", 10)  # its cell as wide as a full one
    assert soak[4].split()[:9] == ["overall", "|", "900,000", "45", "95", "120", "97", "12", "95"]


def test_a_soak_on_the_embedded_broker_is_reported_but_not_judged() -> None:
    # Its fetches slow down as its partitions fill, whatever reads them: the ratio is there,
    # neither a pass nor a miss, and the reader is told what would judge it.
    result = _result(soak=True)
    soak_p99 = result.goals()[-1]
    assert soak_p99.passed is None
    assert soak_p99.measured == f"{95 / 50:.2f} (embedded broker)"
    assert "--external-broker" in soak_p99.note
    table = result.table()
    assert f"{soak_p99.name}: not judged: the embedded broker's fetches slow down" in table
    assert result.to_json()["ratios"]["soak_p99_worker_over_faust"] == 95 / 50
    assert [g.verdict for g in result.goals()][:-1] == ["PASS", "MISS", "PASS", "PASS", "PASS"]


def test_a_run_without_soak_says_so() -> None:
    goals = _result(soak=False).goals()
    rss, soak_p99 = goals[3], goals[-1]
    assert rss.passed is None
    assert "--soak-minutes" in rss.measured
    assert soak_p99.passed is None
    assert "--soak-minutes" in soak_p99.measured
    assert "soak" not in _result(soak=False).table().split("end-to-end latency")[1]


def test_the_latency_runs_pace_says_where_it_came_from() -> None:
    result = _result(soak=False)
    assert "at 1,500 posts/s (50% of d)" in result.table()
    result.config["pace"] = 1500.0
    assert "at 1,500 posts/s (set by --pace)" in result.table()
