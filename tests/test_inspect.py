"""``symlit-inspect``: attention captured as SDPA computes it, embedding PCA and attention maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from review_sweep import run_python, training_run, wandb_runs

from symlit.models.checkpoint import load_checkpoint
from symlit.review.inspect_model import attention_weights, capture_attention
from symlit.tasks import ArithmeticTask
from symlit.tasks.calculus import CalculusTask

pytestmark = pytest.mark.xdist_group("review_sweep")  # pytest-xdist: the session-scoped sweep is built once


def test_captured_attention_reproduces_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    mask = torch.rand(2, 1, 1, 7) > 0.3
    mask[..., 0] = True
    assert torch.allclose(
        attention_weights(q, k, mask) @ v, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5
    )
    q2 = torch.randn(1, 2, 6, 8)
    assert torch.allclose(
        attention_weights(q2, q2, is_causal=True) @ q2,
        F.scaled_dot_product_attention(q2, q2, q2, is_causal=True),
        atol=1e-5,
    )


def test_inspect_writes_embedding_pca_and_attention_maps(ckpt, tmp_path):
    out = tmp_path / "inspect"
    proc = run_python(
        tmp_path, "-m", "symlit.review.inspect_model", f"ckpt={ckpt}", "input=23 + 15", f"output_dir={out}"
    )
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["attention_cross.png", "attention_decoder_self.png", "attention_encoder.png", "embeddings_pca.png"]
    assert all((out / n).stat().st_size > 10_000 for n in names) and str(out / names[0]) in proc.stdout
    # and as W&B images in the training run (resumed from its wandb_id.txt)
    job = ckpt.parents[1]
    logged = [r for r in wandb_runs(job) if "inspect/best/embeddings_pca/path" in r.summary]
    assert logged and all(r.id == training_run(job).id for r in logged)  # one per symlit-inspect
    assert {f"inspect/best/{n.removesuffix('.png')}/path" for n in names} <= set(logged[-1].summary)
    loaded = load_checkpoint(ckpt)
    cfg = loaded.model.cfg
    src = torch.tensor([loaded.tokenizer.encode("INT+ 2 3 + INT+ 1 5")])
    tgt = torch.tensor([[loaded.tokenizer.bos_id, *loaded.tokenizer.encode("INT+ 3 8")]])
    with torch.no_grad():
        plain = loaded.model(src, tgt)
        with capture_attention(loaded.model) as maps:
            hooked = loaded.model(src, tgt)
    assert torch.equal(plain, hooked)  # capturing does not change the model's outputs
    names = [m.name for m in maps]
    assert len(maps) == cfg.n_encoder_layers + 2 * cfg.n_decoder_layers
    assert sum("cross" in n for n in names) == cfg.n_decoder_layers
    for m in maps:
        assert m.weights.shape[0] == cfg.n_heads
        assert torch.allclose(m.weights.sum(-1), torch.ones(m.weights.shape[:2]), atol=1e-5)
    self_maps = [m for m in maps if m.name.startswith("decoder") and "cross" not in m.name]
    assert all(torch.all(m.weights.triu(1) == 0) for m in self_maps)  # causal
    assert [tuple(m.weights.shape[1:]) for m in maps if "cross" in m.name] == [(4, 7)] * cfg.n_decoder_layers


def test_embedding_groups():
    vocab = ["<pad>", "INT+", "INT-", "+", *"0123456789", "sin", "add"]
    assert ArithmeticTask().embedding_groups(vocab)["digit / number"] == list("0123456789")
    groups = CalculusTask(n_train=10).embedding_groups(vocab)
    assert groups == {"binary operator": ["add"], "unary operator": ["sin"]}
