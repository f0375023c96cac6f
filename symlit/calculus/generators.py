"""Generators of the five Lample & Charton tasks, with the reference project's cleaning and checks.

* ``prim_bwd``: a random ``F``; the pair is ``(F', F)`` (differentiate, optionally simplify).
* ``prim_fwd``: a random ``f``; SymPy integrates it (non-elementary or special-function results
  are rejected); the pair is ``(f, F)``.
* ``prim_ibp``: random ``F, G`` and integration by parts, ``int F g = F G - int f G``, using a
  per-generator cache of known primitives.
* ``ode1`` / ``ode2``: a random solution ``y(x)`` with one (``a8``) or two (``a8, a9``) constants;
  the constants are eliminated by solving and differentiating, which gives the equation.

Sources and targets are prefix token strings in the reference format: an integration input is
``sub Y' <f>`` (``Y' - f = 0``), an ODE input is the equation ``<eq>`` (``eq = 0``) written with
``Y Y' Y''`` for ``y, y', y''``.

Each attempt either returns a sample or a rejection *cause* (``constant``, ``invalid``,
``non_elementary``, ``timeout``...): :class:`Generator.attempt` never raises, and runs under a
per-sample time limit (see :mod:`symlit.core.limits`). Every accepted sample has been checked
by the same verifier that scores model answers (:mod:`symlit.calculus.verify`).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import sympy as sp
from sympy.integrals.risch import NonElementaryIntegral

from symlit.calculus import verify
from symlit.calculus.cleaning import (
    A8,
    A9,
    absorb_numbers,
    clean_ode2_solution,
    direct_solution,
    drop_nonzero_factors,
    finite_somewhere,
    has_bad_values,
    nested_exp_depth,
    reduce_coefficients,
    reindex_coefficients,
    remove_additive_constant,
    simplify_within,
    split_constant_factor,
)
from symlit.calculus.prefix import (
    COEFFICIENTS,
    D2FX,
    DFX,
    FX,
    SYMBOLS,
    PrefixError,
    UnsupportedExpression,
    X,
    check_base,
    clean_tokens,
    count_operators,
    prefix_to_sympy,
    sympy_to_prefix,
)
from symlit.calculus.random_trees import REFERENCE_OPERATORS, TreeSampler
from symlit.core.limits import SampleTimeout, owns, time_limit

TASKS = ("prim_fwd", "prim_bwd", "prim_ibp", "ode1", "ode2")
SPECIAL_FUNCTIONS = (
    sp.erf,
    sp.erfc,
    sp.erfi,
    sp.erfinv,
    sp.erfcinv,
    sp.expint,
    sp.Ei,
    sp.li,
    sp.Li,
    sp.Si,
    sp.Ci,
    sp.Shi,
    sp.Chi,
    sp.fresnelc,
    sp.fresnels,
    sp.polylog,
    sp.LambertW,
    sp.gamma,
    sp.uppergamma,
    sp.lowergamma,
    sp.hyper,
    sp.meijerg,
)
# per task, the reference's settings (src/envs/char_sp.py of facebookresearch/SymbolicMathematics):
# smallest operator count, probability of 0..min_ops-1 operators, per-sample time limit (s),
# probability and time limit (s) of sympy.simplify, and how prim_fwd integrates
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "prim_fwd": {"min_ops": 3, "small_ops_prob": 1 / 40, "timeout": 3.0, "simplify_prob": 0.0, "simplify_seconds": 1.0},
    "prim_bwd": {"min_ops": 4, "small_ops_prob": 1 / 40, "timeout": 5.0, "simplify_prob": 0.5, "simplify_seconds": 2.0},
    "prim_ibp": {"min_ops": 4, "small_ops_prob": 1 / 40, "timeout": 8.0, "simplify_prob": 1.0, "simplify_seconds": 1.0},
    "ode1": {"min_ops": 3, "small_ops_prob": 0.0, "timeout": 8.0, "simplify_prob": 0.5, "simplify_seconds": 1.0},
    "ode2": {"min_ops": 5, "small_ops_prob": 0.0, "timeout": 8.0, "simplify_prob": 0.5, "simplify_seconds": 1.0},
}
# what ``fast: true`` changes (a different distribution, documented in experiments/calculus.md)
FAST_DEFAULTS: dict[str, dict[str, Any]] = {
    "prim_fwd": {"fwd_method": "risch"},
    "prim_bwd": {"simplify_prob": 0.0},
    "prim_ibp": {"simplify_prob": 0.0},
    "ode1": {},
    "ode2": {},
}
FWD_METHODS = ("risch_doit", "risch", "full")


class Reject(Exception):
    """An attempt produced no sample; ``args[0]`` is the cause."""


@dataclass
class GeneratorSettings:
    """The generator settings a user sets: declared once, here, and shared by
    :class:`GeneratorConfig` and :class:`symlit.tasks.calculus.CalculusTask` (whose ``data.task``
    fields they are). See :class:`GeneratorConfig` for their meaning."""

    max_ops: int = 15
    min_ops: int | None = None
    small_ops_prob: float | None = None
    max_ops_G: int = 4
    max_int: int = 5
    positive: bool = True
    int_base: int = 10
    leaf_probs: Sequence[float] = field(default_factory=lambda: [0.75, 0.0, 0.25, 0.0])
    n_variables: int = 1
    n_coefficients: int = 0
    operators: Any = REFERENCE_OPERATORS
    tree_weights: Sequence[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    max_len: int = 512
    simplify_prob: float | None = None
    simplify_seconds: float | None = None
    timeout: float | None = None
    solve_seconds: float = 1.0
    fwd_method: str | None = None
    fast: bool = False

    def generator_settings(self) -> dict[str, Any]:
        """These settings as keyword arguments of :class:`GeneratorConfig`."""
        return {f.name: getattr(self, f.name) for f in fields(GeneratorSettings)}


@dataclass
class GeneratorConfig(GeneratorSettings):
    """Settings of one generator (the ``data.task`` fields of a calculus task).

    Every ``None`` field defaults per task to the reference's setting (``TASK_DEFAULTS``), so the
    default configuration produces the reference's distribution. The number of operators of the
    random expression is uniform in ``[min_ops, max_ops]``, except with probability
    ``small_ops_prob`` where it is uniform in ``[0, min_ops - 1]`` (integration only, like the
    reference). ``simplify_prob`` is the probability of running ``sympy.simplify`` (at most
    ``simplify_seconds``) on a derivative or equation (reference: BWD 0.5 within 2 s, IBP always,
    ODE 0.5). ``fwd_method``: ``risch_doit`` (reference: ``integrate(f, x, risch=True).doit()``),
    ``risch`` (no ``doit``: what Risch leaves unevaluated is rejected) or ``full``
    (``integrate(f, x)``). ``fast: true`` swaps in the cheaper settings of ``FAST_DEFAULTS`` (BWD
    and IBP without simplification, FWD without ``doit``): another distribution, see
    experiments/calculus.md. Fields set explicitly always win.
    """

    task: str = "prim_bwd"
    ibp_cache_size: int = 100_000
    clean_prefix: bool = True

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"data.task.generator={self.task!r} is not a calculus task; choose one of {TASKS}")
        defaults = {
            **TASK_DEFAULTS[self.task],
            "fwd_method": "risch_doit",
            **(FAST_DEFAULTS[self.task] if self.fast else {}),
        }
        for name in ("small_ops_prob", "timeout", "simplify_prob", "simplify_seconds", "fwd_method"):
            if getattr(self, name) is None:
                setattr(self, name, defaults[name])
        if self.min_ops is None:
            self.min_ops = min(int(defaults["min_ops"]), self.max_ops)
        if not 0 <= self.min_ops <= self.max_ops:
            raise ValueError(f"data.task.min_ops={self.min_ops} must be between 0 and data.task.max_ops={self.max_ops}")
        if self.task == "ode2" and self.min_ops < 2:
            raise ValueError("data.task.min_ops must be >= 2 for ode2 (the solution needs x, a8 and a9)")
        if self.fwd_method not in FWD_METHODS:
            raise ValueError(f"data.task.fwd_method={self.fwd_method!r} must be one of {FWD_METHODS}")
        if len(list(self.tree_weights)) != 3:
            raise ValueError(f"data.task.tree_weights={list(self.tree_weights)} needs 3 weights (leaf, unary, binary)")
        if self.max_len < 3:
            raise ValueError(f"data.task.max_len={self.max_len} is too small")
        check_base(self.int_base)
        self.leaf_probs = [float(p) for p in self.leaf_probs]
        self.tree_weights = [float(w) for w in self.tree_weights]
        if not isinstance(self.operators, str):
            self.operators = {str(k): float(v) for k, v in dict(self.operators).items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reject_unless(verdict: verify.Verdict) -> None:
    """Reject a pair its verifier does not accept: ``partial_domain`` when it holds at some sampled
    points but not all, ``check_failed`` otherwise."""
    if not verdict.ok:
        raise Reject("partial_domain" if verdict.method == "partial_domain" else "check_failed")


def primitive(f: sp.Expr, method: str = "risch_doit") -> sp.Expr:
    """An elementary primitive of ``f`` in ``x`` by SymPy, or :class:`Reject` with the cause.

    ``risch_doit`` is the reference's ``integrate(f, x, risch=True).doit()``: what the Risch
    algorithm leaves unevaluated (e.g. ``1/sqrt(1 - x**2)``, algebraic integrands) goes on to
    SymPy's other methods. ``risch`` stops there (``unevaluated``); ``full`` is ``integrate(f, x)``.
    """
    if method == "full":
        F = sp.integrate(f, X)
    else:
        F = sp.integrate(f, X, risch=True)
        if isinstance(F, NonElementaryIntegral):
            raise Reject("non_elementary")
        if method == "risch_doit":
            F = F.doit()
    if isinstance(F, NonElementaryIntegral):
        raise Reject("non_elementary")
    if F.has(sp.Integral):
        raise Reject("unevaluated")
    if F.has(sp.Piecewise):
        raise Reject("piecewise")
    if any(isinstance(node, SPECIAL_FUNCTIONS) for node in sp.preorder_traversal(F)):
        raise Reject("special_function")
    return F


# ---------------------------------------------------------------------------- the generator
class Generator:
    """Draws samples of one task. Holds per-instance state only (the IBP primitive cache)."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        w = config.tree_weights
        self.sampler = TreeSampler(
            operators=config.operators,
            max_ops=max(config.max_ops, config.max_ops_G),
            leaf_probs=config.leaf_probs,
            max_int=config.max_int,
            positive=config.positive,
            n_variables=config.n_variables,
            n_coefficients=config.n_coefficients,
            int_base=config.int_base,
            leaf_weight=w[0],
            unary_weight=w[1],
            binary_weight=w[2],
        )
        self.coefficients = [SYMBOLS[c] for c in COEFFICIENTS[: config.n_coefficients]]
        self.all_coefficients = [SYMBOLS[c] for c in COEFFICIENTS]
        self._primitives: OrderedDict[sp.Expr, sp.Expr] = OrderedDict()
        self._method = {
            "prim_fwd": self._prim_fwd,
            "prim_bwd": self._prim_bwd,
            "prim_ibp": self._prim_ibp,
            "ode1": self._ode1,
            "ode2": self._ode2,
        }[config.task]

    # -- one attempt
    def attempt(self, rng: random.Random) -> tuple[dict[str, Any] | None, str]:
        """One try: ``(sample, "ok")`` or ``(None, cause)``. Never raises (except KeyboardInterrupt)."""
        try:
            with time_limit(self.config.timeout) as token:
                try:
                    return self._method(rng), "ok"
                except SampleTimeout as err:
                    if owns(err, token):
                        return None, "timeout"
                    raise
        except SampleTimeout:
            return None, "timeout"
        except Reject as r:
            return None, str(r.args[0])
        except RecursionError:
            return None, "error:RecursionError"
        except (PrefixError, UnsupportedExpression):
            return None, "unsupported"
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - SymPy raises many kinds; each is a rejection
            return None, f"error:{type(err).__name__}"

    # -- shared steps
    def _n_ops(self, rng: random.Random, max_ops: int | None = None, min_ops: int | None = None) -> int:
        hi = self.config.max_ops if max_ops is None else max_ops
        lo = self.config.min_ops if min_ops is None else min_ops
        if lo > 0 and rng.random() < self.config.small_ops_prob:
            return rng.randint(0, lo - 1)
        return rng.randint(lo, hi)

    def _random_expr(self, n_ops: int, rng: random.Random, required: Sequence[str] = ()) -> tuple[sp.Expr, list[str]]:
        tokens = self.sampler.expression(n_ops, rng, required=required)
        if nested_exp_depth(tokens) >= 4 or not finite_somewhere(tokens, self.config.int_base):
            raise Reject("invalid")
        expr = prefix_to_sympy(tokens, self.config.int_base)
        cause = has_bad_values(expr)
        if cause:
            raise Reject(cause)
        return expr, tokens

    def _clean_coefficients(self, expr: sp.Expr) -> sp.Expr:
        if not self.coefficients:
            return expr
        expr = reduce_coefficients(expr, self.all_coefficients)
        for c in self.all_coefficients:
            if c in expr.free_symbols:
                expr = absorb_numbers(expr, c)
        return reindex_coefficients(expr, self.coefficients)

    def _simplify(self, expr: sp.Expr, rng: random.Random | None = None, prob: float | None = None) -> sp.Expr:
        """``sympy.simplify`` within ``simplify_seconds`` (the input on timeout or failure)."""
        prob = self.config.simplify_prob if prob is None else prob
        if prob <= 0 or (rng is not None and prob < 1 and rng.random() >= prob):
            return expr
        out = simplify_within(expr, self.config.simplify_seconds)
        if out is None or any(s.is_Dummy for s in out.free_symbols):
            return expr
        return out

    def _prefix(self, expr: sp.Expr) -> list[str]:
        return sympy_to_prefix(expr, self.config.int_base, clean=self.config.clean_prefix)

    def _finish(self, source: list[str], target: list[str], n_ops: int) -> dict[str, Any]:
        if max(len(source), len(target)) + 2 > self.config.max_len:
            raise Reject("too_long")
        return {"source": " ".join(source), "target": " ".join(target), "n_ops": n_ops}

    def _integration_sample(self, f: sp.Expr, F: sp.Expr, n_ops: int, check: bool) -> dict[str, Any]:
        cause = has_bad_values(f, F)
        if cause:
            raise Reject(cause)
        f_tokens, F_tokens = self._prefix(f), self._prefix(F)
        head = ["sub", "derivative", "f", "x", "x"]
        source = (clean_tokens(head) if self.config.clean_prefix else head) + f_tokens
        sample = self._finish(source, F_tokens, n_ops)
        if check:
            _reject_unless(verify.check_integral(sample["source"], sample["target"], base=self.config.int_base))
        return sample

    # -- the tasks
    def _prim_bwd(self, rng: random.Random) -> dict[str, Any]:
        n_ops = self._n_ops(rng)
        F, _ = self._random_expr(n_ops, rng)
        if X not in F.free_symbols:
            raise Reject("constant")
        F = self._clean_coefficients(remove_additive_constant(F))
        if count_operators(self._prefix(F)) < n_ops / 2:
            raise Reject("too_few_ops")
        f = self._simplify(sp.diff(F, X), rng)
        if f == 0:
            raise Reject("constant")
        # d/dx of the printed target is the printed source: a structural identity, no check needed
        return self._integration_sample(f, F, n_ops, check=self.config.simplify_prob > 0)

    def _prim_fwd(self, rng: random.Random) -> dict[str, Any]:
        n_ops = self._n_ops(rng)
        f, _ = self._random_expr(n_ops, rng)
        if X not in f.free_symbols:
            raise Reject("constant")
        if rng.random() < 0.5:
            f = remove_additive_constant(f)
        f = self._clean_coefficients(f)
        if count_operators(self._prefix(f)) < n_ops / 2:
            raise Reject("too_few_ops")
        return self._integration_sample(f, primitive(f, self.config.fwd_method), n_ops, check=True)

    def _remember(self, f: sp.Expr, F: sp.Expr) -> None:
        """Record ``F`` as a primitive of ``f`` (keyed without constant factors)."""
        if X not in f.free_symbols:
            return
        key, c = split_constant_factor(f)
        F = remove_additive_constant(F) / c
        old = self._primitives.get(key)
        if old is None or sp.count_ops(F) < sp.count_ops(old):
            self._primitives[key] = F
            self._primitives.move_to_end(key)
            while len(self._primitives) > self.config.ibp_cache_size:
                self._primitives.popitem(last=False)

    def _primitive(self, f: sp.Expr) -> sp.Expr | None:
        if X not in f.free_symbols:
            return f * X
        key, c = split_constant_factor(f)
        F = self._primitives.get(key)
        return None if F is None else F * c

    def _prim_ibp(self, rng: random.Random) -> dict[str, Any]:
        n_F = self._n_ops(rng)
        n_G = rng.randint(1, self.config.max_ops_G)
        F, _ = self._random_expr(n_F, rng)
        G, _ = self._random_expr(n_G, rng)
        if X not in F.free_symbols or X not in G.free_symbols:
            raise Reject("constant")
        if rng.random() < 0.5:
            F = remove_additive_constant(F)
        if rng.random() < 0.5:
            G = remove_additive_constant(G)
        F, G = self._clean_coefficients(F), self._clean_coefficients(G)
        f = self._simplify(sp.diff(F, X), rng=rng)
        g = self._simplify(sp.diff(G, X), rng=rng)
        g, g_const = split_constant_factor(g)
        if g_const == 0:
            raise Reject("constant")
        G = G / g_const
        cause = has_bad_values(f, F, g, G)
        if cause:
            raise Reject(cause)
        self._remember(f, F)
        self._remember(g, G)
        # int F g = F G - int f G  and  int f G = F G - int F g
        fG = self._simplify(f * G, rng=rng)
        known = self._primitive(fG)
        if known is not None:
            h, H = F * g, F * G - known
        else:
            Fg = self._simplify(F * g, rng=rng)
            known = self._primitive(Fg)
            if known is None:
                raise Reject("no_known_primitive")
            h, H = f * G, F * G - known
        H = self._simplify(remove_additive_constant(H), rng=rng)
        h = self._simplify(h, rng=rng)
        cause = has_bad_values(h, H)
        if cause:
            raise Reject(cause)
        if X not in h.free_symbols:
            raise Reject("constant")
        if rng.random() < 0.5:
            h, c = split_constant_factor(h)
            H = H / c
        self._remember(h, H)
        return self._integration_sample(h, H, n_F, check=True)

    def _solve_constant(self, equation: sp.Expr, constant: sp.Symbol, rng: random.Random) -> sp.Expr:
        """A solution of ``equation = 0`` for ``constant`` that depends on x: by inverting the
        operations around the constant when it occurs once, directly when the equation is linear
        in it, else with ``sympy.solve`` (at most ``solve_seconds``)."""
        solution = direct_solution(equation, constant)
        if solution is not None:
            if X not in solution.free_symbols or has_bad_values(solution):
                raise Reject("no_solution")
            return solution
        try:
            with time_limit(self.config.solve_seconds) as token:
                solutions = sp.solve(equation, constant, check=False, simplify=False)
        except SampleTimeout as err:
            if owns(err, token):
                raise Reject("solve_timeout") from None
            raise
        if not isinstance(solutions, list):
            raise Reject("no_solution")
        solutions = [s for s in solutions if not isinstance(s, (tuple, dict)) and X in s.free_symbols]
        if not solutions:
            raise Reject("no_solution")
        chosen = solutions[rng.randrange(len(solutions))]
        if chosen.has(sp.Piecewise):
            raise Reject("no_solution")
        return chosen

    def _ode_solution(self, rng: random.Random, order: int) -> tuple[sp.Expr, int]:
        n_ops = self._n_ops(rng)
        required = ("x", "y") if order == 1 else ("x", "y", "z")
        expr, _ = self._random_expr(n_ops, rng, required=required)
        constants = (A8,) if order == 1 else (A8, A9)
        expr = expr.xreplace({SYMBOLS["y"]: A8, SYMBOLS["z"]: A9})
        if any(s not in expr.free_symbols for s in (X, *constants)):
            raise Reject("constant")
        expr = reduce_coefficients(expr, self.all_coefficients)
        for c in constants:
            if c in expr.free_symbols:
                expr = absorb_numbers(expr, c)
        if order == 2:
            expr = clean_ode2_solution(expr)
        if any(s not in expr.free_symbols for s in (X, *constants)):
            raise Reject("constant")
        cause = has_bad_values(expr)
        if cause:
            raise Reject(cause)
        tokens = self._prefix(expr)
        if len(tokens) + 2 > self.config.max_len:
            raise Reject("too_long")
        if count_operators(tokens) < n_ops / 2:
            raise Reject("too_few_ops")
        return expr, n_ops

    def _ode_sample(
        self, eq: sp.Expr, expr: sp.Expr, n_ops: int, required: sp.Expr, rng: random.Random
    ) -> dict[str, Any]:
        if not eq.has(required):
            raise Reject("no_equation")
        eq = drop_nonzero_factors(eq, required)
        eq = self._simplify(eq, rng)
        if not eq.has(required):  # simplification can cancel the highest derivative (even to 0)
            raise Reject("degenerate")
        cause = has_bad_values(eq)
        if cause:
            raise Reject(cause)
        sample = self._finish(self._prefix(eq), self._prefix(expr), n_ops)
        order = 1 if required == DFX else 2
        _reject_unless(verify.check_ode(sample["source"], sample["target"], order=order, base=self.config.int_base))
        return sample

    def _ode1(self, rng: random.Random) -> dict[str, Any]:
        expr, n_ops = self._ode_solution(rng, 1)
        c8 = self._solve_constant(FX - expr, A8, rng)
        return self._ode_sample(sp.diff(c8, X), expr, n_ops, DFX, rng)

    def _ode2(self, rng: random.Random) -> dict[str, Any]:
        expr, n_ops = self._ode_solution(rng, 2)
        # eliminate one constant from y = expr, the other from the derivative of the first; try the
        # order in which both steps are direct (isolation or linear) before calling sympy.solve
        for first, second in ((A8, A9), (A9, A8)):
            c1 = direct_solution(FX - expr, first)
            c2 = None if c1 is None else direct_solution(sp.diff(c1, X), second)
            if c2 is not None and X in c2.free_symbols and not has_bad_values(c2):
                return self._ode_sample(sp.diff(c2, X), expr, n_ops, D2FX, rng)
        c8 = self._solve_constant(FX - expr, A8, rng)
        c9 = self._solve_constant(sp.diff(c8, X), A9, rng)
        return self._ode_sample(sp.diff(c9, X), expr, n_ops, D2FX, rng)


def generate_chunk(
    config: GeneratorConfig | dict[str, Any], seed: Any, attempts: int, generator: Generator | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``attempts`` tries with ``random.Random(seed)``: the samples and the count of each outcome."""
    if generator is None:
        generator = Generator(config if isinstance(config, GeneratorConfig) else GeneratorConfig(**config))
    rng = random.Random(str(seed))
    samples, stats = [], {}
    for _ in range(attempts):
        sample, cause = generator.attempt(rng)
        stats[cause] = stats.get(cause, 0) + 1
        if sample is not None:
            samples.append(sample)
    return samples, stats


__all__ = ["TASKS", "Generator", "GeneratorConfig", "Reject", "generate_chunk", "primitive"]
