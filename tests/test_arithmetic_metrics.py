"""Length-generalisation formats and metrics of ArithmeticTask: balance, index hints, tallies."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from symlit.core.notation import NotationError, decode_int, encode_int, significant_digits
from symlit.tasks import ArithmeticTask
from symlit.tasks.arithmetic import evaluate
from symlit.tasks.arithmetic_metrics import (
    Tally,
    count_carries,
    length_heatmap,
    position_hits,
)


def brute_force_carries(operands, base=10):
    """Column i carries when the operands' lowest i+1 digits add up to base**(i+1) or more."""
    return sum(sum(v % base ** (i + 1) for v in operands) >= base ** (i + 1) for i in range(60))


def test_carries_match_a_brute_force_count():
    rng = random.Random(0)
    cases = [(0, 0), (5, 5), (9, 1), (999, 1), (99, 99, 99, 99), (1, 2, 3)]
    cases += [tuple(rng.randint(0, 10 ** rng.randint(1, 12)) for _ in range(rng.randint(2, 5))) for _ in range(3000)]
    for operands in cases:
        assert count_carries(operands) == brute_force_carries(operands), operands
    assert count_carries([999, 1]) == 3 and count_carries([99, 99, 99, 99]) == 2
    for operands in itertools.product(range(40), repeat=2):  # base 2: every pair below 40
        assert count_carries(operands, 2) == brute_force_carries(operands, 2)


@pytest.mark.parametrize("encoding", ["digits", "reversed"])
def test_index_hints_round_trip_and_are_checked(encoding):
    rng = random.Random(1)
    for value in [0, 7, -10, 123, 10**29 + 5] + [rng.randint(-(10**30), 10**30) for _ in range(2000)]:
        tokens = encode_int(value, encoding, hints=True)
        assert decode_int(tokens, encoding, hints=True) == value
        assert tokens[1::2] == [
            f"@{i}" for i in (range(len(tokens) // 2) if encoding == "reversed" else reversed(range(len(tokens) // 2)))
        ]
    assert encode_int(123, hints=True) == ["INT+", "@2", "1", "@1", "2", "@0", "3"]
    assert encode_int(42, "reversed", width=3, hints=True) == ["INT+", "@0", "2", "@1", "4", "@2", "0"]
    with pytest.raises(NotationError, match="significance"):
        decode_int(["INT+", "@0", "1", "@1", "2"], "digits", hints=True)  # hints in reversed order
    with pytest.raises(NotationError, match="pair up"):
        decode_int(["INT+", "@1", "1", "2"], "digits", hints=True)


@pytest.mark.parametrize("reverse_output", [False, True])
def test_hinted_problems_have_aligned_hints_and_are_verified_by_value(reverse_output):
    task = ArithmeticTask(
        digits=[1, 6],
        index_hints=True,
        reverse_output=reverse_output,
        n_train=500,
        n_valid=10,
        n_test=10,
        ood={"long": {"digits": 12, "n": 50}},
    )
    splits = task.build()
    vocabulary = set(task.base_vocabulary())
    for split in ("train", "long"):
        for source, target in zip(splits[split]["source"], splits[split]["target"]):
            operands = task.operands(source)
            value = decode_int(target.split(), "reversed" if reverse_output else "digits", hints=True)
            assert value == evaluate(tuple(operands), ("+",))  # the target is the sum, by value
            # every digit carries the hint of its significance, in operands and result alike
            for number, enc in [(g.split(), "digits") for g in source.split(" + ")] + [(target.split(), None)]:
                enc = enc or ("reversed" if reverse_output else "digits")
                _, digits = significant_digits(number, enc, hints=True)
                hints = number[1::2] if enc == "reversed" else number[1::2][::-1]
                assert hints == [f"@{i}" for i in range(len(digits))]
            assert set(source.split()) | set(target.split()) <= vocabulary  # hints of OOD lengths too
            assert task.verify(source, target, target)
            wrong = encode_int(value + 1, "reversed" if reverse_output else "digits", hints=True)
            assert not task.verify(source, target, " ".join(wrong))
    reversed_target = " ".join(encode_int(579, "reversed" if reverse_output else "digits", hints=True))
    plain = " ".join(encode_int(579, "digits" if reverse_output else "reversed", hints=True))
    assert task.verify("", reversed_target, reversed_target) and not task.verify("", reversed_target, plain)


def test_reverse_output_reverses_only_the_result():
    task = ArithmeticTask(min_value=0, max_value=999, reverse_output=True)
    assert task.format_problem(((123, 45), ("+",))) == ("INT+ 1 2 3 + INT+ 4 5", "INT+ 8 6 1")
    hinted = ArithmeticTask(min_value=0, max_value=999, reverse_output=True, index_hints=True)
    assert hinted.format_problem(((123, 45), ("+",))) == ("INT+ @2 1 @1 2 @0 3 + INT+ @1 4 @0 5", "INT+ @0 8 @1 6 @2 1")


def test_balance_lengths_gives_every_length_pair_equally_often():
    task = ArithmeticTask(digits=[1, 4], balance=["lengths"], n_train=960, n_valid=160, n_test=160)
    splits = task.build()
    for name, n in (("train", 960), ("valid", 160), ("test", 160)):
        counts = Counter(task.operand_lengths(s) for s in splits[name]["source"])
        assert sorted(counts) == list(itertools.product(range(1, 5), repeat=2))
        assert set(counts.values()) == {n // 16}, (name, counts)
    # unbalanced, the same sizes are not equal per pair
    plain = ArithmeticTask(digits=[1, 4], n_train=960, n_valid=160, n_test=160).build()["train"]
    assert len(set(Counter(task.operand_lengths(s) for s in plain["source"]).values())) > 1


def test_balance_lengths_shares_out_what_a_small_combination_lacks():
    # (1, 1) has only 100 distinct problems: it gives all of them, the other three share the rest
    task = ArithmeticTask(digits=[1, 2], balance=["lengths"], n_train=1000, n_valid=0, n_test=0)
    counts = Counter(task.operand_lengths(s) for s in task.build()["train"]["source"])
    assert counts[1, 1] == 100 and sorted(counts[k] for k in [(1, 2), (2, 1), (2, 2)]) == [300, 300, 300]


@pytest.mark.parametrize(
    ("fields", "carries"),
    [
        ({"digits": [1, 5]}, range(6)),
        ({"digits": 2, "n_operands": 4, "encoding": "reversed", "zero_pad": True}, range(3)),
        ({"min_value": 0, "max_value": 99}, range(3)),
    ],
)
def test_balance_carries_gives_every_carry_count_equally_often(fields, carries):
    task = ArithmeticTask(**fields, balance=["carries"], n_train=1200, n_valid=0, n_test=0)
    train = task.build()["train"]
    counts = Counter(count_carries(task.operands(s)) for s in train["source"])
    assert sorted(counts) == list(carries)
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    assert all(task.verify(s, t, t) for s, t in zip(train["source"], train["target"]))


def test_balance_lengths_and_carries_together():
    task = ArithmeticTask(digits=[2, 3], balance=["lengths", "carries"], n_train=1800, n_valid=0, n_test=0)
    train = task.build()["train"]
    counts = Counter((task.operand_lengths(s), count_carries(task.operands(s))) for s in train["source"])
    # every (lengths, carries) stratum that exists: carries 0..max length
    expected = {(ls, c) for ls in itertools.product((2, 3), repeat=2) for c in range(max(ls) + 1)}
    assert set(counts) == expected and set(counts.values()) == {1800 // len(expected)}


def test_fingerprints_stay_the_same_with_the_new_options_off():
    # values recorded before reverse_output, index_hints and balance existed (cached data stays valid)
    assert ArithmeticTask().fingerprint() == "6ed163d9c7a8d083"
    assert (
        ArithmeticTask(encoding="reversed", zero_pad=True, n_operands=4, min_value=0, max_value=99).fingerprint()
        == "f5ca10244b908f22"
    )
    assert ArithmeticTask(digits=[1, 3], ood={"x": {"digits": 4}}).fingerprint() == "f8d7aad3bc621f3c"
    assert ArithmeticTask(reverse_output=True).fingerprint() != ArithmeticTask().fingerprint()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reverse_output": True, "encoding": "reversed"}, "data.task.reverse_output=true .*encoding=digits"),
        ({"index_hints": True, "encoding": "number"}, "data.task.index_hints=true needs a digit encoding"),
        ({"balance": ["digits"]}, r"data.task.balance=\['digits'\] must list distinct entries"),
        ({"balance": ["lengths"]}, "set data.task.digits"),
        ({"balance": ["carries"], "operators": ["*"]}, r"data.task.balance=\[carries\] .*operators=\['\+'\]"),
        ({"balance": ["carries"], "digits": 2, "n_operands": 7}, "lower data.task.n_operands"),
    ],
)
def test_bad_format_options_name_the_key(fields, message):
    with pytest.raises(ValueError, match=message):
        ArithmeticTask(**fields)


def test_long_operands_are_quick_to_draw():
    """Operands of 11..30 digits (the length-generalisation test splits): sizes and lengths right."""
    task = ArithmeticTask(
        digits=[1, 10],
        balance=["lengths"],
        n_train=500,
        n_valid=10,
        n_test=10,
        ood={"d30": {"digits": 30, "n": 200}, "long": {"digits": [11, 30], "n": 400}},
    )
    splits = task.build()
    assert {task.operand_lengths(s) for s in splits["d30"]["source"]} == {(30, 30)}
    assert Counter(task.operand_lengths(s) for s in splits["long"]["source"]) == {
        pair: 1 for pair in itertools.product(range(11, 31), repeat=2)
    }


# ---------------------------------------------------------------------------- metrics
def test_position_hits_on_a_hand_made_batch():
    # least significant digit first: 579 -> [9, 7, 5]
    assert position_hits([9, 7, 5], [9, 7, 5]) == [True, True, True]
    assert position_hits([9, 7, 5], [9, 8, 5]) == [True, False, True]
    assert position_hits([9, 7, 5], [9, 7]) == [True, True, False]  # a short answer misses the top digit
    assert position_hits([9, 7, 5], [9, 7, 5, 1]) == [True, True, True]  # extra digits: exact match's job
    assert position_hits([9, 7, 5], None) == [False] * 3


@pytest.mark.parametrize("reverse_output", [False, True])
def test_per_position_accuracy_is_aligned_by_significance(reverse_output):
    """The same hand-made answers score the same per position whether written plain or reversed."""
    task = ArithmeticTask(min_value=0, max_value=999, reverse_output=reverse_output)
    problems = [(123, 456), (999, 1), (50, 50), (7, 8)]  # sums 579, 1000, 100, 15
    answers = [574, 1000, 10, None]  # units wrong; right; a digit short; no EOS
    rows = []
    for (a, b), answer in zip(problems, answers):
        source, target = task.format_problem(((a, b), ("+",)))
        hypothesis = None if answer is None else " ".join(encode_int(answer, task.target_encoding))
        rows.append((source, target, hypothesis, task.verify(source, target, hypothesis or "")))
    ratios = task.tally_split("test", rows).ratios()
    # units: 579/574 miss, 1000 hit, 100/10 (units 0 vs 0) hit, 15/None miss -> 2 of 4
    # tens: 7/7 hit, 0/0 hit, 0/1 miss, 1/None miss -> 2 of 4; hundreds: 5/5, 0/0 hit, 1/- miss -> 2 of 3
    assert ratios["acc_by_pos/0"] == 2 / 4 and ratios["acc_by_pos/1"] == 2 / 4
    assert ratios["acc_by_pos/2"] == 2 / 3 and ratios["acc_by_pos/3"] == 1.0
    assert ratios["acc_by_len/3"] == 1 / 2 and ratios["acc_by_len/2"] == 0.0 and ratios["acc_by_len/1"] == 0.0
    # carries: 123+456 none (wrong answer), 999+1 three (right), 50+50 one (wrong), 7+8 one (wrong)
    assert ratios["acc_by_carries/0"] == 0.0 and ratios["acc_by_carries/3"] == 1.0
    assert ratios["acc_by_carries/1"] == 0.0
    assert "acc_by_carries/2" not in ratios  # declared, never counted
    assert set(ratios) <= set(task.tally_keys("test"))


def test_tally_keys_are_fixed_per_split_and_cover_every_tally():
    task = ArithmeticTask(
        digits=[1, 3],
        reverse_output=True,
        n_train=300,
        n_valid=20,
        n_test=20,
        ood={"long": {"digits": [4, 6], "n": 50}},
    )
    splits = task.build()
    assert task.tally_keys("test") == (
        *(f"acc_by_pos/{i}" for i in range(4)),
        *(f"acc_by_len/{d}" for d in (1, 2, 3)),
        *(f"acc_by_carries/{c}" for c in range(4)),
    )
    long_keys = task.tally_keys("long")
    assert "acc_by_len/6" in long_keys and "acc_by_pos/6" in long_keys and "acc_by_len/3" not in long_keys
    for split in ("test", "long"):
        for source, target in zip(splits[split]["source"], splits[split]["target"]):
            assert set(task.tally(source, target, None, False)) <= set(task.tally_keys(split))
    assert not any(k.startswith("acc_by_carries") for k in ArithmeticTask(operators=["*"]).tally_keys("test"))
    with pytest.raises(KeyError, match="declared"):
        Tally(["a"]).add("b", 1)


def test_length_heatmap_writes_a_png(tmp_path):
    # right exactly when operand 1 has at most 2 digits; operand 2 (3 digits) 2 of 3 times
    records = [(a, b, a <= 2 and (b != 3 or i < 2)) for a in range(1, 9) for b in range(1, 9) for i in range(3)]
    fig = length_heatmap(records, (1, 5), tmp_path / "heat.png")
    assert (tmp_path / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = fig.axes[0].get_images()[0].get_array()  # rows: operand 2 length, columns: operand 1 length
    assert image.shape == (8, 8)
    assert image[7, 0] == pytest.approx(100.0) and image[0, 7] == pytest.approx(0.0)
    assert image[2, 1] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="at least one"):
        length_heatmap([], (1, 5))
