import random

import pytest

from symlit.core.notation import NotationError, decode_int, encode_int


@pytest.mark.parametrize("encoding", ["digits", "reversed", "number", "text"])
def test_integer_round_trip(encoding):
    rng = random.Random(0)
    values = [0, 1, -1, 9, 10, -10, 99, 100, 10**12 + 7] + [rng.randint(-(10**9), 10**9) for _ in range(2000)]
    for value in values:
        assert decode_int(encode_int(value, encoding), encoding) == value


@pytest.mark.parametrize("base", [2, 7, 10, 16, 36])
def test_bases_round_trip(base):
    for value in range(-500, 500):
        assert decode_int(encode_int(value, "digits", base), "digits", base) == value


def test_digit_encodings_match_python():
    assert encode_int(123) == ["INT+", "1", "2", "3"]
    assert encode_int(-7) == ["INT-", "7"]
    assert encode_int(123, "reversed") == ["INT+", "3", "2", "1"]
    assert encode_int(255, "digits", 16) == ["INT+", "f", "f"]
    assert encode_int(-45, "number") == ["-45"]
    assert encode_int(7, width=3) == ["INT+", "0", "0", "7"]
    assert encode_int(-7, "reversed", width=2) == ["INT-", "7", "0"]
    assert encode_int(1234, width=2) == ["INT+", "1", "2", "3", "4"]  # wider numbers are written in full


@pytest.mark.parametrize("encoding", ["digits", "reversed"])
def test_zero_padded_round_trip(encoding):
    for value in range(-1100, 1100):
        assert decode_int(encode_int(value, encoding, width=4), encoding) == value


@pytest.mark.parametrize("tokens", [[], ["1", "2"], ["INT+"], ["INT+", "x"], ["INT+", "1", "+"], ["INT*", "3"]])
def test_malformed_integers_raise(tokens):
    with pytest.raises(NotationError):
        decode_int(tokens, "digits")


def test_digit_out_of_base_raises():
    with pytest.raises(NotationError):
        decode_int(["INT+", "9"], "digits", base=8)
