"""The benchmark's parts that need no running fleet: RESP counting, the corpus, the report."""

from __future__ import annotations

from modfleet.bench import corpus
from modfleet.bench.redis_proxy import _command_name, _Stream
from modfleet.bench.report import BenchResult, Latency, RedisTrips, Soak, Stage
from modfleet.ingest.decode import Post, Record, decode

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


def _result(soak: bool) -> BenchResult:
    result = BenchResult(
        {"posts": 1000, "batch_max": 256, "batch_within_s": 0.05, "partitions": 12},
        {"cpus": 2, "cpu_model": "test", "load_before": "0.1/0.1", "load_after": "0.2/0.1"},
    )
    for key, rate in {"a": 40_000, "b": 6000, "c": 5000, "d": 3000, "e": 20_000}.items():
        result.stages[key] = Stage(1000, 1000 / rate, rate)
    result.redis["c"] = RedisTrips(4, 6, 2, 6, 4)
    result.redis["d"] = RedisTrips(4, 10, 2, 1000, 4)
    result.latency["worker"] = Latency(1500, 12, 100, 100, 40, 90, 95)
    if soak:
        samples = [(0.0, 100_000), (600.0, 105_000)]
        lat = Latency(1500, 600, 900_000, 900_000, 45, 95, 120)
        result.soak = Soak(10, 900_000, 100_000, 105_000, samples, lat)
    return result


def test_goals_ratios_and_json() -> None:
    result = _result(soak=True)
    ratios = result.ratios()
    assert ratios["c_over_b"] == 5000 / 6000
    assert ratios["floor_b_e"] == 1 / (1 / 6000 + 1 / 20_000)
    assert result.redis["c"].per_batch == 1.0  # upkeep (connection set-up) is not a batch's
    assert ratios["redis_round_trips_per_batch"] == 2.0
    assert [g.verdict for g in result.goals()] == ["PASS", "MISS", "PASS", "PASS"]
    data = result.to_json()
    assert data["soak"]["growth_pct"] == 5.0
    assert {g["verdict"] for g in data["goals"]} == {"PASS", "MISS"}
    table = result.table()
    assert "(d) modfleet worker, 0% hits" in table
    assert "p99    90 ms" in table
    assert "soak: 900,000 posts at 1,500/s, p50 45 ms" in table


def test_a_run_without_soak_says_so() -> None:
    goals = _result(soak=False).goals()
    assert goals[-1].passed is None
    assert "--soak-minutes" in goals[-1].measured
