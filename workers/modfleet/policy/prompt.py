"""A pack as the policy prompt a safety LLM reads (ROOST's gpt-oss-safeguard layout)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modfleet.policy.model import Category, Policy


def policy_prompt(policy: Policy) -> str:
    """Byte-identical for the same pack (no dates, no set ordering), so that serving stacks can
    cache it as a prompt prefix."""
    lines = [f"# {policy.title}", "", f"Policy `{policy.id}`, version {policy.version}.", ""]
    lines += [policy.description, ""]
    for name, category in policy.categories.items():
        lines += _category(name, category)
    if policy.text.glossary:  # absent when empty: packs without one keep their prompt and digest
        lines += ["## Glossary", "", "Slang and algospeak posts use, and what each means:", ""]
        lines += [f"- **{term}**: {meaning}" for term, meaning in policy.text.glossary.items()]
    return "\n".join(lines).rstrip("\n") + "\n"


def _category(name: str, category: Category) -> list[str]:
    lines = [f"## {category.title} (`{name}`)", "", "### Definition", "", category.definition, ""]
    if category.key_terms:
        lines += ["### Key Terms", ""]
        lines += [f"- **{term}**: {meaning}" for term, meaning in category.key_terms.items()]
        lines.append("")
    lines += ["### VIOLATES", ""]
    lines += [f"- {item}" for item in category.violates]
    lines += ["", "### DOES NOT VIOLATE", ""]
    lines += [f"- {item}" for item in category.does_not_violate]
    lines += ["", "### Examples", ""]
    for example in category.examples:
        verdict = "VIOLATES" if example.violates else "DOES NOT VIOLATE"
        note = f". {example.note}" if example.note else ""
        # JSON quoting keeps a multi-line example on one line and its quotes unambiguous.
        lines.append(f"- {json.dumps(example.text, ensure_ascii=False)}: {verdict}{note}")
    lines.append("")
    return lines
