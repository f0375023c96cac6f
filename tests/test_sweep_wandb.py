"""The W&B runs of a real sweep, read back: names, groups, curves, tables and figures; a
preempted run that resumes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from review_sweep import EPOCHS, LRS, REPO, run_dir, sweep_env, training_run, wandb_runs, wandb_table

from symlit.models.checkpoint import load_checkpoint
from symlit.review.plots import read_predictions

pytestmark = pytest.mark.xdist_group("review_sweep")  # pytest-xdist: the session-scoped sweep is built once


def test_runs_are_named_by_their_overrides_and_grouped_by_launch(sweep):
    runs = {lr: training_run(run_dir(sweep, lr)) for lr in LRS}
    for lr, run in runs.items():
        # every override of the job, whole (its directory name cuts and hashes them past 100 characters)
        overrides = (run_dir(sweep, lr) / ".hydra" / "overrides.yaml").read_text()
        assert len(run.name) > 100 and run.name.startswith("addition/data.task.n_test=40,")
        assert (
            all(o in run.name for o in (f"optim.optimizer.lr={lr}", "trainer.max_epochs=2"))
            and "logger" not in run.name
        )
        assert f"- optim.optimizer.lr={lr}" in overrides
        assert run.id == (run_dir(sweep, lr) / "wandb_id.txt").read_text().strip()
        assert run.exit_code == 0
    (group,) = {run.group for run in runs.values()}  # one group per sweep launch
    assert re.fullmatch(r"addition/\d{8}-\d{6}", group)


def test_per_bucket_and_ood_curves_exist(sweep):
    run = training_run(run_dir(sweep, LRS[0]))
    for key in (
        "val/bucket/digits=2",
        "val/three_digits/seq_acc",
        "val/three_digits/bucket/digits=3",
        "val/acc_by_pos/0",
    ):
        assert len(run.history[key]) == EPOCHS, key  # one point per epoch
    assert len(run.history["val/seq_acc"]) == EPOCHS and "best/val/seq_acc" in run.summary


def test_eval_figures_are_in_thetraining_run(sweep):
    for lr in LRS:
        job = run_dir(sweep, lr)
        trained = training_run(job)
        key = "eval/test/beam3"
        (attached,) = [r for r in wandb_runs(job) if f"{key}/greedy_acc" in r.summary]
        assert attached.id == trained.id  # the training run itself, resumed
        metrics = json.loads((job / "eval" / "best-test-beam3" / "eval.json").read_text())["metrics"]
        assert attached.summary[f"{key}/greedy_acc"] == pytest.approx(metrics["greedy"]["seq_acc"])
        assert attached.summary[f"{key}/acc_at_3"] == pytest.approx(metrics["nbest"]["acc_at_3"])
        assert attached.summary[f"{key}/n"] == 40
        for bucket, values in metrics["by_bucket"].items():
            assert attached.summary[f"{key}/bucket/{bucket}/seq_acc"] == pytest.approx(values["seq_acc"])
        for picture in ("accuracy_by_bucket", "reliability"):
            assert (job / "eval" / "best-test-beam3" / f"{picture}.png").stat().st_size > 10_000
            logged = attached.summary[f"{key}/{picture}/path"]
            assert list(job.glob(f"wandb/offline-run-*-{trained.id}/files/{logged}"))


def test_tables_carry_rendered_expressions(sweep):
    job = run_dir(sweep, LRS[0])
    task = load_checkpoint(job / "checkpoints" / "best.ckpt").task
    val = wandb_table(job, "val/predictions")
    evaluated = wandb_table(job, "eval/test/beam3/predictions")
    for table in (val, evaluated):
        columns = table["columns"]
        assert columns[:4] == ["source", "target", "hypothesis", "verdict"] and table["data"]
        for row in table["data"]:
            cells = dict(zip(columns, row))
            assert cells["source"] == task.show(cells["source tokens"]) != cells["source tokens"]
            assert re.fullmatch(r"\d+ \+ \d+", cells["source"]) and re.fullmatch(r"\d+", cells["target"])
            assert cells["verdict"] in ("correct", "wrong", "no_eos")
    assert "top hypotheses" in evaluated["columns"]


def test_training_tallies_match_the_evaluated_predictions(sweep):
    """The test tallies logged by training equal those recomputed from symlit-eval's greedy answers
    on the same checkpoint and split (sums over every batch, divided once)."""
    job = run_dir(sweep, LRS[0])
    metrics = json.loads((job / "metrics.json").read_text())["metrics"]
    task = load_checkpoint(job / "checkpoints" / "best.ckpt").task
    preds = read_predictions(job / "eval" / "best-test-beam3" / "predictions.jsonl")
    rows = [(p["source"], p["target"], p["greedy"], p["greedy_verdict"] == "correct") for p in preds]
    expected = task.tally_split("test", rows).ratios()
    assert expected and {k: metrics[f"test/{k}"] for k in expected} == pytest.approx(expected)


@pytest.mark.slow
def test_sigterm_marks_the_run_preempted_with_143_and_the_rerun_resumes_it(tmp_path):
    """Under a (simulated) SLURM batch job: the run is named by its overrides and the job id; SIGTERM
    at step 3 ends it with 143, marked preempting; the same command again continues the same run."""
    env = {
        **sweep_env(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "train",
    }
    args = [
        "-m",
        "symlit.training.train",
        "optim.optimizer.lr=0.003",
        "trainer.max_steps=6",
        "+callbacks.kill={_target_:signal_at_step.SignalAtStep,steps:[3],signals:[SIGTERM]}",
        "logger=wandb",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "print_config=false",
    ]

    def train() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )

    stopped = train()
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    (job,) = (tmp_path / "outputs" / "addition").glob("*/slurm-4242")
    (run,) = wandb_runs(job)
    assert run.exit_code == 143 and run.preempting
    assert run.name.startswith("addition/") and run.name.endswith("/slurm-4242")
    assert all(o in run.name for o in ("optim.optimizer.lr=0.003", "trainer.max_steps=6"))
    resumed = train()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first, second = wandb_runs(job)
    assert (
        (first.id, first.name, first.group) == (second.id, second.name, second.group) == (run.id, run.name, run.group)
    )
    assert second.exit_code == 0 and not second.preempting
