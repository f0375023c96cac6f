"""Evaluation: the verifier pool (timeouts, errors), symlit-eval on a real checkpoint, its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from verifier_tasks import TrickyTask

from symlit.core.config import ConfigError, config_dir
from symlit.data.tokenizer import Seq2SeqTokenizer
from symlit.evaluation.decoding import DecodeConfig
from symlit.evaluation.report import summarize
from symlit.evaluation.scoring import Prediction, verify_predictions
from symlit.evaluation.verifier_pool import Check, VerifierPool
from symlit.models.checkpoint import load_checkpoint
from symlit.review import evaluate as evaluate_cli
from symlit.review.evaluate import run_eval
from symlit.tasks import ArithmeticTask
from symlit.training.train import train

pytestmark = pytest.mark.xdist_group("test_evaluate")  # pytest-xdist: the module-scoped fixture is built once


def test_pool_times_out_a_hanging_verifier_and_finishes():
    checks = [Check("s", "INT+ 1", h) for h in ["INT+ 1", "hang", "INT+ 2", "boom", None, "INT+ + +", "INT+ 1", "hang"]]
    with VerifierPool(TrickyTask(), workers=2, timeout=2.0) as pool:
        verdicts = [o.verdict for o in pool.verify(checks)]
        assert pool.timeouts == 2
        # the replaced workers still serve later calls
        assert [o.verdict for o in pool.verify(checks[:1])] == ["correct"]
    assert verdicts == ["correct", "timeout", "wrong", "error", "no_eos", "malformed", "correct", "timeout"]


def test_inline_pool_counts_malformed_hypotheses_as_malformed():
    pool = VerifierPool(TrickyTask(), workers=0)
    outcomes = pool.verify([Check("s", "INT+ 1 2", h) for h in ["INT+ 1 2", "INT+", "+ INT- 3", "boom", ""]])
    assert [o.verdict for o in outcomes] == ["correct", "malformed", "malformed", "error", "malformed"]
    assert [o.method for o in outcomes] == ["value", "parse", "parse", "", "parse"]
    assert "ZeroDivisionError" in outcomes[3].error


def test_any_verified_hypothesis_counts_and_agreement_needs_no_reference():
    task = ArithmeticTask()
    preds = [
        Prediction(
            "a", "INT+ 5", greedy="INT+ 4", hypotheses=["INT+ 4", "INT+ 5", "INT+ 4"], scores=[-0.1, -0.2, -0.3]
        ),
        Prediction("b", "INT+ 7", greedy="INT+ 7", hypotheses=["INT+ 7", None], scores=[-0.05, -0.5]),
    ]
    verify_predictions(preds, VerifierPool(task, workers=0))
    assert [p.greedy_correct for p in preds] == [False, True]
    assert [p.top1_correct for p in preds] == [False, True]
    assert [p.any_correct for p in preds] == [True, True]
    assert [p.agreement for p in preds] == [2, 1]  # "INT+ 4" twice agrees with the top-1; None never does
    summary = summarize(preds, DecodeConfig(strategy="beam", beam_size=3))
    assert summary["greedy"]["seq_acc"] == 0.5 and summary["nbest"]["acc_at_3"] == 1.0
    assert summary["nbest"]["verdicts"]["no_eos"] == 1


# ---------------------------------------------------------------------------- symlit-eval
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real (short) addition run: returns its best checkpoint."""
    root = tmp_path_factory.mktemp("evalrun")
    overrides = [
        f"paths.root_dir={root}",
        f"paths.run_dir={root / 'run'}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "data.task.n_train=600",
        "data.task.n_valid=60",
        "data.task.n_test=60",
        "trainer.max_epochs=2",
        "module.test_decode.beam_size=3",
        "module.verify.workers=1",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        metrics = train(compose("train", overrides=overrides))
    # the final test of training decodes with module.test_decode and verifies in a worker pool
    assert {"test/seq_acc", "test/top1_acc", "test/acc_at_3", "test/three_digits/acc_at_3"} <= set(metrics)
    assert metrics["test/acc_at_3"] >= metrics["test/top1_acc"]
    return root / "run" / "checkpoints" / "best.ckpt"


def eval_cfg(ckpt: Path, *overrides: str):
    root = ckpt.parents[2]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("eval", overrides=[f"ckpt={ckpt}", f"paths.root_dir={root}", *overrides])


def test_symlit_eval_writes_eval_json_and_report(trained):
    summary = run_eval(eval_cfg(trained, "decode.beam_size=3", "verify.workers=1"))
    out = trained.parents[1] / "eval" / "best-test-beam3"
    saved = json.loads((out / "eval.json").read_text())
    assert saved["metrics"]["n"] == 60 and saved["decode"]["beam_size"] == 3
    assert saved["metrics"] == json.loads(json.dumps(summary, default=str))
    assert {"greedy", "nbest", "by_bucket", "confidence", "timeouts"} <= set(saved["metrics"])
    nbest = saved["metrics"]["nbest"]
    assert nbest["acc_at_3"] >= nbest["top1_acc"]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert nbest["acc_at_3"] == pytest.approx(sum("correct" in p["verdicts"] for p in predictions) / 60)
    assert set(saved["metrics"]["by_bucket"]) <= {"digits=1", "digits=2", "digits=3"}
    report = (out / "report.md").read_text()
    for heading in ("## Accuracy", "## By bucket", "## Confidence", "failures"):
        assert heading in report
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 60 and len(json.loads(lines[0])["hypotheses"]) <= 3


def test_symlit_eval_ood_split_and_wandb_tables(trained, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the config alone keeps W&B offline
    run_eval(eval_cfg(trained, "split=three_digits", "limit=20", "logger.enabled=true", "verify.workers=0"))
    out = trained.parents[1] / "eval" / "best-three_digits-greedy-limit20"
    assert json.loads((out / "eval.json").read_text())["metrics"]["n"] == 20
    # no W&B run of its own in the training run directory: a standalone run there, keyed like the attached ones
    runs = list((trained.parents[1] / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].rglob("eval/three_digits/greedy-limit20/predictions*.table.json"))


def test_symlit_eval_command_line_accepts_the_paths_training_prints(trained, tmp_path):
    # a run with overrides lives in a directory named by them: '=' and ',' in the path, unquoted
    run_dir = tmp_path / "outputs/addition/optim.optimizer.lr=0.002,trainer.max_steps=200"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(trained.read_bytes())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "symlit.review.evaluate",
            f"ckpt={ckpt}",
            f"paths.root_dir={trained.parents[2]}",
            "verify.workers=0",
            "limit=10",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = run_dir / "eval" / "best-test-greedy-limit10"
    assert "greedy" in proc.stdout and (out / "eval.json").is_file() and (out / "report.md").is_file()


def test_symlit_eval_without_ckpt_says_so(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["symlit-eval", "limit=5"])
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main()
    err = capsys.readouterr().err
    assert (
        info.value.code == 2
        and err.startswith("symlit-eval: error: ckpt is required: add ckpt=")
        and "Traceback" not in err
    )


def test_evaluations_with_other_settings_never_share_a_directory(trained):
    full = run_eval(eval_cfg(trained, "verify.workers=0"))
    first = run_eval(eval_cfg(trained, "verify.workers=0", "limit=5"))
    sampled = run_eval(eval_cfg(trained, "verify.workers=0", "limit=5", "decode.length_penalty=0.5"))
    assert (full["n"], first["n"], sampled["n"]) == (60, 5, 5)
    evals = trained.parents[1] / "eval"
    dirs = {p.name: json.loads((p / "eval.json").read_text())["metrics"]["n"] for p in evals.glob("best-test-greedy*")}
    assert dirs["best-test-greedy"] == 60 and dirs["best-test-greedy-limit5"] == 5  # the full evaluation is kept
    assert len([d for d in dirs if d.startswith("best-test-greedy-limit5-")]) == 1  # another length penalty
    for limit in ("-1", "0"):
        with pytest.raises(ConfigError, match=f"limit={limit} must be a positive number"):
            run_eval(eval_cfg(trained, f"limit={limit}"))


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="ckpt=.*no such file"):
        load_checkpoint(tmp_path / "nope.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="was it written by symlit-train"):
        load_checkpoint(foreign)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(truncated)


def test_mismatched_tokenizer_is_a_clear_error(tmp_path, trained):
    other = tmp_path / "tokenizer.json"
    Seq2SeqTokenizer.word_level(["INT+", "INT-", "1", "2", "+"]).save(other)
    with pytest.raises(ValueError, match="does not match the tokenizer of ckpt"):
        load_checkpoint(trained, tokenizer_path=str(other))
    own = trained.parents[1] / "tokenizer.json"
    assert load_checkpoint(trained, tokenizer_path=str(own)).tokenizer.fingerprint()


def test_eval_on_other_data_with_a_missing_file_names_the_field(trained, tmp_path):
    cfg = eval_cfg(trained, "data=file", f"data.task.train={tmp_path / 'missing.csv'}")
    with pytest.raises(Exception, match=r"data.task.train=.*missing.csv does not exist") as info:
        run_eval(cfg)
    causes = [info.value]  # Hydra wraps errors raised while instantiating; the original is a cause
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(isinstance(c, FileNotFoundError) for c in causes), causes


def test_malformed_prefix_hypotheses_are_malformed_or_wrong_never_a_crash():
    """Unbalanced or garbled prefix answers of a real task (QED, hybrid prefix) through the pool."""
    from symlit.tasks import QEDSymbaTask

    task = QEDSymbaTask(path="data_samples/symba-qed-2to2/valid.csv", max_rows=8)
    split = next(rows for rows in task.build().values() if rows["source"])
    source, target = split["source"][0], split["target"][0]
    tokens = target.split()
    hypotheses = [
        target,
        " ".join(tokens[1:]),
        " ".join(tokens[:-3]),
        "add(",
        ")",
        "INT+",
        "",
        "pow INT+ 2 INT+ 9 9 9 9",
    ]
    with VerifierPool(task, workers=1, timeout=20.0) as pool:
        outcomes = pool.verify([Check(source, target, h, with_scores=True) for h in hypotheses])
    assert outcomes[0].verdict == "correct" and outcomes[0].scores["token_score"] == 1.0
    verdicts = [o.verdict for o in outcomes]
    assert all(v in ("wrong", "malformed") for v in verdicts[1:]) and "malformed" in verdicts, verdicts
