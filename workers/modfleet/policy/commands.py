"""``modfleet policy ...``: check and read policy packs from the command line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from modfleet.errors import FatalError
from modfleet.policy.load import PolicyInvalid, Problem, load_policy, problem_at
from modfleet.policy.model import Policy
from modfleet.policy.packs import arrangement_problems, identity_conflicts

_SUFFIXES = (".yaml", ".yml")


@click.group()
def policy() -> None:
    """Work with policy packs."""


@policy.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check policy pack files, or every *.yaml/*.yml file in a folder.

    Prints each problem as FILE:LINE:COLUMN: FIELD: MESSAGE and exits 1 if there are any. Two
    packs with the same id and version but different content are a problem of the later one. A
    folder is also checked as a worker loads it: exactly one live pack without tenants.
    """
    failed = False
    loaded: list[tuple[Path, Policy]] = []
    for path in _pack_files(paths):
        try:
            pack = load_policy(path)
        except PolicyInvalid as exc:
            _echo_problems(exc)
            failed = True
            continue
        loaded.append((path, pack))
    conflicts = identity_conflicts(loaded) + _label_problems(loaded)
    if not failed:
        conflicts += [p for folder in paths if folder.is_dir() for p in _routing(folder, loaded)]
    clashing = {problem.file for problem in conflicts}
    for problem in conflicts:
        click.echo(str(problem), err=True)
    for path, pack in loaded:
        if str(path) not in clashing:
            click.echo(
                f"ok: {path} ({pack.id} {pack.version}, digest {pack.digest[:12]}, "
                f"{len(pack.categories)} categories)"
            )
    if failed or conflicts:
        raise click.exceptions.Exit(1)


@policy.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(path: Path) -> None:
    """Print a pack as the policy prompt a safety LLM reads."""
    try:
        pack = load_policy(path)
    except PolicyInvalid as exc:
        _echo_problems(exc)
        raise click.exceptions.Exit(1) from exc
    click.echo(pack.prompt_text(), nl=False)


@policy.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--require-gate", is_flag=True, help="Fail a pack that has no gate: block.")
def test(paths: tuple[Path, ...], require_gate: bool) -> None:
    """Check packs against their golden sets (the regression gate).

    Each pack's gate: block names a labelled golden set beside it, the F1 recorded for it, and a
    tolerance. Prints a table and exits 1 when any F1 falls more than the tolerance below its
    baseline, or a pack cannot be tested. PATHS are pack files or folders of them [default: the
    configured pack, MODFLEET_POLICY_PATH].
    """
    # Imported here: scikit-learn and the model load only when a gate actually runs.
    from modfleet.evaluate.commands import gate_command

    raise click.exceptions.Exit(gate_command(_pack_files(paths), require_gate=require_gate))


def _pack_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        if not found:
            raise click.UsageError(f"{path} holds no *.yaml or *.yml files")
        files += found
    return files


def _label_problems(loaded: list[tuple[Path, Policy]]) -> list[Problem]:
    """Labels an embedded pack's model does not emit, as the worker would refuse them. Packs
    bound to a served model are checked by the worker, which knows the server's adapter."""
    from modfleet.cli_common import load_settings
    from modfleet.inference.adapters.labels import UnknownLabels
    from modfleet.inference.routing import Backends

    embedded = [(path, pack) for path, pack in loaded if pack.model.backend == "embedded"]
    if not embedded:
        return []
    backends = Backends.from_settings(load_settings())
    problems: list[Problem] = []
    for path, pack in embedded:
        try:
            backends.for_policy(pack).check_pack(pack)
        except UnknownLabels as exc:
            problems += [problem_at(path, loc, message) for loc, message in exc.problems]
        except FatalError as exc:  # its model cannot be loaded: say so at the binding
            problems.append(problem_at(path, ("model", "id"), str(exc)))
    return problems


def _routing(folder: Path, loaded: list[tuple[Path, Policy]]) -> list[Problem]:
    return arrangement_problems([(f, p) for f, p in loaded if f.parent == folder])


def _echo_problems(exc: PolicyInvalid) -> None:
    for problem in exc.problems:
        click.echo(str(problem), err=True)
