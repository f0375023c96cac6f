"""Paths saved before symlit was split into packages keep working (:mod:`symlit.core.moved`)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import hydra.utils
import pytest
import torch

from symlit.core.moved import MOVED_MODULES, RENAMED, current_path, current_targets
from symlit.models.causal import CausalTransformer
from symlit.models.checkpoint import load_checkpoint
from symlit.models.seq2seq import Seq2SeqTransformer

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = FIXTURES / "seq2seq_config_class_target.ckpt"


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_every_moved_module_exists_at_its_new_path_and_the_old_one_is_gone(old):
    importlib.import_module(MOVED_MODULES[old])
    spec = importlib.util.find_spec(old)
    assert spec is None or spec.submodule_search_locations  # gone, or a package of that name now (symlit.data)


def test_saved_paths_map_to_the_objects_they_named():
    assert current_path("symlit.model.Seq2SeqTransformer") == "symlit.models.seq2seq.Seq2SeqTransformer"
    assert hydra.utils.get_class(current_path("symlit.causal.CausalTransformer")) is CausalTransformer
    assert hydra.utils.get_class(current_path("symlit.model.TransformerConfig")) is Seq2SeqTransformer
    for path in [
        *RENAMED.values(),
        "symlit.schedules.cosine",
        "symlit.module.Seq2SeqModule",
        "symlit.data.Seq2SeqDataModule",
    ]:
        hydra.utils.get_object(current_path(path))
    assert current_path("torch.optim.AdamW") == "torch.optim.AdamW"
    assert current_path("symlit.tasks.qed.QEDSymbaTask") == "symlit.tasks.qed.QEDSymbaTask"
    assert current_targets({"a": [{"_target_": "symlit.schedules.cosine"}], "_target_": 3}) == {
        "a": [{"_target_": "symlit.training.schedules.cosine"}],
        "_target_": 3,
    }


def test_every_target_of_a_flat_layout_checkpoint_resolves():
    hparams = torch.load(LEGACY, map_location="cpu", weights_only=True)["hyper_parameters"]
    targets = []

    def walk(node):
        if isinstance(node, dict):
            targets.extend(v for k, v in node.items() if k == "_target_")
            for v in node.values():
                walk(v)

    walk(hparams)
    assert "symlit.schedules.cosine" in targets and "symlit.model.TransformerConfig" in targets
    for target in targets:
        hydra.utils.get_object(current_path(target))


@pytest.mark.parametrize("target", ["symlit.model.TransformerConfig", "symlit.model.Seq2SeqTransformer"])
def test_a_checkpoint_naming_a_flat_layout_class_loads(tmp_path, target):
    ckpt = torch.load(LEGACY, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["model"]["_target_"] = target
    torch.save(ckpt, tmp_path / "old.ckpt")
    assert isinstance(load_checkpoint(tmp_path / "old.ckpt").model, Seq2SeqTransformer)
