"""``symlit-compare outputs/<name>/``: a sweep's runs side by side, overrides against final metrics.

Finds every run directory under the given paths (a directory with ``.hydra/overrides.yaml`` and
``metrics.json`` or ``run.json``: single runs, ``-m`` multirun jobs, Optuna trials, SLURM jobs
``<overrides>/slurm-<id>``), reads its overrides and its final metrics (``metrics.json``, plus the
accuracies of any ``symlit-eval`` result under ``eval/``), and writes

* ``compare.md``: overrides common to every run, then one row per run with the overrides that
  vary and the metrics, best ``--metric`` first (also printed);
* ``compare.csv``: the same table with every override;
* ``compare_<metric>_vs_<param>.png``: ``--metric`` against the hyper-parameter ``--param``, one
  line per combination of the other varying overrides.

::

    symlit-compare outputs/addition/                                  # every run of an experiment
    symlit-compare outputs/addition/ --metric test/seq_acc --param optim.optimizer.lr
    symlit-compare outputs/a/run1 outputs/b/run2 --out reports/        # chosen runs
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from symlit.evaluation.report import markdown_table
from symlit.evaluation.scoring import SEQ_ACC, TOP1_ACC, acc_at

SKIP_DIRS = {"wandb", "checkpoints", ".hydra", "eval", "inspect", "csv", "lightning_logs"}


class CompareError(ValueError):
    """Bad input to ``symlit-compare`` (the message says what to fix)."""


@dataclass
class Run:
    """One run directory: its overrides and final metrics."""

    path: Path
    name: str
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "unfinished"


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "overrides.yaml").is_file() and any(
        (path / f).is_file() for f in ("metrics.json", "run.json")
    )


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories at or below ``paths`` (sorted, without duplicates)."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise CompareError(f"{p} does not exist")
        for root, dirs, _ in os.walk(p):
            if is_run_dir(Path(root)):
                found.add(Path(root).resolve())
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
    return sorted(found)


def _parse_overrides(path: Path) -> dict[str, str]:
    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        if key.startswith("~"):
            key, value = key[1:], "(deleted)"
        out[key.lstrip("+")] = value
    return out


def _eval_metrics(run_dir: Path) -> dict[str, float]:
    """Accuracies of the ``symlit-eval`` results of a run: ``eval/<dir>/seq_acc``, ``top1_acc``, ``acc_at_<k>``."""
    out = {}
    for path in sorted(run_dir.glob("eval/*/eval.json")):
        m = json.loads(path.read_text()).get("metrics", {})
        prefix = f"eval/{path.parent.name}/"
        if "greedy" in m:
            out[prefix + SEQ_ACC] = m["greedy"][SEQ_ACC]
        if nb := m.get("nbest"):
            out[prefix + TOP1_ACC] = nb[TOP1_ACC]
            out[prefix + acc_at(nb["k"])] = nb[acc_at(nb["k"])]
    return out


def load_run(path: Path, root: Path | None = None) -> Run:
    """The overrides, metrics and status of one run directory."""
    name = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) and path != root else path.name
    run = Run(path, name, _parse_overrides(path / ".hydra" / "overrides.yaml"))
    metrics_file = path / "metrics.json"
    if metrics_file.is_file():
        saved = json.loads(metrics_file.read_text())
        run.metrics = {k: float(v) for k, v in saved.get("metrics", {}).items()}
        run.status = "finished" if saved.get("finished") else "unfinished"
        if "global_step" in saved:
            run.metrics["global_step"] = float(saved["global_step"])
    run.metrics |= _eval_metrics(path)
    return run


def _common_root(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p) for p in paths])) if paths else Path(".")


def _metric_order(name: str) -> tuple:
    stage = name.split("/")[0]
    return ({"val": 0, "test": 1, "eval": 2}.get(stage, 3), name.count("/"), name)


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


@dataclass
class Comparison:
    """Runs with the override keys that vary, those that do not, and the metric columns."""

    runs: list[Run]
    varying: list[str]
    common: dict[str, str]
    metrics: list[str]
    sort_metric: str | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self, keys: list[str]) -> list[list]:
        return [
            [r.name, r.status, *(r.overrides.get(k, "") for k in keys), *(r.metrics.get(m, "") for m in self.metrics)]
            for r in self.runs
        ]

    def markdown(self) -> str:
        out = [f"# {len(self.runs)} runs", ""]
        out += self.notes
        if self.common:
            out += ["Common to every run: " + ", ".join(f"`{k}={v}`" for k, v in sorted(self.common.items())), ""]
        if self.sort_metric:
            out += [f"Sorted by `{self.sort_metric}`, best first.", ""]
        out += [markdown_table(["run", "status", *self.varying, *self.metrics], self.rows(self.varying)), ""]
        return "\n".join(out)

    def write_csv(self, path: Path) -> None:
        keys = sorted({*self.varying, *self.common})
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["run", "status", *keys, *self.metrics, "path"])
            for row, run in zip(self.rows(keys), self.runs):
                writer.writerow([*row, str(run.path)])


def compare(
    paths: Sequence[str | Path], metric: str | None = None, metrics: Sequence[str] = (), minimize: bool = False
) -> Comparison:
    """The :class:`Comparison` of every run under ``paths``, sorted by ``metric`` (best first)."""
    dirs = find_runs(paths)
    if not dirs:
        raise CompareError(
            f"no run directories (a .hydra/overrides.yaml with metrics.json or run.json) under "
            f"{', '.join(map(str, paths))}; pass outputs/<name>/ or run directories"
        )
    root = _common_root([Path(p).resolve() for p in paths]) if len(paths) > 1 else Path(paths[0]).resolve()
    runs = [load_run(d, root) for d in dirs]
    keys = sorted({k for r in runs for k in r.overrides})
    varying = [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]
    common = {k: runs[0].overrides[k] for k in keys if k not in varying}
    known = sorted({m for r in runs for m in r.metrics}, key=_metric_order)
    if metric is not None and metric not in known:
        raise CompareError(f"--metric {metric} is not a metric of these runs; known: {', '.join(known) or 'none'}")
    chosen = [m for m in known if not metrics or any(fnmatch.fnmatch(m, pat) for pat in metrics)]
    if metrics and not chosen:
        raise CompareError(f"--metrics {' '.join(metrics)} matches no metric; known: {', '.join(known)}")
    if metric is not None:
        sign = 1 if minimize else -1
        runs.sort(key=lambda r: (metric not in r.metrics, sign * r.metrics.get(metric, 0.0), r.name))
    comparison = Comparison(runs, varying, common, chosen, metric)
    optuna = [p for p in map(Path, paths) if (p / "optimization_results.yaml").is_file()]
    for p in optuna:
        best = yaml.safe_load((p / "optimization_results.yaml").read_text()) or {}
        comparison.notes += [
            f"Optuna ({p.name}): best value {best.get('best_value')} with "
            + ", ".join(f"`{k}={v}`" for k, v in (best.get("best_params") or {}).items()),
            "",
        ]
    return comparison


def plot_metric(comparison: Comparison, metric: str, param: str, path: Path | None = None):
    """``metric`` against the override ``param``, one line per combination of the other varying overrides."""
    from symlit.review.plots import _save, plt

    if param not in comparison.varying:
        constant = (
            f" (it is the same in every run: {param}={comparison.common[param]})" if param in comparison.common else ""
        )
        raise CompareError(
            f"--param {param} does not vary across these runs{constant}; "
            f"varying overrides: {', '.join(comparison.varying) or 'none'}"
        )
    others = [k for k in comparison.varying if k != param]
    runs = [r for r in comparison.runs if metric in r.metrics and param in r.overrides]
    if not runs:
        raise CompareError(f"no run has both {metric} and an override of {param}")
    values = [_as_float(r.overrides[param]) for r in runs]
    numeric = all(v is not None for v in values)
    categories = sorted({r.overrides[param] for r in runs}, key=lambda v: (_as_float(v) is None, _as_float(v) or 0, v))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        label = ", ".join(r.overrides.get(k, "") for k in others) or "runs"  # the legend's title names the keys
        x = float(r.overrides[param]) if numeric else float(categories.index(r.overrides[param]))
        series.setdefault(label, []).append((x, r.metrics[metric]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, points) in enumerate(sorted(series.items())):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=f"C{i % 10}", label=label)
    if numeric:
        xs = [v for v in values if v is not None]
        if min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        ax.minorticks_off()
        if len(categories) <= 12:  # ticks at the runs' values, written as in the overrides
            ax.set_xticks([float(c) for c in categories], categories, rotation=30 if len(categories) > 4 else 0)
    else:
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {param} ({len(runs)} runs)")
    if len(series) > 1 or others:
        ax.legend(fontsize=7, title=", ".join(others) if others else None, title_fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``symlit-compare``."""
    parser = argparse.ArgumentParser(
        prog="symlit-compare",
        description="Compare runs: overrides against final metrics (Markdown, CSV, a plot).",
        epilog="example: symlit-compare outputs/addition --metric val/seq_acc --metrics 'test/*'. "
        "Documentation: docs/evaluation.md.",
    )
    parser.add_argument("paths", nargs="+", help="outputs/<name>/ (a sweep or experiment) or run directories")
    parser.add_argument(
        "--metric", default=None, help="metric to sort by and plot (default: val/seq_acc when the runs have it)"
    )
    parser.add_argument(
        "--param",
        default=None,
        help="hyper-parameter (override key) to plot against (default: the first override that varies)",
    )
    parser.add_argument("--metrics", nargs="*", default=[], help="metric columns to show (glob patterns, e.g. 'val/*')")
    parser.add_argument("--minimize", action="store_true", help="lower --metric is better (e.g. a loss)")
    parser.add_argument(
        "--out",
        default=None,
        help="where to write compare.md/.csv/.png (default: the directory given, or the current directory for several)",
    )
    args = parser.parse_args(argv)
    try:
        probe = compare(args.paths)
        metric = args.metric or ("val/seq_acc" if any("val/seq_acc" in r.metrics for r in probe.runs) else None)
        comparison = compare(args.paths, metric, args.metrics, args.minimize)
        out = Path(args.out or (args.paths[0] if len(args.paths) == 1 else "."))
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(comparison.markdown())
        comparison.write_csv(out / "compare.csv")
        print(comparison.markdown())
        written = [out / "compare.md", out / "compare.csv"]
        param = args.param or (comparison.varying[0] if comparison.varying else None)
        if metric is not None and param is not None:
            png = out / f"compare_{_safe(metric)}_vs_{_safe(param)}.png"
            plot_metric(comparison, metric, param, png)
            written.append(png)
        elif metric is None:
            print("no plot: the runs have no val/seq_acc; choose a metric with --metric")
        else:
            print("no plot: no override varies across these runs")
        print("\n".join(f"wrote {p}" for p in written))
    except CompareError as err:
        raise SystemExit(f"symlit-compare: {err}") from None


if __name__ == "__main__":
    main()
