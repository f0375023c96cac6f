import dataclasses
import random

import pytest

from symlit.core.notation import decode_int
from symlit.tasks import ArithmeticTask, FileTask
from symlit.tasks.arithmetic import evaluate


def test_evaluate_matches_python_precedence():
    rng = random.Random(1)
    for _ in range(2000):
        k = rng.randint(2, 5)
        operands = tuple(rng.randint(-50, 50) for _ in range(k))
        operators = tuple(rng.choice("+-*") for _ in range(k - 1))
        expr = "".join(f"({v}){op}" for v, op in zip(operands, operators)) + f"({operands[-1]})"
        assert evaluate(operands, operators) == eval(expr)  # noqa: S307 - test oracle on generated ints


def test_splits_are_disjoint_and_sized():
    task = ArithmeticTask(n_train=5000, n_valid=500, n_test=500, ood={"three_digits": {"digits": 3, "n": 300}})
    splits = task.build()
    sources = {name: split["source"] for name, split in splits.items()}
    assert {k: len(v) for k, v in sources.items()} == {"train": 5000, "valid": 500, "test": 500, "three_digits": 300}
    for name, rows in sources.items():
        assert len(set(rows)) == len(rows), f"duplicates inside {name}"
    names = list(sources)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not set(sources[a]) & set(sources[b]), f"{a} and {b} overlap"


def test_targets_are_correct_sums():
    task = ArithmeticTask(
        operators=["+", "-", "*"],
        n_operands=[2, 4],
        digits=[1, 3],
        negative_operands=True,
        encoding="reversed",
        n_train=500,
        n_valid=10,
        n_test=10,
    )
    split = task.build()["train"]
    for source, target in zip(split["source"], split["target"]):
        # rebuild the problem from its tokens and check the target's value
        tokens, operands, operators, current = source.split(), [], [], []
        for token in tokens + ["+"]:
            if token in "+-*" and current and len(current) > 1:
                operands.append(int(current[0][3] + "1") * int("".join(reversed(current[1:]))))
                operators.append(token)
                current = []
            else:
                current.append(token)
        assert task.verify(source, target, target)
        sign = -1 if target.split()[0] == "INT-" else 1
        assert sign * int("".join(reversed(target.split()[1:]))) == evaluate(tuple(operands), tuple(operators[:-1]))


@pytest.mark.parametrize("encoding", ["digits", "reversed"])
@pytest.mark.parametrize(("operators", "result_width"), [(["+"], 3), (["-"], 3), (["*"], 8)])
def test_zero_pad_puts_every_digit_at_a_fixed_position(encoding, operators, result_width):
    """Four operands 0..99: every operand has 2 digits and every result the bound's digit count
    (4 x 99 = 396 -> 3; 99^4 -> 8), and the padded text still spells the right integer."""
    task = ArithmeticTask(
        operators=operators,
        n_operands=4,
        min_value=0,
        max_value=99,
        encoding=encoding,
        zero_pad=True,
        n_train=2000,
        n_valid=10,
        n_test=10,
    )
    plain = dataclasses.replace(task, zero_pad=False)

    def operand_values(source: str) -> list[int]:
        return [decode_int(o.split(), encoding) for o in source.split(f" {operators[0]} ")]

    split = task.build()["train"]
    for source, target in zip(split["source"], split["target"]):
        assert [len(o.split()) for o in source.split(f" {operators[0]} ")] == [3, 3, 3, 3], source
        assert len(target.split()) == 1 + result_width, target
        assert task.verify(source, target, target)
        assert decode_int(target.split(), encoding) == evaluate(tuple(operand_values(source)), tuple(operators * 3))
    # padding changes the text, not the problems drawn
    assert [operand_values(s) for s in split["source"]] == [operand_values(s) for s in plain.build()["train"]["source"]]


def test_generation_is_deterministic_per_seed():
    assert ArithmeticTask(seed=3).build() == ArithmeticTask(seed=3).build()
    assert ArithmeticTask(seed=3).build()["train"] != ArithmeticTask(seed=4).build()["train"]
    assert ArithmeticTask(seed=3).fingerprint() != ArithmeticTask(seed=4).fingerprint()


def test_verify_by_integer_value():
    task = ArithmeticTask()
    assert task.verify("", "INT+ 4 2", "INT+ 0 4 2")  # leading zero: same integer
    assert not task.verify("", "INT+ 4 2", "INT- 4 2")
    assert not task.verify("", "INT+ 4 2", "INT+ 4 +")  # malformed hypothesis is wrong, not an error
    assert not task.verify("", "INT+ 4 2", "")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_value": 9, "max_value": 1}, "data.task.min_value=9 is greater than data.task.max_value=1"),
        ({"digits": 0}, "data.task.digits=0"),
        ({"operators": ["/"]}, "data.task.operators"),
        ({"n_operands": 1}, "data.task.n_operands"),
        ({"encoding": "roman"}, "data.task.encoding='roman'"),
        ({"encoding": "number", "zero_pad": True}, "data.task.zero_pad=true needs a digit encoding"),
        ({"n_train": 0}, "data.task.n_train"),
        ({"ood": {"test": {"digits": 3}}}, "data.task.ood.test"),
        ({"ood": {"big": {"colour": 3}}}, "unknown fields ['colour']"),
    ],
)
def test_bad_arithmetic_values_name_the_key(fields, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        ArithmeticTask(**fields)


def test_too_many_problems_is_a_clear_error():
    with pytest.raises(ValueError, match="only 100 .*lower data.task.n_train"):
        ArithmeticTask(min_value=0, max_value=9, n_train=200).build()


def test_file_task_carves_leak_free_splits(tmp_path):
    path = tmp_path / "pairs.csv"
    rows = [f"a{i % 700} b,c{i}" for i in range(2000)]  # repeated sources
    path.write_text("source,target\n" + "\n".join(rows) + "\n")
    splits = FileTask(train=str(path), valid_fraction=0.1, test_fraction=0.1).build()
    assert sum(len(s["source"]) for s in splits.values()) == 2000
    train = set(splits["train"]["source"])
    assert not train & set(splits["valid"]["source"]) and not train & set(splits["test"]["source"])
    assert splits["valid"]["source"] and splits["test"]["source"]


def test_file_task_errors_name_the_file_and_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.task.train=.*missing.csv"):
        FileTask(train=str(tmp_path / "missing.csv")).build()  # checked when data is built
    bad = tmp_path / "pairs.tsv"
    bad.write_text("question\tanswer\n1 + 1\t2\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['source', 'target'\].*source_column"):
        FileTask(train=str(bad)).build()
    assert FileTask(
        train=str(bad), source_column="question", target_column="answer", valid_fraction=0, test_fraction=0
    ).build()["train"]["target"] == ["2"]


def test_csv_cells_are_read_literally(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("source,target,note\n1 + 1,02,x\nNA,5.0,\nnull,None,y\n")
    rows = FileTask(train=str(path), valid_fraction=0, test_fraction=0).build()["train"]
    assert rows == {"source": ["1 + 1", "NA", "null"], "target": ["02", "5.0", "None"]}
    path.write_text("source,target\na,\n")
    with pytest.raises(ValueError, match="pairs.csv, line 2: empty 'target'"):
        FileTask(train=str(path), valid_fraction=0, test_fraction=0).build()


def test_dense_ood_request_fails_clearly_instead_of_spinning():
    task = ArithmeticTask(
        min_value=0, max_value=9, n_train=50, n_valid=10, n_test=10, ood={"small": {"digits": 1, "n": 95}}
    )
    with pytest.raises(ValueError, match="distinct problems"):
        task.build()


def test_every_task_returns_one_verdict_type(tmp_path):
    """correct / wrong / malformed, with the method that decided, for every kind of task."""
    from symlit.core.verdict import Verdict
    from symlit.tasks import CalculusTask, QEDSymbaTask
    from symlit.tasks.qcd import QCDGeneratedTask

    qed = QEDSymbaTask(path="data_samples/symba-qed-2to2/valid.csv", max_rows=4)
    qed_source, qed_target = qed.build()["train"]["source"][0], qed.build()["train"]["target"][0]
    qcd = QCDGeneratedTask(path="data_samples/qcd-2to2/qcd_2to2_diagrams.csv", max_rows=4, split_by="row")
    qcd_rows = next(rows for rows in qcd.build().values() if rows["source"])
    qcd_source, qcd_target = qcd_rows["source"][0], qcd_rows["target"][0]
    cases = {  # task: (source, target, right but not identical (or None), wrong, malformed)
        "arithmetic": (ArithmeticTask(), "", "INT+ 4 2", "INT+ 0 4 2", "INT+ 4 3", "INT+ 4 +"),
        "file": (FileTask(train=str(tmp_path / "any.csv")), "a", "b c", None, "b", None),
        "calculus": (CalculusTask(), "sub Y' mul INT+ 2 x", "pow x INT+ 2", "add INT+ 3 pow x INT+ 2", "x", "pow x"),
        "qed": (qed, qed_source, qed_target, None, "INT+ 2", "add( INT+"),
        "qcd": (qcd, qcd_source, qcd_target, None, "INT+ 2", "add( INT+"),
    }
    for name, (task, source, target, equivalent, wrong, malformed) in cases.items():
        got = task.verify(source, target, target)
        assert isinstance(got, Verdict) and (got.status, got.method) == (
            "correct",
            "exact" if name != "arithmetic" else "value",
        ), name
        if equivalent is not None:
            assert task.verify(source, target, equivalent).status == "correct", name
        assert task.verify(source, target, wrong).status == "wrong", name
        if malformed is not None:
            got = task.verify(source, target, malformed)
            assert (got.status, got.method) == ("malformed", "parse"), (name, got)
