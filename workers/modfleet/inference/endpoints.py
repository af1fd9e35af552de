"""Client-side balancing over the replicas behind the inference URLs.

Pooled keep-alive connections to one virtual IP stay pinned to the replica they first reached,
so a replica added under load would idle. Here a URL whose host is a DNS name (a Kubernetes
headless Service) stands for every address the name resolves to: one endpoint per address,
resolved again every few seconds, so a new replica gets requests as soon as it is ready and a
removed one stops getting them. Each request goes to the available endpoint with the fewest of
this worker's requests outstanding, which also steers work away from a slow replica; ties go in
turn. A URL with an IP literal, an https URL (its certificate names the host) or a name that
does not resolve is one endpoint. Every endpoint has its own circuit breaker.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from modfleet.errors import RecoverableError
from modfleet.inference.breaker import CircuitBreaker

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
# CoreDNS answers for a headless Service with a 5 s TTL: asking more often finds nothing new.
RESOLVE_INTERVAL_S = 5.0


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses of a name, IPv4 if it has any (a dual-stack pod has one of each)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    by_family: dict[int, set[str]] = {socket.AF_INET: set(), socket.AF_INET6: set()}
    for family, _, _, _, sockaddr in infos:
        if family in by_family:
            by_family[family].add(str(sockaddr[0]))
    return sorted(by_family[socket.AF_INET] or by_family[socket.AF_INET6])


@dataclass(eq=False)
class Endpoint:
    """One server: the base URL requests go to, and the Host header the URL's name gave."""

    url: str
    breaker: CircuitBreaker
    headers: dict[str, str] = field(default_factory=dict)
    outstanding: int = 0


class Endpoints:
    """The endpoints of a list of base URLs, and the choice of one per request."""

    def __init__(
        self,
        urls: Sequence[str],
        failures: int,
        reset_s: float,
        resolver: Resolver | None = None,
        interval_s: float = RESOLVE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures, self._reset_s = failures, reset_s
        self._resolver = resolver
        self._interval_s = interval_s
        self._clock = clock
        self._next_resolve = float("-inf")
        self._turn = 0
        self._by_url = {url.rstrip("/"): [self._new(url.rstrip("/"))] for url in urls}

    @property
    def all(self) -> list[Endpoint]:
        return [e for endpoints in self._by_url.values() for e in endpoints]

    async def refresh(self) -> None:
        """Resolve the URLs' names again when the interval has passed (no-op otherwise)."""
        if self._resolver is None or self._clock() < self._next_resolve:
            return
        self._next_resolve = self._clock() + self._interval_s  # concurrent callers skip
        for url in list(self._by_url):
            parsed = httpx.URL(url)
            if parsed.scheme != "http" or _is_address(parsed.host):
                continue
            try:
                addresses = await self._resolver(parsed.host, parsed.port or 80)
            except OSError as exc:
                log.warning("cannot resolve %s (%s); keeping its endpoints", parsed.host, exc)
                continue
            if addresses:
                self._by_url[url] = self._update(url, parsed, addresses)

    def pick(self) -> Endpoint:
        """The available endpoint with the fewest outstanding requests; count it outstanding."""
        candidates = [e for e in self.all if e.breaker.available()]
        if not candidates:
            raise RecoverableError(f"all {len(self.all)} inference servers are failing")
        least = min(e.outstanding for e in candidates)
        ties = [e for e in candidates if e.outstanding == least]
        chosen = ties[self._turn % len(ties)]
        self._turn += 1
        chosen.breaker.acquire()
        chosen.outstanding += 1
        return chosen

    @staticmethod
    def done(endpoint: Endpoint) -> None:
        endpoint.outstanding -= 1

    def _new(self, url: str, headers: dict[str, str] | None = None) -> Endpoint:
        breaker = CircuitBreaker(url, self._failures, self._reset_s)
        return Endpoint(url, breaker, headers or {})

    def _update(self, url: str, parsed: httpx.URL, addresses: list[str]) -> list[Endpoint]:
        """Endpoints for the addresses; one still listed keeps its breaker and count."""
        known = {e.url: e for e in self._by_url[url]}
        host = parsed.netloc.decode("ascii")
        endpoints = []
        for address in addresses:
            target = str(parsed.copy_with(host=address)).rstrip("/")
            endpoints.append(known.get(target) or self._new(target, {"Host": host}))
        return endpoints


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
