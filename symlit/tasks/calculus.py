"""Calculus tasks (Lample & Charton): integration (FWD, BWD, IBP) and first/second order ODEs.

The data comes from one of three places:

* ``path: null`` (default): generated with :mod:`symlit.calculus.generators`, through the same
  resumable engine as ``symlit-generate`` (shards under ``work_dir/<fingerprint>``, so an
  interrupted build continues where it stopped);
* ``path: <directory>``: the output directory of ``symlit-generate`` (its ``dataset/`` splits);
* ``path: <file>``: a file in the reference project's format (``count|input<TAB>output``), with
  optional ``valid_path`` / ``test_path``; missing ones are carved out of the training file.

In every case no valid or test input occurs in train (duplicated sources are dropped from train).
Answers are verified, not string-matched: integration by differentiating the hypothesis, ODEs by
substitution (:mod:`symlit.calculus.verify`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symlit.calculus import engine, infix, verify
from symlit.calculus.generators import TASKS, GeneratorConfig, GeneratorSettings
from symlit.calculus.prefix import (
    D2FX,
    DFX,
    FX,
    OPERATORS,
    PrefixError,
    UnsupportedExpression,
    check_prefix,
    count_operators,
    prefix_to_sympy,
    sympy_to_prefix,
    vocabulary,
)
from symlit.calculus.reference_io import read_reference
from symlit.core.config import digest
from symlit.tasks.base import Rows, Task, Verdict

log = logging.getLogger(__name__)
# fields that do not change the data (where and how fast it is made)
NOT_IN_FINGERPRINT = ("workers", "work_dir", "shard_size", "progress", "verify_timeout")
ODE_DERIVATIVE = {1: "Y'", 2: "Y''"}
SMOKE = {"n_train": 16, "n_valid": 4, "n_test": 4, "max_ops": 5, "file_lines": 2000}
BUCKET_WIDTH = 5


def _file_stat(path: str) -> list[Any]:
    p = Path(path)
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.is_file() and "shards" not in q.parts)
        return [str(p.resolve()), [[str(q.relative_to(p)), q.stat().st_size, q.stat().st_mtime_ns] for q in files]]
    return [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]


@dataclass
class CalculusTask(GeneratorSettings, Task):
    """A Lample & Charton task; ``generator`` names it (``prim_fwd prim_bwd prim_ibp ode1 ode2``).

    Generator fields (``max_ops`` ... ``fast``) are inherited from (declared once in)
    :class:`~symlit.calculus.generators.GeneratorSettings`. ``n_train``/``n_valid``/``n_test`` are
    the split sizes (for files, ``null`` keeps every training line). Every line of a
    reference-format file is validated when the data is built (both sides well-formed prefix
    expressions of known tokens; an integration input starts with ``sub Y'``, an ODE input holds
    ``Y'``/``Y''``): a bad line is an error naming the file, the line and the problem, unless
    ``skip_bad_rows`` is set, which skips it and logs how many were skipped. ``fast`` selects the
    faster, non-reference generator settings (see :class:`GeneratorConfig`). ``smoke`` (set from
    ``trainer.fast_dev_run`` by the data configs) builds a tiny dataset instead (at most
    16/4/4 pairs, ``max_ops`` <= 5, no simplification, ``sympy.solve`` cut at 0.25 s, generated in
    this process, first 2,000 lines of files): a
    pipeline check that keeps every experiment runnable in seconds, not the experiment's data.
    """

    generator: str = "prim_bwd"
    path: str | None = None
    valid_path: str | None = None
    test_path: str | None = None
    extra_tests: dict[str, str] = field(default_factory=dict)
    n_train: int | None = 20000
    n_valid: int = 500
    n_test: int = 500
    # the generator settings (max_ops ... fast) are inherited from GeneratorSettings
    skip_bad_rows: bool = False
    # how the data is made
    file_limit: int | None = None
    seed: int = 0
    workers: int = 1
    work_dir: str | None = None
    shard_size: int = 1000
    chunk_attempts: int = 16
    progress: bool = True
    verify_timeout: float = 10.0
    smoke: bool = False

    def __post_init__(self) -> None:
        if self.generator not in TASKS:
            raise ValueError(f"data.task.generator={self.generator!r} must be one of {TASKS}")
        self.extra_tests = {str(k): str(v) for k, v in dict(self.extra_tests or {}).items()}
        reserved = set(self.extra_tests) & {"train", "valid", "test"}
        if reserved:
            raise ValueError(f"data.task.extra_tests cannot be named {sorted(reserved)}")
        if not isinstance(self.operators, str):
            self.operators = {str(k): float(v) for k, v in dict(self.operators).items()}
        self.leaf_probs = [float(p) for p in self.leaf_probs]
        self.tree_weights = [float(w) for w in self.tree_weights]
        for name in ("n_valid", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.task.{name}={getattr(self, name)} must be >= 0")
        if self.n_train is not None and self.n_train < 1:
            raise ValueError(f"data.task.n_train={self.n_train} must be positive (or null for a whole file)")
        if self.path is None and self.n_train is None:
            raise ValueError("data.task.n_train must be set when the data is generated (data.task.path is null)")
        if self.path is None and (self.valid_path or self.test_path):
            raise ValueError("data.task.valid_path/test_path need data.task.path (the training file)")
        if self.workers < 0:
            raise ValueError(f"data.task.workers={self.workers} must be >= 0")
        self.generator_config()  # validates the generator fields

    # ------------------------------------------------------------------ configuration
    def generator_config(self) -> GeneratorConfig:
        """The :class:`GeneratorConfig` of this task's generator fields."""
        return GeneratorConfig(task=self.generator, **self.generator_settings())

    def data_paths(self) -> dict[str, str]:
        paths = {k: getattr(self, k) for k in ("path", "valid_path", "test_path") if getattr(self, k)}
        return paths | {f"extra_tests.{k}": v for k, v in self.extra_tests.items()}

    def fingerprint(self) -> str:
        """The data-defining fields (not workers/paths of the work area), plus read files' stats."""
        fields = {k: v for k, v in self.config().items() if k not in NOT_IN_FINGERPRINT}
        files = {k: _file_stat(str(p)) for k, p in self.check_data().items()}
        return digest({"config": fields, "files": files, "version": self.version})

    @property
    def order(self) -> int:
        """Order of the ODE (0 for integration)."""
        return {"ode1": 1, "ode2": 2}.get(self.generator, 0)

    def base_vocabulary(self) -> list[str]:
        return vocabulary(self.int_base)

    # ------------------------------------------------------------------ data
    def _rows(self, items: list[dict[str, Any]]) -> Rows:
        return {
            "source": [r["source"] for r in items],
            "target": [r["target"] for r in items],
            "n_ops": [
                int(r.get("n_ops") if r.get("n_ops") is not None else count_operators(r["source"].split()))
                for r in items
            ],
            "count": [int(r.get("count", 1)) for r in items],
        }

    def _generate(self) -> dict[str, Rows]:
        n_total = self.n_train + self.n_valid + self.n_test
        with contextlib.ExitStack() as stack:  # work_dir: resumable shards kept; else a temporary directory
            if self.work_dir:
                out = Path(self.work_dir) / self.fingerprint()
            else:
                out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="symlit-calculus-")))
            report = engine.generate(
                self.generator_config(),
                out,
                n_total,
                workers=self.workers,
                seed=self.seed,
                shard_size=self.shard_size,
                chunk_attempts=self.chunk_attempts,
                progress=self.progress,
            )
            rows = engine.read_rows(out)
        log.info("%s generation:\n%s", self.generator, report.summary())
        if report.unique < n_total:
            raise RuntimeError(
                f"the {self.generator} generator produced {report.unique} distinct equations of the "
                f"{n_total} asked for; see the rejection summary in the log"
            )
        parts = engine.split(rows, self.n_valid, self.n_test, self.n_train, seed=self.seed)
        return {name: self._rows(items) for name, items in parts.items()}

    def _bad_row(self, source: str, target: str) -> str | None:
        """What is wrong with a reference-format pair for this task (``None`` when it is usable)."""
        for side, text in (("input", source), ("output", target)):
            try:
                check_prefix(text, self.int_base)
            except PrefixError as err:
                return f"{side} is not a prefix expression: {err}"
        tokens = source.split()
        if not self.order and tokens[:2] != ["sub", "Y'"]:
            return f'an integration input starts with "sub Y\'", got {" ".join(tokens[:3])!r}'
        if self.order and ODE_DERIVATIVE[self.order] not in tokens:
            return f"an order-{self.order} ODE input holds {ODE_DERIVATIVE[self.order]}"
        if any(t in ("Y", "Y'", "Y''") for t in target.split()):
            return "the output holds Y, Y' or Y''"
        return None

    def _read_file(self, path: Path, limit: int | None) -> list[dict[str, Any]]:
        """The validated rows of a reference-format file (see the class docstring)."""
        rows, skipped = [], 0
        for pair in read_reference(path, limit):
            problem = self._bad_row(pair.source, pair.target)
            if problem is None:
                rows.append({"source": pair.source, "target": pair.target, "count": pair.count})
            elif self.skip_bad_rows:
                skipped += 1
            else:
                raise ValueError(
                    f"{path}:{pair.line}: {problem}; fix or delete the line, "
                    "or set data.task.skip_bad_rows=true to skip bad lines"
                )
        if skipped:
            log.warning("%s: skipped %d bad line(s) (data.task.skip_bad_rows=true)", path, skipped)
        return rows

    def _read_any(self, path: str, limit: int | None = None) -> list[dict[str, Any]] | dict[str, list[dict[str, Any]]]:
        """Rows of a reference-format file, or the splits of a ``symlit-generate`` directory."""
        p = Path(path)
        if p.is_dir():
            from datasets import load_from_disk

            dataset_dir = p / "dataset" if (p / "dataset").is_dir() else p
            try:
                data = load_from_disk(str(dataset_dir))
            except Exception as err:  # noqa: BLE001 - datasets raises several kinds
                raise ValueError(
                    f"{path} is not a symlit-generate output directory (no readable dataset/): {err}"
                ) from None
            return {name: split.to_list() for name, split in data.items()}
        return self._read_file(p, limit)

    def _read(self) -> dict[str, Rows]:
        data = self._read_any(self.path, self.file_limit)
        if isinstance(data, dict):  # a symlit-generate directory: splits are already leak-free
            missing = {"train", "valid", "test"} - set(data)
            if missing:
                raise ValueError(f"data.task.path={self.path} lacks the splits {sorted(missing)}")
            splits = {
                "train": data["train"][: self.n_train] if self.n_train else data["train"],
                "valid": data["valid"][: self.n_valid] if self.n_valid else data["valid"],
                "test": data["test"][: self.n_test] if self.n_test else data["test"],
            }
        else:
            splits = {"train": data}
            for name, path in (("valid", self.valid_path), ("test", self.test_path)):
                if path is not None:
                    rows = self._read_any(path, self.file_limit)
                    if isinstance(rows, dict):
                        raise ValueError(f"data.task.{name}_path={path} must be a reference-format file")
                    splits[name] = rows
            carve = [name for name in ("valid", "test") if name not in splits]
            if carve:
                parts = engine.split(
                    splits["train"],
                    self.n_valid if "valid" in carve else 0,
                    self.n_test if "test" in carve else 0,
                    seed=self.seed,
                )
                splits["train"] = parts["train"]
                for name in carve:
                    splits[name] = parts[name]
            held = {r["source"] for name in ("valid", "test") for r in splits[name]}
            before = len(splits["train"])
            splits["train"] = [r for r in engine.unique_rows(splits["train"]) if r["source"] not in held]
            if len(splits["train"]) < before:
                log.info("dropped %d training lines (duplicates or valid/test inputs)", before - len(splits["train"]))
            if self.n_train is not None:
                splits["train"] = splits["train"][: self.n_train]
        return {name: self._rows(rows) for name, rows in splits.items()}

    def smoke_version(self) -> CalculusTask:
        """The tiny configuration a ``smoke`` build uses (see the class docstring)."""
        max_ops = max(min(self.max_ops, SMOKE["max_ops"]), 1)
        min_ops = self.generator_config().min_ops
        return dataclasses.replace(
            self,
            smoke=False,
            n_train=min(self.n_train or SMOKE["n_train"], SMOKE["n_train"]),
            n_valid=min(self.n_valid, SMOKE["n_valid"]),
            n_test=min(self.n_test, SMOKE["n_test"]),
            max_ops=max_ops,
            min_ops=min(min_ops, max_ops),
            workers=0,
            work_dir=None,
            progress=False,
            max_len=min(self.max_len, 200),
            file_limit=SMOKE["file_lines"],
            simplify_prob=0.0,
            solve_seconds=min(self.solve_seconds, 0.25),
        )

    def build(self) -> dict[str, Rows]:
        if self.smoke:
            return self.smoke_version().build()
        self.check_data()
        splits = self._read() if self.path is not None else self._generate()
        if not splits["train"]["source"]:
            raise ValueError(f"task {self.generator}: the training split is empty")
        train_sources = set(splits["train"]["source"])
        for name, path in sorted(self.extra_tests.items()):
            data = self._read_any(path, self.file_limit)
            rows = data["test"] if isinstance(data, dict) else data
            rows = [r for r in rows if r["source"] not in train_sources]
            if self.n_test:
                rows = rows[: self.n_test]
            splits[name] = self._rows(rows)
        return splits

    # ------------------------------------------------------------------ evaluation
    def verify(self, source: str, target: str, hypothesis: str) -> Verdict:
        """Integration: ``d(hypothesis)/dx`` equals the integrand; ODE: the hypothesis solves it.

        Never raises: a hypothesis that is not a prefix expression is ``malformed``; a SymPy
        failure or the time limit is ``wrong`` (method ``error:...`` or ``timeout``).
        """
        if hypothesis.split() == target.split():
            return Verdict("correct", "exact")
        if self.order:
            return verify.check_ode(
                source, hypothesis, order=self.order, base=self.int_base, timeout=self.verify_timeout
            )
        return verify.check_integral(source, hypothesis, base=self.int_base, timeout=self.verify_timeout)

    # ------------------------------------------------------------------ leakage
    key_levels = ("expression",)

    def canonical_key(self, source: str, target: str) -> dict[str, str]:
        """``expression``: the input up to renaming the coefficients ``a0..a9`` and reordering the
        arguments of ``add``/``mul`` (:func:`symlit.calculus.prefix.canonical_prefix`)."""
        from symlit.calculus.prefix import COEFFICIENTS, canonical_prefix
        from symlit.core.notation import DIGIT_SYMBOLS

        try:
            return {
                "expression": canonical_prefix(
                    source.split(), OPERATORS, ("add", "mul"), COEFFICIENTS, digits=DIGIT_SYMBOLS
                )
            }
        except ValueError:
            return {}

    def bucket(self, source: str, target: str) -> str:
        """Operators in the input, in bins of 5 (``ops 05-09``)."""
        n = count_operators(source.split())
        lo = (n // BUCKET_WIDTH) * BUCKET_WIDTH
        return f"ops {lo:02d}-{lo + BUCKET_WIDTH - 1:02d}"

    # ------------------------------------------------------------------ text for people
    def parse_input(self, text: str) -> str:
        """An integrand (``"x*cos(x)"`` -> ``sub Y' <f>``) or, for ODE tasks, an equation in ``x Y Y' Y''``."""
        expr = infix.read(text)
        if self.order == 0 and expr.has(FX):
            raise ValueError(f"{text.strip()!r}: an integrand is an expression in x, without Y")
        if self.order and not expr.has(DFX):
            raise ValueError(f"{text.strip()!r}: an ODE of order {self.order} needs Y' (e.g. x*Y' - Y = 0)")
        if self.order == 1 and expr.has(D2FX):
            raise ValueError(f"{text.strip()!r}: this model solves first-order ODEs; Y'' is not allowed")
        try:
            tokens = sympy_to_prefix(expr, self.int_base)
        except (UnsupportedExpression, ValueError) as err:
            raise ValueError(f"{text.strip()!r}: {err}") from None
        return " ".join(["sub", "Y'", *tokens] if self.order == 0 else tokens)

    def render(self, tokens: str) -> str:
        """Prefix tokens as SymPy text (``Y Y' Y''`` for the unknown function); an integration input
        ``sub Y' f`` is shown as its integrand ``f``, an ODE input as ``... = 0``."""
        toks = tokens.split()
        is_integral_input = self.order == 0 and toks[:2] == ["sub", "Y'"]
        try:
            expr = prefix_to_sympy(toks[2:] if is_integral_input else toks, self.int_base, evaluate=False)
        except PrefixError:
            return tokens
        text = infix.readable(expr)
        return text + " = 0" if self.order and expr.has(DFX) else text

    def reference(self, source: str) -> str:
        """``""``: integrals are checked by differentiation, ODE solutions by substitution."""
        return ""

    def example_input(self) -> str:
        return "x*Y' - Y = 0" if self.order else "x*cos(x)"

    def embedding_groups(self, vocabulary: list[str]) -> dict[str, list[str]]:
        """Binary and unary operators."""
        return {
            "binary operator": [t for t in vocabulary if OPERATORS.get(t) == 2],
            "unary operator": [t for t in vocabulary if OPERATORS.get(t) == 1],
        }
