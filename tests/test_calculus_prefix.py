"""Prefix notation: round trips, the reference format's conventions, malformed input, random trees."""

from __future__ import annotations

import collections
import random

import pytest
import sympy as sp

from symlit.calculus.numeric import evaluate_prefix
from symlit.calculus.prefix import (
    DFX,
    FX,
    OPERATORS,
    SYMBOLS,
    PrefixError,
    UnsupportedExpression,
    prefix_to_sympy,
    sympy_to_prefix,
    vocabulary,
)
from symlit.calculus.random_trees import TreeSampler, parse_operators

x = SYMBOLS["x"]
ALL_OPERATORS = ",".join(f"{op}:1" for op in OPERATORS if op not in ("derivative", "f"))


@pytest.mark.parametrize(
    ("expr", "tokens"),
    [
        (x**2, "pow x INT+ 2"),
        (2 * x + 3, "add INT+ 3 mul INT+ 2 x"),
        (x - 1, "add INT- 1 x"),
        (sp.sqrt(x), "sqrt x"),
        (1 / x, "pow x INT- 1"),
        (sp.Rational(-3, 4) * x, "mul div INT- 3 INT+ 4 x"),
        (sp.exp(x) + sp.log(x), "add exp x ln x"),
        (sp.pi * sp.E, "mul E pi"),
        (sp.Integer(120), "INT+ 1 2 0"),
        (DFX - x, "add mul INT- 1 x Y'"),
        (sp.Derivative(FX, (x, 2)) + FX, "add Y'' Y"),
    ],
)
def test_reference_conventions(expr, tokens):
    assert " ".join(sympy_to_prefix(expr)) == tokens
    assert prefix_to_sympy(tokens) == expr


def test_uncleaned_form_and_other_bases():
    assert sympy_to_prefix(DFX, clean=False) == ["derivative", "f", "x", "x"]
    assert prefix_to_sympy("derivative f x x") == DFX
    assert sympy_to_prefix(sp.Integer(-10), base=2) == ["INT-", "1", "0", "1", "0"]
    assert prefix_to_sympy("mul INT+ 1 0 1 x", base=2) == 5 * x
    assert prefix_to_sympy("INT+ e", base=15) == 14
    assert "INT+" in vocabulary() and "Y''" in vocabulary() and "9" in vocabulary()


def test_exact_decoding_keeps_the_tree():
    expr = sp.Abs(sp.Pow(x, -4, evaluate=False), evaluate=False)  # evaluation would drop the Abs
    assert prefix_to_sympy(sympy_to_prefix(expr), evaluate=False) == expr
    assert prefix_to_sympy(sympy_to_prefix(expr)) == x**-4
    assert prefix_to_sympy("add x add x x", evaluate=False).args == (x, x, x)


def test_sub_div_and_unary_powers_decode():
    assert prefix_to_sympy("sub x INT+ 1") == x - 1
    assert prefix_to_sympy("div x INT+ 2") == x / 2
    assert prefix_to_sympy("pow3 inv x") == x**-3
    assert prefix_to_sympy("rac x INT+ 3") == x ** sp.Rational(1, 3)


def test_round_trip_of_random_expressions_and_their_derivatives():
    """A few hundred here; benchmarks/bench_generate.py --round-trip 10000 runs the acceptance count."""
    sampler = TreeSampler(
        operators=ALL_OPERATORS,
        max_ops=12,
        leaf_probs=[0.6, 0.1, 0.2, 0.1],
        n_coefficients=3,
        positive=False,
        max_int=20,
    )
    rng = random.Random(0)
    checked = 0
    while checked < 200:
        try:
            expr = prefix_to_sympy(sampler.expression(rng.randint(0, 12), rng))
        except PrefixError:
            continue  # e.g. a division by zero drawn at random
        if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            continue
        try:
            candidates = (expr, sp.diff(expr, x))
        except RecursionError:  # a SymPy assumption query can recurse without end on random input
            continue
        for candidate in candidates:
            try:
                tokens = sympy_to_prefix(candidate)
            except UnsupportedExpression:  # d/dx sign(u) = DiracDelta
                continue
            assert prefix_to_sympy(tokens, evaluate=False) == candidate, " ".join(tokens)
            checked += 1


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("", "empty"),
        ("add x", "incomplete"),
        ("x x", "unused"),
        ("add x foo", "unknown token 'foo'"),
        ("INT+", "without digits"),
        ("mul INT+ x", "without digits"),
        ("div x INT+ 0", "division by zero"),
        ("pow INT+ 9 INT+ 9 9 9 9 9 9 9", "too large"),
        ("INT+ " + "9 " * 10_001, "digits"),
        ("derivative x INT+ 2", "not a variable"),
        ("<unk> x", "unknown token"),
    ],
)
def test_malformed_sequences_raise_prefix_error(tokens, message):
    with pytest.raises(PrefixError, match=message):
        prefix_to_sympy(tokens)


def test_random_token_soup_never_crashes():
    vocab = vocabulary() + ["<unk>", "</s>"]
    rng = random.Random(1)
    for _ in range(2000):
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        try:
            prefix_to_sympy(tokens)
        except PrefixError:
            pass


def test_deep_expressions_parse_or_fail_cleanly():
    assert isinstance(prefix_to_sympy(["sin"] * 200 + ["x"]), sp.sin)
    try:  # SymPy itself may recurse too deeply on such a tree: a PrefixError, never a RecursionError
        prefix_to_sympy(["sin"] * 2000 + ["x"])
    except PrefixError as err:
        assert "too large" in str(err)


def test_unsupported_sympy_expressions():
    for expr in (sp.Float(1.5) * x, sp.erf(x), sp.Symbol("w"), sp.oo):
        with pytest.raises(UnsupportedExpression):
            sympy_to_prefix(expr)


def test_numeric_evaluation():
    assert evaluate_prefix("add INT+ 2 mul INT+ 3 x".split(), {"x": 2.0}) == 8.0
    nan = evaluate_prefix("ln add INT- 5 x".split(), {"x": 1.0})
    assert nan != nan  # a domain error is nan, not an exception
    with pytest.raises(PrefixError):
        evaluate_prefix(["add", "x"], {"x": 1.0})


def test_tree_counts_and_uniform_shapes():
    sampler = TreeSampler(max_ops=6)
    # unary-binary trees with n internal nodes (all weights 1): the large Schroeder numbers
    assert [sampler.count_trees(n) for n in range(7)] == [1, 2, 6, 22, 90, 394, 1806]
    rng = random.Random(0)
    counts = collections.Counter(tuple(sampler.shape(3, rng)) for _ in range(11000))
    assert len(counts) == 22
    assert max(counts.values()) / min(counts.values()) < 1.35
    weighted = TreeSampler(max_ops=4, leaf_weight=1, unary_weight=2, binary_weight=1)
    assert weighted.count_trees(1) == 3  # one unary node (weight 2) or one binary node


def test_tree_sampler_respects_operators_leaves_and_required():
    sampler = TreeSampler(operators="add:1,exp:1", max_ops=8, leaf_probs=[1, 0, 0, 0])
    rng = random.Random(2)
    for n in range(9):
        tokens = sampler.expression(n, rng, required=("x", "y"))
        assert sum(t in OPERATORS for t in tokens) == n
        assert set(tokens) <= {"add", "exp", "x", "y"}
        if tokens.count("x") + tokens.count("y") >= 2:
            assert "x" in tokens and "y" in tokens
    with pytest.raises(ValueError, match="unknown operator"):
        parse_operators("add:1,frobnicate:2")
    with pytest.raises(ValueError, match="leaf_probs"):
        TreeSampler(leaf_probs=[0, 1, 0, 0])
