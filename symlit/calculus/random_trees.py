"""Random expressions: unary-binary trees with exactly ``n`` operators, sampled by counting.

Let ``D(e, n)`` be the (weighted) number of ways to complete a tree that still has ``e`` empty
nodes and ``n`` operators to place, where a leaf weighs ``leaf_weight``, a unary node
``unary_weight`` and a binary node ``binary_weight``::

    D(0, n) = 0 for n > 0,   D(e, 0) = leaf_weight ** e,
    D(e, n) = leaf_weight * D(e - 1, n) + unary_weight * D(e, n - 1) + binary_weight * D(e + 1, n - 1)

The tree is filled in prefix order: at each step the next ``k`` empty nodes become leaves and an
operator of arity ``a`` is placed in the following one, with probability
``leaf_weight**k * weight(a) * D(e - k - 1 + a, n - 1) / D(e, n)``. With all weights 1 every tree
shape with ``n`` operators is equally likely (Lample & Charton, appendix C). Operators are then
drawn by their weights and leaves by the leaf probabilities (variable, coefficient, integer,
constant).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from symlit.calculus.prefix import COEFFICIENTS, OPERATORS, VARIABLES
from symlit.core.notation import encode_int

REFERENCE_OPERATORS = (
    "add:10,sub:3,mul:10,div:5,sqrt:4,pow2:4,pow3:2,pow4:1,pow5:1,ln:4,exp:4,sin:4,cos:4,tan:4,"
    "asin:1,acos:1,atan:1,sinh:1,cosh:1,tanh:1,asinh:1,acosh:1,atanh:1"
)
"""The operator weights of the reference README's generator command."""
LEAF_KINDS = ("variable", "coefficient", "integer", "constant")
TREE_CONSTANTS = ("pi", "E")


def parse_operators(operators: str | Mapping[str, float]) -> dict[str, float]:
    """``"add:10,sub:3"`` or ``{add: 10, sub: 3}`` -> ``{"add": 10.0, "sub": 3.0}``, validated."""
    if isinstance(operators, str):
        items = {}
        for part in filter(None, (p.strip() for p in operators.split(","))):
            name, _, weight = part.partition(":")
            try:
                items[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"data.task.operators: bad weight in {part!r} (expected name:weight)") from None
    else:
        items = {str(k): float(v) for k, v in dict(operators).items()}
    unknown = sorted(set(items) - (set(OPERATORS) - {"derivative", "f"}))
    if unknown:
        raise ValueError(f"data.task.operators: unknown operator(s) {unknown}")
    if any(w < 0 for w in items.values()) or not any(w > 0 for w in items.values()):
        raise ValueError("data.task.operators: weights must be >= 0 with at least one positive")
    return {k: v for k, v in items.items() if v > 0}


@dataclass
class TreeSampler:
    """Samples random expressions as prefix token lists.

    ``leaf_probs`` weighs the leaf kinds ``(variable, coefficient, integer, constant)``; integers
    are drawn uniformly from ``1..max_int`` (and their negatives unless ``positive``); variables
    from the first ``n_variables`` of ``x y z t``, coefficients from ``a0..a{n_coefficients-1}``,
    constants from ``pi E``.
    """

    operators: dict[str, float] = field(default_factory=lambda: parse_operators(REFERENCE_OPERATORS))
    max_ops: int = 15
    leaf_probs: Sequence[float] = (0.75, 0.0, 0.25, 0.0)
    max_int: int = 5
    positive: bool = True
    n_variables: int = 1
    n_coefficients: int = 0
    int_base: int = 10
    leaf_weight: float = 1
    unary_weight: float = 1
    binary_weight: float = 1

    def __post_init__(self) -> None:
        self.operators = parse_operators(self.operators)
        self.unary = [op for op in self.operators if OPERATORS[op] == 1]
        self.binary = [op for op in self.operators if OPERATORS[op] == 2]
        self._unary_w = [self.operators[op] for op in self.unary]
        self._binary_w = [self.operators[op] for op in self.binary]
        if self.max_ops < 0:
            raise ValueError(f"data.task.max_ops={self.max_ops} must be >= 0")
        probs = [float(p) for p in self.leaf_probs]
        if len(probs) != 4 or any(p < 0 for p in probs) or probs[0] <= 0:
            raise ValueError(
                f"data.task.leaf_probs={list(self.leaf_probs)} needs 4 weights >= 0 "
                "(variable, coefficient, integer, constant) with a positive variable weight"
            )
        if (probs[1] > 0) != (self.n_coefficients > 0):
            raise ValueError("data.task.leaf_probs: the coefficient weight must be > 0 exactly when n_coefficients > 0")
        if not 1 <= self.n_variables <= len(VARIABLES) or not 0 <= self.n_coefficients <= len(COEFFICIENTS):
            raise ValueError(
                f"data.task.n_variables must be 1..{len(VARIABLES)}, n_coefficients 0..{len(COEFFICIENTS)}"
            )
        if self.max_int < 1:
            raise ValueError(f"data.task.max_int={self.max_int} must be >= 1")
        self.leaf_probs = probs
        weights = (self.leaf_weight, self.unary_weight, self.binary_weight)
        if any(w < 0 for w in weights) or self.leaf_weight <= 0:
            raise ValueError(f"data.task.tree_weights={list(weights)}: the leaf weight must be > 0, the others >= 0")
        # an arity without operators cannot be placed
        self._p1 = self.unary_weight if self.unary else 0
        self._p2 = self.binary_weight if self.binary else 0
        self._table = self._count(self.max_ops)

    # ------------------------------------------------------------------ counting
    def _count(self, max_ops: int) -> list[list[float]]:
        """``D[e][n]`` for ``e + n <= max_ops + 1`` (the only states a tree of ``max_ops`` reaches)."""
        size = max_ops + 2
        table = [[0] * (max_ops + 1) for _ in range(size + 1)]
        for e in range(size + 1):
            table[e][0] = self.leaf_weight**e
        for n in range(1, max_ops + 1):
            for e in range(1, size - n):
                table[e][n] = (
                    self.leaf_weight * table[e - 1][n] + self._p1 * table[e][n - 1] + self._p2 * table[e + 1][n - 1]
                )
        return table

    def count_trees(self, n_ops: int) -> float:
        """Weighted number of tree shapes with ``n_ops`` operators (Motzkin-like numbers for weights 1)."""
        if n_ops > self.max_ops:
            raise ValueError(f"{n_ops} operators > max_ops={self.max_ops}")
        return self._table[1][n_ops]

    def _next(self, empty: int, n_ops: int, rng: random.Random) -> tuple[int, int]:
        """Number of empty nodes to skip (they become leaves) and the arity of the next operator."""
        t = self._table
        total = t[empty][n_ops]
        u = rng.random() * total
        acc = 0.0
        weight = 1.0
        last = (0, 1)
        for k in range(empty):
            for arity, p in ((1, self._p1), (2, self._p2)):
                if p:
                    acc += weight * p * t[empty - k - 1 + arity][n_ops - 1]
                    last = (k, arity)
                    if u < acc:
                        return last
            weight *= self.leaf_weight
        return last  # rounding: the last admissible choice

    def shape(self, n_ops: int, rng: random.Random) -> list[int | None]:
        """A random tree shape in prefix order: the arity of each operator node, ``None`` for leaves."""
        if n_ops > self.max_ops:
            raise ValueError(f"{n_ops} operators > max_ops={self.max_ops}")
        if n_ops > 0 and self._table[1][n_ops] == 0:
            raise ValueError(f"no tree with {n_ops} operators: add a binary operator to data.task.operators")
        out: list[int | None] = []
        empty = 1
        for remaining in range(n_ops, 0, -1):
            skip, arity = self._next(empty, remaining, rng)
            out.extend([None] * skip)
            out.append(arity)
            empty += arity - 1 - skip
        out.extend([None] * empty)
        return out

    # ------------------------------------------------------------------ leaves and operators
    def leaf(self, rng: random.Random) -> list[str]:
        kind = rng.choices(range(4), weights=self.leaf_probs)[0]
        if kind == 0:
            return [VARIABLES[rng.randrange(self.n_variables)]]
        if kind == 1:
            return [COEFFICIENTS[rng.randrange(self.n_coefficients)]]
        if kind == 2:
            value = rng.randint(1, self.max_int)
            if not self.positive and rng.random() < 0.5:
                value = -value
            return encode_int(value, "digits", self.int_base)
        return [TREE_CONSTANTS[rng.randrange(len(TREE_CONSTANTS))]]

    def expression(self, n_ops: int, rng: random.Random, required: Sequence[str] = ()) -> list[str]:
        """Prefix tokens of a random expression with exactly ``n_ops`` operators.

        ``required`` leaves (e.g. ``("x", "y")`` for an ODE solution with a constant ``y``) are
        placed in distinct random leaf positions when there are enough leaves.
        """
        shape = self.shape(n_ops, rng)
        n_leaves = shape.count(None)
        leaves = [self.leaf(rng) for _ in range(n_leaves)]
        kept = {leaves.index([r]) for r in required if [r] in leaves}  # one occurrence of each stays
        missing = [r for r in required if [r] not in leaves]
        free = [i for i in range(n_leaves) if i not in kept]
        slots = rng.sample(free, min(len(missing), len(free)))
        for slot, name in zip(slots, missing):
            leaves[slot] = [name]
        tokens: list[str] = []
        it = iter(leaves)
        for node in shape:
            if node is None:
                tokens.extend(next(it))
            elif node == 1:
                tokens.append(rng.choices(self.unary, weights=self._unary_w)[0])
            else:
                tokens.append(rng.choices(self.binary, weights=self._binary_w)[0])
        return tokens
