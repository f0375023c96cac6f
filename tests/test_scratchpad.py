"""Scratchpad target formats of ArithmeticTask: literal targets, round trips, malformed hypotheses.

Each format is checked three ways: a target written out literally here (the text of Lee et al.'s
released data generator, tokenized, for their formats), a reader in this file that recomputes the
result from the scratchpad's own steps (so a wrong carry or partial product is caught, not only a
wrong answer), and the answer the verifier extracts after the separator.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from omegaconf import OmegaConf

from symlit.core.notation import NotationError, decode_int
from symlit.data.datamodule import Collator, TokenizedSplit, build_tokenizer, mask_before_answer
from symlit.tasks import ArithmeticTask
from symlit.tasks.arithmetic import evaluate
from symlit.training.module import Seq2SeqModule

# four 2-digit operands, reversed and zero-padded, with running column sums
COLUMN_SUMS_4X2 = {
    "scratchpad": "column_sums",
    "n_operands": 4,
    "min_value": 0,
    "max_value": 99,
    "encoding": "reversed",
    "zero_pad": True,
}

CONF = Path(__file__).resolve().parents[1] / "conf"

# ---------------------------------------------------------------------------- literal targets
# Lee et al.'s generator (main_utils.get_algo_reasoning_str) writes 767+704, detailed, as
#   <scratch>\n[7,6,7] has 3 digits.\n[7,0,4] has 3 digits.\n
#   [7,6,7] + [7,0,4] , A=[] , C=0 , 7+4+0=11 , A->1 , C->1\n ... [] + [] , A=[4,7,1] C=1 , END\n</scratch>\n1 4 7 1
LEE_DETAILED_767_704 = (
    "<scratch> [ 7 , 6 , 7 ] has 3 digits. [ 7 , 0 , 4 ] has 3 digits."
    " [ 7 , 6 , 7 ] + [ 7 , 0 , 4 ] , A= [ ] , C= 0 , 7 + 4 + 0 = 1 1 , A-> 1 , C-> 1"
    " [ 7 , 6 ] + [ 7 , 0 ] , A= [ 1 ] , C= 1 , 6 + 0 + 1 = 7 , A-> 7 , C-> 0"
    " [ 7 ] + [ 7 ] , A= [ 7 , 1 ] , C= 0 , 7 + 7 + 0 = 1 4 , A-> 4 , C-> 1"
    " [ ] + [ ] , A= [ 4 , 7 , 1 ] C= 1 , END </scratch> INT+ 1 4 7 1"
)
# ... and 2*20 (their multiplication prompt file prompts/mul/few_shot_prefix_ar/1shot_1.txt)
LEE_DETAILED_2_20 = (
    "<scratch> [ 2 ] has 1 digits. [ 2 , 0 ] has 2 digits."
    " [ 2 ] * 0 , A= [ 0 ] , k= 1 , B= [ 0 ] , C= 0 + 0 = 0"
    " [ 2 ] * 2 , A= [ 4 ] , k= 1 0 , B= [ 4 , 0 ] , C= 0 + 4 0 = 4 0 , END </scratch> INT+ 4 0"
)
LITERAL = [
    # (task fields, operands, operators, target)
    ({"scratchpad": "lee_detailed"}, (767, 704), ("+",), LEE_DETAILED_767_704),
    ({"scratchpad": "lee_detailed", "operators": ["*"]}, (2, 20), ("*",), LEE_DETAILED_2_20),
    # their simplified addition: "A->1 , C->1\nA->7 , C->0\nA->4 , C->1.\n1471"
    ({"scratchpad": "lee_simplified"}, (767, 704), ("+",), "A-> 1 , C-> 1 A-> 7 , C-> 0 A-> 4 , C-> 1 . INT+ 1 4 7 1"),
    # simplified multiplication (designed here): the detailed lines' A (partial product) and C (running sum)
    (
        {"scratchpad": "lee_simplified", "operators": ["*"]},
        (865, 189),
        ("*",),
        "A-> 7 7 8 5 , C-> 7 7 8 5 A-> 6 9 2 0 , C-> 7 6 9 8 5 A-> 8 6 5 , C-> 1 6 3 4 8 5 . INT+ 1 6 3 4 8 5",
    ),
    # running column sums: units column 0+7=7, +5=12, +0=12, +9=21 -> digit 1, carry 2; tens 2+0+4+0+9=15
    (
        COLUMN_SUMS_4X2,
        (7, 45, 0, 99),
        ("+", "+", "+"),
        "S-> 7 12 12 21 , A-> 1 , C-> 2 S-> 2 6 6 15 , A-> 5 , C-> 1 . INT+ 1 5 1",
    ),
    (
        {"scratchpad": "column_sums", "n_operands": 3},
        (9, 99, 1),
        ("+", "+"),
        "S-> 9 18 19 , A-> 9 , C-> 1 S-> 1 10 10 , A-> 0 , C-> 1 . INT+ 1 0 9",
    ),
    # partial products 12 * 34: 12*4 = 48, 12*3*10 = 360, running sums 48, 408
    (
        {"scratchpad": "partial_products", "operators": ["*"]},
        (12, 34),
        ("*",),
        "P-> 4 8 , S-> 4 8 P-> 3 6 0 , S-> 4 0 8 . INT+ 4 0 8",
    ),
    # ... least significant digit first and padded to the result's 4 digits
    (
        {"scratchpad": "partial_products", "operators": ["*"], "digits": 2, "encoding": "reversed", "zero_pad": True},
        (12, 34),
        ("*",),
        "P-> 8 4 0 0 , S-> 8 4 0 0 P-> 0 6 3 0 , S-> 8 0 4 0 . INT+ 8 0 4 0",
    ),
]


@pytest.mark.parametrize(("fields", "operands", "operators", "target"), LITERAL)
def test_targets_match_the_literal_scratchpads(fields, operands, operators, target):
    task = ArithmeticTask(**fields)
    assert task.format_problem((operands, operators))[1] == target
    answer = decode_int(task.answer_tokens(target), task.target_encoding)
    assert answer == evaluate(operands, operators)
    assert scratchpad_result(task, target) == answer


# ---------------------------------------------------------------------------- a reader of the steps
def _number(tokens: list[str], reverse: bool = False) -> int:
    digits = [int(t) for t in tokens]
    return int("".join(map(str, digits[::-1] if reverse else digits)))


def _fields(tokens: list[str], key: str, stop: set[str]) -> list[list[str]]:
    """Every run of tokens after ``key`` up to the next token in ``stop``."""
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] == key:
            j = i + 1
            while j < len(tokens) and tokens[j] not in stop:
                j += 1
            out.append(tokens[i + 1 : j])
            i = j
        else:
            i += 1
    return out


def scratchpad_result(task: ArithmeticTask, target: str) -> int:
    """The result the scratchpad's own steps spell (independently of the answer after it)."""
    tokens = target.split()
    steps = tokens[: tokens.index(task.answer_separator)]
    marks = {"A->", "C->", "S->", "P->", ",", ".", "A=", "B=", "C=", "k=", "END", "</scratch>", "["}
    pad = task.scratchpad
    if pad in ("lee_simplified", "column_sums") and task.operators == ["+"]:
        # the result digits of the columns, units first, then the last carry
        digits = [int(a[0]) for a in _fields(steps, "A->", marks)]
        carry = int(_fields(steps, "C->", marks)[-1][0])
        return sum(d * 10**i for i, d in enumerate(digits)) + carry * 10 ** len(digits)
    if pad == "lee_simplified":  # multiplication: the last running sum
        return _number(_fields(steps, "C->", marks)[-1])
    if pad == "lee_detailed" and task.operators == ["+"]:  # the final "A= [ ... ] C= c"
        final = steps[len(steps) - steps[::-1].index("A=") :]
        digits = [t for t in final[: final.index("]")] if t.isdigit()]
        return _number(digits) + int(final[final.index("C=") + 1]) * 10 ** len(digits)
    if pad == "lee_detailed":  # the last "C= previous + shifted = running"
        last = _fields(steps, "C=", marks)[-1]
        return _number(last[last.index("=") + 1 :])
    if pad == "partial_products":
        return _number(_fields(steps, "S->", marks)[-1], reverse=task.target_encoding == "reversed")
    raise AssertionError(pad)


# ---------------------------------------------------------------------------- round trips
EDGE_ADD2 = [(0, 0), (9, 1), (999, 1), (1, 999), (9999, 9999), (5, 12345), (12345, 5), (0, 1000), (500, 500)]
EDGE_MUL2 = [(0, 0), (0, 987), (987, 0), (9, 9), (99, 99), (999, 999), (1, 12345), (12345, 1), (10, 10), (7, 1000)]
EDGE_ADD_K = [(9, 99, 999, 9999), (0, 0, 0), (99, 99, 99, 99, 99, 99), (1, 2), (123456, 7, 89)]


def _random_problems(rng: random.Random, op: str, n_operands: tuple[int, int], n: int) -> list[tuple[int, ...]]:
    return [
        tuple(rng.randint(0, 10 ** rng.randint(1, 6) - 1) for _ in range(rng.randint(*n_operands))) for _ in range(n)
    ]


ROUND_TRIPS = [
    ({"scratchpad": "lee_simplified"}, "+", EDGE_ADD2, (2, 2)),
    ({"scratchpad": "lee_detailed"}, "+", EDGE_ADD2, (2, 2)),
    ({"scratchpad": "lee_simplified", "operators": ["*"]}, "*", EDGE_MUL2, (2, 2)),
    ({"scratchpad": "lee_detailed", "operators": ["*"]}, "*", EDGE_MUL2, (2, 2)),
    ({"scratchpad": "column_sums", "n_operands": [2, 6]}, "+", EDGE_ADD2 + EDGE_ADD_K, (2, 6)),
    ({"scratchpad": "column_sums", "n_operands": [2, 6], "reverse_output": True}, "+", EDGE_ADD_K, (2, 6)),
    ({"scratchpad": "partial_products", "operators": ["*"]}, "*", EDGE_MUL2, (2, 2)),
    ({"scratchpad": "partial_products", "operators": ["*"], "reverse_output": True}, "*", EDGE_MUL2, (2, 2)),
    ({"scratchpad": "partial_products", "operators": ["*"], "encoding": "reversed"}, "*", EDGE_MUL2, (2, 2)),
]


@pytest.mark.parametrize(("fields", "op", "edges", "n_operands"), ROUND_TRIPS)
def test_round_trip_steps_and_answer_give_the_true_result(fields, op, edges, n_operands):
    task = ArithmeticTask(**fields)
    rng = random.Random(str(fields))
    for operands in edges + _random_problems(rng, op, n_operands, 400):
        problem = (operands, (op,) * (len(operands) - 1))
        source, target = task.format_problem(problem)
        truth = evaluate(*problem)
        assert decode_int(task.answer_tokens(target), task.target_encoding) == truth, (operands, target)
        assert scratchpad_result(task, target) == truth, (operands, target)
        assert task.verify(source, target, target).status == "correct"
        assert task.tally(source, target, target, True)["acc_by_pos/0"] == (1, 1)


@pytest.mark.parametrize(
    "fields",
    [
        COLUMN_SUMS_4X2,
        {"scratchpad": "partial_products", "operators": ["*"], "digits": 2, "encoding": "reversed", "zero_pad": True},
        {"scratchpad": "lee_detailed", "min_value": 0, "max_value": 999, "zero_pad": True},
    ],
)
def test_zero_padded_scratchpads_round_trip(fields):
    task = ArithmeticTask(**fields)
    for source, target, problem in task.sample(300, random.Random(0)):
        assert scratchpad_result(task, target) == evaluate(*problem), target
        assert task.verify(source, target, target).status == "correct"


def test_built_targets_use_only_base_vocabulary_tokens():
    """Every token of every split's targets is in the base vocabulary (none unknown in OOD splits)."""
    for fields in (
        {
            "scratchpad": "column_sums",
            "n_operands": 4,
            "min_value": 0,
            "max_value": 99,
            "ood": {"five": {"n_operands": 5, "n": 50}},
        },
        {"scratchpad": "lee_detailed", "digits": [1, 3], "ood": {"long": {"digits": 12, "n": 20}}},
        {"scratchpad": "partial_products", "operators": ["*"], "digits": 2, "ood": {"three": {"digits": 3, "n": 20}}},
        {"scratchpad": "lee_simplified", "operators": ["*"], "digits": 2},
    ):
        task = ArithmeticTask(n_train=200, n_valid=50, n_test=50, **fields)
        vocabulary = set(task.base_vocabulary())
        for name, rows in task.build().items():
            unknown = {t for target in rows["target"] for t in target.split()} - vocabulary
            assert not unknown, (fields, name, unknown)


# ---------------------------------------------------------------------------- scoring
def test_only_the_final_answer_is_scored():
    task = ArithmeticTask(scratchpad="lee_simplified")
    source, target = task.format_problem(((767, 704), ("+",)))
    wrong_steps = "A-> 9 , C-> 9 . INT+ 1 4 7 1"
    assert task.verify(source, target, wrong_steps).status == "correct"
    assert task.verify(source, target, "A-> 1 , C-> 1 A-> 7 , C-> 0 A-> 4 , C-> 1 . INT+ 1 4 7 2").status == "wrong"


@pytest.mark.parametrize(
    "hypothesis",
    [
        "",
        "A-> 1 , C-> 1 A-> 7 , C-> 0 A-> 4 , C-> 1 INT+ 1 4 7 1",  # no separator
        "A-> 1 , C-> 1 .",  # nothing after it
        "INT+ 1 4 7 1 .",  # the answer before the separator
        ". INT+ 1 4 . 7 1",  # a second separator inside the answer
        ". INT+ 1 4 x 1",
        ". 1 4 7 1",  # no sign token
        "</scratch> INT+ 1 4 7 1",  # another format's separator
    ],
)
def test_malformed_scratchpads_are_wrong_never_a_crash(hypothesis):
    task = ArithmeticTask(scratchpad="lee_simplified")
    source, target = task.format_problem(((767, 704), ("+",)))
    verdict = task.verify(source, target, hypothesis)
    assert verdict.status == "malformed" and not verdict
    tally = task.tally(source, target, hypothesis, verdict)
    assert all(hits == 0 for key, (hits, _) in tally.items() if key.startswith("acc_by_pos/"))


def test_answer_tokens_without_a_scratchpad_are_the_whole_text():
    assert ArithmeticTask().answer_tokens("INT+ 1 2") == ["INT+", "1", "2"]
    assert ArithmeticTask().answer_separator is None
    with pytest.raises(NotationError, match="no answer separator"):
        ArithmeticTask(scratchpad="lee_detailed").answer_tokens("INT+ 1 2")


def test_fingerprint_unchanged_when_off_and_changed_when_on():
    assert ArithmeticTask(scratchpad=None).fingerprint() == ArithmeticTask().fingerprint() == "6ed163d9c7a8d083"
    assert "scratchpad" not in ArithmeticTask().config()
    assert ArithmeticTask(scratchpad="lee_simplified").fingerprint() != ArithmeticTask().fingerprint()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scratchpad": "lee"}, r"data.task.scratchpad='lee' must be null or one of \['lee_simplified'"),
        ({"scratchpad": "lee_simplified", "n_operands": 3}, r"scratchpad=lee_simplified needs data.task.n_operands=2"),
        ({"scratchpad": "lee_detailed", "operators": ["+", "*"]}, r"operators=\['\+'\] or \['\*'\]"),
        (
            {"scratchpad": "column_sums", "operators": ["*"]},
            r"scratchpad=column_sums needs data.task.operators=\['\+'\]",
        ),
        (
            {"scratchpad": "partial_products"},
            r"scratchpad=partial_products needs data.task.n_operands=2 and operators=\['\*'\]",
        ),
        ({"scratchpad": "column_sums", "encoding": "number"}, "needs data.task.encoding=digits or reversed"),
        ({"scratchpad": "column_sums", "index_hints": True}, "index_hints=false"),
        ({"scratchpad": "column_sums", "min_value": -5}, "min_value >= 0"),
        ({"scratchpad": "lee_simplified", "ood": {"x": {"n_operands": 3}}}, "an ood split's overrides must keep them"),
    ],
)
def test_bad_scratchpad_options_name_the_key(fields, message):
    with pytest.raises(ValueError, match=message):
        task = ArithmeticTask(**fields)
        task.split_task("x")


# ---------------------------------------------------------------------------- the loss on the answer only
def test_mask_before_answer_ignores_everything_up_to_the_last_separator():
    pad, sep = 0, 7
    tgt_out = torch.tensor([[3, 7, 4, 7, 5, 9], [7, 5, 9, 0, 0, 0], [3, 4, 5, 9, 0, 0]])
    expected = torch.tensor([[0, 0, 0, 0, 5, 9], [0, 5, 9, 0, 0, 0], [3, 4, 5, 9, 0, 0]])  # no separator: kept
    assert torch.equal(mask_before_answer(tgt_out, sep, pad), expected)


def _module_and_batch(loss_on: str, scratchpad: str | None = "lee_simplified"):
    task = ArithmeticTask(scratchpad=scratchpad, n_train=50, n_valid=10, n_test=10)
    train = Dataset.from_dict(task.build()["train"])
    tokenizer = build_tokenizer(task, train)
    model = {**OmegaConf.to_container(OmegaConf.load(CONF / "model" / "gpt_small.yaml"))}
    model.update(d_model=32, n_layers=1, d_ff=64, n_heads=2)
    optim = OmegaConf.to_container(OmegaConf.load(CONF / "optim" / "constant.yaml"))
    module = Seq2SeqModule(model, optim, tokenizer.to_json(), task.config(), loss_on=loss_on)
    batch = Collator(TokenizedSplit(train, tokenizer), tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)(
        list(range(8))
    )
    return module, batch, tokenizer


def test_loss_on_answer_covers_the_answer_and_eos_only():
    torch.manual_seed(0)
    module, batch, tokenizer = _module_and_batch("answer")
    loss, logits = module._loss(batch)
    separator = tokenizer.known_ids(["."])[0]
    # by hand: the positions after each row's separator that are not padding (the answer and EOS)
    keep = torch.zeros_like(batch["tgt_out"], dtype=torch.bool)
    for row, ids in enumerate(batch["tgt_out"].tolist()):
        start = ids.index(separator) + 1
        keep[row, start:] = batch["tgt_out"][row, start:] != tokenizer.pad_id
    expected = torch.nn.functional.cross_entropy(logits[keep].float(), batch["tgt_out"][keep])
    torch.testing.assert_close(loss, expected)
    everything = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=tokenizer.pad_id
    )
    module.hparams.loss_on, module._answer_separator_id = "target", None  # the default: the whole target
    torch.testing.assert_close(module._loss(batch)[0], everything)


def test_loss_on_answer_needs_a_scratchpad_and_a_known_value():
    with pytest.raises(ValueError, match="module.loss_on=answer needs a task whose targets mark where the answer"):
        _module_and_batch("answer", scratchpad=None)
    with pytest.raises(ValueError, match="module.loss_on='scratch' must be 'target'"):
        _module_and_batch("scratch")
