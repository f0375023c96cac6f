"""The curriculum callback (symlit.training.callbacks.Curriculum): stages, rows kept, state, exact resume."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from signal_at_step import KILLABLE_RUN, assert_same_last_checkpoint, clean_run, killed_run, resumed_run

from symlit.evaluation.scoring import Prediction
from symlit.tasks import ArithmeticTask
from symlit.training.callbacks import Curriculum

PAD = 0


class FakeModule:
    """What the callback reads of the LightningModule: the task, the tokenizer's pad id, ``log``."""

    def __init__(self, task: ArithmeticTask) -> None:
        self.task, self.tokenizer, self.device = task, SimpleNamespace(pad_id=PAD), torch.device("cpu")
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged[name] = value


def fake_trainer(step: int = 0) -> SimpleNamespace:
    strategy = SimpleNamespace(reduce=lambda tensor, reduce_op: tensor)
    return SimpleNamespace(global_step=step, sanity_checking=False, strategy=strategy)


TASK = ArithmeticTask(n_operands=[2, 4], min_value=0, max_value=99)
SOURCES = ["INT+ 1 + INT+ 2", "INT+ 1 + INT+ 2 + INT+ 3 + INT+ 4", "INT+ 5 + INT+ 6 + INT+ 7", "INT+ 9 9 + INT+ 1"]


def make_batch() -> dict:
    """Four rows with 2, 4, 3 and 2 operands; each row's source length is its token count, the
    target of row i has i + 2 tokens (the rest padding)."""
    lengths = [len(s.split()) for s in SOURCES]
    src = torch.zeros(4, max(lengths), dtype=torch.long)
    tgt = torch.zeros(4, 6, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.arange(1, n + 1)
        tgt[i, : i + 2] = 10 + i
    return {
        "src": src,
        "tgt_in": tgt.clone(),
        "tgt_out": tgt.clone(),
        "sources": list(SOURCES),
        "targets": list("abcd"),
    }


def test_stages_by_step_keep_the_rows_of_the_stage_and_trim_padding():
    curriculum = Curriculum(levels=[2, 3, 4], steps=[100, 200])
    module = FakeModule(TASK)
    kept = {}
    for step in (0, 99, 100, 199, 200, 5000):
        batch = make_batch()
        curriculum.on_train_batch_start(fake_trainer(step), module, batch, 0)
        kept[step] = batch["sources"]
        assert batch["src"].shape[0] == batch["tgt_out"].shape[0] == len(batch["targets"]) == len(batch["sources"])
        assert module.logged["train/curriculum_stage"] == curriculum.stage_at(step)
        assert module.logged["train/curriculum_rows"] == len(batch["sources"])
    assert kept[0] == kept[99] == [SOURCES[0], SOURCES[3]]  # two operands
    assert kept[100] == kept[199] == [SOURCES[0], SOURCES[2], SOURCES[3]]  # up to three
    assert kept[200] == kept[5000] == SOURCES  # the last stage: everything
    batch = make_batch()
    curriculum.on_train_batch_start(fake_trainer(0), module, batch, 0)
    assert batch["targets"] == ["a", "d"]
    # rows 0 and 3 kept: sources of 5 and 6 tokens, targets of 2 and 5 tokens: the padding beyond goes
    assert batch["src"].shape == (2, 6) and batch["tgt_out"].shape == (2, 5)
    assert torch.equal(batch["tgt_out"], make_batch()["tgt_out"][[0, 3], :5])


def test_the_same_step_keeps_the_same_rows_and_a_batch_without_easy_rows_keeps_its_easiest():
    curriculum = Curriculum(levels=[2, 4], steps=[10])
    first, second = make_batch(), make_batch()
    curriculum.on_train_batch_start(fake_trainer(3), FakeModule(TASK), first, 0)
    curriculum.on_train_batch_start(fake_trainer(3), FakeModule(TASK), second, 0)
    assert all(torch.equal(first[k], second[k]) for k in ("src", "tgt_in", "tgt_out"))
    hard = make_batch()
    for key in ("src", "tgt_in", "tgt_out"):
        hard[key] = hard[key][[1, 2]]
    hard["sources"], hard["targets"] = [SOURCES[1], SOURCES[2]], ["b", "c"]
    curriculum.on_train_batch_start(fake_trainer(3), FakeModule(TASK), hard, 0)
    assert hard["sources"] == [SOURCES[2]]  # no 2-operand row: the 3-operand one, never an empty batch


def test_by_digits_counts_the_longest_operand():
    curriculum = Curriculum(levels=[1, 2], by="digits", steps=[10])
    batch = make_batch()
    curriculum.on_train_batch_start(fake_trainer(0), FakeModule(TASK), batch, 0)
    assert batch["sources"] == SOURCES[:3]  # 99 + 1 has a 2-digit operand


def predictions(correct: dict[str, bool]) -> list[Prediction]:
    return [Prediction(s, "", greedy_verdict="correct" if ok else "wrong") for s, ok in correct.items()]


def test_threshold_advances_on_the_stage_accuracy_and_the_state_round_trips():
    curriculum = Curriculum(levels=[2, 3, 4], threshold=0.75)
    module = FakeModule(TASK)

    def validate(step: int, correct: dict[str, bool]) -> None:
        trainer = fake_trainer(step)
        curriculum.on_validation_epoch_start(trainer, module)
        curriculum.on_validation_batch_end(trainer, module, predictions(correct), None, 0)
        curriculum.on_validation_batch_end(trainer, module, predictions({SOURCES[0]: False}), None, 0, dataloader_idx=1)
        curriculum.on_validation_epoch_end(trainer, module)

    # stage 0 counts the 2-operand problems only: 1 of 2 right, then 2 of 2 (the 4-operand miss is not counted)
    validate(100, {SOURCES[0]: True, SOURCES[3]: False, SOURCES[1]: True})
    assert curriculum.stage == 0 and module.logged["val/curriculum_acc"] == 0.5
    validate(200, {SOURCES[0]: True, SOURCES[3]: True, SOURCES[1]: False})
    assert curriculum.stage == 1 and curriculum.advanced_at == [200]
    state = curriculum.state_dict()

    restored = Curriculum(levels=[2, 3, 4], threshold=0.75)
    restored.load_state_dict(state)
    assert restored.stage == 1 and restored.advanced_at == [200]
    batch = make_batch()
    restored.on_train_batch_start(fake_trainer(201), FakeModule(TASK), batch, 0)
    assert batch["sources"] == [SOURCES[0], SOURCES[2], SOURCES[3]]


def test_the_curriculum_refuses_length_bucketed_batches():
    curriculum = Curriculum(levels=[2, 4], steps=[10])
    trainer = SimpleNamespace(datamodule=SimpleNamespace(bucket=True))
    with pytest.raises(ValueError, match="callbacks.curriculum needs data.bucket=false"):
        curriculum.on_fit_start(trainer, FakeModule(TASK))
    curriculum.on_fit_start(SimpleNamespace(datamodule=SimpleNamespace(bucket=False)), FakeModule(TASK))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": [2, 4], "by": "operands", "steps": [5]}, "callbacks.curriculum.by='operands' must be one of"),
        ({"levels": [4], "steps": []}, r"callbacks.curriculum.levels=\[4\] must be at least two increasing"),
        ({"levels": [3, 2], "steps": [5]}, "must be at least two increasing"),
        ({"levels": [2, 4]}, "set exactly one of steps .* and threshold"),
        ({"levels": [2, 4], "steps": [5], "threshold": 0.9}, "set exactly one of steps"),
        ({"levels": [2, 3, 4], "steps": [5]}, r"callbacks.curriculum.steps=\[5\] must be 2 increasing positive steps"),
        ({"levels": [2, 3, 4], "steps": [5, 5]}, "must be 2 increasing positive steps"),
        ({"levels": [2, 4], "threshold": 0.0}, r"callbacks.curriculum.threshold=0.0 must be an exact-match accuracy"),
    ],
)
def test_bad_curriculum_settings_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Curriculum(**kwargs)


# ---------------------------------------------------------------------------- exact resume (subprocess runs)
COMMAND = [
    "experiment=addition",
    "data.task.n_operands=[2,3]",
    "data.task.min_value=0",
    "data.task.max_value=20",
    *KILLABLE_RUN,
    "run_name=curriculum",
    "data.bucket=false",  # batches that mix operand counts (bucketed ones hold one count each)
    # two operands until step 150, then both counts
    "+callbacks.curriculum._target_=symlit.training.callbacks.Curriculum",
    "+callbacks.curriculum.levels=[2,3]",
    "+callbacks.curriculum.steps=[150]",
]


@pytest.mark.slow
def test_curriculum_run_killed_mid_epoch_then_rerun_matches_uninterrupted_run(tmp_path):
    run = Path("outputs/addition/curriculum")

    killed_root = killed_run(tmp_path, COMMAND)
    resumed_run(killed_root, COMMAND)
    clean_root = clean_run(tmp_path, COMMAND)
    assert_same_last_checkpoint(killed_root / run, clean_root / run, 376)

    # the curriculum was on: about half the rows per step before step 150 (2-operand rows), all 8 after
    with (clean_root / run / "csv" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/curriculum_rows")]
    early = [float(r["train/curriculum_rows"]) for r in rows if int(r["step"]) < 150]
    late = [float(r["train/curriculum_rows"]) for r in rows if int(r["step"]) >= 150]
    assert early and late and sum(early) / len(early) < 6.5 and sorted(late)[len(late) // 2] == 8
