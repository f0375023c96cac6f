"""Shared fixtures: compose the real Hydra configs into a temporary workspace."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from symlit.core.config import config_dir
from symlit.models.seq2seq import TransformerConfig

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# pytest-xdist workers share the cores: each worker's torch (and the training subprocesses it
# starts, through OMP_NUM_THREADS) takes its part instead of all of them
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = max(1, (os.cpu_count() or 1) // _workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))
    torch.set_num_threads(_threads)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides)``: the composed ``train`` config, writing only under ``tmp_path``."""

    def _make(*overrides: str, run_dir: Path | None = None) -> DictConfig:
        base = [
            f"paths.root_dir={tmp_path}",
            f"paths.run_dir={run_dir or tmp_path / 'run'}",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
        ]
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose("train", overrides=[*base, *overrides])

    return _make


def tiny_config(**overrides: object) -> TransformerConfig:
    """The tiny encoder-decoder config the model and decoding tests build on (20 tokens, d_model 32)."""
    cfg = dict(
        vocab_size=20,
        d_model=32,
        n_heads=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=64,
        dropout=0.0,
        max_positions=64,
    )
    return TransformerConfig(**{**cfg, **overrides})


def assert_causal(model: torch.nn.Module, src: torch.Tensor, tgt: torch.Tensor, n_tokens: int) -> None:
    """Changing every target token after position t changes no logit at or before t (and some after)."""
    with torch.no_grad():
        logits = model(src, tgt)  # (B, T, V)
        for t in range(tgt.shape[1] - 1):
            changed = tgt.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 5) % n_tokens + 3  # alter every later token
            again = model(src, changed)
            torch.testing.assert_close(again[:, : t + 1], logits[:, : t + 1], rtol=0, atol=1e-5)
            assert not torch.allclose(again[:, t + 1 :], logits[:, t + 1 :])


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep directory of :func:`review_sweep.build_sweep`, built once per session (the modules
    that use it share an ``xdist_group``, so pytest-xdist runs them on one worker)."""
    from review_sweep import build_sweep

    return build_sweep(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="session")
def ckpt(sweep: Path) -> Path:
    """The best checkpoint of the sweep's first job."""
    from review_sweep import LRS, run_dir

    return run_dir(sweep, LRS[0]) / "checkpoints" / "best.ckpt"
