"""Integration tests: the real Hydra configs, the real Lightning Trainer, real loggers."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigAttributeError, MissingMandatoryValue

# the arithmetic studies run small (and with their OOD lengths) in test_arithmetic_experiments.py
from test_arithmetic_experiments import SMALL as ARITHMETIC_STUDIES

from symlit.core.atomic import DirectoryLocked
from symlit.core.config import ConfigError, config_dir, run_id
from symlit.core.moved import MOVED_MODULES
from symlit.training import train as train_cli
from symlit.training.run_dir import RunDirectoryError
from symlit.training.train import train


def _with_bases(path: Path) -> str:
    """The text of an experiment config and of the experiment configs its defaults list builds on."""
    text = path.read_text()
    bases = re.findall(r"^\s*-\s*([\w/]+)\s*$", text, re.M)
    return text + "".join(
        _with_bases(path.parent / f"{b}.yaml") for b in bases if (path.parent / f"{b}.yaml").is_file()
    )


# the GPU-scale experiments (trainer=gpu: base-size models) run in the slow set; their _cpu
# variants, with the same task and pipeline, stay in the default one
EXPERIMENTS = [
    pytest.param(p.stem, marks=pytest.mark.slow) if "override /trainer: gpu" in _with_bases(p) else p.stem
    for p in sorted((config_dir() / "experiment").glob("*.yaml"))
    if p.stem not in ARITHMETIC_STUDIES
]
SMALL_DATA = ["data.task.n_train=200", "data.task.n_valid=40", "data.task.n_test=40"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_fast_dev_run(make_cfg, tmp_path, experiment):
    extra = []
    if experiment == "from_file":
        path = tmp_path / "pairs.jsonl"
        path.write_text("\n".join(json.dumps({"source": f"x {i} y", "target": f"{i} z"}) for i in range(300)))
        extra = [f"data.task.train={path}"]
    if experiment in ("addition", "addition_4x2", "subtraction", "multiplication"):
        extra = SMALL_DATA  # addition_4x2 would otherwise draw its 1,000,000 training problems
    # one tiny batch: GPU-scale experiments (d_model 512, long sequences) stay cheap on a CPU
    small = ["data.batch_size=4", "data.eval_batch_size=4", "module.decode_max_len=32"]
    metrics = train(make_cfg(f"experiment={experiment}", "debug=fast_dev_run", *small, *extra))
    assert "test/seq_acc" in metrics and "val/seq_acc" in metrics


@pytest.mark.parametrize("optim", ["inverse_sqrt", "cosine", "one_cycle", "constant"])
def test_short_run_writes_metrics_tokenizer_and_checkpoints(make_cfg, tmp_path, optim):
    run_dir = tmp_path / "run"
    cfg = make_cfg(
        *SMALL_DATA,
        f"optim={optim}",
        "logger=csv",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        run_dir=run_dir,
    )
    metrics = train(cfg)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(metrics)
    assert {"val/seq_acc", "val/tok_acc", "val/loss", "test/seq_acc", "test/three_digits/seq_acc"} <= set(metrics)
    assert (run_dir / "tokenizer.json").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "lr-AdamW" in header and "train/loss" in header


def test_wandb_offline_run_with_prediction_table(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the config alone must keep W&B offline
    run_dir = tmp_path / "run"
    cfg = make_cfg(*SMALL_DATA, "logger=wandb", "trainer.max_epochs=1", run_dir=run_dir)
    train(cfg)
    task = instantiate(cfg.data.task)
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id_saved = (run_dir / "wandb_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id_saved)
    tables = list(runs[0].rglob("val/predictions*.table.json"))
    assert tables, "no W&B prediction table written"
    table = json.loads(tables[0].read_text())
    assert table["columns"][:4] == ["source", "target", "hypothesis", "verdict"] and table["data"]
    # the task renders the tokens: INT+ 2 8 + INT+ 9 2 -> 28 + 92, next to the tokens themselves
    for source, target, *_, source_tokens, _, _ in table["data"]:
        assert source == task.render(source_tokens) and " + " in source and "INT+" not in source
        assert target == str(task.operands(source_tokens)[0] + task.operands(source_tokens)[1])


def test_finished_run_is_not_retrained_and_resume_false_protects_it(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    args = (*SMALL_DATA, "logger=none", "trainer.max_epochs=1")
    train(make_cfg(*args, run_dir=run_dir))
    last = run_dir / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=False)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["finished"] and saved["global_step"] == before["global_step"] > 0
    again = train(make_cfg(*args, run_dir=run_dir))  # same command: nothing left to train, only evaluation
    after = torch.load(last, weights_only=False)
    assert after["global_step"] == before["global_step"]
    for name, tensor in before["state_dict"].items():
        assert torch.equal(after["state_dict"][name], tensor), name
    assert again == pytest.approx(saved["metrics"])
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == saved["global_step"]
    with pytest.raises(RunDirectoryError, match="resume=false"):
        train(make_cfg(*args, "resume=false", run_dir=run_dir))


def test_a_run_recorded_with_the_paths_of_the_flat_layout_resumes(make_cfg, tmp_path):
    """``run.json`` of a run started before symlit was split into packages names the old module
    paths of its classes (``symlit.module.Seq2SeqModule``); the same command still resumes it."""
    run_dir = tmp_path / "run"
    args = (*SMALL_DATA, "logger=none", "trainer.max_epochs=1")
    train(make_cfg(*args, run_dir=run_dir))
    old = {new: old for old, new in MOVED_MODULES.items()}
    recorded = json.loads((run_dir / "run.json").read_text())
    for key, value in recorded.items():
        if key.endswith("_target_") and value.rpartition(".")[0] in old:
            module, _, name = value.rpartition(".")
            recorded[key] = f"{old[module]}.{name}"
    assert recorded["module._target_"] == "symlit.module.Seq2SeqModule"
    (run_dir / "run.json").write_text(json.dumps(recorded))
    train(make_cfg(*args, run_dir=run_dir))
    with pytest.raises(RunDirectoryError, match="model.d_ff"):
        train(make_cfg(*args, "model.d_ff=256", run_dir=run_dir))


def test_changed_config_in_existing_run_is_refused_and_safe_changes_are_not(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    args = (*SMALL_DATA, "logger=none", "trainer.max_epochs=1")
    train(make_cfg(*args, run_dir=run_dir))
    for change, key in [
        ("data.task.encoding=number", "data.task"),
        ("data.task.n_train=150", "data.task"),
        ("model.d_ff=256", "model.d_ff"),
        ("seed=1", "seed"),
        ("trainer.accumulate_grad_batches=2", "trainer.accumulate_grad_batches"),
        ("module.label_smoothing=0.2", "module.label_smoothing"),
        ("trainer.precision=bf16-mixed", "trainer.precision"),
    ]:
        with pytest.raises(RunDirectoryError, match=rf"config changed since this run started .*[(, ]{key}: "):
            train(make_cfg(*args, change, run_dir=run_dir))
    # declared safe (RESUME_SAFE): logging, checkpoint frequency, the final test's decoding
    train(
        make_cfg(
            *args,
            "callbacks.last_checkpoint.every_n_train_steps=7",
            "trainer.log_every_n_steps=3",
            "module.test_decode.beam_size=2",
            "data.eval_batch_size=16",
            run_dir=run_dir,
        )
    )


def test_a_second_run_in_the_same_directory_is_refused_and_a_dead_runs_lock_is_not(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    in_flight = run_dir / "checkpoints" / ".last.ckpt.tmp-12345"  # the first run's checkpoint, mid-save
    in_flight.write_bytes(b"partial")
    holder = subprocess.Popen(  # another process that holds the run directory (as symlit-train does)
        [
            sys.executable,
            "-c",
            "import sys; from symlit.core.atomic import DirectoryLock; "
            "lock = DirectoryLock(sys.argv[1]).__enter__(); print('locked', flush=True); sys.stdin.read()",
            str(run_dir),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        cfg = make_cfg(*SMALL_DATA, "logger=none", "trainer.max_steps=2", run_dir=run_dir)
        with pytest.raises(DirectoryLocked, match=f"in use by .*pid {holder.pid} on host {socket.gethostname()}"):
            train(cfg)
        assert in_flight.exists() and not (run_dir / "run.json").exists()  # nothing touched
    finally:
        holder.kill()  # dies holding the lock: the .lock file stays behind
        holder.wait()
    assert str(holder.pid) in (run_dir / ".lock").read_text()
    train(cfg)
    assert not in_flight.exists() and (run_dir / "metrics.json").is_file()
    assert str(holder.pid) not in (run_dir / ".lock").read_text()


def test_a_bad_data_file_does_not_bind_the_run_directory(make_cfg, tmp_path):
    pairs = tmp_path / "pairs.csv"
    rows = [f"x {i} y,{i} z" for i in range(80)]
    rows[10] = "x 10 y"  # no target
    pairs.write_text("source,target\n" + "\n".join(rows) + "\n")
    args = ("experiment=from_file", f"data.task.train={pairs}", "logger=none", "trainer.max_steps=2")
    with pytest.raises(ValueError, match="pairs.csv, line 12: no 'target' field"):
        train(make_cfg(*args))
    rows[10] = "x 10 y,10 z"
    pairs.write_text("source,target\n" + "\n".join(rows) + "\n")  # fixed: the same command now trains
    train(make_cfg(*args))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["finished"]


@pytest.mark.parametrize("encoding", ["reversed", "number", "text"])
def test_every_encoding_trains_fast_dev_run(make_cfg, encoding):
    metrics = train(make_cfg(*SMALL_DATA, f"data.task.encoding={encoding}", "debug=fast_dev_run"))
    assert set(metrics) >= {"test/seq_acc", "val/seq_acc", "val/loss"}
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("data.task.min_value=500", ValueError, "data.task.min_value=500 is greater than data.task.max_value=100"),
        ("data.task.digits=0", ValueError, "data.task.digits=0"),
        ("data.task.operators=[/]", ValueError, "data.task.operators"),
        ("data.batch_size=0", ValueError, "data.batch_size=0"),
        ("model.d_model=130", ValueError, "model.d_model=130"),
        ("model.max_positions=8", ValueError, "model.max_positions=8"),
        ("optim.scheduler.warmup_steps=-1", ValueError, "optim.scheduler.warmup_steps=-1"),
        ("module.label_smoothing=2", ValueError, "module.label_smoothing=2"),
        ("data.batch_size=abc", ConfigError, "data.batch_size='abc' must be an integer"),
        ("seed=abc", ConfigError, "seed='abc' must be an integer"),
        ("optim.optimizer.lr=-0.001", ConfigError, "optim.optimizer.lr=-0.001 must be > 0"),
        ("module.test_decode.beam_size=0", ConfigError, "module.test_decode.beam_size=0 must be >= 1"),
        ("module.verify.workers=-1", ConfigError, "module.verify.workers=-1 must be >= 0"),
    ],
)
def test_bad_values_raise_clear_errors(make_cfg, tmp_path, override, error, message):
    cfg = make_cfg(*SMALL_DATA, override, "debug=fast_dev_run")
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is checked on the cause chain below
        train(cfg)
    assert message in str(info.value)
    causes = [info.value]  # Hydra wraps errors raised while instantiating; the original is a cause
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(isinstance(c, error) for c in causes), causes
    if error is ConfigError:  # checked before anything is built
        assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data.batch_size=abc"], "symlit-train: error: data.batch_size='abc' must be an integer (>= 1)"),
        (
            ["experiment=from_file", "data.task.train={empty}"],
            "symlit-train: error: data.task.train={empty} is empty; ",
        ),
    ],
)
def test_user_errors_print_one_line_without_traceback(tmp_path, monkeypatch, capsys, args, message):
    empty = tmp_path / "empty.csv"
    empty.touch()
    args = [a.format(empty=empty) for a in args]
    monkeypatch.setenv("SYMLIT_ROOT", str(tmp_path))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["symlit-train", *args, "logger=none"])
    with pytest.raises(SystemExit) as info:
        train_cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message.format(empty=empty) in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("symlit-train: error: ")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # the traceback is still there for those who ask
    with pytest.raises((ConfigError, ValueError)):
        train_cli.main()


def test_unknown_keys_and_missing_values_fail_in_hydra(make_cfg, tmp_path):
    with pytest.raises(ConfigCompositionException, match="data.task.colour"):
        make_cfg("data.task.colour=red")
    with pytest.raises(ConfigCompositionException, match="experiment"):
        make_cfg("experiment=does_not_exist")
    cfg = make_cfg("experiment=from_file")
    with pytest.raises((MissingMandatoryValue, ConfigAttributeError), match="train"):
        _ = cfg.data.task.train


def test_run_id_is_derived_from_the_command():
    assert run_id(None, "") == "default"
    assert run_id(None, "optim.lr=0.001,seed=2") == "optim.lr=0.001,seed=2"
    assert run_id("mine", "optim.lr=0.001") == "mine"
    assert run_id("mine", "optim.lr=0.001", True) == "mine/optim.lr=0.001"
    assert "/" not in run_id(None, "paths.x=/a/b")
    long = run_id(None, "x=" + "9" * 300)
    assert len(long) <= 100 and long != run_id(None, "x=" + "9" * 299)


def test_symlit_generate_with_a_non_calculus_data_group_names_the_choices(monkeypatch, capsys):
    from symlit.data import generate

    monkeypatch.setattr(sys, "argv", ["symlit-generate", "data=arithmetic", "n=10"])
    with pytest.raises(SystemExit) as info:
        generate.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert err.strip() == (
        "symlit-generate: error: data=arithmetic is not a calculus task; symlit-generate makes "
        "calculus datasets: use data=ode1|ode2|prim_bwd|prim_fwd|prim_ibp"
    )


def test_help_is_symlits_and_imports_no_torch():
    code = (
        "import atexit, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules)); "
        "sys.argv = ['symlit-train', '--help']; from symlit.training.entry import train; train()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("symlit-train: train a transformer (encoder-decoder or decoder-only)")
    assert (
        "experiment: addition, addition_4x2" in proc.stdout
        and "trainer: cpu, ddp, default, gpu, multinode" in proc.stdout
    )
    assert proc.stdout.strip().endswith("torch imported: False")
