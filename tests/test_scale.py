"""Scale-out on CPU: DDP with two gloo processes, a simulated SLURM job (run dir, SIGUSR1 requeue
checkpoint), SIGTERM, multirun sweeps with separate W&B runs, and the sbatch templates."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from signal_at_step import signals_at

from symlit.core.config import config_dir, run_id
from symlit.training.slurm import compose_train, render, template_groups
from symlit.training.slurm import main as slurm_main

pytestmark = pytest.mark.xdist_group("test_scale")  # pytest-xdist: the DDP, SLURM and sweep runs go one at a time

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "experiment=addition",
    "data.task.n_train=400",
    "data.task.n_valid=40",
    "data.task.n_test=40",
    "trainer.enable_progress_bar=false",
    "module.num_prediction_samples=4",
]
SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "symlit",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NNODES": "1",
    "SLURM_NODELIST": "localhost",
}


def env_for(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment; a fake ``scontrol`` records requeue calls (never a real cluster's)."""
    bin_dir = root / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> "{root}/scontrol.log"\n')
    scontrol.chmod(0o755)
    # a fresh job: no SLURM variables, and no W&B service of the test process to attach to
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "WANDB_SERVICE"}
    # tests/ on the path: the test-only callback of signals_at()
    python_path = os.pathsep.join(p for p in (str(ROOT / "tests"), env.get("PYTHONPATH")) if p)
    return {
        **env,
        "SYMLIT_ROOT": str(root),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "PATH": f"{bin_dir}:{env.get('PATH', '')}",
        "PYTHONPATH": python_path,
        **(extra or {}),
    }


def run(root: Path, args: list[str], extra_env: dict[str, str] | None = None, timeout: int = 1800):
    proc = subprocess.run(
        [sys.executable, "-m", "symlit.training.train", *args],
        env=env_for(root, extra_env),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def global_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_agree(tmp_path):
    run(
        tmp_path,
        [
            *TINY,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_steps=6",
            "logger=csv",
            "run_name=ddp",
        ],
    )
    metrics = json.loads((tmp_path / "outputs/addition/ddp/metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["finished"] and metrics["global_step"] == 6
    first, second = metrics["rank_checksums"]
    assert first == pytest.approx(second, rel=1e-12)  # the ranks hold the same weights
    assert "test/seq_acc" in metrics["metrics"]
    # the per-split tallies are summed over both ranks before dividing: the OOD split is one bucket
    # and one operand length, so both equal its exact match (seq_acc, averaged by Lightning)
    saved = metrics["metrics"]
    for key in ("test/three_digits/bucket/digits=3", "test/three_digits/acc_by_len/3", "val/three_digits/acc_by_len/3"):
        assert saved[key] == pytest.approx(saved[key.rsplit("/", 2)[0] + "/seq_acc"]), key


@pytest.mark.slow
def test_slurm_environment_names_the_run_and_sigusr1_requeue_resumes(tmp_path):
    args = [
        *TINY,
        "data.batch_size=8",
        "trainer.max_epochs=2",
        "callbacks.last_checkpoint.every_n_train_steps=5",
        "logger=wandb",
    ]  # 50 steps per epoch, 100 in all
    # SLURM's warning arrives in the middle of the step that starts at global step 37; SLURM kills the job
    # two steps later (last.ckpt is at step 35 then), and the requeued job reruns the same command
    proc = subprocess.run(
        [sys.executable, "-m", "symlit.training.train", *args, *signals_at({37: "SIGUSR1", 39: "SIGKILL"})],
        env=env_for(tmp_path, SLURM_ENV),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == -signal.SIGKILL, log
    found = list(tmp_path.glob("outputs/addition/*/slurm-4242"))  # the job id names the run, below the overrides
    assert len(found) == 1, log
    run_dir = found[0]
    hpc = list(run_dir.glob("hpc_ckpt_*.ckpt"))
    assert len(hpc) == 1, log
    # saved at the end of the batch the signal interrupted, never inside it
    assert global_step(hpc[0]) == 38 and global_step(run_dir / "checkpoints/last.ckpt") == 35
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]  # Lightning asked SLURM to requeue
    wandb_id = (run_dir / "wandb_id.txt").read_text()

    run(tmp_path, [*args, *signals_at({37: "SIGUSR1", 39: "SIGKILL"})], SLURM_ENV)  # the requeued job
    resumes = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert resumes == [{"checkpoint": str(hpc[0]), "global_step": 38}]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["cluster"] == "SLURMEnvironment" and metrics["global_step"] == 100  # no batch skipped
    assert (run_dir / "wandb_id.txt").read_text() == wandb_id
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert runs and all(r.name.endswith(wandb_id) for r in runs)  # the same W&B run, continued


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_and_rerun_resumes_at_the_same_step(tmp_path):
    args = [
        *TINY,
        "data.batch_size=8",
        "trainer.max_epochs=6",
        "callbacks.last_checkpoint.every_n_train_steps=1000",
        "logger=csv",
        "run_name=term",
        *signals_at({137: "SIGTERM"}),
    ]  # 300 steps
    run_dir = tmp_path / "outputs/addition/term"
    proc = subprocess.run(
        [sys.executable, "-m", "symlit.training.train", *args],
        env=env_for(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 143, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert global_step(run_dir / "checkpoints/last.ckpt") == 138  # the interrupted step finished, then saved
    assert not (run_dir / "metrics.json").exists()

    run(tmp_path, args)  # the same command resumes (a resumed process sends no signal)
    resumes = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in resumes] == [138]
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 300


@pytest.mark.slow
def test_multirun_gives_each_job_its_own_run_dir_and_wandb_run(tmp_path):
    run(tmp_path, ["-m", *TINY, "trainer.max_steps=3", "logger=wandb", "optim.optimizer.lr=1e-3,2e-3"])
    sweep = tmp_path / "outputs" / "addition"
    runs = sorted(sweep.glob("*/wandb/offline-run-*"))
    assert len(runs) == 2, sorted(p.name for p in sweep.iterdir())
    assert len({r.parent.parent for r in runs}) == 2  # one run directory per job
    ids = {(r.parent.parent / "wandb_id.txt").read_text() for r in runs}
    assert len(ids) == 2 and all(r.name.endswith(tuple(ids)) for r in runs)


def test_run_id_under_slurm(monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    assert run_id(None, "") == "default"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert run_id(None, "") == "slurm-77"
    assert run_id(None, "optim.optimizer.lr=0.1") == "optim.optimizer.lr=0.1/slurm-77"
    assert run_id("mine", "") == "mine"  # an explicit name wins
    assert run_id(None, "a=1", sweep=True) == "a=1"  # sweep jobs are named by their overrides
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert run_id(None, "") == "slurm-70_3"
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # salloc sessions are not batch jobs
    assert run_id(None, "") == "default"


# the training templates; generate_array.sbatch runs symlit-generate (tests/test_generate_shards.py)
TRAINING_TEMPLATES = sorted(p for p in (ROOT / "slurm").glob("*.sbatch") if "symlit-train" in p.read_text())


@pytest.mark.parametrize("template", TRAINING_TEMPLATES, ids=lambda p: p.name)
def test_sbatch_templates_parse_and_render_with_config_values(template, tmp_path):
    assert subprocess.run(["bash", "-n", str(template)]).returncode == 0
    overrides = [
        "experiment=addition_4x2",
        "trainer=multinode",
        "trainer.num_nodes=3",
        "trainer.devices=2",
        "slurm.partition=gpu-long",
        "slurm.time=12:00:00",
        "optim.optimizer.lr=3e-4",
    ]
    text = render(template.read_text(), compose_train(overrides), overrides)
    for line in (
        "#SBATCH --nodes=3",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --partition=gpu-long",
        "#SBATCH --time=12:00:00",
        "#SBATCH --job-name=addition_4x2",
        "#SBATCH --signal=SIGUSR1@90",
        "#SBATCH --requeue",
    ):
        assert line in text.splitlines(), line
    srun = next(line for line in text.splitlines() if line.startswith("srun") or "srun " in line)
    srun_block = text[text.index(srun) :]
    assert "optim.optimizer.lr=3e-4" in srun_block and '"$@"' in srun_block
    rendered = tmp_path / "job.sbatch"
    rendered.write_text(text)
    assert subprocess.run(["bash", "-n", str(rendered)]).returncode == 0


def test_render_uses_the_templates_own_trainer_choice():
    text = (ROOT / "slurm" / "train_multinode.sbatch").read_text()
    assert template_groups(text) == ["trainer=multinode"]
    rendered = render(text, compose_train([*template_groups(text), "trainer.num_nodes=4"]), ["trainer.num_nodes=4"])
    assert "#SBATCH --nodes=4" in rendered and "#SBATCH --ntasks-per-node=4" in rendered  # multinode: 4 GPUs/node


def test_cpu_render_asks_for_no_gpus_and_bad_devices_are_refused():
    template = (ROOT / "slurm" / "train_single_gpu.sbatch").read_text()
    text = render(template, compose_train(["trainer=cpu"]), ["trainer=cpu"])
    assert "--gpus-per-node" not in text
    with pytest.raises(ValueError, match="trainer.devices"):
        render(template, compose_train(["trainer.devices=auto"]), [])


@pytest.mark.needs_extra
def test_submitit_launcher_config_takes_the_trainer_values():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "trainer=multinode",
                "trainer.num_nodes=2",
                "trainer.devices=4",
                "slurm.partition=gpu",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.max_num_timeout > 0
    assert launcher._target_.endswith("SlurmLauncher")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_trains_on_gpu(tmp_path, precision):
    run(
        tmp_path,
        [
            *TINY,
            "trainer=gpu",
            f"trainer.precision={precision}",
            "trainer.max_steps=30",
            "logger=none",
            f"run_name={precision}",
        ],
    )
    metrics = json.loads((tmp_path / "outputs/addition" / precision / "metrics.json").read_text())["metrics"]
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics  # no NaN or inf from overflow


@pytest.mark.slow
def test_optuna_sweep_runs_two_trials_and_reports_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    run(
        tmp_path,
        ["hparams_search=optuna_addition", "hydra.sweeper.n_trials=2", *TINY, "trainer.max_steps=3", "logger=none"],
    )
    sweep = tmp_path / "outputs" / "addition"
    trials = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(trials) == 2, sorted(p.name for p in sweep.iterdir())
    values = [json.loads((t / "metrics.json").read_text())["metrics"]["val/seq_acc"] for t in trials]
    best = (sweep / "optimization_results.yaml").read_text()  # the sweeper's summary of the study
    assert "best_value" in best and any(f"best_value: {v}" in best for v in values), best


def test_gpu_check_without_a_gpu_says_so_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run benchmarks/gpu_check.sh itself")
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gpu_check: no CUDA GPU available here")


def test_symlit_slurm_bad_values_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as info:
        slurm_main([str(ROOT / "slurm" / "train_single_gpu.sbatch"), "trainer.devices=auto"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("symlit-slurm: error: trainer.devices='auto': SLURM templates need") and err.count("\n") == 1
