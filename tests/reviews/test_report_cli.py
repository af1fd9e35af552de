"""`modfleet reviews report` fails in one line, naming the broker, when it cannot read."""

from __future__ import annotations

from pathlib import Path

from cli_runs import with_broker_down


def test_report_with_the_broker_down_is_one_line_and_a_failure(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    last, port = with_broker_down("reviews", "report", "--idle", "1", "--json", str(out))
    assert last.startswith("modfleet: cannot read from the broker at 127.0.0.1:"), last
    assert str(port) in last
    assert not out.exists(), "no report without the data"
