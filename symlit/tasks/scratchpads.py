"""Scratchpad target formats of arithmetic problems (``data.task.scratchpad``).

A scratchpad target writes intermediate steps, then an answer separator, then the result. Each
format here writes the steps up to and including its separator, as tokens: digits are digit tokens
(:data:`~symlit.core.notation.DIGIT_SYMBOLS`), the words and punctuation are
:data:`SCRATCHPAD_TOKENS`. :func:`write_scratchpad` picks a format by name;
:data:`REQUIREMENTS` says which problems each format can write.
"""

from __future__ import annotations

from symlit.core.notation import DIGIT_SYMBOLS, to_digits

#: scratchpad target formats (``data.task.scratchpad``) and the token after which each writes the answer
ANSWER_SEPARATORS = {"lee_simplified": ".", "lee_detailed": "</scratch>", "column_sums": ".", "partial_products": "."}
SCRATCHPADS = tuple(ANSWER_SEPARATORS)
#: the words and punctuation of every scratchpad (numbers are written with digit or number tokens)
SCRATCHPAD_TOKENS = (
    *("A->", "C->", "S->", "P->", ",", ".", "<scratch>", "</scratch>", "[", "]"),
    *("has", "digits.", "A=", "B=", "C=", "k=", "=", "END"),
)
#: what each format writes: the operator sets it accepts, and whether it needs exactly two operands
REQUIREMENTS: dict[str, tuple[tuple[list[str], ...], bool]] = {
    "lee_simplified": ((["+"], ["*"]), True),
    "lee_detailed": ((["+"], ["*"]), True),
    "column_sums": ((["+"],), False),
    "partial_products": ((["*"],), True),
}


def write_scratchpad(
    name: str | None,
    operands: tuple[int, ...],
    operators: tuple[str, ...],
    base: int = 10,
    operand_width: int = 0,
    result_width: int = 0,
    reverse: bool = False,
) -> list[str]:
    """The tokens of scratchpad ``name`` for a problem, up to and including its answer separator
    (``[]`` when ``name`` is ``None``). ``reverse``: the result is written least significant digit first."""
    if name == "lee_simplified":
        return lee_simplified(operands, operators[0], base, operand_width)
    if name == "lee_detailed":
        return lee_detailed(operands, operators[0], base, operand_width)
    if name == "column_sums":
        return column_sums(operands, base, operand_width)
    if name == "partial_products":
        return partial_products(operands, base, operand_width, result_width, reverse)
    return []


def _symbols(value: int, base: int, width: int = 0) -> list[str]:
    """Digit tokens of ``abs(value)``, most significant first, left-padded with zeros to ``width``."""
    digits = [DIGIT_SYMBOLS[d] for d in to_digits(value, base)]
    return ["0"] * (width - len(digits)) + digits


def _bracket(digits: list[str]) -> list[str]:
    """Lee et al.'s digit list ``[7,6,7]`` as tokens: ``[ 7 , 6 , 7 ]`` (``[ ]`` when empty)."""
    return ["[", *(t for i, d in enumerate(digits) for t in ((",", d) if i else (d,))), "]"]


def lee_simplified(operands: tuple[int, ...], op: str, base: int = 10, width: int = 0) -> list[str]:
    """Lee et al.'s simplified scratchpad, up to the answer separator ``.``.

    ``+``: one step per column, units first, ``A-> digit , C-> carry`` (as in their released
    generator); ``*`` (their paper and code give none; designed here as the detailed scratchpad's
    step outputs): one step per digit of the second operand, units first, ``A-> partial product ,
    C-> running sum``. ``width`` pads the operands' digits (``zero_pad``).
    """
    x, y = operands
    out: list[str] = []
    if op == "+":
        xs, ys, carry = _symbols(x, base, width), _symbols(y, base, width), 0
        for i in range(max(len(xs), len(ys))):
            total = sum(DIGIT_SYMBOLS.index(ds[-1 - i]) for ds in (xs, ys) if i < len(ds)) + carry
            carry = total // base
            out += ["A->", DIGIT_SYMBOLS[total % base], ",", "C->", DIGIT_SYMBOLS[carry]]
    else:
        running = 0
        for i, b in enumerate(reversed(_symbols(y, base, width))):
            product = x * DIGIT_SYMBOLS.index(b)
            running += product * base**i
            out += ["A->", *_symbols(product, base), ",", "C->", *_symbols(running, base)]
    return [*out, "."]


def lee_detailed(operands: tuple[int, ...], op: str, base: int = 10, width: int = 0) -> list[str]:
    """Lee et al.'s detailed scratchpad, up to the answer separator ``</scratch>``.

    Their released generator's text with every digit and symbol a token (newlines dropped):
    ``<scratch> [ 7 , 6 , 7 ] has 3 digits. [ 7 , 0 , 4 ] has 3 digits.`` then, for ``+``, one
    line per column (``[ 7 , 6 , 7 ] + [ 7 , 0 , 4 ] , A= [ ] , C= 0 , 7 + 4 + 0 = 1 1 , A-> 1 ,
    C-> 1``) and ``[ ] + [ ] , A= [ 4 , 7 , 1 ] C= 1 , END``; for ``*``, one line per digit of the
    second operand (``[ 8 , 6 , 5 ] * 9 , A= [ 7 , 7 , 8 , 5 ] , k= 1 , B= [ 7 , 7 , 8 , 5 ] ,
    C= 0 + 7 7 8 5 = 7 7 8 5``) and ``, END``.
    """
    x, y = operands
    xs, ys = _symbols(x, base, width), _symbols(y, base, width)
    out = ["<scratch>"]
    for ds in (xs, ys):
        out += [*_bracket(ds), "has", *_symbols(len(ds), 10), "digits."]
    if op == "+":
        answer: list[str] = []
        carry = 0
        for i in range(max(len(xs), len(ys))):
            a, b = (DIGIT_SYMBOLS.index(ds[-1 - i]) if i < len(ds) else 0 for ds in (xs, ys))
            total = a + b + carry
            out += [*_bracket(xs[: len(xs) - i]), "+", *_bracket(ys[: len(ys) - i]), ",", "A=", *_bracket(answer)]
            out += [",", "C=", DIGIT_SYMBOLS[carry], ",", DIGIT_SYMBOLS[a], "+", DIGIT_SYMBOLS[b], "+"]
            out += [DIGIT_SYMBOLS[carry], "=", *_symbols(total, base), ","]
            out += ["A->", DIGIT_SYMBOLS[total % base], ",", "C->", DIGIT_SYMBOLS[total // base]]
            answer.insert(0, DIGIT_SYMBOLS[total % base])
            carry = total // base
        n = max(len(xs), len(ys))
        out += [*_bracket(xs[: max(0, len(xs) - n)]), "+", *_bracket(ys[: max(0, len(ys) - n)]), ","]
        out += ["A=", *_bracket(answer), "C=", DIGIT_SYMBOLS[carry], ",", "END"]
    else:
        running = 0
        for i, b in enumerate(reversed(ys)):
            product = x * DIGIT_SYMBOLS.index(b)
            shifted, previous = product * base**i, running
            running += shifted
            out += [*_bracket(xs), "*", b, ",", "A=", *_bracket(_symbols(product, base)), ",", "k="]
            out += [*_symbols(base**i, base), ",", "B=", *_bracket(_symbols(shifted, base)), ",", "C="]
            out += [*_symbols(previous, base), "+", *_symbols(shifted, base), "=", *_symbols(running, base)]
        out += [",", "END"]
    return [*out, "</scratch>"]


def column_sums(operands: tuple[int, ...], base: int = 10, width: int = 0) -> list[str]:
    """Running column sums of a multi-operand sum, up to the answer separator ``.``.

    One step per column, units first: ``S->`` and the running sums of the column (the incoming
    carry plus the column's digit of operand 1, of operands 1 and 2, ...), then ``A->`` the
    result digit and ``C->`` the carry, as in Lee et al.'s simplified scratchpad. Running sums and
    carries are decimal number tokens (``12``), result digits digit tokens. ``7 + 45 + 0 + 99``:
    ``S-> 7 12 12 21 , A-> 1 , C-> 2 S-> 2 6 6 15 , A-> 5 , C-> 1 .``
    """
    columns = max(width, *(len(to_digits(v, base)) for v in operands))
    out: list[str] = []
    carry = 0
    for i in range(columns):
        total, sums = carry, []
        for value in operands:
            total += abs(value) // base**i % base
            sums.append(str(total))
        carry = total // base
        out += ["S->", *sums, ",", "A->", DIGIT_SYMBOLS[total % base], ",", "C->", str(carry)]
    return [*out, "."]


def partial_products(
    operands: tuple[int, ...], base: int = 10, width: int = 0, result_width: int = 0, reverse: bool = False
) -> list[str]:
    """Partial products with running sums of ``x * y``, up to the answer separator ``.``.

    One step per digit ``b_i`` of ``y``, units first: ``P->`` the shifted partial product
    ``x * b_i * base**i``, then ``S->`` the running sum of the partial products so far (the
    running-sum target of Bai et al. 2025, written out instead of probed). Numbers are digit
    tokens in the result's order (``reverse``: least significant first), padded to
    ``result_width``. ``12 * 34``, plain: ``P-> 4 8 , S-> 4 8 P-> 3 6 0 , S-> 4 0 8 .``
    """
    x, y = operands
    out: list[str] = []
    running = 0
    for i, b in enumerate(reversed(_symbols(y, base, width))):
        shifted = x * DIGIT_SYMBOLS.index(b) * base**i
        running += shifted
        for key, value in (("P->", shifted), ("S->", running)):
            digits = _symbols(value, base, result_width)
            out += [key, *(digits[::-1] if reverse else digits)] + ([","] if key == "P->" else [])
    return [*out, "."]
