"""What one tenant's posts under one pack share, kept apart from every other tenant's.

A pack may govern many tenants (the default pack governs every tenant without one of its own),
but a verdict computed for one tenant's post is never served to another's, nor a model server's
prefix-cache blocks shared between them: either would tell a tenant, by ``from_cache`` or by
speed, what another posted. So the cache key's head and the pack a text is asked under (whose
audience salts the prefix cache, ``pack_salt``) are per (pack, tenant). Both are worked out
once, not once a post, and the memos are bounded: tenants are the posters' to name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from modfleet.cache import key_head
from modfleet.ingest.decode import Post
from modfleet.policy import Policy

# Distinct tenants remembered per memo before it starts again; a fleet's real tenants are far
# fewer, a flood of made-up ones costs a recomputation each, never memory.
TENANTS_KEPT = 4096


def tenant_head(heads: dict[str, str], policy: Policy, scope: str, tenant: str) -> str:
    """The cache-key head of ``tenant``'s posts under ``policy``, kept in ``heads``."""
    if len(heads) >= TENANTS_KEPT:
        heads.clear()
    head = heads[tenant] = key_head(policy, scope, tenant)
    return head


class Asked(Protocol):
    """A post on its way to its pack's model."""

    @property
    def post(self) -> Post: ...

    @property
    def policy(self) -> Policy: ...


def by_audience(
    jobs: Mapping[str, Asked], found: Mapping[str, object], apart: Callable[[Policy], bool]
) -> list[tuple[Policy, str | None, list[str]]]:
    """The keys of ``jobs`` not ``found``, grouped by policy (by identity: packs hold dicts, so
    they do not hash) and, where ``apart`` says its backend shares state between posts (a prefix
    cache), by tenant: each such group is asked under its tenant's view of the pack."""
    groups: dict[tuple[int, str | None], tuple[Policy, str | None, list[str]]] = {}
    for key, item in jobs.items():
        if key not in found:
            p = item.policy
            tenant = item.post.tenant if apart(p) else None
            groups.setdefault((id(p), tenant), (p, tenant, []))[2].append(key)
    return list(groups.values())


class Audiences:
    """``policy`` as one tenant's posts are asked under: the same pack, its audience that one
    tenant, so that a model server salts its prefix cache per tenant."""

    def __init__(self) -> None:
        self._views: dict[tuple[int, str], tuple[Policy, Policy]] = {}

    def of(self, policy: Policy, tenant: str) -> Policy:
        found = self._views.get((id(policy), tenant))
        if found is None or found[0] is not policy:  # by identity: a reloaded pack is another
            if len(self._views) >= TENANTS_KEPT:
                self._views.clear()
            view = policy.model_copy(update={"tenants": [tenant]})
            found = self._views[(id(policy), tenant)] = (policy, view)
        return found[1]
