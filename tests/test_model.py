import pytest
import torch
import torch.nn.functional as F
from conftest import assert_causal, tiny_config

from symlit.evaluation.decoding import greedy_decode
from symlit.models import linear as linear_module
from symlit.models.builder import build_model
from symlit.models.layers import FeedForward
from symlit.models.linear import Linear
from symlit.models.seq2seq import Seq2SeqTransformer

PAD, BOS, EOS = 0, 1, 2


def tiny(**overrides) -> Seq2SeqTransformer:
    torch.manual_seed(0)
    return Seq2SeqTransformer(tiny_config(**overrides)).eval()


def random_batch(batch=4, src_len=7, tgt_len=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 20, (batch, src_len), generator=g)
    src[1, 5:] = PAD  # ragged source
    tgt = torch.randint(3, 20, (batch, tgt_len), generator=g)
    return src, tgt


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_decoder_is_causal(norm_first, positions):
    assert_causal(tiny(norm_first=norm_first, positions=positions), *random_batch(), n_tokens=17)


def test_source_padding_is_ignored():
    model = tiny()
    src, tgt = random_batch()
    longer = torch.cat([src, torch.full((src.shape[0], 3), PAD)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(longer, tgt), model(src, tgt), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize(("norm_first", "positions"), [(True, "learned"), (False, "learned"), (True, "sinusoidal")])
def test_cached_steps_equal_full_forward(norm_first, positions, static):
    model = tiny(norm_first=norm_first, positions=positions)
    src, tgt = random_batch(tgt_len=9)
    with torch.no_grad():
        full = model(src, tgt)
        cache = model.prefill(src, tgt.shape[1] + 3, static=static)  # room to spare: unfilled positions
        # a prefix of 3 tokens at once, a single token, a pair, then single tokens
        bounds = [0, 3, 4, 6, 7, 8, 9]
        steps = [model.step(tgt[:, a:b], cache) for a, b in zip(bounds, bounds[1:])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_cached_greedy_returns_the_tokens_of_recomputation():
    for seed in range(5):
        model = tiny(vocab_size=20)
        torch.manual_seed(seed)
        for p in model.parameters():  # random but sharp distributions, so greedy paths differ per input
            p.data.normal_(0, 0.5)
        src, _ = random_batch(batch=8, seed=seed)
        cached = greedy_decode(model, src, BOS, EOS, max_len=30, use_cache=True)
        full = greedy_decode(model, src, BOS, EOS, max_len=30, use_cache=False)
        assert torch.equal(cached.tokens, full.tokens)
        assert torch.equal(cached.finished, full.finished)
        torch.testing.assert_close(cached.scores, full.scores, rtol=1e-4, atol=1e-4)


class ScriptedModel(Seq2SeqTransformer):
    """A real model whose outputs follow a script: input ``r`` emits ``script[r][t]`` at step t.

    The row identity is per-row cache state (``cache.rows``), so it follows the decoders' row
    reordering (beams) and the dropping of finished rows. ``script[r][t]`` may also be a dict
    ``{token: logit}``.
    """

    def __init__(self, script: list[list]) -> None:
        super().__init__(
            tiny_config(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=16, max_positions=32)
        )
        self.script = script

    def prefill(self, src, max_len, static=False, compile=False):
        cache = super().prefill(src, max_len, static, compile)
        cache.rows["script_row"] = torch.arange(src.shape[0])
        return cache

    def step(self, tokens, cache):
        step = cache.length
        cache.advance(tokens.shape[1])
        logits = torch.zeros(tokens.shape[0], 1, self.cfg.vocab_size)
        for row, script_row in enumerate(cache.rows["script_row"].tolist()):
            entry = self.script[script_row][min(step, len(self.script[script_row]) - 1)]
            for token, value in entry.items() if isinstance(entry, dict) else [(entry, 5.0)]:
                logits[row, 0, token] = value
        return logits


def test_greedy_stops_after_eos_and_pads_finished_rows():
    script = [[5, EOS], [6, 7, 8, EOS], [9, 9, 9, 9, 9, 9]]  # rows finish at steps 2, 4 and never
    out = greedy_decode(ScriptedModel(script).eval(), torch.full((3, 4), 3), BOS, EOS, max_len=6)
    assert out.tokens.tolist() == [[5, EOS, PAD, PAD, PAD, PAD], [6, 7, 8, EOS, PAD, PAD], [9] * 6]
    assert out.finished.tolist() == [True, True, False]


def test_greedy_never_emits_padding_or_bos():
    script = [[PAD, 5, EOS], [BOS, BOS, EOS]]  # the preferred tokens are invalid; the runner-up wins
    out = greedy_decode(ScriptedModel(script).eval(), torch.full((2, 4), 3), BOS, EOS, max_len=5)
    assert out.tokens[:, 0].tolist() == [EOS, EOS]  # all other logits tie at 0: the lowest valid id, EOS


def test_tiny_model_overfits_one_batch():
    model = tiny(d_model=64, d_ff=128).train()
    src, tgt = random_batch(batch=8, tgt_len=8)
    tgt_in = torch.cat([torch.full((8, 1), BOS), tgt], dim=1)
    tgt_out = torch.cat([tgt, torch.full((8, 1), EOS)], dim=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    decoded = greedy_decode(model.eval(), src, BOS, EOS, max_len=12)
    assert torch.equal(decoded.tokens[:, :9], tgt_out)


def _copy_batch(g: torch.Generator, n: int = 32, width: int = 8):
    """Copy task: the target repeats the source (4 to ``width`` tokens), then EOS."""
    lengths = torch.randint(4, width + 1, (n, 1), generator=g)
    src = torch.randint(3, 20, (n, width), generator=g).masked_fill(torch.arange(width) >= lengths, PAD)
    tgt = torch.cat([src, torch.full((n, 1), PAD)], 1).scatter(1, lengths, EOS)
    return src, torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], 1), tgt


def test_learned_positions_learn_to_copy_unseen_sequences():
    """Position information must be strong enough from the start: 150 steps teach copying.

    With positions initialised as small as the token embeddings (std d_model**-0.5, ~8x below the
    scaled tokens) the same budget gave 44 % on held-out sequences; at token scale it gives 100 %.
    """
    model = tiny(d_model=64, d_ff=128).train()
    assert 0.8 < model.pos.weight.std().item() < 1.2
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        src, tgt_in, tgt = _copy_batch(g)
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), tgt.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    src, _, tgt = _copy_batch(torch.Generator().manual_seed(1), n=200)
    out = greedy_decode(model.eval(), src, BOS, EOS, max_len=9).tokens
    exact = (out[:, :9].eq(tgt) | tgt.eq(PAD)).all(1).float().mean().item()
    assert exact >= 0.95


def test_tied_embeddings_share_storage():
    model = tiny(tie_embeddings=True)
    assert model.lm_head.weight.data_ptr() == model.embed.weight.data_ptr()
    model = tiny(tie_embeddings=False)
    assert model.lm_head.weight.data_ptr() != model.embed.weight.data_ptr()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("d_model", 30, "model.d_model=30 must be positive and divisible by model.n_heads=4"),
        ("positions", "rotary", "model.positions='rotary' is not a position scheme"),
        ("dropout", 1.5, "model.dropout=1.5 must be in"),
        ("n_decoder_layers", 0, "model.n_decoder_layers=0"),
    ],
)
def test_bad_model_values_name_the_key(field, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        tiny(**{field: value})


def test_too_long_sequence_is_a_clear_error():
    model = tiny(max_positions=8)
    with pytest.raises(ValueError, match="model.max_positions=8"):
        model(torch.ones(1, 9, dtype=torch.long) * 3, torch.ones(1, 2, dtype=torch.long) * 3)


# ------------------------------------------------------------- oneDNN inference path of symlit.models.linear.Linear
needs_onednn = pytest.mark.skipif(not linear_module._onednn_available(), reason="torch without oneDNN")


@needs_onednn
@pytest.mark.parametrize("activation", ["none", "gelu", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_computes_what_f_linear_computes(activation, bias):
    torch.manual_seed(0)
    layer = Linear(24, 40, bias=bias)
    x = torch.randn(5, 7, 24)  # 35 rows: enough for the oneDNN path
    expected = F.linear(x, layer.weight, layer.bias)
    expected = {"none": expected, "gelu": F.gelu(expected), "relu": F.relu(expected)}[activation]
    with torch.no_grad():
        got = layer(x, activation)
    assert layer.weight in linear_module._packed_weights  # it took the oneDNN path
    torch.testing.assert_close(got, expected)


@needs_onednn
def test_onednn_linear_follows_weight_updates():
    torch.manual_seed(0)
    layer, x = Linear(16, 16), torch.randn(32, 16)
    with torch.no_grad():
        layer(x)  # packs the weight
        layer.weight.mul_(2.0)  # an in-place update (optimizer step, load_state_dict)
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
        layer.weight = torch.nn.Parameter(torch.randn(16, 16))  # a new tensor
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_linear_trains_through_autograd():
    torch.manual_seed(0)
    layer, x = Linear(16, 8), torch.randn(32, 16)
    layer(x).sum().backward()
    torch.testing.assert_close(layer.weight.grad, x.sum(0).expand(8, 16))


def test_feed_forward_keeps_dropout_in_training_mode_without_autograd():
    torch.manual_seed(0)
    ff, x = FeedForward(16, 32, dropout=0.5, activation="gelu"), torch.randn(32, 16)
    with torch.no_grad():
        dropped = ff.train()(x)
        kept = ff.eval()(x)
    assert not torch.allclose(dropped, kept)


@needs_onednn
@pytest.mark.parametrize(
    "layers",
    [
        {"_target_": "symlit.models.seq2seq.Seq2SeqTransformer", "n_encoder_layers": 2, "n_decoder_layers": 2},
        {"_target_": "symlit.models.causal.CausalTransformer", "n_layers": 2},
    ],
)
def test_greedy_tokens_are_the_same_with_and_without_onednn(layers, monkeypatch):
    torch.manual_seed(0)
    cfg = {"d_model": 32, "n_heads": 4, "d_ff": 64, "dropout": 0.0, "max_positions": 64, **layers}
    model = build_model(cfg, vocab_size=20, pad_id=PAD).eval()
    src, _ = random_batch(batch=32, src_len=9, seed=3)
    with_onednn = greedy_decode(model, src, bos_id=BOS, eos_id=EOS, max_len=12)
    assert model.lm_head.weight in linear_module._packed_weights
    monkeypatch.setattr(linear_module, "ONEDNN_INFERENCE", False)
    without = greedy_decode(model, src, bos_id=BOS, eos_id=EOS, max_len=12)
    assert torch.equal(with_onednn.tokens, without.tokens)
    torch.testing.assert_close(with_onednn.scores, without.scores)


@needs_onednn
def test_linear_falls_back_to_f_linear_when_onednn_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no such kernel in this build")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken)
    monkeypatch.setattr(linear_module, "ONEDNN_INFERENCE", True)
    torch.manual_seed(0)
    layer, x = Linear(16, 8), torch.randn(32, 16)
    with torch.no_grad(), pytest.warns(UserWarning, match="oneDNN linear failed"):
        got = layer(x, "gelu")
    torch.testing.assert_close(got, F.gelu(F.linear(x, layer.weight, layer.bias)))
    assert not linear_module.ONEDNN_INFERENCE


@needs_onednn
def test_linear_frees_its_packed_weight_in_training_mode():
    torch.manual_seed(0)
    layer, x = Linear(16, 8), torch.randn(32, 16)
    with torch.no_grad():
        layer.eval()(x)
    assert layer.weight in linear_module._packed_weights
    layer.train()
    assert layer.weight not in linear_module._packed_weights


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_feed_forward_in_eval_mode_applies_its_own_activation(activation):
    torch.manual_seed(0)
    ff, x = FeedForward(16, 32, dropout=0.1, activation=activation).eval(), torch.randn(32, 16)
    act = F.gelu if activation == "gelu" else F.relu
    expected = F.linear(act(F.linear(x, ff[0].weight, ff[0].bias)), ff[3].weight, ff[3].bias)
    with torch.no_grad():
        torch.testing.assert_close(ff(x), expected)
