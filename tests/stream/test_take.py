"""How many records wait behind a batch, from the consumer's high watermarks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modfleet.errors import FatalError
from modfleet.stream.take import behind, check_stream


def _event(partition: int, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=("posts", partition), offset=offset))


class _Consumer:
    def __init__(self, highwaters: dict[int, int | None]) -> None:
        self.highwaters = highwaters

    def highwater(self, tp: tuple[str, int]) -> int | None:
        return self.highwaters[tp[1]]


def test_counts_the_records_past_each_partitions_last_event() -> None:
    events = [_event(0, 10), _event(1, 3), _event(0, 11), _event(1, 4)]
    # Partition 0 holds offsets up to 19 (highwater 20): 8 past 11; partition 1, 5 past 4.
    assert behind(_Consumer({0: 20, 1: 10}))(events) == 8 + 5


def test_a_partition_read_to_its_end_or_not_yet_fetched_adds_nothing() -> None:
    events = [_event(0, 19), _event(1, 4), _event(2, 7)]
    assert behind(_Consumer({0: 20, 1: None, 2: 0}))(events) == 0
    assert behind(_Consumer({}))([]) == 0


def test_a_faust_without_the_stream_parts_batching_needs_is_refused_by_name() -> None:
    stream = SimpleNamespace(add_processor=None, channel=None, should_stop=False)
    with pytest.raises(FatalError, match="_enable_passive") as refused:
        check_stream(stream)
    assert "channel" not in str(refused.value)
