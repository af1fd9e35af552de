"""The model card, MODEL_CARD.md, rendered from card.json so the two never disagree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modfleet.model.sources import SHARED

_GAPS = """\
- Wording, not intent: the heads learn which words and character sequences go with each
  category. Implicit or coded hate, sarcasm, and threats phrased politely are where it is weakest;
  that is what the LLM tier is for, and the cascade sends a post there when any category is
  uncertain.
- violence and sexual rest in large part on the project's own functional set (the share per
  head is listed under Data): written cases, not a sample of real posts. Their held-out
  figures include unseen templates of the same functionalities, easier than live traffic.
- self_harm is trained on r/suicidewatch (disclosure, weakly labelled by subreddit): it finds
  people talking about ending their lives better than promotion or methods.
- spam is 2000s-2015 SMS and YouTube spam: modern crypto and phishing wording rests on the
  functional set.
- Harassment's positives are partly proxies (HateXplain "offensive"): untargeted profanity scores
  higher than it should; the default pack's thresholds are set against that.
- Threats without a violent verb ("you are dead tonight") score low: the violence head knows
  the verbs of its few hundred examples.
- The evasion figures use the same kinds of obfuscation as the training copies (on other texts).
- English only."""


def render_card(card: Mapping[str, Any]) -> str:
    lines = [
        f"# Model card: {card['id']}",
        "",
        "The embedded CPU model of modfleet: hashed word 1-2-grams and character 3-5-grams of "
        "a folded text (look-alike letters, l33t and spacing undone) and one logistic head per "
        "policy category. No vocabulary, no pickle: `weights.npz` and `card.json`. Rebuilt by "
        "`modfleet model train` (see README, *Embedded model*).",
        "",
        f"Categories (model labels `{card['labels'][0]}` ...): {', '.join(card['categories'])}. "
        f"Training: {_training(card['training'])}.",
        "",
        "## Held-out metrics",
        "",
        "| category | test positives | test negatives | ROC-AUC | avg precision | F1 at 0.5 "
        "| best F1 (threshold) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, m in card["metrics"].items():
        t = m["test"]
        lines.append(
            f"| {name} | {t['positives']} | {t['negatives']} | {_n(t, 'roc_auc')} "
            f"| {_n(t, 'average_precision')} | {_n(t, 'f1_at_0.5')} "
            f"| {_n(t, 'best_f1')} ({_n(t, 'best_f1_threshold')}) |"
        )
    lines += ["", "## Independent sets (never trained on)", ""]
    lines += _independent(card.get("independent", {}))
    lines += ["", "## Evasion: recall on obfuscated held-out positives", ""]
    lines += _evasion(card.get("evasion", {}))
    lines += ["", "## Data", "", "| source | licence |", "|---|---|"]
    lines += [f"| {name} | {licence} |" for name, licence in card["sources"].items()]
    lines += [
        "",
        "Training rows per head and source (positives / negatives; a fifth of them are "
        "obfuscated copies of the others):",
        "",
    ]
    for name, m in card["metrics"].items():
        parts = [f"{s} {c['positives']}/{c['negatives']}" for s, c in m["sources"].items()]
        lines.append(f"- **{name}** ({_own_share(m['sources'])}): {'; '.join(parts)}")
    lines += ["", "## Speed", "", _speed(card.get("speed", {})), "", "## Known gaps", "", _GAPS]
    return "\n".join(lines) + "\n"


def _own_share(sources: Mapping[str, Any]) -> str:
    # Files passed with --data are the project's own; the shared sets are read by name.
    positives = sum(c["positives"] for c in sources.values())
    own = sum(c["positives"] for s, c in sources.items() if s not in SHARED)
    return f"{own / positives:.0%} of positives from the project's own data" if positives else "-"


def _training(t: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in t.items())


def _independent(checks: Mapping[str, Any]) -> list[str]:
    if not checks:
        return ["Not measured (trained without the shared sets)."]
    lines = [
        "| set | licence | label | score | ROC-AUC | F1 at 0.5 | best F1 |",
        "|---|---|---|---|--:|--:|--:|",
    ]
    for name, m in checks.items():
        lines.append(
            f"| {name} | {m['licence']} | {m['label']} | {m['score']} | {_n(m, 'roc_auc')} "
            f"| {_n(m, 'f1_at_0.5')} | {_n(m, 'best_f1')} |"
        )
    return lines


def _evasion(rows: Mapping[str, Any]) -> list[str]:
    if not rows:
        return ["Not measured."]
    names = [k for k in next(iter(rows.values())) if k not in ("positives", "threshold")]
    lines = [
        f"| category | positives | threshold | {' | '.join(names)} |",
        "|---|--:|--:|" + "--:|" * len(names),
    ]
    for category, r in rows.items():
        cells = " | ".join(f"{r[n]:.3f}" for n in names)
        lines.append(f"| {category} | {r['positives']} | {r['threshold']:.3f} | {cells} |")
    return lines


def _speed(s: Mapping[str, Any]) -> str:
    if "texts_per_s" not in s:
        return f"Load {s.get('load_s', '-')} s."
    return (
        f"{s['texts_per_s']:,} texts/s in batches of {s['batch']} ({s['texts']} held-out texts, "
        f"mean {s['mean_chars']} characters; {s['machine']}); load {s['load_s']} s. "
        "`modfleet bench` stage (e) measures it inside the worker's classifier."
    )


def _n(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key)
    return "-" if value is None else f"{value:.3f}"
