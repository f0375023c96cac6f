"""SYMBA format: every row of the shipped MARTY file loads; tokens round-trip exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from symlit.core.notation import NotationError
from symlit.qed import symba_format as sf
from symlit.qed.tokens import NOTATIONS, canonical, from_tokens, to_tokens, token_score

pytestmark = pytest.mark.xdist_group("test_qed_format")  # pytest-xdist: the module-scoped fixture is built once

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "symba-qed-2to2" / "valid.csv"


@pytest.fixture(scope="module")
def rows():
    return sf.read_symba_file(str(SAMPLE))


def test_every_row_loads_and_every_sqamp_round_trips_through_hybrid_short(rows):
    assert len(rows) == 1556
    for k, (amp, sqamp) in enumerate(rows, start=1):
        tree = sf.parse(amp)
        legs = sf.legs(tree)
        assert len(legs) == 4 and [l.incoming for l in legs] == [True, True, False, False], k
        assert sf.amplitude_tokens(tree, "hybrid_short")
        expr = sf.parse_sqamp(sqamp)
        assert sympy.Symbol("i") not in expr.free_symbols and sympy.Symbol("e") in expr.free_symbols
        assert from_tokens(to_tokens(expr, "hybrid_short"), "hybrid_short") == expr, f"row {k}"


@pytest.mark.parametrize("notation", NOTATIONS)
def test_round_trip_every_notation_and_factor_output(rows, notation):
    for _, sqamp in rows[::40]:
        expr = sf.parse_sqamp(sqamp)
        for x in (expr, sympy.factor(expr)):
            assert from_tokens(to_tokens(x, notation), notation) == canonical(x) == x


def test_notations_look_like_symba():
    x = sf.parse_sqamp("2*m_mu^2*s_12 + s_13 + m_mu^2 + e")
    assert to_tokens(x, "hybrid") == [
        "add(",
        "e",
        "s_13",
        "pow",
        "m_mu",
        "INT+",
        "2",
        "mul(",
        "INT+",
        "2",
        "s_12",
        "pow",
        "m_mu",
        "INT+",
        "2",
        ")",
        ")",
    ]
    assert to_tokens(x, "hybrid_short") == ["add(", "e", "s_13", "m2mu", "mul(", "INT+", "2", "m2mu*s_12", ")", ")"]
    assert to_tokens(x, "prefix")[:3] == ["add", "e", "add"]
    assert to_tokens(sf.parse_sqamp("-1/9*i*e^2"), "hybrid") == [
        "mul(",
        "RAT",
        "INT-",
        "1",
        "INT+",
        "9",
        "I",
        "pow",
        "e",
        "INT+",
        "2",
        ")",
    ]


def test_index_names_are_normalised_by_first_appearance():
    a = (
        "i*e^2*gamma_{+\\INDEX_7,INDEX_3,INDEX_9}*gamma_{\\INDEX_7,INDEX_1,INDEX_4}*e_{MOMENTUM_5,INDEX_3}(p_3)_u^(*)"
        "*e_{MOMENTUM_2,INDEX_9}(p_1)_u*mu_{MOMENTUM_0,INDEX_1}(p_4)_u^(*)*mu_{MOMENTUM_1,INDEX_4}(p_2)_u/(s_13)"
    )
    b = a.replace("INDEX_7", "INDEX_0").replace("INDEX_3", "INDEX_11").replace("MOMENTUM_5", "MOMENTUM_9")
    ta, tb = sf.amplitude_tokens(sf.parse(a)), sf.amplitude_tokens(sf.parse(b))
    assert ta == tb
    assert "^LOR_0" in ta and "SPIN_0" in ta and "MOMENTUM_0" in ta and "I" in ta
    assert sf.legs_from_tokens(ta) == sf.legs(sf.parse(a))


def test_errors_are_clear(tmp_path):
    with pytest.raises(sf.SymbaFormatError, match="cannot read"):
        sf.parse("e^2*$x")
    with pytest.raises(sf.SymbaFormatError, match="amplitude factor"):
        sf.parse_sqamp("gamma_{\\INDEX_0,INDEX_1,INDEX_2}")
    with pytest.raises(NotationError):
        from_tokens("add( INT+ 1", "hybrid")
    with pytest.raises(NotationError):
        from_tokens("INT+ 1 INT+ 2", "hybrid")
    bad = tmp_path / "bad.csv"
    bad.write_text("amp,other\nx,y\n")
    with pytest.raises(sf.SymbaFormatError, match="lacks the columns"):
        sf.read_symba_file(str(bad))


def test_token_score():
    assert token_score("a b c".split(), "a b c".split()) == 1
    assert token_score("a b c d".split(), "a x c".split()) == 0.5
    assert token_score("a b".split(), "a b c d".split()) == 0.0
