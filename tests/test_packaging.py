"""A non-editable install works: the wheel carries the Hydra configs, and ``symlit-train`` runs
from an empty directory outside the checkout, writing its outputs there (or under ``SYMLIT_ROOT``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.xdist_group("wheel")

SHORT_RUN = [
    "trainer.max_steps=4",
    "trainer.val_check_interval=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "print_config=false",
]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (without dependencies) into its own folder."""
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling (the test extra)")
    wheels = tmp_path_factory.mktemp("wheel")
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT], check=True)
    (wheel,) = wheels.glob("symlit-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", target, wheel], check=True)
    return target


def run_from(cwd: Path, site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``symlit-train ARGS`` in ``cwd`` with the installed wheel first on the path (not the checkout)."""
    code = (
        "import sys, symlit, symlit.core.config as c; "
        "print('SYMLIT', symlit.__file__); print('CONF', c.config_dir()); "
        "sys.argv = ['symlit-train', *sys.argv[1:]]; "
        "from symlit.training.entry import train; train()"
    )
    full_env = {k: v for k, v in os.environ.items() if k != "SYMLIT_ROOT"}
    full_env.update({"PYTHONPATH": str(site), "WANDB_MODE": "offline", **(env or {})})
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900
    )


def test_the_wheel_carries_the_configs(installed_wheel):
    conf = installed_wheel / "symlit" / "conf"
    assert (conf / "train.yaml").is_file()
    assert {p.stem for p in (conf / "experiment").glob("*.yaml")} >= {"addition", "addition_4x2_digits"}


def test_symlit_train_runs_from_an_empty_directory_outside_the_checkout(installed_wheel, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    result = run_from(work, installed_wheel, *SHORT_RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"SYMLIT {installed_wheel}" in result.stdout  # the installed package, not the checkout
    assert f"CONF {installed_wheel / 'symlit' / 'conf'}" in result.stdout
    (metrics,) = (work / "outputs" / "addition").glob("*/metrics.json")
    record = json.loads(metrics.read_text())
    assert record["finished"] and "test/seq_acc" in record["metrics"]

    elsewhere = tmp_path / "scratch"
    result = run_from(work, installed_wheel, *SHORT_RUN, env={"SYMLIT_ROOT": str(elsewhere)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((elsewhere / "outputs" / "addition").glob("*/metrics.json"))
    assert list((elsewhere / "data").iterdir())  # the dataset cache moved too
