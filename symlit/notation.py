"""Symbolic <-> token conversion: pure functions shared by generators, tokenizers and verifiers.

Integers are written in one of four encodings (the token strings are whitespace separated):

``digits`` (default)
    Sign token then digits, most significant first: ``123 -> "INT+ 1 2 3"``, ``-7 -> "INT- 7"``
    (the Lample & Charton encoding; ``base`` selects the digit base).
``reversed``
    Sign token then digits, least significant first: ``123 -> "INT+ 3 2 1"``. Addition carries
    then flow in the direction the decoder writes.
``number``
    One token per number: ``123 -> "123"`` (the workshop's "number-level" tokenization).
``text``
    Plain decimal text for subword (BPE) tokenizers: ``123 -> "123"``; the tokenizer decides
    the pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

INTEGER_ENCODINGS = ("digits", "reversed", "number", "text")
SIGN_TOKENS = {"INT+": 1, "INT-": -1}
DIGIT_SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyz"


class NotationError(ValueError):
    """A token sequence that does not spell a valid expression in the expected notation."""


def check_encoding(encoding: str, base: int = 10) -> None:
    """Raise ``ValueError`` naming the field when ``encoding`` or ``base`` is not supported."""
    if encoding not in INTEGER_ENCODINGS:
        raise ValueError(
            f"data.task.encoding={encoding!r} is not a known integer encoding; choose one of {INTEGER_ENCODINGS}"
        )
    if not 2 <= base <= len(DIGIT_SYMBOLS):
        raise ValueError(f"data.task.base={base} must be between 2 and {len(DIGIT_SYMBOLS)}")
    if base != 10 and encoding in ("number", "text"):
        raise ValueError(f"data.task.base={base} only applies to the 'digits' and 'reversed' encodings")


def to_digits(value: int, base: int = 10) -> list[int]:
    """Digits of ``abs(value)`` in ``base``, most significant first (``0 -> [0]``)."""
    value = abs(value)
    digits = [value % base]
    value //= base
    while value:
        digits.append(value % base)
        value //= base
    return digits[::-1]


def encode_int(value: int, encoding: str = "digits", base: int = 10, width: int = 0) -> list[str]:
    """Tokens of one integer in the given encoding.

    ``width`` (digit encodings only) pads the digits with leading zeros up to that many digits
    (``encode_int(7, width=3) == ["INT+", "0", "0", "7"]``); a longer number is written in full.
    """
    if encoding in ("number", "text"):
        return [str(value)]
    sign = "INT-" if value < 0 else "INT+"
    digits = [DIGIT_SYMBOLS[d] for d in to_digits(value, base)]
    digits = ["0"] * (width - len(digits)) + digits
    if encoding == "reversed":
        digits.reverse()
    elif encoding != "digits":
        check_encoding(encoding, base)
    return [sign, *digits]


def decode_int(tokens: Sequence[str], encoding: str = "digits", base: int = 10) -> int:
    """Inverse of :func:`encode_int`; raises :class:`NotationError` on malformed input."""
    if encoding in ("number", "text"):
        text = "".join(tokens).replace(" ", "")
        try:
            return int(text, 10)
        except ValueError:
            raise NotationError(f"not an integer: {' '.join(tokens)!r}") from None
    if len(tokens) < 2 or tokens[0] not in SIGN_TOKENS:
        raise NotationError(f"expected a sign token and digits, got {' '.join(tokens)!r}")
    digits = list(tokens[1:])
    if encoding == "reversed":
        digits.reverse()
    value = 0
    for token in digits:
        digit = DIGIT_SYMBOLS.find(token) if len(token) == 1 else -1
        if not 0 <= digit < base:
            raise NotationError(f"{token!r} is not a base-{base} digit in {' '.join(tokens)!r}")
        value = value * base + digit
    return SIGN_TOKENS[tokens[0]] * value


def digit_vocabulary(encoding: str = "digits", base: int = 10) -> list[str]:
    """The digit tokens of an encoding that writes numbers digit by digit (empty for open encodings)."""
    return [] if encoding in ("number", "text") else list(DIGIT_SYMBOLS[:base])


def integer_vocabulary(encoding: str = "digits", base: int = 10) -> list[str]:
    """Closed vocabulary needed to write any integer (empty for open encodings)."""
    if encoding in ("number", "text"):
        return []
    return list(SIGN_TOKENS) + digit_vocabulary(encoding, base)
