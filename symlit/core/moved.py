"""Where symlit's objects lived before, so that saved configs keep loading.

Checkpoints and run directories record dotted paths: ``model._target_`` in a checkpoint's
hyper-parameters, the optimizer's and schedule's ``_target_``, and every ``_target_`` of the run
identity in ``run.json``. Those written before symlit was split into packages name the modules of
the flat layout (``symlit.model``, ``symlit.schedules``, ...); the oldest checkpoints name the
encoder-decoder's config class. :func:`current_path` maps any of them to where the object lives now.
"""

from __future__ import annotations

from typing import Any

MOVED_MODULES: dict[str, str] = {
    "symlit.atomic": "symlit.core.atomic",
    "symlit.cli": "symlit.core.cli",
    "symlit.config": "symlit.core.config",
    "symlit.limits": "symlit.core.limits",
    "symlit.notation": "symlit.core.notation",
    "symlit.processes": "symlit.core.processes",
    "symlit.verdict": "symlit.core.verdict",
    "symlit.tokenizer": "symlit.data.tokenizer",
    "symlit.data": "symlit.data.datamodule",
    "symlit.leakage": "symlit.data.leakage",
    "symlit.generate": "symlit.data.generate",
    "symlit.model": "symlit.models.seq2seq",
    "symlit.causal": "symlit.models.causal",
    "symlit.positions": "symlit.models.positions",
    "symlit.checkpoint": "symlit.models.checkpoint",
    "symlit.decoding": "symlit.evaluation.decoding",
    "symlit.scoring": "symlit.evaluation.scoring",
    "symlit.verifier_pool": "symlit.evaluation.verifier_pool",
    "symlit.report": "symlit.evaluation.report",
    "symlit.plots": "symlit.review.plots",
    "symlit.dashboard": "symlit.review.dashboard",
    "symlit.evaluate": "symlit.review.evaluate",
    "symlit.predict": "symlit.review.predict",
    "symlit.inspect_model": "symlit.review.inspect_model",
    "symlit.compare": "symlit.review.compare",
    "symlit.module": "symlit.training.module",
    "symlit.callbacks": "symlit.training.callbacks",
    "symlit.schedules": "symlit.training.schedules",
    "symlit.train": "symlit.training.train",
    "symlit.slurm": "symlit.training.slurm",
}
"""Module of the flat layout -> the module that holds its public objects now."""

RENAMED: dict[str, str] = {"symlit.model.TransformerConfig": "symlit.models.seq2seq.Seq2SeqTransformer"}
"""Objects whose name changed: checkpoints written before the ``model`` group named the model class
record its config class."""


def current_path(path: str) -> str:
    """Where the object a saved dotted ``path`` names lives now (``path`` itself if it never moved)."""
    if path in RENAMED:
        return RENAMED[path]
    module, _, name = path.rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else path


def current_targets(node: Any) -> Any:
    """``node`` (a config as plain dicts and lists) with every ``_target_`` mapped by :func:`current_path`."""
    if isinstance(node, dict):
        return {
            k: current_path(v) if k == "_target_" and isinstance(v, str) else current_targets(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [current_targets(v) for v in node]
    return node
