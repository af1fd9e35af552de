"""``modfleet shadow report``: shadow decisions joined with the live decision of the same post."""

from __future__ import annotations

from typing import Any

from modfleet.shadow.report import compare, render


def decision(
    tenant: str | None, post: str, action: str, labels: list[str], pack: str = "default@1.0.0"
) -> dict[str, Any]:
    policy_id, version = pack.split("@")
    out: dict[str, Any] = {
        "post_id": post,
        "action": action,
        "labels": labels,
        "policy_id": policy_id,
        "policy_version": version,
    }
    if tenant is not None:
        out["tenant"] = tenant
    return out


def test_a_post_id_two_tenants_share_is_compared_within_its_tenant() -> None:
    # post_id is unique only within its tenant: acme's 1001 and globex's 1001 are two posts.
    live = [
        decision("acme", "1001", "remove", ["hate"]),
        decision("globex", "1001", "allow", []),
    ]
    shadow = [decision("acme", "1001", "allow", [], pack="candidate@2.0.0")]
    [c] = compare(live, shadow)
    assert (c.compared, c.agreed) == (1, 0)
    assert dict(c.matrix) == {("remove", "allow"): 1}
    report = render([c], 5)
    assert "agree               0 (0.0%)" in report
    assert "acme/1001: live remove ['hate'] / shadow allow []" in report


def test_the_same_post_id_in_two_tenants_counts_twice() -> None:
    live = [decision("acme", "7", "allow", []), decision("globex", "7", "remove", ["spam"])]
    shadow = [
        decision("acme", "7", "allow", [], pack="candidate@2.0.0"),
        decision("globex", "7", "allow", [], pack="candidate@2.0.0"),
        decision("globex", "7", "allow", [], pack="candidate@2.0.0"),  # redelivered
    ]
    [c] = compare(live, shadow)
    assert (c.compared, c.agreed) == (2, 1)
    assert [(d.tenant, d.post_id) for d in c.differences] == [("globex", "7")]


def test_decisions_of_older_workers_without_a_tenant_join_each_other_only() -> None:
    live = [decision(None, "1", "remove", ["hate"]), decision("acme", "2", "allow", [])]
    shadow = [
        decision(None, "1", "remove", ["hate"], pack="candidate@2.0.0"),
        decision(None, "2", "remove", ["hate"], pack="candidate@2.0.0"),  # no tenant: not acme's
    ]
    [c] = compare(live, shadow)
    assert (c.compared, c.agreed) == (1, 1)
