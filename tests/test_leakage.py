"""The leakage report (symlit.data.leakage) and leak-free configurations, on real tasks and data."""

from __future__ import annotations

import csv
import itertools
import json
import logging
from pathlib import Path

import pytest

from symlit.data.datamodule import Seq2SeqDataModule, leakage
from symlit.qed import symba_format as sf
from symlit.tasks import ArithmeticTask, CalculusTask, QEDSymbaTask
from symlit.tasks.amplitude import unit

pytestmark = pytest.mark.xdist_group("test_leakage")  # pytest-xdist: the module-scoped fixture is built once

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "symba-qed-2to2" / "valid.csv"
SPLIT = {"valid_fraction": 0.3, "test_fraction": 0.3}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Two rows: a MARTY diagram, and the same diagram with its momenta relabelled, chosen so that a
    ``split_by: diagram`` build puts the original in train and the copy in test."""

    def lands(amp: str) -> str:
        u = unit(keys(amp)["diagram"])
        return "valid" if u < SPLIT["valid_fraction"] else ("test" if 1 - u <= SPLIT["test_fraction"] else "train")

    def keys(amp: str) -> dict[str, str]:
        return QEDSymbaTask(path=str(SAMPLE)).canonical_key(" ".join(sf.amplitude_tokens(sf.parse(amp))), "")

    rows = sf.read_symba_file(str(SAMPLE))
    for amp, sqamp in rows[:50]:  # noqa: B007 - the pair found is used after the break
        if lands(amp) == "train":
            moved = [
                p
                for p in itertools.permutations(range(1, 5))
                if lands(sf.relabel_momenta(amp, dict(zip(range(1, 5), p)))) == "test"
            ]
            if moved:
                perm = dict(zip(range(1, 5), moved[0]))
                break
    else:
        pytest.fail("no relabelling of a train row lands in test")
    path = tmp_path_factory.mktemp("planted") / "planted.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["amp", "sqamp"])
        w.writerow([amp, sqamp])
        w.writerow([sf.relabel_momenta(amp, perm), sf.relabel_momenta(sqamp, perm)])
        family = keys(amp)["process_family"]  # a third row, of another process, for the valid split
        w.writerow(next(r for r in rows if lands(r[0]) == "valid" and keys(r[0])["process_family"] != family))
    return path


def test_planted_relabelled_duplicate_is_reported_and_refused(planted, tmp_path):
    task = QEDSymbaTask(path=str(planted), split_by="diagram", **SPLIT)
    splits = task.build()
    assert [len(splits[n]["source"]) for n in ("train", "valid", "test")] == [1, 1, 1]
    report = leakage.leakage_report(task, splits)
    test = report["splits"]["test"]
    assert test["same_source"] == 0 and test["same_key"]["diagram"] == 0  # not the same labelled diagram ...
    assert test["same_key"]["diagram_class"] == 1  # ... but the same diagram up to relabelling
    # the split is leak-free at its own level (labelled diagrams) but not at the class level
    Seq2SeqDataModule(task, str(tmp_path / "a"), leak_free=True).prepare_data()
    with pytest.raises(ValueError, match=r"split 'test' shares 1 of 1 diagram_class keys with train"):
        Seq2SeqDataModule(task, str(tmp_path / "b"), leak_free="diagram_class").prepare_data()
    # a class-level split keeps both copies on one side
    coarse = QEDSymbaTask(path=str(planted), split_by="diagram_class", **SPLIT)
    assert sorted(len(s["source"]) for s in coarse.build().values()) == [0, 1, 2]


def test_report_is_stored_with_the_data_and_checked_on_every_load(tmp_path, caplog):
    task = QEDSymbaTask(path=str(SAMPLE), split_by="process_family", max_rows=300)
    dm = Seq2SeqDataModule(task, str(tmp_path), leak_free=True)
    dm.prepare_data()
    stored = json.loads((tmp_path / task.name / task.fingerprint() / leakage.REPORT).read_text())
    assert stored == dm.leakage and stored["leak_free_level"] == "process_family"
    for s in stored["splits"].values():
        assert s["same_source"] == 0 and all(n == 0 for n in s["same_key"].values())
    row = QEDSymbaTask(path=str(SAMPLE), split_by="row", max_rows=300)
    report = leakage.leakage_report(row, row.build())
    assert report["splits"]["test"]["same_key"]["diagram_class"] > 0  # a row split leaks
    with pytest.raises(
        ValueError, match=r"data.leak_free='diagram': split '(valid|test)' shares \d+ of \d+ diagram keys"
    ):
        Seq2SeqDataModule(row, str(tmp_path), leak_free="diagram").prepare_data()
    assert "same key diagram=" in leakage.summary(report)


def test_arithmetic_key_is_the_operands_up_to_commutativity():
    task = ArithmeticTask(operators=["+", "-", "*"], n_operands=3)
    key = lambda s: task.canonical_key(s, "")["operands"]
    assert key("INT+ 7 + INT+ 4 5") == key("INT+ 4 5 + INT+ 7")
    assert key("INT+ 2 * INT+ 3 + INT+ 5") == key("INT+ 5 + INT+ 3 * INT+ 2")
    assert key("INT+ 3 * INT+ 2 + INT+ 5") == key("INT+ 5 + INT+ 2 * INT+ 3")
    assert key("INT+ 4 5 - INT+ 7") != key("INT+ 7 - INT+ 4 5")
    assert key("INT+ 2 * INT+ 3 + INT+ 5") != key("INT+ 2 + INT+ 3 * INT+ 5")
    splits = {
        "train": {"source": ["INT+ 7 + INT+ 4 5", "INT+ 1 + INT+ 2"], "target": ["INT+ 5 2", "INT+ 3"]},
        "test": {"source": ["INT+ 4 5 + INT+ 7", "INT+ 2 - INT+ 1"], "target": ["INT+ 5 2", "INT+ 1"]},
    }
    report = leakage.leakage_report(task, splits)["splits"]["test"]
    assert report == {"rows": 2, "same_source": 0, "same_target": 1, "same_key": {"operands": 1}, "no_key": 0}
    with pytest.raises(ValueError, match=r"split 'test' shares 1 of 2 operands keys"):
        leakage.check_leak_free(leakage.leakage_report(task, splits), "operands")


@pytest.mark.parametrize("balance", [[], ["lengths"]])
def test_arithmetic_held_out_by_operands_keeps_every_swapped_twin_out_of_train(balance):
    """2-digit products: with the default split a quarter of the test problems are a training
    problem with its operands swapped; ``held_out_by=operands`` leaves none, in valid, test and ood."""
    common = dict(operators=["*"], digits=2, n_train=4000, n_valid=500, n_test=1000, balance=balance)
    default = ArithmeticTask(**common)
    report = leakage.leakage_report(default, default.build())["splits"]["test"]
    assert report["same_source"] == 0 and report["same_key"]["operands"] > 100
    task = ArithmeticTask(**common, held_out_by="operands", ood={"mixed": {"digits": [1, 2], "n": 300}})
    splits = task.build()
    assert {k: len(v["source"]) for k, v in splits.items()} == {"train": 4000, "valid": 500, "test": 1000, "mixed": 300}
    report = leakage.leakage_report(task, splits)["splits"]
    for split in ("valid", "test", "mixed"):
        assert report[split]["same_source"] == 0 and report[split]["same_key"] == {"operands": 0}, split
    leakage.check_leak_free(leakage.leakage_report(task, splits), "operands")
    assert task.config()["held_out_by"] == "operands" and "held_out_by" not in default.config()
    with pytest.raises(ValueError, match=r"training skips their reorderings \(held_out_by=operands\)"):
        ArithmeticTask(**{**common, "n_train": 6000}, held_out_by="operands").build()
    with pytest.raises(ValueError, match=r"data.task.held_out_by='problem' must be one of"):
        ArithmeticTask(**common, held_out_by="problem")


def test_calculus_key_renames_coefficients_and_sorts_commutative_arguments():
    task = CalculusTask()
    key = lambda s: task.canonical_key(s, "")["expression"]
    assert key("add x mul a0 INT+ 3") == key("add mul INT+ 3 a1 x")
    assert key("mul a0 add x a1") == key("mul add a0 x a1") == key("mul add x a1 a0")
    assert key("add add x a0 INT+ 2") == key("add x add INT+ 2 a3")  # nested sums flattened
    assert key("sub x a0") != key("sub a0 x")
    assert key("mul a0 pow x a0") != key("mul a0 pow x a1")  # one coefficient twice is not two
    assert key("add x INT+ 1 2") != key("add x INT+ 2 1")
    assert task.canonical_key("add x", "") == {}


def test_training_start_prints_the_report_in_one_line_and_writes_it_to_the_run(make_cfg, tmp_path, caplog):
    from symlit.training.train import train

    cfg = make_cfg(
        "experiment=qed_symba_cpu",
        "data.task.max_rows=200",
        "data.task.split_by=process_family",
        "logger=csv",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.check_val_every_n_epoch=1",
        "module.decode_max_len=8",
        "data.batch_size=4",
        "data.eval_batch_size=4",
    )
    with caplog.at_level(logging.INFO, logger="symlit.data.datamodule"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("leakage vs train")]
    assert len(lines) == 1 and "\n" not in lines[0] and "test" in lines[0]
    run_report = json.loads((Path(cfg.paths.run_dir) / leakage.REPORT).read_text())
    assert run_report["task"] == "QEDSymbaTask" and run_report["leak_free_level"] == "process_family"
    logged = (Path(cfg.paths.run_dir)).rglob("metrics.csv")
    assert any("leakage/test/key_diagram_class" in p.read_text().splitlines()[0] for p in logged)
