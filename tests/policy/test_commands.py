from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from modfleet.cli import main
from modfleet.policy import load_policy
from modfleet.resources import default_policy_path

BROKEN = """\
id: broken
version: 2026.11.0
title: Broken
description: Two mistakes.
model: {id: m}
categories:
  hate:
    title: Hate
    definition: Attacks on protected groups.
    violates: [Slurs.]
    does_not_violate: [Reporting.]
    examples: [{text: x, violates: true}]
    thresholds:
      - {min_score: 1.5, action: remove}
      - {min_score: 0.5, action: delete}
"""


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


def test_validate_default_pack_exits_zero() -> None:
    code, out, err = _run("validate", str(default_policy_path()))
    assert code == 0, err
    assert out.startswith(f"ok: {default_policy_path()} (default ")
    assert "categories)" in out
    assert err == ""


def test_validate_broken_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, err = _run("validate", str(path))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:14:21: categories.hate.thresholds[0].min_score: ")
    assert lines[1].startswith(f"{path}:15:34: categories.hate.thresholds[1].action: ")
    assert len(lines) == 2


def test_validate_a_folder_checks_each_pack_and_fails_if_any_fails(tmp_path: Path) -> None:
    shutil.copy(default_policy_path(), tmp_path / "good.yml")
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a pack", encoding="utf-8")
    code, out, err = _run("validate", str(tmp_path))
    assert code == 1
    default = load_policy(default_policy_path())
    good = tmp_path / "good.yml"
    summary = f"default {default.version}, digest {default.digest[:12]}, 6 categories"
    assert out == f"ok: {good} ({summary})\n"
    assert "broken.yaml:14:" in err
    assert "notes.txt" not in out + err


def test_validate_an_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = _run("validate", str(tmp_path))
    assert code == 2
    assert "no *.yaml" in err


def test_show_prints_the_prompt_text() -> None:
    code, out, _ = _run("show", str(default_policy_path()))
    assert code == 0
    assert out == load_policy(default_policy_path()).prompt_text()


def test_show_on_a_broken_file_prints_problems_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, err = _run("show", str(path))
    assert code == 1
    assert out == ""
    assert f"{path}:14:21:" in err


def test_validate_names_a_model_label_the_packs_model_does_not_emit(tmp_path: Path) -> None:
    # The worker refuses such a pack; validate, which T&S run before shipping, must say so too,
    # on the label's line, rather than print "ok" for a category never scored.
    text = default_policy_path().read_text(encoding="utf-8")
    path = tmp_path / "default.yaml"
    path.write_text(text.replace("[modfleet:harassment]", "[modfleet:harrasment]"), "utf-8")
    code, out, err = _run("validate", str(path))
    assert code == 1
    assert out == ""
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "harrasment" in t)
    assert f"{path}:{line}:" in err
    assert "categories.harassment.model_labels[0]" in err
    assert "modfleet:harassment" in err  # the closest label it does emit


def test_validate_refuses_a_version_decisions_could_not_carry(tmp_path: Path) -> None:
    source = default_policy_path().read_text(encoding="utf-8")
    version = "2026.11.2-rc." + "build." * 12 + "20261124T101500Z.sha.6bc4a4d0"
    path = tmp_path / "long_version.yaml"
    path.write_text(
        re.sub(r"(?m)^version:.*$", f"version: {version}", source, count=1), encoding="utf-8"
    )
    code, out, err = _run("validate", str(path))
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"{path}:")
    assert ": version: " in line
    assert "at most 64 characters" in line
