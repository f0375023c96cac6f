"""``symlit-slurm``: render an sbatch template with the values of a composed training config.

The templates in ``slurm/`` are valid sbatch scripts on their own (defaults in their ``#SBATCH``
lines, Hydra overrides passed as arguments). Rendering composes the ``train`` config with the given
overrides and rewrites the template for it: ``--nodes`` from ``trainer.num_nodes``,
``--ntasks-per-node`` (and ``--gpus-per-node`` on GPU) from ``trainer.devices``, ``--time``,
``--partition``, ``--account``, ``--cpus-per-task``, ``--mem`` from the ``slurm`` block,
``--job-name`` from ``name``; the overrides are baked into the ``srun`` line.

    symlit-slurm slurm/train_multinode.sbatch experiment=addition_4x2 trainer.num_nodes=4 > job.sbatch
    sbatch job.sbatch
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig

from symlit.core.cli import check_command_line, fail
from symlit.core.config import config_dir

SBATCH = re.compile(r"^#SBATCH\s+--([a-z-]+)(?:=(.*))?$")


def sbatch_values(cfg: DictConfig) -> dict[str, str | None]:
    """``#SBATCH`` option values for a composed training config (``None``: leave the template's)."""
    devices = cfg.trainer.devices
    if not isinstance(devices, int) or devices < 1:
        raise ValueError(f"trainer.devices={devices!r}: SLURM templates need an explicit number of devices per node")
    slurm = cfg.get("slurm") or {}
    values: dict[str, str | None] = {
        "job-name": str(cfg.name),
        "nodes": str(cfg.trainer.num_nodes),
        "ntasks-per-node": str(devices),
        "gpus-per-node": str(devices) if cfg.trainer.accelerator in ("gpu", "cuda", "auto") else None,
    }
    for key in ("time", "partition", "account", "cpus_per_task", "mem", "qos", "constraint"):
        value = slurm.get(key)
        values[key.replace("_", "-")] = None if value is None else str(value)
    return values


def render(template: str, cfg: DictConfig, overrides: list[str]) -> str:
    """The template's text with ``#SBATCH`` values from ``cfg`` and ``overrides`` on the ``srun`` line."""
    values = sbatch_values(cfg)
    lines, seen, last_sbatch = [], set(), -1
    for line in template.splitlines():
        match = SBATCH.match(line)
        if match:
            key = match.group(1)
            seen.add(key)
            if key == "gpus-per-node" and values.get(key) is None and cfg.trainer.accelerator == "cpu":
                continue  # a CPU job asks for no GPUs
            if values.get(key) is not None:
                line = f"#SBATCH --{key}={values[key]}"
            last_sbatch = len(lines)
        lines.append(line)
    extra = [f"#SBATCH --{k}={v}" for k, v in values.items() if v is not None and k not in seen]
    lines[last_sbatch + 1 : last_sbatch + 1] = extra
    baked = " ".join(shlex.quote(o) for o in overrides)
    text = "\n".join(lines) + "\n"
    if baked:
        if '"$@"' not in text:
            raise ValueError('the template has no "$@" on its srun line to receive the overrides')
        text = text.replace('"$@"', f'{baked} "$@"')
    return text


def template_groups(template: str) -> list[str]:
    """Config-group choices the template's own ``srun`` line makes (e.g. ``trainer=ddp``)."""
    srun = template[template.find("srun ") :] if "srun " in template else ""
    return re.findall(r"(?<![\w.])(trainer=\w+)", srun)


def compose_train(overrides: list[str]) -> DictConfig:
    """The ``train`` config composed with ``overrides`` (as ``symlit-train`` would)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)


def main(argv: list[str] | None = None) -> None:
    """``symlit-slurm TEMPLATE [overrides...]``: print the rendered script."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if args else 2)
    template = Path(args[0])
    if not template.is_file():
        fail("symlit-slurm", f"template {template} not found (see slurm/*.sbatch)")
    overrides = args[1:]
    text = template.read_text()
    try:
        # the template's srun line chooses e.g. trainer=ddp; the user's overrides come after and win
        check_command_line("train", [*template_groups(text), *overrides])
        cfg = compose_train([*template_groups(text), *overrides])
        sys.stdout.write(render(text, cfg, overrides))
    except (ValueError, HydraException) as err:  # a bad value or override: one line, no traceback
        fail("symlit-slurm", str(err))


if __name__ == "__main__":
    main()
