"""The README is a front door that works: its commands exist, compose and answer ``--help``; the
experiments it names are real (and each is trained under ``fast_dev_run`` by test_train.py or
test_arithmetic_experiments.py); CI reads its two commands from it."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from symlit.core.cli import check_command_line, plugin_installed
from symlit.core.config import config_dir

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
CONFIG_OF = {
    "symlit-train": "train",
    "symlit-eval": "eval",
    "symlit-predict": "predict",
    "symlit-inspect": "inspect",
    "symlit-generate": "generate",
}


def _load_block_reader():
    spec = importlib.util.spec_from_file_location("readme_block", ROOT / ".ci" / "readme_block.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.readme_block


readme_block = _load_block_reader()


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|console|sh)?\n(.*?)\n```", text, re.S)


def commands(text: str) -> list[list[str]]:
    """Every ``symlit-*`` command line in the code blocks, as argv (continuations joined, comments,
    redirections and ``&&`` tails dropped)."""
    found = []
    for block in code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].split("&&")[0].split(">")[0].strip()
            if line.startswith("symlit-"):
                found.append(shlex.split(line))
    return found


def test_the_readme_is_a_front_door_not_the_manual():
    lines = README.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; reference material belongs in docs/"
    assert not re.search(r"\bissues? \d+", README, re.I), "no issue numbers in the README"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", README), "no dated measurements in the README: link experiments/"
    first_screen = "\n".join(lines[:60])
    assert "symlit-train" in first_screen and "pytest" in first_screen


def test_ci_reads_the_two_commands_from_the_readme():
    setup, test = readme_block("setup"), readme_block("test")
    assert setup.rstrip().endswith("symlit-train") and "pip install" in setup
    assert test.strip().startswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_block.py setup" in ci and "readme_block.py test" in ci


def test_every_linked_page_exists():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_every_command_is_a_console_script():
    named = {argv[0] for argv in commands(README)} | set(re.findall(r"`(symlit-[a-z]+)", README))
    assert named <= set(SCRIPTS), f"not console scripts: {named - set(SCRIPTS)}"
    assert set(SCRIPTS) <= named, f"console scripts the README does not show: {set(SCRIPTS) - named}"


# command-line choices that need a Hydra plugin from an extra
PLUGINS = {
    "hydra/launcher=slurm": "hydra_plugins.hydra_submitit_launcher",
    "hparams_search=": "hydra_plugins.hydra_optuna_sweeper",
}


def plugins_of(argv: list[str]) -> list[str]:
    return [module for choice, module in PLUGINS.items() if any(a.startswith(choice) for a in argv)]


@pytest.mark.parametrize(
    "argv",
    [pytest.param(argv, marks=pytest.mark.needs_extra) if plugins_of(argv) else argv for argv in commands(README)],
    ids=lambda argv: " ".join(argv)[:60],
)
def test_every_command_of_the_readme_composes(argv):
    missing = [module for module in plugins_of(argv) if not plugin_installed(module)]
    if missing:
        pytest.skip(f"needs the extra that installs {missing[0]}")
    program, args = argv[0], argv[1:]
    if program in CONFIG_OF:
        if "--cfg" in args:
            args = [a for a in args if a not in ("--cfg", "job")]
        check_command_line(CONFIG_OF[program], args, check_files=False)  # the README's checkpoints are examples
    elif program == "symlit-slurm":
        assert (ROOT / args[0]).is_file()
        check_command_line("train", args[1:])
    elif program == "symlit-compare":
        assert args[0].startswith("outputs/")


@pytest.mark.parametrize("program", sorted(SCRIPTS))
def test_every_console_script_answers_help(program):
    module, function = SCRIPTS[program].split(":")
    code = f"import sys; sys.argv[0] = {program!r}; from {module} import {function}; {function}()"
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert program in result.stdout


def test_every_experiment_the_readme_names_exists_and_is_trained_under_fast_dev_run():
    experiments = {p.stem for p in (config_dir() / "experiment").glob("*.yaml")}
    named = {name for block in code_blocks(README) for name in re.findall(r"experiment=(\w+)", block)}
    table = [line for line in README.splitlines() if line.startswith("|")]
    named |= {word for line in table for word in re.findall(r"`(\w+)`", line) if word in experiments}
    assert named, "the README names no experiment"
    assert named <= experiments, f"the README names experiments that do not exist: {named - experiments}"
    import test_arithmetic_experiments
    import test_train

    trained = {p.values[0] if hasattr(p, "values") else p for p in test_train.EXPERIMENTS}
    trained |= set(test_arithmetic_experiments.SMALL)
    assert named <= trained, f"experiments the README names that no fast_dev_run test trains: {named - trained}"
