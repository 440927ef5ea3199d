"""The lab notebook under experiments/: every study folder is complete, every command its
table quotes composes, and every study marked as run has its committed laptop report."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import run_module

from magicoder.config import config_dir

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
TABLE = EXPERIMENTS / "README.md"
STUDIES = sorted(p for p in EXPERIMENTS.iterdir() if p.is_dir() and not p.name.startswith("."))
# console script -> (primary config, module to run it with)
APPS = {
    "magicoder-train": ("train", "magicoder.cli.train"),
    "magicoder-evaluate": ("evaluate", "magicoder.cli.evaluate"),
    "magicoder-generate": ("generate", "magicoder.cli.generate"),
    "magicoder-curate": ("curate", "magicoder.cli.curate"),
    "magicoder-data-report": ("data-report", "magicoder.cli.data_report"),
}
COLUMNS = ("claim", "study folder", "preset and exact command")


def _table_rows() -> list[dict[str, str]]:
    """The rows of the claims table: the first Markdown table whose header starts with COLUMNS."""
    lines = TABLE.read_text().splitlines()
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in lines:
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            # "preset and exact command (GPU + hub)" -> "preset and exact command"
            names = [re.sub(r"\s*\(.*\)$", "", c).lower() for c in cells]
            if tuple(names[: len(COLUMNS)]) == COLUMNS:
                header = names
            continue
        if set(line.replace("|", "").strip()) <= set("-: "):
            continue
        rows.append(dict(zip(header, cells, strict=False)))
    assert header is not None, f"no table with columns {COLUMNS} in {TABLE}"
    return rows


def _commands() -> list[list[str]]:
    """Every `magicoder-<app> ...` code span of the table, split as a shell would."""
    commands = []
    for row in _table_rows():
        for span in re.findall(r"`([^`]+)`", row["preset and exact command"]):
            words = shlex.split(span)
            if words and words[0] in APPS:
                commands.append(words)
    return commands


def _split_sweep(value: str) -> list[str]:
    """`a,b` -> [a, b]; a value inside brackets or braces is one value."""
    if any(c in value for c in "[]{}") or "," not in value:
        return [value]
    return value.split(",")


def _jobs(words: list[str]) -> list[list[str]]:
    """The overrides of every job the command launches: command-line comma lists and the
    hparams_search preset's sweeper params (unless the command line sets the same key),
    expanded to their cartesian product; `-m` dropped."""
    overrides = [w for w in words[1:] if w not in ("-m", "--multirun")]
    keys = {o.split("=", 1)[0] for o in overrides}
    axes: list[list[str]] = []
    for override in overrides:
        key, _, value = override.partition("=")
        axes.append([f"{key}={v}" for v in _split_sweep(value)])
        if key == "hparams_search":
            preset = yaml.safe_load((config_dir() / "hparams_search" / f"{value}.yaml").read_text())
            params = preset.get("hydra", {}).get("sweeper", {}).get("params", {}) or {}
            for param, values in params.items():
                if param not in keys:
                    axes.append([f"{param}={v}" for v in _split_sweep(str(values))])
    return [list(job) for job in itertools.product(*axes)]


def test_every_study_has_a_readme_and_an_executable_driver():
    assert STUDIES, "experiments/ has no study folders"
    for study in STUDIES:
        readme, driver = study / "README.md", study / "run.sh"
        assert readme.is_file(), f"{study.name} has no README.md"
        assert driver.is_file() and os.access(driver, os.X_OK), f"{study.name}/run.sh"
        text = driver.read_text()
        assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
        assert "SCALE" in text, f"{study.name}/run.sh ignores SCALE"
        subprocess.run(["bash", "-n", str(driver)], check=True)


def test_table_has_a_row_for_every_study_and_quotes_commands():
    rows = _table_rows()
    folders = {m for r in rows for m in re.findall(r"\[?`?([a-z0-9-]+)/`?\]?", r["study folder"])}
    assert {s.name for s in STUDIES} <= folders, "a study folder has no row in the table"
    assert len(_commands()) >= 10


@pytest.mark.slow  # a sweep over every command of the table: about 13 s in all
@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w[1:]) or w[0])
def test_every_table_command_composes(words, compose, tmp_path):
    config, _ = APPS[words[0]]
    for job in _jobs(words):
        cfg = compose(config, job, tmp_path)
        assert cfg.task_name


def test_a_swept_command_expands_to_its_arms():
    languages = "magicoder-train experiment=ablate-languages hparams_search=languages"
    arms = sorted(job[-1] for job in _jobs(shlex.split(languages)))
    assert arms == ["data=oss-instruct-non-python", "data=oss-instruct-python"]
    bases = "magicoder-train -m experiment=compare-bases hparams_search=bases model=tiny,tiny-deep"
    arms = sorted(job[-1] for job in _jobs(shlex.split(bases)))
    assert arms == ["model=tiny", "model=tiny-deep"]


def test_studies_marked_as_run_have_their_laptop_report():
    run = [r for r in _table_rows() if "laptop run committed" in r.get("status", "")]
    assert run, "no study is marked 'laptop run committed'"
    for row in run:
        for folder in re.findall(r"([a-z0-9-]+)/", row["study folder"]):
            report = EXPERIMENTS / folder / "laptop-report" / "report.md"
            assert report.is_file(), f"{row['claim']}: {report} is missing"
            readme = (EXPERIMENTS / folder / "README.md").read_text()
            assert "wall time" in readme.lower(), f"{folder}/README.md records no wall time"


@pytest.mark.slow
def test_table_commands_print_their_config(tmp_path):
    """`<command> --cfg job` exits 0, as a user would check it: the first command of each
    console script (every command composes in the test above)."""
    first_per_app = {words[0]: words for words in reversed(_commands())}
    for words in first_per_app.values():
        _, module = APPS[words[0]]
        job = _jobs(words)[0]
        proc = run_module(module, [*job, "--cfg", "job"], tmp_path, timeout=300)
        assert proc.returncode == 0, f"{' '.join(words)}:\n{proc.stderr[-2000:]}"
