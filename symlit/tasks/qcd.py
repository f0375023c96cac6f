"""QCD amplitudes -> squared amplitudes, from symlit's tree-level QCD generator (:mod:`symlit.qcd`).

Source: the amplitude of one Feynman diagram (or of a whole process) as tokens, colour and
dummy indices renumbered by first appearance (:func:`symlit.qcd.symba_text.amplitude_tokens`);
target: its colour- and spin-summed squared amplitude in ``notation`` (``prefix``, ``hybrid`` or
``hybrid_short``, :mod:`symlit.qed.tokens`).

Splits keep every key of one level on one side (``split_by``, keys from
:func:`symlit.qcd.generator.diagram_keys`): ``diagram_class`` (default: a diagram up to momentum
relabelling, swaps of identical particles and charge conjugation), ``process_family`` (a process up
to quark flavours), ``process``, ``diagram`` (the labelled diagram), or ``row`` (random rows, as in
SYMBA's published numbers: leaky, since one diagram appears under several momentum labellings).
Rows that share a target are kept together as well (two diagram classes can square to the same
function), so with any level but ``row`` no evaluation target occurs in train. The leakage report
(:mod:`symlit.data.leakage`) counts shared sources, targets and keys at every level
(:meth:`QCDGeneratedTask.canonical_key`).

A hypothesis is correct when its tokens equal the target's or it agrees numerically at
``n_points`` random physical phase-space points of the source's process (random masses and
couplings), so an equivalent form counts.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy

from symlit.core.config import digest
from symlit.core.notation import NotationError
from symlit.qcd import generator as gen
from symlit.qcd import symba_text as st
from symlit.qcd.particles import MASS_NAMES, PARTICLES, QUARKS
from symlit.qed import kinematics
from symlit.qed import symba_format as sf
from symlit.qed.tokens import DIGITS, OPERATOR_TOKENS, to_tokens
from symlit.tasks.amplitude import AmplitudeTask, process_class, warn_unfactored
from symlit.tasks.base import Rows, Task, resolve_data_path

log = logging.getLogger(__name__)
SPLIT_BY = ("diagram_class", "process_family", "process", "diagram", "row")
#: key levels, finest first: the column of a ``python -m symlit.qcd`` CSV each is read from
KEY_COLUMNS = {
    "diagram": "diagram",
    "diagram_class": "diagram_class",
    "process": "process_key",
    "process_family": "process_family",
}


def _leg_class(leg: sf.Leg) -> str:
    return "q~" if leg.species.anti else ("q" if leg.species.name in QUARKS else leg.species.name)


def _components(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Row index -> a group name, where rows sharing a split key *or* a target are one group: a
    squared amplitude shared by two diagram classes (e.g. ``u c -> u c`` and ``u c~ -> u c~`` by
    t-channel gluon exchange) then never appears on two sides."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rows):
        for key in (("group", r["group"]), ("target", r["target"])):
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    name: dict[int, str] = {}
    for i, r in enumerate(rows):
        root = find(i)
        name[root] = min(name.get(root, r["group"]), r["group"])
    return {i: name[find(i)] for i in range(len(rows))}


@dataclass
class QCDGeneratedTask(AmplitudeTask):
    """Pairs made by :mod:`symlit.qcd.generator`: every 2 -> 2 process of ``particles`` (default:
    quarks, ``G``, ``A``), with every momentum labelling when ``orderings``; one row per diagram
    (``level: diagram``) or per process with interference (``level: process``). ``path`` reads a
    CSV written by ``python -m symlit.qcd`` instead of generating (the same rows, made once).
    The build is cached as a dataset by the task fingerprint (``workers`` excluded)."""

    particles: list[str] | None = None
    orderings: bool = True
    level: str = "diagram"
    path: str | None = None
    max_processes: int | None = None
    simplify_timeout: float = 10.0  # CPU seconds for factor per squared amplitude (not wall-clock)
    identical_factor: bool = True
    n_colours: int = 3
    max_tokens: int | None = None
    seed: int = 0
    workers: int = 0
    split_by: str = "diagram_class"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    key_levels = tuple(KEY_COLUMNS)  # class attribute (no annotation): not a config field
    _keys: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.check_settings(SPLIT_BY, PARTICLES)
        if self.level not in ("diagram", "process"):
            raise ValueError(f"data.task.level={self.level!r} must be 'diagram' or 'process'")

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.pop("workers", None)
        cfg.pop("_keys", None)
        return cfg

    @property
    def leak_free_level(self) -> str | None:
        """``split_by`` (``None`` for a row split): no key of that level is on two sides."""
        return None if self.split_by == "row" else self.split_by

    def canonical_key(self, source: str, target: str) -> dict[str, str]:
        """The generator's keys of the row with this ``source`` (:func:`symlit.qcd.generator.diagram_keys`:
        diagram, diagram class, process, process family), recorded when the rows are built; ``{}``
        for a source not built by this task. The diagram is not read back from the amplitude text,
        as QED's is: a QCD amplitude's colour and three-gluon structure is not parsed into a graph."""
        return self._keys.get(source, {})

    def data_paths(self) -> dict[str, str]:
        return {} if self.path is None else {"path": self.path}

    def check_data(self) -> dict[str, Path]:
        if self.path is None:
            return {}
        return {"path": resolve_data_path("path", self.path, True, " (write it with python -m symlit.qcd)")}

    def fingerprint(self) -> str:
        """Configuration, plus the CSV's size and modification time when ``path`` is set."""
        if self.path is None:
            return super().fingerprint()
        path = self.check_data()["path"]
        base = Task.fingerprint(dataclasses.replace(self, path=str(path)))  # of the resolved path, as before
        return digest({"base": base, "file": [path.stat().st_size, path.stat().st_mtime_ns]})

    # ------------------------------------------------------------------ rows and splits
    def _raw_rows(self) -> list[dict[str, str]]:
        if self.path is not None:
            with open(self.check_data()["path"], newline="") as f:
                rows = list(csv.DictReader(f))
            need = {"amp", "sqamp", "process", "diagram_class", "process_key", "process_family"}
            if rows and not need <= set(rows[0]):
                raise ValueError(
                    f"data.task.path={self.path}: columns {sorted(need - set(rows[0]))} missing "
                    "(write the file with python -m symlit.qcd)"
                )
            return rows
        procs = gen.enumerate_processes(self.particles, self.orderings)
        if self.max_processes is not None and len(procs) > self.max_processes:
            procs = random.Random(f"{self.seed}/qcd").sample(procs, self.max_processes)
        generated = gen.generate(
            procs, self.level, self.simplify_timeout, self.identical_factor, self.n_colours, False, self.workers
        )
        warn_unfactored([r.simplified for r in generated], self.simplify_timeout)
        return [
            {
                "amp": r.amp,
                "sqamp": r.sqamp,
                "process": r.process,
                "diagram": r.diagram,
                "diagram_class": r.keys["diagram_class"],
                "process_key": r.keys["process"],
                "process_family": r.keys["process_family"],
            }
            for r in generated
        ]

    def _row(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        try:
            tree = st.parse(raw["amp"])
            source = " ".join(st.amplitude_tokens(tree, self.notation))
        except (sf.SymbaFormatError, KeyError, ValueError) as err:
            raise ValueError(f"{where} field 'amp': {err}") from None
        try:
            expr = sf.parse_sqamp(raw["sqamp"]) if isinstance(raw["sqamp"], str) else raw["sqamp"]
            target = " ".join(to_tokens(expr, self.notation))
        except (sf.SymbaFormatError, NotationError, ValueError) as err:
            raise ValueError(f"{where} field 'sqamp': {err}") from None
        keys = {level: raw[column] for level, column in KEY_COLUMNS.items()}
        keys["diagram"] = f"{raw['process']} :: {raw.get('diagram', '')}"
        self._keys[source] = keys
        group = where if self.split_by == "row" else keys[self.split_by]
        return {"source": source, "target": target, "process": raw["process"], "group": group}

    def build(self) -> dict[str, Rows]:
        raw = self._raw_rows()
        if self.max_rows is not None:
            raw = raw[: self.max_rows]
        if not raw:
            raise ValueError("data.task: no rows (check particles, or the CSV at data.task.path)")
        rows = [self._row(r, f"{r['process']} diagram {r.get('diagram', '')} (row {k})") for k, r in enumerate(raw)]
        if self.max_tokens is not None:
            kept = [
                r
                for r in rows
                if len(r["source"].split()) <= self.max_tokens and len(r["target"].split()) <= self.max_tokens
            ]
            log.info("max_tokens=%d keeps %d of %d rows", self.max_tokens, len(kept), len(rows))
            rows = kept
        group = _components(rows) if self.split_by != "row" else {i: r["group"] for i, r in enumerate(rows)}
        return self.split_rows(rows, (self.destination(group[i]) for i in range(len(rows))), ("train", "valid", "test"))

    # ------------------------------------------------------------------ vocabulary
    def base_vocabulary(self) -> list[str]:
        dots = [f"s_{i}{j}" for i in range(1, 5) for j in range(i, 5)]
        vocab = [*OPERATOR_TOKENS, *DIGITS, "g_s", "e", "N", "reg_prop", *MASS_NAMES, *dots]
        vocab += [
            "gamma",
            "T",
            "f",
            "metric",
            "spinor_u",
            "spinor_ubar",
            "spinor_v",
            "spinor_vbar",
            "pol",
            "pol_conj",
            "mom",
            *PARTICLES,
            *(f"p_{i}" for i in range(1, 5)),
            *(f"MOMENTUM_{i}" for i in range(4)),
        ]
        if self.notation == "hybrid_short":
            vocab += [f"m{n}{q}" for q in QUARKS for n in (2, 4)]
            vocab += [f"m2{q}*{s}" for q in QUARKS for s in dots]
        return vocab

    # ------------------------------------------------------------------ verification
    def _point(self, source: str, rng: random.Random, symbols: list[sympy.Symbol]) -> dict[str, object]:
        """A random kinematic point of the source's process, with a random ``g_s`` and ``N = n_colours``."""
        values = kinematics.point(st.legs_from_tokens(source), rng)
        values.update({"g_s": rng.uniform(0.2, 1.5), "N": self.n_colours})
        return values

    def bucket(self, source: str, target: str) -> str:
        """Process class, e.g. ``"q q~ -> G G"``."""
        try:
            return process_class(st.legs_from_tokens(source), _leg_class)
        except (NotationError, KeyError, ValueError, IndexError):
            return "unknown"


__all__ = ["QCDGeneratedTask"]
