"""``symlit-inspect ckpt=PATH input=...``: what a trained model learned, as pictures.

* ``embeddings_pca.png``: the token embeddings projected on their first two principal
  components (digits and numbers for arithmetic, operators for calculus, every token otherwise);
* ``attention_<block>.png``: the attention weights of every layer (rows) and head (columns) on
  one input, teacher-forced on the model's own greedy answer: ``encoder`` self-attention,
  ``decoder_self`` attention and ``cross`` attention (decoder queries, encoder keys).

Attention weights are read without touching the model: :func:`capture_attention` wraps
``torch.nn.functional.scaled_dot_product_attention`` for one forward pass, recomputes
``softmax(q k^T * scale + mask)`` from the arguments each attention module passes to it (so
position schemes applied to ``q``/``k`` before the call are included), and labels each call with
the innermost module that made it. The model's outputs are unchanged (the original function
still computes them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from symlit.core.cli import console_command, fail
from symlit.evaluation.decoding import greedy_decode
from symlit.models.checkpoint import LoadedCheckpoint, load_checkpoint
from symlit.review.plots import _save, plt


@dataclass
class AttentionMap:
    """Weights ``(H, T_q, T_k)`` of one attention call made by module ``name``."""

    name: str
    weights: Tensor


def attention_weights(
    q: Tensor, k: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    """The probabilities SDPA applies to the values: ``softmax(q k^T * scale + mask)``, ``(B, H, T_q, T_k)``."""
    scores = (q @ k.transpose(-1, -2)).float() * (scale if scale is not None else q.shape[-1] ** -0.5)  # (B, H, Tq, Tk)
    if is_causal:
        tq, tk = scores.shape[-2:]
        scores = scores.masked_fill(~torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(), float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return torch.softmax(scores, dim=-1)


@contextlib.contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[AttentionMap]]:
    """Record the attention weights of every ``scaled_dot_product_attention`` call ``model`` makes
    inside the ``with`` block, in call order, each labelled with the innermost module that made it."""
    maps: list[AttentionMap] = []
    stack: list[str] = []
    original = F.scaled_dot_product_attention

    def recording(
        q: Tensor,
        k: Tensor,
        v: Tensor,
        attn_mask: Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        **kwargs: object,
    ) -> Tensor:
        weights = attention_weights(q, k, attn_mask, is_causal, scale)  # (B, H, Tq, Tk)
        maps.append(AttentionMap(stack[-1] if stack else "", weights[0].detach().cpu()))
        return original(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **kwargs)

    def enter(name: str) -> Callable[..., None]:
        return lambda *_: stack.append(name)

    def leave(*_: object) -> None:  # a forward hook returning something would replace the output
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    F.scaled_dot_product_attention = recording
    try:
        yield maps
    finally:
        F.scaled_dot_product_attention = original
        for h in handles:
            h.remove()


def _block(name: str) -> str:
    """``encoder``, ``decoder_self`` or ``cross`` from a module name such as ``decoder.1.cross_attn``."""
    if "cross" in name:
        return "cross"
    return "decoder_self" if name.startswith("decoder") else "encoder"


def plot_attention(
    maps: list[AttentionMap],
    queries: list[str],
    keys: list[str],
    title: str,
    path: str | Path | None = None,
    xlabel: str = "key",
    ylabel: str = "query",
):
    """One heat map per layer (rows) and head (columns); queries down, keys across."""
    n_layers, n_heads = len(maps), maps[0].weights.shape[0]
    size = max(1.6, 0.28 * max(len(queries), len(keys)))
    fig, axes = plt.subplots(
        n_layers, n_heads, figsize=(size * n_heads + 1.5, size * n_layers + 1.2), squeeze=False, layout="constrained"
    )
    for layer, m in enumerate(maps):
        for head in range(n_heads):
            ax = axes[layer][head]
            image = ax.imshow(m.weights[head].numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=6)
            ax.set_yticks(range(len(queries)), queries, fontsize=6)
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(title)
    fig.supxlabel(xlabel, fontsize=9)
    fig.supylabel(ylabel, fontsize=9)
    return _save(fig, path)


def token_embeddings(model: nn.Module, vocab_size: int) -> Tensor:
    """The token embedding table ``(V, D)``: the model's ``nn.Embedding`` with one row per token."""
    tables = [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.num_embeddings == vocab_size]
    if not tables:
        raise ValueError(f"the model has no nn.Embedding with {vocab_size} rows (one per token)")
    return tables[0].detach().float().cpu()


def plot_embedding_pca(loaded: LoadedCheckpoint, path: str | Path | None = None):
    """Tokens of :meth:`symlit.tasks.base.Task.embedding_groups` on the first two principal components of
    their embeddings (PCA fitted on those tokens), with the explained variance on the axes."""
    vocab = loaded.tokenizer.hf.get_vocab()
    groups = {g: ts for g, ts in loaded.task.embedding_groups(sorted(vocab, key=vocab.get)).items() if ts}
    tokens = [t for ts in groups.values() for t in ts]
    if len(tokens) < 3:
        raise ValueError(f"only {len(tokens)} tokens to project; a PCA needs at least 3")
    table = token_embeddings(loaded.model, len(loaded.tokenizer))
    x = table[[vocab[t] for t in tokens]].numpy()  # (N, D)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T  # (N, 2)
    explained = s**2 / (s**2).sum()
    fig, ax = plt.subplots(figsize=(7, 6))
    start = 0
    for i, (group, ts) in enumerate(groups.items()):
        part = xy[start : start + len(ts)]
        ax.scatter(part[:, 0], part[:, 1], color=f"C{i}", label=f"{group} ({len(ts)})", s=25)
        for (px, py), t in zip(part, ts):
            ax.annotate(t, (px, py), textcoords="offset points", xytext=(3, 3), fontsize=8, color=f"C{i}")
        start += len(ts)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f} % of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f} % of variance)")
    ax.set_title(f"Token embeddings, PCA ({loaded.task.name}, d_model {table.shape[1]})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def inspect_attention(loaded: LoadedCheckpoint, text: str, out_dir: str | Path, max_len: int = 64) -> dict[str, Path]:
    """Attention pictures of one input (read by the task), teacher-forced on the greedy answer."""
    task, tok, model = loaded.task, loaded.tokenizer, loaded.model
    source = task.parse_input(text)
    ids = tok.encode(source)
    device = next(model.parameters()).device
    src = torch.tensor([ids], device=device)  # (1, S)
    with torch.no_grad():
        answer = greedy_decode(model, src, tok.bos_id, tok.eos_id, min(max_len, model.cfg.max_positions))
        generated = answer.tokens[0].tolist()
        out_ids = generated[: generated.index(tok.eos_id)] if tok.eos_id in generated else generated
        out_ids = [i for i in out_ids if i != tok.pad_id] or [tok.eos_id]  # the answer, at least one token
        tgt_in = torch.tensor([[tok.bos_id, *out_ids]], device=device)  # (1, T)
        with capture_attention(model) as maps:
            model(src, tgt_in)
    if not maps:
        raise RuntimeError(
            "no attention captured: the model does not call torch.nn.functional.scaled_dot_product_attention"
        )
    src_tokens = tok.tokens(source)
    tgt_tokens = ["<s>", *(tok.hf.id_to_token(i) for i in out_ids)]
    labels = {
        "encoder": (src_tokens, src_tokens),
        "decoder_self": (tgt_tokens, tgt_tokens),
        "cross": (tgt_tokens, src_tokens),
    }
    what = {
        "encoder": "encoder self-attention",
        "decoder_self": "decoder self-attention (causal)",
        "cross": "cross-attention (decoder queries, encoder keys)",
    }
    axis = {"encoder": ("input", "input"), "decoder_self": ("answer", "answer"), "cross": ("answer", "input")}
    answer_text = task.render(tok.decode(out_ids))
    out_dir = Path(out_dir)
    written = {}
    for block in ("encoder", "decoder_self", "cross"):
        chosen = [m for m in maps if _block(m.name) == block]
        if chosen:
            queries, keys = labels[block]
            path = out_dir / f"attention_{block}.png"
            plot_attention(
                chosen,
                queries,
                keys,
                f"{what[block]}: {task.render(source)} -> {answer_text}",
                path,
                xlabel=f"key: {axis[block][1]} token",
                ylabel=f"query: {axis[block][0]} token",
            )
            written[f"attention_{block}"] = path
    return written


def default_output_dir(ckpt: str | Path) -> Path:
    """``<run dir>/inspect/<checkpoint name>/`` next to the checkpoint's run."""
    path = Path(ckpt)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run_dir / "inspect" / path.stem


def run_inspect(cfg: DictConfig) -> dict[str, Path]:
    """``symlit-inspect``: the embedding PCA and, with ``input``, the attention maps, as PNGs in ``output_dir``."""
    try:
        loaded = load_checkpoint(cfg.ckpt, device="cpu")
    except (FileNotFoundError, ValueError) as err:
        fail("symlit-inspect", str(err))
    out_dir = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg.ckpt)
    written = {"embeddings_pca": out_dir / "embeddings_pca.png"}
    plot_embedding_pca(loaded, written["embeddings_pca"])
    if cfg.input is not None:
        try:
            written |= inspect_attention(loaded, str(cfg.input), out_dir, cfg.max_len)
        except ValueError as err:
            fail("symlit-inspect", f"input={cfg.input!r}: {err}")
    for path in written.values():
        print(path)
    _log_images(cfg, written)
    return written


def _log_images(cfg: DictConfig, written: dict[str, Path]) -> None:
    """The pictures as W&B images ``inspect/<checkpoint>/<name>`` in the training run
    (:func:`symlit.review.dashboard.attach_run`); ``logger.enabled: auto`` logs when the run has one."""
    from symlit.review import dashboard

    ckpt = Path(cfg.ckpt)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    enabled = cfg.logger.enabled
    if enabled == "auto":
        enabled = dashboard.training_run(run_dir) is not None
    if not enabled:
        return
    import wandb

    run = dashboard.attach_run(run_dir, cfg.logger, "inspect", f"inspect/{ckpt.stem}", {"ckpt": str(ckpt)})
    try:
        run.log({f"inspect/{ckpt.stem}/{name}": wandb.Image(str(path)) for name, path in written.items()})
    finally:
        run.finish()


main = console_command("symlit-inspect", "inspect", run_inspect, free_text=True)


if __name__ == "__main__":
    main()
