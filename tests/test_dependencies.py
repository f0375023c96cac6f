"""Every third-party module that symlit imports, and every ``_target_`` in ``conf/``, is a declared
dependency in ``pyproject.toml``; every declared dependency is used.

The check is static: it parses the imports (lazy ones inside functions included) and maps each
top-level module to the distribution that installs it. A module that arrives today only through
another package (``yaml`` through ``omegaconf``, ``tqdm`` through ``lightning``) still has to be
declared: the other package may drop it, and a fresh install would then break.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


ROOT = Path(__file__).resolve().parents[1]

# Distributions that provide an import under another name than their own.
IMPORT_NAMES = {"hydra-core": "hydra", "pyyaml": "yaml"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normalise(re.match(r"[A-Za-z0-9_.-]+", spec).group(0))


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """``[project.dependencies]`` and ``[project.optional-dependencies]`` as normalised names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {_requirement_name(s) for s in project["dependencies"]}
    extras = {extra: {_requirement_name(s) for s in specs} for extra, specs in project["optional-dependencies"].items()}
    return required, extras


def imported_modules(package: Path) -> dict[str, list[str]]:
    """Top-level third-party modules imported anywhere under ``package``, with where (``file:line``)."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "symlit":
                    continue
                found.setdefault(top, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def config_targets(conf: Path) -> dict[str, list[str]]:
    """Top-level modules of every ``_target_`` under ``conf``, with where (``file:line``)."""
    found: dict[str, list[str]] = {}
    for path in sorted(conf.rglob("*.yaml")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*_target_:\s*([A-Za-z_][\w.]*)", line)
            if match and not match.group(1).startswith("symlit."):
                found.setdefault(match.group(1).split(".")[0], []).append(f"{path.relative_to(ROOT)}:{lineno}")
    return found


def distribution_of(module: str) -> str | None:
    """The installed distribution that provides top-level ``module`` (None if none does)."""
    providers = importlib.metadata.packages_distributions().get(module, [])
    if providers:
        return _normalise(providers[0])
    return None


def undeclared(uses: dict[str, list[str]], allowed: set[str]) -> list[str]:
    """One message per used module whose distribution is not in ``allowed``."""
    problems = []
    for module, where in sorted(uses.items()):
        distribution = distribution_of(module)
        if distribution is None:
            declared_here = module in {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in allowed}
            fix = "pip install -e . (it is declared)" if declared_here else "add the package that installs it to "
            fix += "" if declared_here else "[project.dependencies] in pyproject.toml, then pip install -e ."
            problems.append(f"{where[0]} imports {module!r}, which no installed distribution provides: {fix}")
        elif distribution not in allowed:
            problems.append(
                f"{where[0]} imports {module!r} (distribution {distribution!r}), which is not declared: add "
                f"{distribution!r} to [project.dependencies] in pyproject.toml"
            )
    return problems


def test_every_import_of_the_package_is_a_declared_dependency():
    required, _ = declared()
    problems = undeclared(imported_modules(ROOT / "symlit"), required)
    assert not problems, "\n".join(problems)


def test_every_config_target_is_a_declared_dependency():
    required, _ = declared()
    problems = undeclared(config_targets(ROOT / "conf"), required)
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_used():
    required, _ = declared()
    used = set(imported_modules(ROOT / "symlit")) | set(config_targets(ROOT / "conf"))
    unused = []
    for name in sorted(required):
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        if module not in used:
            unused.append(name)
    assert not unused, f"declared in [project.dependencies] but never imported under symlit/ or conf/: {unused}"


def test_tests_and_benchmarks_import_only_declared_or_extra_packages():
    required, extras = declared()
    allowed = required | extras["test"] | extras["bench"]
    uses = {}
    for folder in ("tests", "benchmarks"):
        for module, where in imported_modules(ROOT / folder).items():
            uses.setdefault(module, []).extend(where)
    local = {p.stem for folder in ("tests", "benchmarks") for p in (ROOT / folder).glob("*.py")} | {"src"}
    uses = {m: w for m, w in uses.items() if m not in local}
    missing = [m for m in uses if distribution_of(m) is None]
    if set(missing) <= {"transformers"}:  # the bench extra is not part of the README's install
        uses = {m: w for m, w in uses.items() if m not in missing}
    problems = undeclared(uses, allowed)
    assert not problems, "\n".join(problems)
