"""The packs a worker enforces: one file, or a folder of them (per tenant, live and shadow).

In a folder, each ``*.yaml`` is a pack. A live pack with ``tenants: [...]`` governs those
tenants and no others; exactly one live pack without tenants (the default) governs everyone
else, and a set without one is refused at load, so that no tenant is ever left without a pack
or handed one meant for someone else. Shadow packs (``mode: shadow``) are evaluated beside the
live one for their tenants (or for all) and never enforced. A set is loaded whole or not at
all, so a bad edit never half-applies.

A pack is identified by its content as well as its name: two packs with the same
``id@version`` but a different digest (:attr:`Policy.digest`) are refused, naming both files,
because decisions and audits name packs by ``id@version``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modfleet.errors import FatalError
from modfleet.policy.load import PolicyInvalid, Problem, load_policy
from modfleet.policy.model import Policy

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PolicySet:
    default: Policy
    by_tenant: Mapping[str, Policy] = field(default_factory=dict)
    shadows: tuple[Policy, ...] = ()
    fingerprint: str = ""

    @classmethod
    def single(cls, policy: Policy) -> PolicySet:
        if policy.tenants:
            # It would govern every tenant: a pack that lists tenants never governs others.
            raise FatalError(
                f"policy {policy.label} lists tenants {policy.tenants}, so it cannot be the only "
                "pack: load it from a folder with a default pack (one without tenants)"
            )
        return cls(default=policy)

    def live_for(self, tenant: str) -> Policy:
        return self.by_tenant.get(tenant, self.default)

    def shadows_for(self, tenant: str) -> tuple[Policy, ...]:
        if not self.shadows:  # the usual case, asked once a post
            return ()
        return tuple(s for s in self.shadows if not s.tenants or tenant in s.tenants)

    def all(self) -> tuple[Policy, ...]:
        """Every pack, live and shadow, each once."""
        packs = [self.default, *self.by_tenant.values(), *self.shadows]
        return tuple({id(p): p for p in packs}.values())

    def describe(self) -> str:
        live = [self.default, *{id(p): p for p in self.by_tenant.values()}.values()]
        names = [p.label for p in live]
        names += [f"{p.label} (shadow)" for p in self.shadows]
        return ", ".join(names)


def pack_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    return [path]


def fingerprint(path: Path) -> str:
    """Changes whenever a pack file is added, removed or edited (ConfigMap swaps included)."""
    digest = hashlib.sha256()
    for file in pack_files(path):
        digest.update(file.name.encode())
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"\0unreadable")
    return digest.hexdigest()


def load_policy_set(path: Path) -> PolicySet:
    """Every pack under ``path``; PolicyInvalid lists every problem of every file."""
    digest = fingerprint(path)  # before reading: a later edit then shows as a change
    files = pack_files(path)
    problems: list[Problem] = []
    packs: list[tuple[Path, Policy]] = []
    for file in files:
        try:
            packs.append((file, load_policy(file)))
        except PolicyInvalid as exc:
            problems.extend(exc.problems)
    if not files:
        problems.append(Problem(str(path), 1, 1, "(folder)", "no policy pack (*.yaml) found"))
    if not problems:
        problems = identity_conflicts(packs) + arrangement_problems(packs)
    if problems:
        raise PolicyInvalid(path, problems)
    return _arrange(packs, digest)


def identity_conflicts(packs: list[tuple[Path, Policy]]) -> list[Problem]:
    """Packs that share ``id@version`` but not content: one name would stand for two rules."""
    problems: list[Problem] = []
    first: dict[tuple[str, str], tuple[Path, Policy]] = {}
    for file, pack in packs:
        name = (pack.id, pack.version)
        if name not in first:
            first[name] = (file, pack)
            continue
        other_file, other = first[name]
        if other.digest != pack.digest:
            problems.append(
                Problem(str(file), _line_of(file, "version"), 1, "version",
                        f"{pack.id}@{pack.version} is also defined by {other_file} with different "
                        f"content (digest {pack.digest[:12]} here, {other.digest[:12]} there); "
                        "give one of them a new version")
            )  # fmt: skip
    return problems


def _line_of(file: Path, key: str) -> int:
    """The line of a top-level ``key:``, so that an editor jumps to it (1 when not found)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 1
    return next((i for i, line in enumerate(lines, 1) if line.startswith(f"{key}:")), 1)


def arrangement_problems(packs: list[tuple[Path, Policy]]) -> list[Problem]:
    """Tenant routing that is not explicit: no default pack, two, or a tenant claimed twice."""
    live = [(f, p) for f, p in packs if p.mode == "live"]
    problems: list[Problem] = []
    defaults = [f for f, p in live if not p.tenants]
    if len(defaults) != 1:
        where = ", ".join(f.name for f in defaults) or "none"
        scoped = ", ".join(f.name for f, p in live if p.tenants)
        hint = (
            f"; {scoped} govern(s) only the tenants listed, so every other tenant would have no "
            "pack: add a live pack without tenants, or remove tenants: from one"
            if scoped and not defaults
            else ""
        )
        problems.append(
            Problem(str(live[0][0].parent) if live else "(packs)", 1, 1, "tenants",
                    f"exactly one live pack must have no tenants (the default); found {where}"
                    f"{hint}")
        )  # fmt: skip
    claimed: dict[str, Path] = {}
    for file, pack in live:
        for tenant in pack.tenants:
            if tenant in claimed:
                problems.append(
                    Problem(str(file), 1, 1, "tenants",
                            f"tenant {tenant!r} is also claimed by {claimed[tenant].name}")
                )  # fmt: skip
            claimed.setdefault(tenant, file)
    return problems


def _arrange(packs: list[tuple[Path, Policy]], digest: str) -> PolicySet:
    live = [p for _, p in packs if p.mode == "live"]
    default = next(p for p in live if not p.tenants)
    by_tenant = {t: p for p in live for t in p.tenants}
    shadows = tuple(p for _, p in packs if p.mode == "shadow")
    return PolicySet(default, by_tenant, shadows, digest)
