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

The digit encodings can carry *index hints* (Zhou et al. 2024, "Transformers can achieve length
generalization but not robustly"): a hint token before each digit names its significance, so
digits of equal significance carry the same hint in every number (``123 -> "INT+ @2 1 @1 2 @0 3"``,
reversed ``"INT+ @0 3 @1 2 @2 1"``). Decoding checks every hint.
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


def hint_token(significance: int) -> str:
    """The index-hint token of the digit worth ``base ** significance`` (``0 -> "@0"``)."""
    return f"@{significance}"


def encode_int(value: int, encoding: str = "digits", base: int = 10, width: int = 0, hints: bool = False) -> list[str]:
    """Tokens of one integer in the given encoding.

    ``width`` (digit encodings only) pads the digits with leading zeros up to that many digits
    (``encode_int(7, width=3) == ["INT+", "0", "0", "7"]``); a longer number is written in full.
    ``hints`` (digit encodings only) writes :func:`hint_token` before each digit.
    """
    if encoding in ("number", "text"):
        if hints:
            raise ValueError(f"index hints need a digit encoding, not {encoding!r}")
        return [str(value)]
    sign = "INT-" if value < 0 else "INT+"
    digits = [DIGIT_SYMBOLS[d] for d in to_digits(value, base)]
    digits = ["0"] * (width - len(digits)) + digits
    # one group per digit, most significant first: the digit, after its hint (significance len-1 .. 0)
    groups = [[hint_token(len(digits) - 1 - i), d] if hints else [d] for i, d in enumerate(digits)]
    if encoding == "reversed":
        groups.reverse()
    elif encoding != "digits":
        check_encoding(encoding, base)
    return [sign, *(token for group in groups for token in group)]


def significant_digits(
    tokens: Sequence[str], encoding: str = "digits", base: int = 10, hints: bool = False
) -> tuple[int, list[int]]:
    """Sign (``1`` or ``-1``) and digits, least significant first, of a digit-encoded integer.

    The inverse of :func:`encode_int` for the ``digits`` and ``reversed`` encodings, without
    dropping leading zeros (``INT+ 0 4 2 -> (1, [2, 4, 0])``); with ``hints`` every hint must name
    its digit's significance. Raises :class:`NotationError` on malformed input.
    """
    text = " ".join(tokens)
    if len(tokens) < 2 or tokens[0] not in SIGN_TOKENS:
        raise NotationError(f"expected a sign token and digits, got {text!r}")
    body = list(tokens[1:])
    if hints:
        if len(body) % 2:
            raise NotationError(f"index hints and digits do not pair up in {text!r}")
        n = len(body) // 2
        expected = range(n) if encoding == "reversed" else range(n - 1, -1, -1)
        if body[0::2] != [hint_token(i) for i in expected]:
            raise NotationError(f"index hints {body[0::2]} do not match the digits' significance in {text!r}")
        body = body[1::2]
    if encoding != "reversed":
        body.reverse()
    digits = [DIGIT_SYMBOLS.find(token) if len(token) == 1 else -1 for token in body]
    for token, digit in zip(body, digits):
        if not 0 <= digit < base:
            raise NotationError(f"{token!r} is not a base-{base} digit in {text!r}")
    return SIGN_TOKENS[tokens[0]], digits


def decode_int(tokens: Sequence[str], encoding: str = "digits", base: int = 10, hints: bool = False) -> int:
    """Inverse of :func:`encode_int`; raises :class:`NotationError` on malformed input."""
    if encoding in ("number", "text"):
        text = "".join(tokens).replace(" ", "")
        try:
            return int(text, 10)
        except ValueError:
            raise NotationError(f"not an integer: {' '.join(tokens)!r}") from None
    sign, digits = significant_digits(tokens, encoding, base, hints)
    return sign * sum(d * base**i for i, d in enumerate(digits))


def digit_vocabulary(encoding: str = "digits", base: int = 10) -> list[str]:
    """The digit tokens of an encoding that writes numbers digit by digit (empty for open encodings)."""
    return [] if encoding in ("number", "text") else list(DIGIT_SYMBOLS[:base])


def integer_vocabulary(encoding: str = "digits", base: int = 10) -> list[str]:
    """Closed vocabulary needed to write any integer (empty for open encodings)."""
    if encoding in ("number", "text"):
        return []
    return list(SIGN_TOKENS) + digit_vocabulary(encoding, base)
