"""Reading a policy pack, and saying exactly where it is wrong.

The people who edit packs are not programmers, so a bad pack must produce every problem at once,
each as ``file:line:column: field: message`` that an editor can jump to. PyYAML's composed node
tree keeps the position of every key and value; pydantic's errors name the field path; this module
joins the two.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from modfleet.errors import FatalError
from modfleet.policy.model import Policy

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pack, at a 1-based line and column."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.field or '(file)'}: {self.message}"


class PolicyInvalid(FatalError):
    """The pack cannot be used; ``problems`` lists every reason."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"policy pack {path} has {len(problems)} problem(s):\n{listing}")


def load_policy(path: Path) -> Policy:
    """The validated pack at ``path``; :class:`PolicyInvalid` with every problem otherwise."""
    policy, problems = _analyse(Path(path))
    if problems or policy is None:
        raise PolicyInvalid(path, problems)
    return policy


def check_policy(path: Path) -> list[Problem]:
    """Every problem with the pack at ``path``, in file order; empty when it is valid."""
    return _analyse(Path(path))[1]


def problem_at(path: Path, loc: Loc, message: str) -> Problem:
    """A problem found after loading (by the pack's model, say) at ``loc``'s line in the
    pack's file, which loaded, so it reads and parses again."""
    root, _ = _compose_and_construct(Path(path).read_text(encoding="utf-8"))
    if root is None:
        return Problem(str(path), 1, 1, _path(loc), message)
    return _at(str(path), _find(root, loc, want_key=False), _path(loc), message)


def _analyse(path: Path) -> tuple[Policy | None, list[Problem]]:
    file = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return None, [Problem(file, 1, 1, "", f"cannot read the file: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        return None, [Problem(file, line, 1, "", "the file is not UTF-8 text")]
    try:
        root, data = _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        # The parser cannot resume after a syntax error, so this is the one problem we can see.
        return None, [_yaml_problem(file, exc)]
    except yaml.reader.ReaderError as exc:
        # PyYAML refuses the whole stream for one control character, a comment's included.
        line = text[: exc.position].count("\n") + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        what = f"a character YAML does not allow (#x{code:04x}): remove it"
        return None, [Problem(file, line, 1, "", what)]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, "", f"not YAML: {exc}")]
    except RecursionError:
        return None, [Problem(file, 1, 1, "", "the file nests too deep to read")]
    if root is None:
        return None, [Problem(file, 1, 1, "", "the file is empty")]
    problems = _duplicate_keys(file, root)
    try:
        policy: Policy | None = Policy.model_validate(data)
    except ValidationError as exc:
        policy = None
        problems += [_validation_problem(file, root, err) for err in exc.errors()]
    return policy, sorted(problems, key=lambda p: (p.line, p.column, p.field))


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    # One parse gives both the positioned node tree and the plain data built from it.
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def _yaml_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = exc.problem or str(exc)
    if what == "but found another document":
        return Problem(file, line, column, "", "a pack is a single YAML document: remove '---'")
    if isinstance(exc, yaml.constructor.ConstructorError):
        return Problem(file, line, column, "", f"unsupported YAML: {what}")
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        # e.g. an unclosed "[" is noticed lines later; name where the construct began.
        began = exc.context_mark
        what = f"{what} ({exc.context} started at line {began.line + 1}, column {began.column + 1})"
    elif exc.context:
        what = f"{exc.context}: {what}"
    return Problem(file, line, column, "", f"YAML syntax error: {what}")


def _duplicate_keys(file: str, root: yaml.Node) -> list[Problem]:
    """Keys given twice in one mapping: YAML keeps only the last, silently dropping the first."""
    problems: list[Problem] = []
    seen: set[int] = set()  # aliases share nodes, and may even contain themselves
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[str, yaml.Node] = {}
            for key, value in node.value:
                name = str(key.value)
                if name in first_seen:
                    first = first_seen[name].start_mark.line + 1
                    message = f"duplicate key {name!r} (first given on line {first}); remove one"
                    problems.append(_at(file, key, _path((*loc, name)), message))
                first_seen.setdefault(name, key)
                stack.append((value, (*loc, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, (*loc, i)) for i, item in enumerate(node.value)]
    return problems


def _validation_problem(file: str, root: yaml.Node, err: ErrorDetails) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if loc and loc[-1] == "[key]":
        # pydantic reports a bad dict key as (..., key, "[key]"): point at the key itself.
        loc = loc[:-1]
        node = _find(root, loc, want_key=True)
        if kind != "string_pattern_mismatch":  # a glossary's term: too long, say
            return _at(file, node, _path(loc), _message(err, node))
        return _at(file, node, _path(loc), f"invalid name {loc[-1]!r}: {_key_rule()}")
    if kind == "missing":
        # The field is absent, so the best place to show is the mapping that should hold it.
        node = _find(root, loc[:-1], want_key=False)
        return _at(file, node, _path(loc), "required field is missing")
    if kind == "extra_forbidden":
        node = _find(root, loc, want_key=True)
        return _at(file, node, _path(loc), _unknown_field_message(loc))
    node = _find(root, loc, want_key=False)
    return _at(file, node, _path(loc), _message(err, node))


def _find(root: yaml.Node, loc: Loc, *, want_key: bool) -> yaml.Node:
    """The node at ``loc``, or the deepest ancestor that exists (after a merge key, say)."""
    node, key_node = root, root
    for part in loc:
        child = _child(node, part)
        if child is None:
            return node
        key_node, node = child
    return key_node if want_key else node


def _child(node: yaml.Node, part: int | str) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        # Search from the end: of duplicate keys, the last is the one that was used.
        for key, value in reversed(node.value):
            if str(key.value) == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item, item
    return None


def _at(file: str, node: yaml.Node, field: str, message: str) -> Problem:
    return Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, field, message)


def _path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _message(err: ErrorDetails, node: yaml.Node) -> str:
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("model_type", "dict_type"):
        message = "should be a group of 'name: value' lines"
    elif err["type"] == "string_type" and isinstance(node, yaml.ScalarNode):
        # YAML reads 1.2 as a number and yes/no as true/false; quoting keeps them as text.
        message += f' (write it in quotes: "{node.value}")'
    elif err["type"] == "string_pattern_mismatch" and err["loc"][-1] == "version":
        message = "should look like 2026.11.0 or 1.2.3, optionally with a suffix such as -rc1"
    elif err["type"] == "string_pattern_mismatch" and "tenants" in err["loc"]:
        # A tenant is the platform's id as posts carry it (post.v1's pattern), not a pack name.
        message = "invalid tenant: up to 128 letters, digits, '.', '_' and '-'"
    elif err["type"] == "string_pattern_mismatch":
        message = f"invalid name: {_key_rule()}"
    return message


def _key_rule() -> str:
    return "use lower-case letters, digits, '_' and '-', starting with a letter or digit"


def _unknown_field_message(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown field"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field; {hint}allowed here: {', '.join(allowed)}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc``, following the field types."""
    current: Any = Policy
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            current = _element_type(current)
        current = _unwrap_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _element_type(tp: Any) -> Any:
    # list[X] -> X, dict[K, V] -> V: one step into a container on the way down ``loc``.
    args = get_args(tp)
    return args[-1] if args else None


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp
