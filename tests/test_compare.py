"""``symlit-compare`` on a real multirun (the sweep of ``review_sweep.py``)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from review_sweep import LRS, run_dir, run_python

from symlit.review.compare import compare, find_runs

pytestmark = pytest.mark.xdist_group("review_sweep")  # pytest-xdist: the session-scoped sweep is built once


def test_compare_a_real_multirun(sweep):
    out = run_python(
        sweep.parents[1],
        "-m",
        "symlit.review.compare",
        str(sweep),
        "--metric",
        "val/seq_acc",
        "--param",
        "optim.optimizer.lr",
    )
    assert find_runs([sweep]) == sorted(run_dir(sweep, lr) for lr in LRS)  # the eval directory is no run
    rows = list(csv.DictReader((sweep / "compare.csv").open()))
    assert sorted(r["optim.optimizer.lr"] for r in rows) == list(LRS)
    for row in rows:  # every metric of metrics.json, and the eval result of the first run
        saved = json.loads((run_dir(sweep, row["optim.optimizer.lr"]) / "metrics.json").read_text())
        for key, value in saved["metrics"].items():
            assert float(row[key]) == pytest.approx(value)
        assert row["status"] == "finished"
    with_eval = next(r for r in rows if r["optim.optimizer.lr"] == LRS[0])
    evaluated = json.loads((run_dir(sweep, LRS[0]) / "eval/best-test-beam3/eval.json").read_text())
    assert float(with_eval["eval/best-test-beam3/acc_at_3"]) == evaluated["metrics"]["nbest"]["acc_at_3"]
    accs = [float(r["val/seq_acc"]) for r in rows]
    assert accs == sorted(accs, reverse=True)  # best first
    md = (sweep / "compare.md").read_text()
    assert "| run | status | optim.optimizer.lr | val/" in md
    assert "Common to every run:" in md and "`logger=wandb`" in md and md in out.stdout
    png = sweep / "compare_val_seq_acc_vs_optim.optimizer.lr.png"
    assert png.stat().st_size > 10_000


def test_compare_sorts_and_plots_each_runs_metric(sweep):
    from symlit.review.compare import plot_metric

    by_loss = compare([sweep], "val/loss", minimize=True)
    losses = [r.metrics["val/loss"] for r in by_loss.runs]
    assert losses == sorted(losses) and losses[0] < losses[1]  # the two learning rates end differently
    by_acc = compare([sweep], "val/tok_acc", metrics=["val/*"])
    accs = [r.metrics["val/tok_acc"] for r in by_acc.runs]
    assert accs == sorted(accs, reverse=True)
    assert {"val/loss", "val/seq_acc", "val/tok_acc", "val/bucket/digits=2"} <= set(by_acc.metrics)
    assert all(m.startswith("val/") for m in by_acc.metrics) and by_acc.varying == ["optim.optimizer.lr"]
    fig = plot_metric(by_acc, "val/tok_acc", "optim.optimizer.lr")
    (line,) = fig.axes[0].get_lines()
    got = sorted(zip(line.get_xdata(), line.get_ydata()))
    want = sorted((float(r.overrides["optim.optimizer.lr"]), r.metrics["val/tok_acc"]) for r in by_acc.runs)
    assert np.allclose(got, want)
    assert fig.axes[0].get_xlabel() == "optim.optimizer.lr" and fig.axes[0].get_ylabel() == "val/tok_acc"


def test_compare_finds_slurm_job_directories(sweep, tmp_path):
    """Under sbatch a run lives in ``<overrides>/slurm-<job id>``: found at any depth, named by its path."""
    import shutil

    for lr, job in zip(LRS, ("slurm-101", "slurm-102")):
        target = tmp_path / "addition" / f"optim.optimizer.lr={lr}" / job
        shutil.copytree(run_dir(sweep, lr) / ".hydra", target / ".hydra")
        shutil.copy(run_dir(sweep, lr) / "metrics.json", target / "metrics.json")
    comparison = compare([tmp_path / "addition"], "val/loss", minimize=True)
    assert sorted(r.name for r in comparison.runs) == [
        f"optim.optimizer.lr={LRS[0]}/slurm-101",
        f"optim.optimizer.lr={LRS[1]}/slurm-102",
    ]
    assert all(r.status == "finished" for r in comparison.runs)


def test_compare_bad_input_is_one_line(sweep, tmp_path):
    for args, message in [
        ([str(tmp_path)], "no run directories"),
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(sweep), "--metric", "val/nope"], "--metric val/nope is not a metric of these runs; known: val/"),
        ([str(sweep), "--param", "trainer.max_epochs"], "--param trainer.max_epochs does not vary"),
    ]:
        proc = run_python(tmp_path, "-m", "symlit.review.compare", *args, "--out", str(tmp_path / "o"), check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().startswith("symlit-compare: ") and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
