"""Tasks for people: reading a user's input into source tokens, and showing tokens as expressions."""

from __future__ import annotations

import pytest

from symlit.tasks import ArithmeticTask
from symlit.tasks.calculus import CalculusTask


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
