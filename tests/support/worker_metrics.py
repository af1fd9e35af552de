"""A worker's /metrics page, as Prometheus scrapes it, for the tests that read its counters."""

from __future__ import annotations

import re
import urllib.request

from modfleet.settings import Settings


def scrape(settings: Settings) -> str:
    """The worker's /metrics text (Prometheus exposition format)."""
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str) -> float:
    """The value of sample ``name`` (with its labels, as exposed) in a scraped page."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))
