"""Reviewing runs: pictures, symlit-compare on a real multirun, symlit-inspect, symlit-predict in a terminal.

One module-scoped fixture runs a real 2-job ``symlit-train -m`` sweep (tiny addition runs) and a
real ``symlit-eval`` with beam search on one of them; every picture is drawn from those runs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pexpect
import pytest
import torch
import torch.nn.functional as F
from wandb_records import OfflineRun, read_run

from symlit.models.checkpoint import load_checkpoint
from symlit.review.compare import compare, find_runs
from symlit.review.inspect_model import attention_weights, capture_attention
from symlit.review.plots import eval_figures, plot_lengths, read_predictions, reliability_bins
from symlit.review.predict import Predictor
from symlit.tasks import ArithmeticTask
from symlit.tasks.calculus import CalculusTask

pytestmark = pytest.mark.xdist_group("test_review")  # pytest-xdist: the module-scoped fixture is built once

REPO = Path(__file__).resolve().parents[1]
LRS = ("0.002", "0.004")
EPOCHS = 2


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SYMLIT_ROOT": str(root),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }


def _run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *args], cwd=root, env=_env(root), capture_output=True, text=True, timeout=900, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A real 2-job multirun (two learning rates, W&B offline) and symlit-eval (beam 3) on the best
    checkpoint path each job printed.

    ``SYMLIT_TEST_REVIEW_ROOT=<dir>`` keeps the sweep in ``<dir>`` and reuses it when it is
    complete (for iterating on these tests; the suite itself always starts from nothing).
    """
    keep = os.environ.get("SYMLIT_TEST_REVIEW_ROOT")
    root = Path(keep) if keep else tmp_path_factory.mktemp("review")
    sweep_dir = root / "outputs" / "addition"
    trained, evaluated = sweep_dir / "train-done", sweep_dir / "eval-done"
    if keep and evaluated.exists():
        return sweep_dir
    if not trained.exists():
        proc = _run(
            root,
            "-m",
            "symlit.training.train",
            "-m",
            f"optim.optimizer.lr={','.join(LRS)}",
            "logger=wandb",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            f"trainer.max_epochs={EPOCHS}",
            "data.task.n_train=1000",
            "data.task.n_valid=40",
            "data.task.n_test=40",
            "data.task.ood.three_digits.n=20",
            "optim.scheduler.warmup_steps=10",
        )
        printed = re.findall(r"^best checkpoint: (.+)$", proc.stdout, flags=re.MULTILINE)
        (sweep_dir / "printed.txt").write_text("\n".join(printed))
        trained.touch()
    # symlit-eval on each path training printed, as printed ('=' and ',' in it, unquoted)
    for printed in (sweep_dir / "printed.txt").read_text().splitlines():
        _run(root, "-m", "symlit.review.evaluate", f"ckpt={printed}", "decode.beam_size=3", "verify.workers=0")
    evaluated.touch()
    return sweep_dir


def run_dir(sweep: Path, lr: str) -> Path:
    """The job directory of the sweep whose overrides set ``optim.optimizer.lr=lr``."""
    (found,) = [
        p.parents[1] for p in sweep.glob("*/.hydra/overrides.yaml") if f"optim.optimizer.lr={lr}" in p.read_text()
    ]
    return found


@pytest.fixture(scope="module")
def ckpt(sweep: Path) -> Path:
    return run_dir(sweep, LRS[0]) / "checkpoints" / "best.ckpt"


# ---------------------------------------------------------------------------- symlit-compare
def test_compare_a_real_multirun(sweep):
    out = _run(
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
        proc = _run(tmp_path, "-m", "symlit.review.compare", *args, "--out", str(tmp_path / "o"), check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().startswith("symlit-compare: ") and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- pictures of an evaluation
# ---------------------------------------------------------------------------- the W&B runs, read back
def _wandb_runs(job: Path) -> list[OfflineRun]:
    """Every offline W&B run file of a job directory (training, and the sessions that resumed it)."""
    return [read_run(p) for p in sorted(job.glob("wandb/offline-run-*"))]


def _training_run(job: Path) -> OfflineRun:
    (run,) = [r for r in _wandb_runs(job) if "val/seq_acc" in r.history]
    return run


def _table(job: Path, key: str) -> dict:
    """The last logged version of a W&B table (files ``<key>_<step>_<hash>.table.json``)."""
    paths = job.glob(f"wandb/offline-run-*/files/media/table/{key}_*.table.json")
    return json.loads(max(paths, key=lambda p: int(p.name.split("_")[-2])).read_text())


def test_runs_are_named_by_their_overrides_and_grouped_by_launch(sweep):
    runs = {lr: _training_run(run_dir(sweep, lr)) for lr in LRS}
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
    run = _training_run(run_dir(sweep, LRS[0]))
    for key in (
        "val/bucket/digits=2",
        "val/three_digits/seq_acc",
        "val/three_digits/bucket/digits=3",
        "val/acc_by_pos/0",
    ):
        assert len(run.history[key]) == EPOCHS, key  # one point per epoch
    assert len(run.history["val/seq_acc"]) == EPOCHS and "best/val/seq_acc" in run.summary


def test_eval_figures_are_in_the_training_run(sweep):
    for lr in LRS:
        job = run_dir(sweep, lr)
        trained = _training_run(job)
        key = "eval/test/beam3"
        (attached,) = [r for r in _wandb_runs(job) if f"{key}/greedy_acc" in r.summary]
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
    val = _table(job, "val/predictions")
    evaluated = _table(job, "eval/test/beam3/predictions")
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
        **_env(tmp_path),
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
    (run,) = _wandb_runs(job)
    assert run.exit_code == 143 and run.preempting
    assert run.name.startswith("addition/") and run.name.endswith("/slurm-4242")
    assert all(o in run.name for o in ("optim.optimizer.lr=0.003", "trainer.max_steps=6"))
    resumed = train()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first, second = _wandb_runs(job)
    assert (
        (first.id, first.name, first.group) == (second.id, second.name, second.group) == (run.id, run.name, run.group)
    )
    assert second.exit_code == 0 and not second.preempting


def test_eval_pictures_show_the_eval_numbers(sweep):
    eval_dir = run_dir(sweep, LRS[0]) / "eval" / "best-test-beam3"
    paths = eval_figures(eval_dir)
    assert all(p.stat().st_size > 10_000 for p in paths.values())
    summary = json.loads((eval_dir / "eval.json").read_text())["metrics"]
    from symlit.review.plots import plot_bucket_accuracy, plot_reliability

    fig = plot_bucket_accuracy(summary)
    ax = fig.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    want = [round(b[c], 6) for c in ("seq_acc", "top1_acc", "acc_at_3") for b in summary["by_bucket"].values()]
    assert heights == want
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(summary["by_bucket"])
    preds = read_predictions(eval_dir / "predictions.jsonl")
    bins = reliability_bins(preds)
    assert sum(b["n"] for b in bins) == len(preds) == summary["n"]
    correct = sum(p["greedy_verdict"] == "correct" for p in preds)
    assert sum(b["n"] * b["accuracy"] for b in bins) == pytest.approx(correct)
    for b in bins:
        assert b["lo"] <= b["confidence"] <= b["hi"]
    # confidence is the model's probability of its greedy answer
    assert sum(b["n"] * b["confidence"] for b in bins) == pytest.approx(sum(math.exp(p["greedy_score"]) for p in preds))
    fig = plot_reliability(preds, summary)
    table = fig.axes[1].tables[0]
    cells = [
        [table[r, c].get_text().get_text() for c in range(3)]
        for r in range(1, len(summary["confidence"]["by_agreement"]) + 1)
    ]
    assert cells == [
        [str(r["agreement"]), str(r["n"]), f"{r['accuracy']:.3f}"] for r in summary["confidence"]["by_agreement"]
    ]


def test_pictures_of_known_numbers(tmp_path):
    """Bars and reliability bins equal numbers computed by hand (the tiny model's are all zero)."""
    from symlit.evaluation.decoding import DecodeConfig
    from symlit.evaluation.report import summarize
    from symlit.evaluation.scoring import Prediction
    from symlit.review.plots import plot_bucket_accuracy, plot_reliability

    # (bucket, P(greedy answer), greedy verdict, beam verdicts, agreement)
    made = [
        ("digits=1", 0.95, "correct", ["correct", "wrong"], 2),
        ("digits=1", 0.91, "correct", ["correct", "wrong"], 1),
        ("digits=1", 0.35, "wrong", ["wrong", "correct"], 1),
        ("digits=2", 0.55, "correct", ["correct", "wrong"], 1),
        ("digits=2", 0.52, "wrong", ["wrong", "wrong"], 1),
        ("digits=2", 0.05, "wrong", ["wrong", "wrong"], 2),
    ]
    preds = [
        Prediction(
            "s",
            "t",
            bucket=b,
            greedy="h",
            greedy_score=math.log(p),
            greedy_verdict=v,
            hypotheses=["h", "h2"],
            scores=[math.log(p), -5.0],
            verdicts=vs,
            agreement=a,
        )
        for b, p, v, vs, a in made
    ]
    summary = summarize(preds, DecodeConfig(strategy="beam", beam_size=2))
    fig = plot_bucket_accuracy(summary, tmp_path / "buckets.png")
    heights = [round(p.get_height(), 4) for p in fig.axes[0].patches]
    assert heights == [round(2 / 3, 4), round(1 / 3, 4), round(2 / 3, 4), round(1 / 3, 4), 1.0, round(1 / 3, 4)]
    bins = reliability_bins(preds)
    assert [(b["lo"], b["n"], b["accuracy"]) for b in bins] == [
        (0.0, 1, 0.0),
        (0.3, 1, 0.0),
        (0.5, 2, 0.5),
        (0.9, 2, 1.0),
    ]
    assert bins[2]["confidence"] == pytest.approx(0.535)
    fig = plot_reliability(preds, summary, tmp_path / "reliability.png")
    ece = (0.05 + 0.35 + 2 * abs(0.5 - 0.535) + 2 * abs(1 - 0.93)) / 6
    assert f"ECE {ece:.3f}" in fig.axes[0].get_title()
    table = fig.axes[1].tables[0]
    assert [[table[r, c].get_text().get_text() for c in range(3)] for r in (1, 2)] == [
        ["1", "4", "0.500"],
        ["2", "2", "0.500"],
    ]


def test_length_histograms_of_the_dataset_and_a_wandb_image(ckpt, tmp_path):
    from symlit.data.datamodule import load_or_build

    loaded = load_checkpoint(ckpt)
    data = load_or_build(loaded.task, ckpt.parents[4] / "data")
    path = tmp_path / "lengths.png"
    fig = plot_lengths(data, loaded.tokenizer, path)
    assert path.stat().st_size > 10_000
    src_ax = fig.axes[0]
    labels = [t.get_text() for t in src_ax.get_legend().get_texts()]
    assert [lab.split(" ")[0] for lab in labels] == list(data)
    first = next(iter(data))
    assert f"n={data[first].num_rows}," in labels[0]
    # the first split's bars are the fraction of its sources of each length (unit-width bins)
    lengths = np.array([len(ids) for ids in loaded.tokenizer.encode_batch(data[first]["source"])])
    bars = src_ax.containers[0]
    assert sum(round(bar.get_height() * len(lengths)) for bar in bars) == len(lengths)
    for bar in bars:
        centre = round(bar.get_x() + bar.get_width() / 2)
        assert bar.get_height() == pytest.approx((lengths == centre).mean())
    import wandb

    assert wandb.Image(fig).image is not None  # the figure can be logged as a W&B image


# ---------------------------------------------------------------------------- symlit-inspect
def test_captured_attention_reproduces_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    mask = torch.rand(2, 1, 1, 7) > 0.3
    mask[..., 0] = True
    assert torch.allclose(
        attention_weights(q, k, mask) @ v, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5
    )
    q2 = torch.randn(1, 2, 6, 8)
    assert torch.allclose(
        attention_weights(q2, q2, is_causal=True) @ q2,
        F.scaled_dot_product_attention(q2, q2, q2, is_causal=True),
        atol=1e-5,
    )


def test_inspect_writes_embedding_pca_and_attention_maps(ckpt, tmp_path):
    out = tmp_path / "inspect"
    proc = _run(tmp_path, "-m", "symlit.review.inspect_model", f"ckpt={ckpt}", "input=23 + 15", f"output_dir={out}")
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["attention_cross.png", "attention_decoder_self.png", "attention_encoder.png", "embeddings_pca.png"]
    assert all((out / n).stat().st_size > 10_000 for n in names) and str(out / names[0]) in proc.stdout
    # and as W&B images in the training run (resumed from its wandb_id.txt)
    job = ckpt.parents[1]
    logged = [r for r in _wandb_runs(job) if "inspect/best/embeddings_pca/path" in r.summary]
    assert logged and all(r.id == _training_run(job).id for r in logged)  # one per symlit-inspect
    assert {f"inspect/best/{n.removesuffix('.png')}/path" for n in names} <= set(logged[-1].summary)
    loaded = load_checkpoint(ckpt)
    cfg = loaded.model.cfg
    src = torch.tensor([loaded.tokenizer.encode("INT+ 2 3 + INT+ 1 5")])
    tgt = torch.tensor([[loaded.tokenizer.bos_id, *loaded.tokenizer.encode("INT+ 3 8")]])
    with torch.no_grad():
        plain = loaded.model(src, tgt)
        with capture_attention(loaded.model) as maps:
            hooked = loaded.model(src, tgt)
    assert torch.equal(plain, hooked)  # capturing does not change the model's outputs
    names = [m.name for m in maps]
    assert len(maps) == cfg.n_encoder_layers + 2 * cfg.n_decoder_layers
    assert sum("cross" in n for n in names) == cfg.n_decoder_layers
    for m in maps:
        assert m.weights.shape[0] == cfg.n_heads
        assert torch.allclose(m.weights.sum(-1), torch.ones(m.weights.shape[:2]), atol=1e-5)
    self_maps = [m for m in maps if m.name.startswith("decoder") and "cross" not in m.name]
    assert all(torch.all(m.weights.triu(1) == 0) for m in self_maps)  # causal
    assert [tuple(m.weights.shape[1:]) for m in maps if "cross" in m.name] == [(4, 7)] * cfg.n_decoder_layers


def test_embedding_groups():
    vocab = ["<pad>", "INT+", "INT-", "+", *"0123456789", "sin", "add"]
    assert ArithmeticTask().embedding_groups(vocab)["digit / number"] == list("0123456789")
    groups = CalculusTask(n_train=10).embedding_groups(vocab)
    assert groups == {"binary operator": ["add"], "unary operator": ["sin"]}


# ---------------------------------------------------------------------------- reading and rendering inputs
def test_arithmetic_input_and_rendering():
    task = ArithmeticTask(operators=["+", "-"])
    source = task.parse_input(" 23+15 - -4")
    assert source == "INT+ 2 3 + INT+ 1 5 - INT- 4"
    assert task.show(source) == "23 + 15 - -4"
    assert task.reference(source) == "INT+ 4 2" and task.show("INT+ 4 2") == "42"
    for bad, message in [
        ("23 +", "ends with an operator"),
        ("23", "has no operator"),
        ("2 * 3", "not an operator"),
        ("x + 1", "unexpected 'x'"),
        ("", "empty input"),
    ]:
        with pytest.raises(ValueError, match=message):
            task.parse_input(bad)
    reversed_task = ArithmeticTask(encoding="reversed")
    assert reversed_task.parse_input("23 + 15") == "INT+ 3 2 + INT+ 5 1"
    assert reversed_task.show("INT+ 3 2 + INT+ 5 1") == "23 + 15"
    # reversed result under plain operands, with index hints: the result is read in its own encoding
    lee = ArithmeticTask(reverse_output=True, index_hints=True, digits=[1, 3])
    source = lee.parse_input("12 + 345")
    assert source == "INT+ @1 1 @0 2 + INT+ @2 3 @1 4 @0 5"
    assert lee.reference(source) == "INT+ @0 7 @1 5 @2 3"
    assert lee.show(source) == "12 + 345" and lee.show("INT+ @0 7 @1 5 @2 3") == "357"


def test_calculus_input_and_rendering():
    task = CalculusTask(n_train=10)
    source = task.parse_input("x*cos(x) + x^2")
    assert source.split()[:2] == ["sub", "Y'"]
    assert task.verify(source, "", "add mul x sin x add cos x mul div INT+ 1 INT+ 3 pow x INT+ 3")  # the integral
    assert task.show(source) == "x**2 + x*cos(x)"
    ode = CalculusTask(generator="ode1", n_train=10)
    assert ode.show(ode.parse_input("x*Y' = Y")) == "-Y + Y'*x = 0"
    for bad, message in [("q*x", "unknown symbol"), ("sin(x", "cannot read"), ("Y + x", "without Y")]:
        with pytest.raises(ValueError, match=message):
            task.parse_input(bad)


def test_qed_input_is_the_dataset_source_and_targets_render_as_symba_text():
    from symlit.qed import symba_format as sf
    from symlit.qed.tokens import from_tokens
    from symlit.tasks.qed import QEDSymbaTask

    task = QEDSymbaTask(path="data_samples/symba-qed-2to2/valid.csv")
    amp, sqamp = sf.read_symba_file(task.path)[0]
    row = task._row(amp, sqamp, "test", 0)
    assert task.parse_input(amp) == row["source"]
    shown = task.show(row["target"])
    assert sympy_equal(sf.parse_sqamp(shown), from_tokens(row["target"], task.notation))
    assert "gamma[^LOR_0,SPIN_0,SPIN_1]" in task.show(row["source"])
    assert task.reference(row["source"]) is None
    with pytest.raises(ValueError, match="not a SYMBA amplitude"):
        task.parse_input("gamma_{+")


def sympy_equal(a, b) -> bool:
    import sympy

    return sympy.simplify(a - b) == 0


# ---------------------------------------------------------------------------- symlit-predict
ROW = re.compile(r"^\s*(\d+)  (.+?)\s+(-?\d+\.\d{3})  (correct|wrong|error|timeout|no_eos)$")


def _expected_rows(block: str, reference: str, beams: int) -> None:
    """Every answer row: rank, expression, score, and the verdict the reference implies."""
    rows = [m.groups() for line in block.splitlines() if (m := ROW.match(line.rstrip("\r")))]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)) and 1 <= len(rows) <= beams, block
    # beam search lists finished hypotheses first, each group by score (symlit.evaluation.decoding.beam_search)
    ended = [r[3] != "no_eos" for r in rows]
    assert ended == sorted(ended, reverse=True), block
    for group in (True, False):
        scores = [float(r[2]) for r, e in zip(rows, ended) if e == group]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores), block
    for (_, answer, _, verdict), e in zip(rows, ended):
        assert not e or (verdict == "correct") == (answer == reference), block
        assert verdict in ("correct", "wrong", "malformed", "no_eos"), block


def test_predict_in_a_terminal(ckpt, tmp_path):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "symlit.review.predict", f"ckpt={ckpt}", "decode.beam_size=3"],
        cwd=str(tmp_path),
        env=_env(tmp_path),
        encoding="utf-8",
        timeout=120,
    )
    child.expect_exact("ArithmeticTask: type an input")
    child.expect_exact("symlit> ")
    for text, shown, value in [("23 + 15", "23 + 15", "38"), ("7+45", "7 + 45", "52"), ("  99 + 1", "99 + 1", "100")]:
        child.sendline(text)
        child.expect_exact("symlit> ")
        block = child.before
        assert f"input: {shown}\r\ntokens: " in block and f"reference: {value}\r\n" in block
        assert re.search(r"beam agreement: [1-3] of [1-3] ", block)
        _expected_rows(block, value, 3)
    for bad, message in [
        ("23 +", "error: '23 +' ends with an operator; expected a number after it"),
        ("twelve + 3", "error: unexpected 't' in 'twelve + 3'; expected a whole number"),
    ]:
        child.sendline(bad)
        child.expect_exact("symlit> ")
        assert message in child.before and "Traceback" not in child.before
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_predict_one_shot_and_from_python(ckpt, tmp_path):
    proc = _run(tmp_path, "-m", "symlit.review.predict", f"ckpt={ckpt}", "input=23 + 15", "decode.beam_size=2")
    assert "input: 23 + 15" in proc.stdout and "reference: 38" in proc.stdout
    _expected_rows(proc.stdout, "38", 2)
    bad = _run(tmp_path, "-m", "symlit.review.predict", f"ckpt={ckpt}", "input=23 ++", check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "symlit-predict: error: input='23 ++': '23 ++' ends with an operator; expected a number after it"
    )
    missing = _run(tmp_path, "-m", "symlit.review.predict", f"ckpt={tmp_path / 'no.ckpt'}", "input=1 + 1", check=False)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("symlit-predict: error: ckpt=")
    predictor = Predictor.from_checkpoint(str(ckpt), beam_size=3)
    result = predictor("23 + 15")
    assert result.reference == "38" and len(result.answers) == 3
    assert [a.verdict == "correct" for a in result.answers] == [a.text == "38" for a in result.answers]
    # finished hypotheses first (tokens not None), each group by score
    ended = [a.tokens is not None for a in result.answers]
    assert ended == sorted(ended, reverse=True)
    for group in (True, False):
        scores = [a.score for a, e in zip(result.answers, ended) if e == group]
        assert scores == sorted(scores, reverse=True)
    assert 1 <= result.agreement <= 3


def test_notebook_runs(ckpt, tmp_path, monkeypatch):
    notebook = json.loads((REPO / "examples" / "predict.ipynb").read_text())
    assert notebook["nbformat"] == 4
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    monkeypatch.setenv("SYMLIT_CKPT", str(ckpt))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "predict.ipynb", "exec"), scope)
    assert scope["result"].reference == "38" and math.isfinite(scope["result"].answers[0].score)


def test_free_text_input_survives_hydra_parsing():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from symlit.core.cli import quote_free_text
    from symlit.qed import symba_format as sf

    amplitude = sf.read_symba_file(str(REPO / "data_samples/symba-qed-2to2/valid.csv"))[0][0]
    for text in ["23 + 15", "x*cos(x) + sin(x)", "a, b", "it's", amplitude, "end\\"]:
        (override,) = OverridesParser.create().parse_overrides(quote_free_text([f"input={text}"]))
        assert override.value() == text
    sweep_job = "/o/addition/data.task.n_test=40,optim.optimizer.lr=0.002/checkpoints/best.ckpt"
    (override,) = OverridesParser.create().parse_overrides(quote_free_text([f"ckpt={sweep_job}"]))
    assert override.value() == sweep_job
