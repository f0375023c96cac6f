"""User errors end in one line that names the key or file and the fix, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from symlit.core.atomic import DirectoryLock
from symlit.core.cli import CommandLineError, check_command_line, plugin_installed
from symlit.core.config import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_a_busy_run_directory_is_reported_by_the_lock_message_not_the_os_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with DirectoryLock(tmp_path, "symlit-train run"):  # flock conflicts across open files, also in one process

        def second_run(_cfg):
            with DirectoryLock(tmp_path, "symlit-train run"):
                pass

        with pytest.raises(SystemExit) as info:
            run_cli("symlit-train", second_run, None)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"symlit-train: error: {tmp_path} is in use by another symlit-train run (pid ")
    assert "Errno" not in err


# ---------------------------------------------------------------------------- the command line
# Each common mistake is reported in one line that names the key and the fix, before anything is built.


@pytest.mark.parametrize(
    ("config", "argv", "expected"),
    [
        (
            "train",
            ["trainer.max_epoch=3"],
            "trainer.max_epoch is not a key of trainer; did you mean trainer.max_epochs?",
        ),
        ("train", ["foo=3"], "foo is not a key of the top level; its keys are: "),
        (
            "train",
            ["experiment=from_file", "data.task.extra_tests={x: b.csv}"],
            "data.task.extra_tests has no keys yet; add one with a leading +: +data.task.extra_tests.x=...",
        ),
        ("train", ["experiment=nope"], "unknown experiment 'nope'; choose one of: addition, "),
        ("train", ["model=smal"], "unknown model 'smal'; did you mean model=small?"),
        ("train", ["model.d_model=abc"], "model.d_model='abc' must be an integer (its default is 128)"),
        ("train", ["trainer.max_epochs=1.5"], "trainer.max_epochs=1.5 must be an integer"),
        ("train", ["optim.optimizer.lr=fast"], "optim.optimizer.lr='fast' must be a number"),
        ("train", ["-m", "optim.optimizer.lr=1e-3,abc"], "optim.optimizer.lr='abc' must be a number"),
        ("train", ["optim.optimizer.lr=1e-3,2e-3"], "is a sweep: add -m"),
        ("eval", [], "ckpt is required: add ckpt=outputs/<name>/<run>/checkpoints/best.ckpt"),
        ("eval", ["ckpt=x.ckpt", "decode.beam_size=abc"], "decode.beam_size='abc' must be an integer"),
        ("predict", [], "ckpt is required"),
        ("inspect", ["max_len=long"], "max_len='long' must be an integer (its default is 64)"),
    ],
)
def test_a_mistake_on_the_command_line_is_named_with_its_fix(config, argv, expected):
    with pytest.raises(CommandLineError) as info:
        check_command_line(config, argv)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["experiment=addition_4x2", "model=gpt_small", "trainer.max_epochs=3", "optim.optimizer.lr=2e-3"],
        [
            "trainer.devices=auto",
            "trainer.precision=16-mixed",
            "optim.optimizer.lr=1",
        ],  # Lightning's unions; int as float
        ["-m", "optim.optimizer.lr=1e-3,2e-3", "model.d_model=range(64,129,64)"],
        ["+trainer.max_time=00:01:00:00", "data.task.max_value=null"],
    ],
)
def test_a_good_command_line_passes(argv):
    cfg = check_command_line("train", argv)
    assert cfg is not None and cfg.name


def test_a_missing_hydra_plugin_names_the_extra():
    if plugin_installed("hydra_plugins.hydra_submitit_launcher"):
        pytest.skip("the slurm extra is installed here; the message is for an install without it")
    with pytest.raises(CommandLineError) as info:
        check_command_line("train", ["hydra/launcher=slurm"])
    assert str(info.value) == (
        "hydra/launcher=slurm needs the Hydra plugin hydra_submitit_launcher, which is not installed: "
        "pip install 'symlit[slurm]'"
    )


COMMANDS = {
    "symlit-train": ("symlit.training.entry", "train"),
    "symlit-eval": ("symlit.review.evaluate", "main"),
    "symlit-predict": ("symlit.review.predict", "main"),
    "symlit-inspect": ("symlit.review.inspect_model", "main"),
    "symlit-generate": ("symlit.data.generate", "main"),
    "symlit-slurm": ("symlit.training.slurm", "main"),
}


def run_command(program: str, *args: str, full_error: bool = False, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    module, function = COMMANDS[program]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["WANDB_MODE"] = "offline"
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    code = f"import sys; sys.argv[0] = {program!r}; from {module} import {function}; {function}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd
    )


@pytest.mark.parametrize(
    ("program", "args", "first_line"),
    [
        ("symlit-train", ["trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
        ("symlit-train", ["experiment=nope"], "unknown experiment 'nope'; choose one of: addition"),
        ("symlit-train", ["model.d_model=abc"], "model.d_model='abc' must be an integer"),
        ("symlit-eval", [], "ckpt is required"),
        ("symlit-eval", ["ckpt=no/such.ckpt"], "ckpt=no/such.ckpt: no such file"),
        ("symlit-predict", ["ckpt=no/such.ckpt", "input=1 + 1"], "ckpt=no/such.ckpt: no such file"),
        ("symlit-inspect", ["ckpt=no/such.ckpt"], "ckpt=no/such.ckpt: no such file"),
        ("symlit-eval", ["ckpt=x.ckpt", "decode.beam_size=abc"], "decode.beam_size='abc' must be an integer"),
        ("symlit-predict", [], "ckpt is required"),
        ("symlit-inspect", [], "ckpt is required"),
        ("symlit-generate", ["n=abc"], "n='abc' must be an integer"),
        ("symlit-slurm", ["slurm/train_single_gpu.sbatch", "trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
    ],
)
def test_each_command_reports_a_mistake_in_one_line_without_a_traceback(program, args, first_line, tmp_path):
    args = [str(ROOT / a) if a.startswith("slurm/") else a for a in args]
    result = run_command(program, *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith(f"{program}: ") and first_line in lines[0], result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.iterdir()), "a refused command wrote nothing"


def test_hydra_full_error_still_shows_the_trace():
    result = run_command("symlit-train", "model.d_model=abc", "trainer.fast_dev_run=true", full_error=True)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


@pytest.mark.parametrize(
    "program", ["symlit-train", "symlit-eval", "symlit-predict", "symlit-inspect", "symlit-generate"]
)
def test_help_shows_usage_keys_and_an_example(program):
    result = run_command(program, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout or "usage:" in result.stdout
    assert f"{program} " in result.stdout  # at least one example command
    assert "powered by Hydra" not in result.stdout  # Hydra's generic page lists the train groups


@pytest.mark.parametrize(
    ("program", "job_name"),
    [
        ("symlit-train", "train"),
        ("symlit-eval", "evaluate"),
        ("symlit-predict", "predict"),
        ("symlit-inspect", "inspect_model"),
        ("symlit-generate", "generate"),
    ],
)
def test_each_command_names_its_hydra_job_after_its_module(program, job_name):
    # the job's name names the log file Hydra writes (symlit-eval's evaluate.log)
    result = run_command(program, "--cfg", "hydra")
    assert result.returncode == 0, result.stderr
    assert OmegaConf.create(result.stdout).hydra.job.name == job_name
