"""CalculusTask: reference-format files load, train (fast_dev_run) and round-trip; generated builds."""

from __future__ import annotations

import pickle
import re

import pytest
from hydra import compose, initialize_config_dir

from symlit.calculus.reference_io import ReferencePair, parse_line, read_reference, write_reference
from symlit.core.config import config_dir
from symlit.data.generate import run as generate_run
from symlit.tasks.calculus import CalculusTask
from symlit.training.train import train

# reference-format lines (count|input<TAB>output), as in the released prim_fwd/prim_bwd files
PAIRS = [
    ("sub Y' mul INT+ 2 x", "pow x INT+ 2"),
    ("sub Y' cos x", "sin x"),
    ("sub Y' mul INT+ 3 pow x INT+ 2", "pow x INT+ 3"),
    ("sub Y' exp x", "exp x"),
    ("sub Y' pow x INT- 1", "ln x"),
    ("sub Y' add INT+ 1 mul INT+ 2 x", "add x pow x INT+ 2"),
    ("sub Y' mul INT- 1 sin x", "cos x"),
    ("sub Y' mul INT+ 2 mul x exp pow x INT+ 2", "exp pow x INT+ 2"),
    ("sub Y' mul INT+ 4 pow x INT+ 3", "pow x INT+ 4"),
    ("sub Y' pow cos x INT- 2", "tan x"),
    ("sub Y' mul INT+ 5 pow x INT+ 4", "pow x INT+ 5"),
    ("sub Y' add INT+ 2 mul INT+ 2 x", "add pow x INT+ 2 mul INT+ 2 x"),
]


@pytest.fixture
def reference_file(tmp_path):
    path = tmp_path / "prim_bwd.train"
    lines = [f"{i % 3 + 1}|{s}\t{t}" for i, (s, t) in enumerate(PAIRS * 3)]  # with duplicates, as released
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_reference_format_round_trips_byte_for_byte(reference_file, tmp_path):
    pairs = list(read_reference(reference_file))
    assert pairs[0] == ReferencePair(1, PAIRS[0][0], PAIRS[0][1])
    copy = tmp_path / "copy"
    write_reference(copy, pairs)
    assert copy.read_bytes() == reference_file.read_bytes()
    assert parse_line("sub Y' x\tmul div INT+ 1 INT+ 2 pow x INT+ 2").count == 1  # no count: raw export
    with pytest.raises(ValueError, match="one TAB"):
        parse_line("7|sub Y' x mul x x", where="f.txt:3")
    with pytest.raises(ValueError, match="f.txt:3.*not a count"):
        parse_line("x7|a\tb", where="f.txt:3")


def test_reference_file_task_splits_without_leaks(reference_file, tmp_path):
    task = CalculusTask(generator="prim_bwd", path=str(reference_file), n_train=None, n_valid=2, n_test=2)
    splits = task.build()
    assert {k: len(v["source"]) for k, v in splits.items()} == {"train": 8, "valid": 2, "test": 2}
    held = set(splits["valid"]["source"]) | set(splits["test"]["source"])
    assert not held & set(splits["train"]["source"])
    # explicit valid/test files: their inputs are removed from train
    valid = tmp_path / "v"
    write_reference(valid, [ReferencePair(1, *PAIRS[0])])
    splits = CalculusTask(
        generator="prim_bwd", path=str(reference_file), valid_path=str(valid), test_path=str(valid), n_train=None
    ).build()
    assert PAIRS[0][0] not in splits["train"]["source"] and len(splits["train"]["source"]) == len(PAIRS) - 1
    with pytest.raises(FileNotFoundError, match="data.task.path"):
        CalculusTask(path=str(tmp_path / "missing")).build()  # checked when data is built


def test_verify_bucket_and_pickle():
    task = CalculusTask(generator="prim_bwd")
    source, target = PAIRS[0]
    assert task.verify(source, target, target)
    assert task.verify(source, target, "add INT+ 3 pow x INT+ 2")  # a primitive up to a constant
    assert not task.verify(source, target, "pow x INT+ 3")
    assert not task.verify(source, target, "pow x")  # malformed: False, never an exception
    assert not task.verify(source, target, "")
    assert task.bucket(source, target) == "ops 00-04"
    ode = pickle.loads(pickle.dumps(CalculusTask(generator="ode1")))
    assert ode.verify("add Y' mul INT- 1 Y", "x", "mul a8 exp x")
    assert "Y''" in task.base_vocabulary()
    with pytest.raises(ValueError, match="data.task.generator"):
        CalculusTask(generator="prim_sideways")


def test_fingerprint_ignores_workers_but_not_settings():
    base = CalculusTask(generator="prim_bwd")
    assert base.fingerprint() == CalculusTask(generator="prim_bwd", workers=7, work_dir="/elsewhere").fingerprint()
    assert base.fingerprint() != CalculusTask(generator="prim_bwd", max_ops=7).fingerprint()


def test_reference_file_trains_fast_dev_run(make_cfg, reference_file):
    metrics = train(
        make_cfg(
            "experiment=integration_bwd_cpu",
            "debug=fast_dev_run",
            f"data.task.path={reference_file}",
            "data.task.n_train=null",
            "data.task.n_valid=2",
            "data.task.n_test=2",
        )
    )
    assert 0.0 <= metrics["test/seq_acc"] <= 1.0


def test_generated_task_is_resumable_and_leak_free(tmp_path):
    task = CalculusTask(
        generator="prim_bwd",
        max_ops=4,
        n_train=40,
        n_valid=5,
        n_test=5,
        workers=0,
        fast=True,
        work_dir=str(tmp_path),
        shard_size=10,
        progress=False,
    )
    splits = task.build()
    assert [len(splits[k]["source"]) for k in ("train", "valid", "test")] == [40, 5, 5]
    assert not set(splits["train"]["source"]) & (set(splits["valid"]["source"]) | set(splits["test"]["source"]))
    assert task.build() == splits  # rebuilt from the shards on disk, same rows


def test_symlit_generate_writes_dataset_reference_export_and_audit(tmp_path):
    out = tmp_path / "gen"
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "generate",
            overrides=[
                "data=prim_bwd",
                "n=40",
                "workers=0",
                "n_valid=4",
                "n_test=4",
                f"output_dir={out}",
                "audit=true",
                "progress=false",
                "data.task.max_ops=4",
                f"paths.root_dir={tmp_path}",
            ],
        )
    summary = generate_run(cfg)
    assert summary["audit"]["verified"] == summary["audit"]["total"] >= 40
    assert summary["splits"]["valid"] == 4 and summary["lengths"]["source"]["max"] > 0
    exported = list(read_reference(out / "reference" / "prim_bwd.train"))
    assert len(exported) == summary["splits"]["train"]
    # the generated directory is a data source for training
    task = CalculusTask(generator="prim_bwd", path=str(out), n_train=None, n_valid=4, n_test=4)
    splits = task.build()
    assert len(splits["train"]["source"]) == summary["splits"]["train"]
    # and its reference export reads back as a file task
    file_task = CalculusTask(
        generator="prim_bwd",
        path=str(out / "reference" / "prim_bwd.train"),
        valid_path=str(out / "reference" / "prim_bwd.valid"),
        test_path=str(out / "reference" / "prim_bwd.test"),
        n_train=None,
    )
    assert sorted(file_task.build()["train"]["source"]) == sorted(splits["train"]["source"])


def test_counts_round_trip_byte_for_byte_through_the_data_module(tmp_path):
    from symlit.data.datamodule import load_or_build

    files = {}
    for name, lines in (("train", PAIRS[:8]), ("valid", PAIRS[8:10]), ("test", PAIRS[10:])):
        files[name] = tmp_path / f"prim_bwd.{name}"
        files[name].write_text("".join(f"{7 * i + 2}|{s}\t{t}\n" for i, (s, t) in enumerate(lines)))  # counts > 1
    task = CalculusTask(
        generator="prim_bwd",
        path=str(files["train"]),
        valid_path=str(files["valid"]),
        test_path=str(files["test"]),
        n_train=None,
    )
    dataset = load_or_build(task, tmp_path / "cache")
    for name, path in files.items():
        export = tmp_path / f"export.{name}"
        split = dataset[name]
        write_reference(export, zip(split["count"], split["source"], split["target"]))
        assert export.read_bytes() == path.read_bytes(), name


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("sub Y' mul INT+ 2\tpow x INT+ 2", "input is not a prefix expression: incomplete"),
        ("sub Y' mul INT+ 2 x\tpow x INT+", "output is not a prefix expression: integer without digits"),
        ("sub Y' foo\tx", "unknown token 'foo'"),
        ("mul INT+ 2 x\tpow x INT+ 2", 'starts with "sub Y\'"'),
    ],
)
def test_a_bad_reference_line_is_an_error_or_skipped_and_counted(tmp_path, line, problem, caplog):
    path = tmp_path / "bad.train"
    good = [f"1|{s}\t{t}" for s, t in PAIRS]
    path.write_text("\n".join([*good[:5], f"1|{line}", *good[5:]]) + "\n")
    with pytest.raises(ValueError, match=rf"bad.train:6: .*{re.escape(problem)}.*data.task.skip_bad_rows=true"):
        CalculusTask(generator="prim_bwd", path=str(path), n_train=None, n_valid=2, n_test=2).build()
    splits = CalculusTask(
        generator="prim_bwd", path=str(path), n_train=None, n_valid=2, n_test=2, skip_bad_rows=True
    ).build()
    assert sum(len(v["source"]) for v in splits.values()) == len(PAIRS)
    assert "skipped 1 bad line(s)" in caplog.text


def test_an_ode_file_needs_the_derivative_of_its_order(tmp_path):
    path = tmp_path / "ode2.train"
    path.write_text("1|add Y'' Y\tadd mul a8 sin x mul a9 cos x\n1|add Y' Y\tmul a8 exp mul INT- 1 x\n")
    with pytest.raises(ValueError, match=r"ode2.train:2: an order-2 ODE input holds Y''"):
        CalculusTask(generator="ode2", path=str(path), n_train=None, n_valid=0, n_test=0).build()
