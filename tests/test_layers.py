"""symlit's packages form layers, read from the source's imports (no module is imported here).

The data flows config -> task -> data -> model -> decoding and scoring -> review, and training
drives all of them. A package may import its own modules and the packages of lower layers, never a
higher layer or a peer of its own layer, and never a private name (``_name``) of another package.
Imports inside functions and under ``TYPE_CHECKING`` count: they are dependencies all the same.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SYMLIT = Path(__file__).resolve().parents[1] / "symlit"

LAYERS: dict[str, int] = {
    "symlit": 0,  # the package's __init__: registers the config resolvers
    "symlit.core": 0,  # configs, atomic files, processes, time limits, verdicts, notation, command-line check
    "symlit.calculus": 1,  # domain engines, each on its own
    "symlit.qed": 1,
    "symlit.qcd": 2,  # QCD reuses QED's Dirac algebra, particles and text format
    "symlit.tasks": 3,  # what to learn: data, vocabulary, verification, text
    "symlit.data": 4,  # tokenizer, datasets, DataModule, leakage report, symlit-generate
    "symlit.models": 5,  # the networks, their builder and the checkpoint loader
    "symlit.evaluation": 6,  # decoding, verifier pool, scoring, report
    "symlit.review": 7,  # symlit-eval, -predict, -inspect, -compare, dashboard, plots
    "symlit.training": 8,  # the LightningModule, callbacks, schedules, run directory, symlit-train
}


def package_of(module: str) -> str:
    """The layered package a dotted module name belongs to (its longest prefix in :data:`LAYERS`)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return ".".join(parts[:n])
    raise KeyError(module)


@dataclass(frozen=True)
class Import:
    """One import of a symlit module: where it stands, what it imports, and the names it takes."""

    source: str  # the importing module
    line: int
    target: str  # the imported module (or package)
    name: str | None  # the imported name, or an attribute read on the imported module


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SYMLIT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    base = SYMLIT.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(source: str, text: str) -> list[Import]:
    """Every import of a symlit module in the code ``text`` of module ``source``, with the names it
    takes and the attributes read on modules it binds to a name (``from symlit.qed import generator
    as gen; gen._x``)."""
    tree = ast.parse(text, source)
    found: list[Import] = []
    aliases: dict[str, str] = {}  # local name -> imported module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "symlit":
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                if is_module(dotted):  # `from package import module`
                    found.append(Import(source, node.lineno, dotted, None))
                    aliases[alias.asname or alias.name] = dotted
                else:
                    found.append(Import(source, node.lineno, node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "symlit":
                    found.append(Import(source, node.lineno, alias.name, None))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            found.append(Import(source, node.lineno, aliases[node.value.id], node.attr))
    return found


def all_imports() -> list[Import]:
    return [i for path in sorted(SYMLIT.rglob("*.py")) for i in imports(module_name(path), path.read_text())]


def layer_violations(found: list[Import]) -> list[str]:
    """Imports of a higher layer, or of a peer package in the same layer."""
    bad = []
    for i in found:
        own, theirs = package_of(i.source), package_of(i.target)
        if own == theirs or (theirs == "symlit.core" and own == "symlit"):
            continue
        if LAYERS[theirs] >= LAYERS[own]:
            what = "a higher layer" if LAYERS[theirs] > LAYERS[own] else "a peer of its layer"
            bad.append(
                f"{i.source}:{i.line} imports {i.target} ({what}: {theirs} {LAYERS[theirs]} >= {own} {LAYERS[own]})"
            )
    return bad


def private_violations(found: list[Import]) -> list[str]:
    """Private names (``_name``, not ``__dunder__``) taken from another package."""
    return [
        f"{i.source}:{i.line} takes {i.target}.{i.name}, private to {package_of(i.target)}"
        for i in found
        if i.name
        and i.name.startswith("_")
        and not i.name.startswith("__")
        and package_of(i.source) != package_of(i.target)
    ]


def test_every_symlit_package_has_a_layer():
    packages = {module_name(p) for p in SYMLIT.rglob("__init__.py")}
    assert {package_of(p) for p in packages} <= set(LAYERS)
    assert {p for p in packages if p.count(".") == 1} == {p for p in LAYERS if p != "symlit"}


def test_no_package_imports_a_higher_layer_or_a_peer():
    assert layer_violations(all_imports()) == []


def test_no_module_takes_a_private_name_from_another_package():
    assert private_violations(all_imports()) == []


@pytest.mark.parametrize(
    ("code", "checker"),
    [
        ("from symlit.training.module import Seq2SeqModule", layer_violations),
        ("from symlit import qed", layer_violations),  # a peer of calculus
        ("from symlit.models.causal import _private", private_violations),
        ("from symlit.qed import generator as gen\ngen._permutation", private_violations),
    ],
)
def test_the_walk_sees_a_back_import_a_peer_and_a_private_name(code, checker):
    """The checks find what they look for: a calculus module written with one bad import."""
    assert checker(imports("symlit.calculus.probe", code))
