"""QED amplitudes -> squared amplitudes (SYMBA): from SYMBA/MARTY files or from our generator.

Source: the amplitude of a Feynman diagram as tokens (:func:`symlit.qed.symba_format.amplitude_tokens`);
target: its spin-summed squared amplitude in ``notation`` (``prefix``, ``hybrid`` or
``hybrid_short``, see :mod:`symlit.qed.tokens`).

Splits (``split_by``) keep every canonical key of one level on one side (:mod:`symlit.qed.keys`);
a group lands in a split by a hash of its key:

* ``row``: each row on its own, a random row split: comparable with SYMBA's published numbers,
  and leaky, since MARTY writes one diagram many times (momentum labellings, on-shell variants,
  reordered factors);
* ``diagram``: no labelled diagram (squared-amplitude function) in two splits;
* ``diagram_class``: nor a diagram up to momentum relabelling and swaps of identical particles;
* ``diagram_family``: nor a diagram class up to charge conjugation;
* ``process``: whole processes held out (implies ``diagram_class``);
* ``process_family``: whole processes with their charge conjugates (implies every level above).

``holdout_particles`` moves every row involving one of those particles into an extra test split
``holdout``. The leakage report (:mod:`symlit.data.leakage`) counts, per split, the rows whose keys
occur in train at every level.

A hypothesis is correct when its tokens equal the target's or, decoded to SymPy, it agrees with
the target numerically at ``n_points`` random kinematic points (``s_ij`` from physical momenta of
the process read from the source, on-shell masses, ``reg_prop = 0``), so an equivalent form counts.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy

from symlit.core.config import digest
from symlit.core.notation import NotationError
from symlit.qed import generator as gen
from symlit.qed import keys, kinematics
from symlit.qed import symba_format as sf
from symlit.qed.particles import FERMIONS, LEPTONS, PARTICLES
from symlit.qed.tokens import AMPLITUDE_HEADS, DIGITS, OPERATOR_TOKENS, amplitude_text, from_tokens, to_tokens
from symlit.tasks.amplitude import AmplitudeTask, process_class, warn_unfactored
from symlit.tasks.base import Rows, Task

log = logging.getLogger(__name__)
SPLIT_BY = ("row", *keys.LEVELS, "process", "process_family")
# the diagram-key level every split_by keeps apart (process: the class; process_family: the family)
LEAK_FREE_LEVEL = {
    "row": None,
    "diagram": "diagram",
    "diagram_class": "diagram_class",
    "diagram_family": "diagram_family",
    "process": "process",
    "process_family": "process_family",
}
SHAPES = {"1to2": (1, 2), "2to1": (2, 1), "2to2": (2, 2), "2to3": (2, 3)}


def process_key(legs: list[sf.Leg]) -> str:
    """A process independent of leg order: ``"e e~ -> mu mu~"`` with species sorted."""
    ins = sorted(str(l.species) for l in legs if l.incoming)
    outs = sorted(str(l.species) for l in legs if not l.incoming)
    return f"{' '.join(ins)} -> {' '.join(outs)}"


def _leg_class(leg: sf.Leg) -> str:
    name = leg.species.name
    base = "A" if name == "A" else ("l" if name in LEPTONS else "q")
    return base + ("~" if leg.species.anti else "")


@dataclass
class _QEDTask(AmplitudeTask):
    """Shared splitting, vocabulary, verification and text of the QED tasks."""

    score_names = ("token_score", "numeric_equiv")  # class attribute (no annotation): not a config field
    key_levels = (*keys.LEVELS, "process", "process_family")
    split_by: str = "diagram_family"
    holdout_particles: list[str] = field(default_factory=list)

    def _check(self) -> None:
        hint = (
            " (the old 'amplitude' split leaked: use 'row' for a random row split)"
            if self.split_by == "amplitude"
            else ""
        )
        self.check_settings(SPLIT_BY, PARTICLES, hint)
        self.holdout_particles = [str(p) for p in self.holdout_particles]
        unknown = [p for p in self.holdout_particles if p not in PARTICLES]
        if unknown:
            raise ValueError(f"data.task.holdout_particles has unknown particles {unknown}; known: {sorted(PARTICLES)}")

    @property
    def leak_free_level(self) -> str | None:
        """The key level ``split_by`` keeps apart (``None`` for a row split or a smoke build)."""
        return None if getattr(self, "smoke", False) else LEAK_FREE_LEVEL[self.split_by]

    def canonical_key(self, source: str, target: str) -> dict[str, str]:
        """Every level of :mod:`symlit.qed.keys`, read back from the amplitude tokens."""
        try:
            return keys.amplitude_keys(sf.parse_tokens(source))
        except (NotationError, sf.SymbaFormatError, KeyError, ValueError):
            return {}

    # ------------------------------------------------------------------ rows and splits
    def _row(self, amp: str, sqamp: sympy.Expr | str, where: str, index: int) -> dict[str, Any]:
        """One row; ``ValueError`` naming ``where``, the field and the problem for a bad one."""
        try:
            tree = sf.parse(amp)
            legs = sf.legs(tree)
            if not legs:
                raise ValueError("no external legs (spinors or polarizations): not a Feynman diagram")
            unknown = sf.unknown_symbols(tree, len(legs))
            if unknown:
                raise ValueError(f"unknown symbols {unknown}")
            source = " ".join(sf.amplitude_tokens(tree, self.notation))
            row_keys = keys.amplitude_keys(tree)
        except (sf.SymbaFormatError, KeyError, ValueError) as err:
            raise ValueError(f"{where} field 'amp': {err}") from None
        try:
            if isinstance(sqamp, str):
                parsed = sf.parse(sqamp)
                unknown = sf.unknown_symbols(parsed, len(legs))
                if unknown:
                    raise ValueError(
                        f"unknown symbols {unknown} (a squared amplitude has e, reg_prop, "
                        f"m_<fermion> and s_ij with i <= j <= {len(legs)})"
                    )
                expr = sf.to_sympy(parsed)
            else:
                expr = sqamp
            target = " ".join(to_tokens(expr, self.notation))
        except (sf.SymbaFormatError, NotationError, ValueError) as err:
            raise ValueError(f"{where} field 'sqamp': {err}") from None
        group = f"row {index}" if self.split_by == "row" else row_keys[self.split_by]
        return {"source": source, "target": target, "process": process_key(legs), "group": group}

    def _split(self, rows: list[dict[str, Any]]) -> dict[str, Rows]:
        names = ["train", "valid", "test"] + (["holdout"] if self.holdout_particles else [])
        held = set(self.holdout_particles)

        def destination(row: dict[str, Any]) -> str:
            particles = {p.strip("~") for side in row["process"].split("->") for p in side.split()}
            return "holdout" if particles & held else self.destination(row["group"])

        return self.split_rows(rows, map(destination, rows), names)

    # ------------------------------------------------------------------ vocabulary
    def base_vocabulary(self) -> list[str]:
        masses = [f"m_{f}" for f in FERMIONS]
        dots = [f"s_{i}{j}" for i in range(1, 6) for j in range(i, 6)]
        vocab = [*OPERATOR_TOKENS, *DIGITS, "e", "reg_prop", *masses, *dots]
        vocab += ["gamma", "spinor_u", "spinor_ubar", "spinor_v", "spinor_vbar", "pol", "pol_conj", "mom"]
        vocab += [*PARTICLES, *(f"p_{i}" for i in range(1, 6)), *(f"MOMENTUM_{i}" for i in range(6))]
        if self.notation == "hybrid_short":
            vocab += [f"m{n}{f}" for f in FERMIONS for n in (2, 4)]
            vocab += [f"m2{f}*{s}" for f in FERMIONS for s in dots]
        return vocab

    # ------------------------------------------------------------------ verification
    def _point(self, source: str, rng: random.Random, symbols: list[sympy.Symbol]) -> dict[str, object]:
        """A random kinematic point of the source's process (of the free symbols when its legs do not parse)."""
        try:
            legs = sf.legs_from_tokens(source)
        except (NotationError, KeyError, ValueError):
            return kinematics.free_point(symbols, rng)
        return kinematics.point(legs, rng)

    def bucket(self, source: str, target: str) -> str:
        """Process class, e.g. ``"l l~ -> q q~"`` or ``"A l -> A l"`` (``l`` lepton, ``q`` quark)."""
        try:
            return process_class(sf.legs_from_tokens(source), _leg_class)
        except (NotationError, KeyError, ValueError):
            return "unknown"

    # ------------------------------------------------------------------ text for people
    def parse_input(self, text: str) -> str:
        """Source tokens of a SYMBA amplitude (e.g. a line of SYMBA's ``amp`` column)."""
        if not text.strip():
            raise ValueError("empty input; paste a SYMBA amplitude such as the 'amp' column of a SYMBA file")
        try:
            tree = sf.parse(text.strip())
            sf.legs(tree)  # checks the particles
            return " ".join(sf.amplitude_tokens(tree, self.notation))
        except (sf.SymbaFormatError, KeyError, ValueError) as err:
            raise ValueError(f"not a SYMBA amplitude: {err}") from None

    def render(self, tokens: str) -> str:
        """A squared amplitude as SYMBA text; an amplitude as compact infix
        (:func:`symlit.qed.tokens.amplitude_text`); else the tokens. Without a reference squared
        amplitude (:meth:`reference`), hypotheses are not verified (beam agreement still is)."""
        toks = tokens.split()
        try:
            if any(t in AMPLITUDE_HEADS for t in toks):
                return amplitude_text(toks)
            return sf.sqamp_text(from_tokens(toks, self.notation))
        except (NotationError, ValueError, TypeError):
            return tokens

    def example_input(self) -> str:
        return "an amplitude in SYMBA's format"


@dataclass
class QEDSymbaTask(_QEDTask):
    """Amplitude -> squared amplitude pairs read from SYMBA files (CSV with ``amp,sqamp`` columns,
    or text with one ``amp<TAB>sqamp`` pair per line). A relative ``path`` is looked up in the
    working directory, then in the repository root (so the shipped sample
    ``data_samples/symba-qed-2to2/valid.csv`` is found from anywhere)."""

    path: str = "???"
    skip_bad_rows: bool = False

    data_repo_fallback = True

    def __post_init__(self) -> None:
        self._check()

    def data_paths(self) -> dict[str, str]:
        return {"path": self.path}

    def fingerprint(self) -> str:
        """Configuration plus the file's size and modification time: an edited file is re-read."""
        p = self.check_data()["path"]
        base = Task.fingerprint(dataclasses.replace(self, path=str(p)))  # of the resolved path, as before
        return digest({"base": base, "file": [p.stat().st_size, p.stat().st_mtime_ns]})

    def build(self) -> dict[str, Rows]:
        """Every row is validated (parsed, legs and symbols known); a bad row is an error naming
        the file, the line and the problem, or, with ``skip_bad_rows``, skipped and counted."""
        path = str(self.check_data()["path"])
        pairs = sf.read_symba_rows(path)
        if self.max_rows is not None:
            pairs = pairs[: self.max_rows]
        if not pairs:
            raise ValueError(f"data.task.path={path}: no rows")
        rows, bad = [], []
        for k, (line, a, s) in enumerate(pairs):
            try:
                rows.append(self._row(a, s, f"{path}:{line}:", k))
            except ValueError as err:
                if not self.skip_bad_rows:
                    raise ValueError(
                        f"{err} (fix the row, or set data.task.skip_bad_rows=true to skip bad rows)"
                    ) from None
                bad.append(str(err))
        if bad:
            log.warning(
                "skipped %d bad rows of %d in %s (data.task.skip_bad_rows=true); first: %s",
                len(bad),
                len(pairs),
                path,
                bad[0],
            )
        if not rows:
            raise ValueError(f"data.task.path={path}: every row is bad")
        self.skipped_rows = len(bad)
        return self._split(rows)


@dataclass
class QEDGeneratedTask(_QEDTask):
    """Pairs made by symlit's tree-level QED generator (:mod:`symlit.qed.generator`), one row per
    Feynman diagram (``level: diagram``, as SYMBA) or per process with interference
    (``level: process``). ``shapes`` picks ``1to2``, ``2to1``, ``2to2``, ``2to3``; ``particles``
    restricts the particle table; ``max_processes`` draws that many processes per shape (by
    ``seed``). The build is cached as a dataset by the task fingerprint (``workers`` excluded).
    ``smoke`` (set from ``trainer.fast_dev_run`` by the data config) builds three processes per
    shape of ``e mu A`` with a row split instead: a pipeline check, not the experiment's data."""

    shapes: list[str] = field(default_factory=lambda: ["2to2"])
    particles: list[str] | None = None
    level: str = "diagram"
    max_processes: int | None = None
    simplify_timeout: float = 10.0  # CPU seconds for factor per squared amplitude (not wall-clock)
    reg_prop: bool = False
    identical_factor: bool = True
    seed: int = 0
    workers: int = 0
    work_dir: str | None = None
    shard_size: int = 10
    smoke: bool = False

    def __post_init__(self) -> None:
        self._check()
        if self.shard_size < 1:
            raise ValueError(f"data.task.shard_size={self.shard_size} must be >= 1")
        self.shapes = [str(s) for s in self.shapes]
        bad = [s for s in self.shapes if s not in SHAPES]
        if not self.shapes or bad:
            raise ValueError(f"data.task.shapes={self.shapes} must be a non-empty subset of {sorted(SHAPES)}")
        if self.level not in ("diagram", "process"):
            raise ValueError(f"data.task.level={self.level!r} must be 'diagram' or 'process'")

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        for name in ("workers", "work_dir", "shard_size"):  # how and where the data is made does not change it
            cfg.pop(name, None)
        return cfg

    def _generated(self) -> list[dict[str, Any]]:
        """Rows of every shape; with ``work_dir``, generated in resumable shards under
        ``work_dir/<shape>-<hash of the generation settings>`` (shared by every task that asks
        for that shape with those settings, whatever its split)."""
        if self.work_dir is None:
            rows = gen.generate(
                self.processes(), self.level, self.simplify_timeout, self.reg_prop, self.identical_factor, self.workers
            )
            return [
                {"process": r.process, "diagram": r.diagram, "amp": r.amp, "sqamp": r.sqamp, "simplified": r.simplified}
                for r in rows
            ]
        out = []
        for shape in self.shapes:
            settings = [
                shape,
                self.particles,
                self.level,
                self.max_processes,
                self.seed,
                self.simplify_timeout,
                self.reg_prop,
                self.identical_factor,
                self.shard_size,
            ]
            key = digest(settings, 12)
            procs = [p for p in self.processes() if p.shape == shape]
            out += gen.generate_sharded(
                procs,
                str(Path(self.work_dir) / f"{shape}-{key}"),
                self.shard_size,
                self.level,
                self.simplify_timeout,
                self.reg_prop,
                self.identical_factor,
                self.workers,
                log=log.info,
            )
        return out

    def processes(self) -> list[gen.Process]:
        """The processes to generate, per shape in enumeration order (sampled by ``seed``)."""
        out = []
        for shape in self.shapes:
            procs = gen.enumerate_processes(*SHAPES[shape], particles=self.particles)
            if self.max_processes is not None and len(procs) > self.max_processes:
                procs = random.Random(f"{self.seed}/{shape}").sample(procs, self.max_processes)
            out += procs
        return out

    def build(self) -> dict[str, Rows]:
        if self.smoke:  # a pipeline check (trainer.fast_dev_run): three processes per shape of e, mu, A
            return dataclasses.replace(
                self,
                smoke=False,
                particles=["e", "mu", "A"],
                max_processes=3,
                split_by="row",
                valid_fraction=0.3,
                test_fraction=0.3,
                work_dir=None,
            ).build()
        generated = self._generated()
        if self.max_rows is not None:
            generated = generated[: self.max_rows]
        if not generated:
            raise ValueError("data.task: the generator produced no rows (check shapes and particles)")
        warn_unfactored([r["simplified"] for r in generated], self.simplify_timeout)
        rows = [
            self._row(r["amp"], r["sqamp"], f"generated {r['process']} diagram {r['diagram']}", k)
            for k, r in enumerate(generated)
        ]
        return self._split(rows)


__all__ = ["QEDGeneratedTask", "QEDSymbaTask", "process_key"]
