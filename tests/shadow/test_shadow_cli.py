"""`modfleet shadow report` fails in one line, naming the broker, when it cannot read."""

from __future__ import annotations

from cli_runs import with_broker_down


def test_shadow_report_with_the_broker_down_is_one_line_and_a_failure() -> None:
    last, port = with_broker_down("shadow", "report", "--idle", "1")
    assert last.startswith("modfleet: cannot read from the broker at 127.0.0.1:"), last
    assert str(port) in last
