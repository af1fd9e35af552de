"""Renders the Settings reference (docs/settings.md) from the Settings class itself."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from modfleet.settings import ENV_PREFIX, Settings

_HEADER = """# Settings reference

Every setting is an environment variable: `MODFLEET_` + the field name upper-cased. The
`Settings` class (`workers/modfleet/settings.py`) is the only reader of the environment; this page
is generated from it (`python -m modfleet.settings_doc > docs/settings.md`) and a test keeps it
current. Secret values are never printed. A `MODFLEET_` variable that is no setting (a misspelt
name) stops every command at start-up, naming the setting it resembles; only the test script's
own `MODFLEET_TEST_*` and `MODFLEET_SKIP_VLLM` are let through.

| variable | default | meaning |
|---|---|---|
"""


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_default(field)} | {_describe(field)} |")
    return _HEADER + "\n".join(rows) + "\n"


def _default(field: object) -> str:
    factory = getattr(field, "default_factory", None)
    if factory is not None:
        return "(computed)"
    value = getattr(field, "default", PydanticUndefined)
    if value is PydanticUndefined or value is None:
        return "-"
    if isinstance(value, SecretStr):
        return "(secret)"
    return f"`{value}`"


def _describe(field: object) -> str:
    text = getattr(field, "description", None) or ""
    limits = [
        f"{op} {getattr(m, attr)}"
        for m in getattr(field, "metadata", [])
        for op, attr in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt"))
        if getattr(m, attr, None) is not None
    ]
    suffix = f" ({', '.join(limits)})" if limits else ""
    return (text + suffix).replace("|", "\\|")


if __name__ == "__main__":
    print(render(), end="")
