"""Position schemes, one module for both architectures (``model.positions``).

A scheme is a base scheme, optionally preceded by ``abacus+`` or ``coupled+``:

========================  =============================================  =====================================
``model.positions``       what it does                                   reference
========================  =============================================  =====================================
``learned``               a learned vector per position, added to the     Vaswani et al. 2017 (as in BERT/GPT)
                          token embedding
``sinusoidal``            fixed sines and cosines, added                  Vaswani et al. 2017
``rope``                  queries and keys of self-attention rotated by   Su et al. 2021 (RoFormer)
                          their position
``alibi``                 a per-head linear penalty on the distance       Press et al. 2022 (ALiBi)
                          between query and key, added to the scores
``none``                  nothing (NoPE; decoder-only: causal masking     Kazemnejad et al. 2023
                          is the only source of order)
``abacus[+base]``         a learned vector per digit's index within its   McLeish et al. 2024 (Abacus)
                          number, added; ``abacus`` = ``abacus+none``
``coupled[+base]``        a learned vector per digit's significance       Cho et al. 2024 (position coupling)
                          (units = 1), the same in operands and result,
                          added; ``coupled`` = ``coupled+none``
``abacus_rotary``,        the same digit indices as rotary angles of      relative form of the two above
``coupled_rotary``        queries and keys instead of added vectors
                          (decoder-only; base ``none``, ``learned``,
                          ``sinusoidal`` or ``alibi``)
``abacus_alibi``,         the same digit indices as a learned per-head    ALiBi (Press et al. 2022) over the
``coupled_alibi``         linear penalty on the distance from the key     digit indices of the two above
                          digit's index to the query's plus a learned
                          shift (decoder-only; any base scheme)
========================  =============================================  =====================================

Positions are indices per row, ``(T,)`` shared by all rows or ``(B, T)``: the decoder-only model
counts only non-padding tokens, so a row's positions are contiguous across the padding between
its source and the separator. Cross-attention (encoder-decoder) uses no positions.

**Abacus.** Which tokens are digits comes from the task (:meth:`symlit.tasks.base.Task.digit_tokens`)
through the tokenizer (``digit_ids``). A digit's index is its place in the run of consecutive
digit tokens it belongs to, counted from 1 at the first *written* digit (the least significant one
with ``encoding=reversed``); every other token gets index 0, which embeds to zero. In training,
each sequence's indices are shifted by a random offset in ``[0, abacus_max_offset]`` (the same for
all its numbers, source and target), so that numbers longer than any seen in training land on
trained embeddings.

**Position coupling.** The same table, indexed by a digit's *significance* instead of its place
in the run: the units digit of every number gets 1, the tens digit 2, and so on, whichever
direction the number is written in, so digits that are added together share an index (Cho et
al. 2024 couple operands and result this way; they also give operators an index, here they get
0 as in Abacus). For numbers written least significant digit first (``encoding=reversed``, or the
result with ``reverse_output``) significance and place are the same, so ``coupled`` and ``abacus``
give the same indices. A source written most significant digit first is counted from each
number's last digit; a result must be written least significant digit first, since its length is
unknown while it is decoded. The task says how its numbers are written
(:meth:`symlit.tasks.base.Task.digits_lsb_first`).

**Rotary digit indices** (``abacus_rotary``, ``coupled_rotary``). Learned index vectors must learn,
for every pair of indices, whether the two digits belong together; a pair that never occurs in one
training sequence (indices farther apart than the longest training number) is never trained, which
limits how far a model generalises in length. Rotating queries and keys by their digit index (as
RoPE rotates by position; other tokens get index 0, no rotation) makes a score depend on the
*difference* of the indices only, and a head whose query matches its key scores highest at
difference 0 (or at the difference it learned, such as 1 for the carry) at any index. Rotations
are periodic: at ``model.digit_rotary_scale=1`` the fastest frequency repeats every 2π ≈ 6.3
indices; a smaller scale multiplies every period by its inverse. Only the
decoder-only model has them: the encoder-decoder model lines up source and result digits in
cross-attention, which has no positions.

**Digit ALiBi** (``abacus_alibi``, ``coupled_alibi``). Rotations are periodic, so a rotary score at
an index difference never seen in training can be as high as at the trained one. A linear
penalty is not: head ``h`` adds ``-m_h * |k - q - c_h|`` to the score of a query with digit index
``q`` for a key digit with index ``k`` (other keys get 0), with a learned slope ``m_h > 0`` and
shift ``c_h`` (initialised evenly over ``[-1, 2]``: the token before a result digit has the index
of the digit before it, so the digits it adds sit at ``c = 1`` and the carry's at ``c = 0``; with
4 heads the shifts start on both, with 2 they start at -1 and 2, off both). One set of slopes and
shifts serves every layer. A key farther than any seen in training only scores lower. Queries
that are not digits have index 0; where the units digit has index 1 (``coupled``, and ``abacus``
with every number least significant digit first), that is the index just before it, and the token
that predicts the units digit of the result finds the operands' units digits at ``c = 1`` as every
later one does. Scores depend on index differences only, so the random training offset
(``model.abacus_max_offset``) has nothing to train and is not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

BASE_SCHEMES = ("learned", "sinusoidal", "rope", "alibi", "none")
ADDITIVE = ("learned", "sinusoidal")


DIGIT_SCHEMES = ("abacus", "coupled", "abacus_rotary", "coupled_rotary", "abacus_alibi", "coupled_alibi")


def parse_scheme(name: str) -> tuple[str, str]:
    """``(digits, base)`` of a ``model.positions`` value: ``digits`` is one of :data:`DIGIT_SCHEMES` or
    ``""`` (no digit indices); raises ``ValueError`` naming the key."""
    digits, _, base = name.rpartition("+") if "+" in name else ("", "", name)
    if name in DIGIT_SCHEMES:
        return name, "none"
    if digits not in ("", *DIGIT_SCHEMES) or base not in BASE_SCHEMES:
        choices = ", ".join([*BASE_SCHEMES, *DIGIT_SCHEMES, *(f"{d}+{b}" for d in DIGIT_SCHEMES for b in BASE_SCHEMES)])
        raise ValueError(f"model.positions={name!r} is not a position scheme; choose one of {choices}")
    if digits.endswith("_rotary") and base == "rope":
        raise ValueError(
            f"model.positions={name!r} rotates queries and keys twice; use {digits} (= {digits}+none) "
            f"or {digits}+learned, +sinusoidal or +alibi"
        )
    return digits, base


def sinusoidal_table(n_positions: int, d_model: int) -> Tensor:
    """The fixed position encodings of Vaswani et al. (2017)."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


def alibi_slopes(n_heads: int) -> Tensor:
    """Per-head slopes of Press et al. (2022): a geometric sequence from ``2**(-8/n)`` (for ``n`` a power
    of two; otherwise those of the next lower power, then every other one of the next higher)."""

    def powers(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    low = 2 ** math.floor(math.log2(n_heads))
    slopes = powers(low) + powers(2 * low)[0::2][: n_heads - low]
    return torch.tensor(slopes)


def abacus_indices(digits: Tensor, carry: Tensor | None = None) -> Tensor:
    """Index of every token in its run of digits, from 1; 0 for other tokens.

    ``digits (B, T)`` marks digit tokens. ``carry (B,)`` is the index of the token before the
    first one (incremental decoding: a run may continue from the previous step).
    """
    d = digits.long()
    count = d.cumsum(1)  # (B, T)
    if carry is not None:
        count = count + carry[:, None]
    restart = (count * (1 - d)).cummax(1).values  # the count at the latest non-digit so far
    return (count - restart) * d


@dataclass
class AttentionPositions:
    """What self-attention needs to know about positions in one call (``None`` when the scheme needs nothing).

    ``rope``: cosines and sines ``(B|1, 1, T, Dh / 2)`` at the positions of the new tokens.
    ``bias``: ALiBi and digit-ALiBi scores ``(B|1, H, T, L)`` between the new tokens and every key.
    """

    rope: tuple[Tensor, Tensor] | None = None
    bias: Tensor | None = None


def rotate(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotary embedding of ``x (B, H, T, Dh)``: pairs ``(x[i], x[i + Dh/2])`` rotated by ``position * freq_i``."""
    cos, sin = rope
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x)


class Positions(nn.Module):
    """The position scheme of a model: what is added to the embeddings, and what attention applies.

    Parameters keep the names of the models before this module existed (``pos.weight`` for
    learned positions), so old checkpoints load.
    """

    def __init__(
        self,
        scheme: str,
        d_model: int,
        n_heads: int,
        max_positions: int,
        digit_ids: tuple[int, ...] = (),
        vocab_size: int = 0,
        abacus_max_digits: int = 32,
        abacus_max_offset: int = 0,
        digits_lsb_first: tuple[bool, bool] = (False, False),
        digit_rotary_scale: float = 1.0,
    ) -> None:
        super().__init__()
        digits, self.base = parse_scheme(scheme)
        self.abacus = bool(digits)  # digit indices, Abacus or coupled
        self.coupled = digits.startswith("coupled")
        self.digit_rotary = digits.endswith("_rotary")  # indices as rotary angles, not added vectors
        self.digit_rotary_scale = digit_rotary_scale
        self.digit_alibi = digits.endswith("_alibi")  # a learned linear penalty on index distance
        self.digit_vectors = digits in ("abacus", "coupled")  # indices look up a table of added vectors
        self.source_lsb_first = digits_lsb_first[0]
        if self.coupled and not digits_lsb_first[1]:
            raise ValueError(
                f"model.positions={scheme!r} needs the result written least significant digit first "
                "(its significance is unknown while it is decoded): set data.task.reverse_output=true "
                "or data.task.encoding=reversed"
            )
        self.max_positions = max_positions
        if self.base == "learned":
            # Token embeddings are scaled by sqrt(d_model) to unit size per element; positions start at
            # the same size. Initialised like the tokens (std d_model**-0.5) they would start ~11x
            # smaller at d_model 128, and position-dependent tasks (copying, digit arithmetic) then
            # learn several times more slowly (a copy task: 600 steps instead of 150).
            self.weight = nn.Parameter(torch.randn(max_positions, d_model))
        elif self.base == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(max_positions, d_model), persistent=False)
        elif self.base == "alibi":
            self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)
        if self.base == "rope" or self.digit_rotary:
            head = d_model // n_heads
            if head % 2:
                raise ValueError(f"model.positions={scheme!r} needs an even head width; d_model / n_heads = {head}")
            inv_freq = 10000.0 ** (-torch.arange(0, head, 2, dtype=torch.float32) / head)
            self.register_buffer("inv_freq", inv_freq, persistent=False)
        if self.abacus:
            if not digit_ids:
                raise ValueError(
                    f"model.positions={scheme!r} needs digit tokens, and the task declares none "
                    "(Task.digit_tokens(); arithmetic has them with encoding=digits or reversed)"
                )
            self.max_offset = abacus_max_offset
            self.max_index = abacus_max_digits + abacus_max_offset
            if self.digit_alibi:
                # slope exp(0) = 1 per index of distance; shifts spread over the offsets a sum needs
                self.digit_log_slope = nn.Parameter(torch.zeros(n_heads))
                self.digit_shift = nn.Parameter(torch.linspace(-1.0, 2.0, n_heads))
            elif self.digit_vectors:
                self.digits = nn.Embedding(self.max_index + 1, d_model, padding_idx=0)
                nn.init.normal_(self.digits.weight, std=1.0)  # token scale, as for learned positions
                with torch.no_grad():
                    self.digits.weight[0].zero_()
            is_digit = torch.zeros(vocab_size, dtype=torch.bool)
            is_digit[list(digit_ids)] = True
            self.register_buffer("is_digit", is_digit, persistent=False)

    # ---------------------------------------------------------------- additive part
    def check_length(self, positions: Tensor) -> None:
        """One-line error when ``positions`` run past a table-based scheme's ``max_positions``."""
        if self.base in ADDITIVE and positions.numel() and int(positions.max()) >= self.max_positions:
            raise ValueError(
                f"sequence of length {int(positions.max()) + 1} exceeds model.max_positions={self.max_positions}"
            )

    def draw_offset(self, batch: int, device: torch.device) -> Tensor | None:
        """Random Abacus offsets ``(B,)`` for a training batch (``None`` when off)."""
        if not self.abacus or not self.training or not self.max_offset or self.digit_alibi:
            return None  # digit ALiBi depends on index differences only: an offset trains nothing
        return torch.randint(0, self.max_offset + 1, (batch,), device=device)

    def digit_indices(
        self,
        tokens: Tensor,
        carry: Tensor | None = None,
        offset: Tensor | None = None,
        generated: bool = False,
        source: bool = False,
    ) -> Tensor:
        """Abacus or coupled indices ``(B, T)`` of ``tokens``, shifted by ``offset (B,)`` (see the module
        docstring).

        ``generated``: the tokens are the model's own output (a decoding step). A run of generated
        digits longer than the table (Abacus, coupled) then reuses its last index instead of failing:
        an untrained or wrong model may write any number of digits, and that is a wrong answer, not a
        config error. Rotary and ALiBi digit indices have no table and no limit.
        ``source``: the tokens are whole sources (coupled positions count a number written most
        significant digit first from its end).
        """
        is_digit = self.is_digit[tokens]  # (B, T)
        if source and self.coupled and not self.source_lsb_first:
            index = abacus_indices(is_digit.flip(1)).flip(1)  # each run counted from its last digit
        else:
            index = abacus_indices(is_digit, carry)
        if offset is not None:
            index = torch.where(index > 0, index + offset[:, None], index)
        if generated and self.digit_vectors:
            index = index.clamp(max=self.max_index)
        return index

    def embed(self, positions: Tensor, digit_index: Tensor | None = None) -> Tensor | float:
        """What is added to the scaled token embeddings: ``(B|1, T, D)``, or ``0.0`` for none."""
        if self.base == "learned":
            out: Tensor | float = self.weight[positions]
        elif self.base == "sinusoidal":
            out = self.table[positions]
        else:
            out = 0.0
        if digit_index is not None and self.digit_vectors:
            if digit_index.numel() and int(digit_index.max()) > self.max_index:
                raise ValueError(
                    f"a number of {int(digit_index.max()) - self.max_offset} digits exceeds "
                    f"model.abacus_max_digits={self.max_index - self.max_offset}; raise it"
                )
            out = out + self.digits(digit_index)
        return out

    # ---------------------------------------------------------------- attention part
    def attention(
        self,
        q_pos: Tensor,
        k_pos: Tensor | None = None,
        digit_index: Tensor | None = None,
        key_digit: Tensor | None = None,
    ) -> AttentionPositions | None:
        """Rotary angles for queries (and keys) at ``q_pos (B|1, T)``, or at their ``digit_index (B, T)``
        with a rotary digit scheme; ALiBi scores against ``k_pos (B|1, L)``, and digit-ALiBi scores
        against the keys' digit indices ``key_digit (B, L)`` (both default to the queries' own:
        attention within one chunk)."""
        rope = None
        if self.digit_rotary:
            if digit_index is None:
                raise ValueError("a rotary digit scheme needs the tokens' digit indices")
            scaled = digit_index[:, None, :, None] * self.digit_rotary_scale  # (B, 1, T, 1)
            angles = scaled.float() * self.inv_freq  # (B, 1, T, Dh/2)
            rope = (angles.cos(), angles.sin())
        elif self.base == "rope":
            angles = q_pos[:, None, :, None].float() * self.inv_freq  # (B|1, 1, T, Dh/2)
            rope = (angles.cos(), angles.sin())
        bias = None
        if self.base == "alibi":
            k_pos = q_pos if k_pos is None else k_pos
            distance = (q_pos[:, None, :, None] - k_pos[:, None, None, :]).abs().float()  # (B|1, 1, T, L)
            bias = -self.slopes[None, :, None, None] * distance  # (B|1, H, T, L)
        if self.digit_alibi:
            if digit_index is None:
                raise ValueError("a digit-ALiBi scheme needs the tokens' digit indices")
            bias = self.digit_bias(digit_index, digit_index if key_digit is None else key_digit) + (
                0.0 if bias is None else bias
            )
        return AttentionPositions(rope=rope, bias=bias) if rope is not None or bias is not None else None

    def digit_bias(self, query: Tensor, key: Tensor) -> Tensor:
        """Digit-ALiBi scores ``(B, H, T, L)``: ``-m_h * |key - query - c_h|`` where the key is a digit
        (index > 0), 0 elsewhere, for digit indices ``query (B, T)`` and ``key (B, L)``."""
        gap = (key[:, None, None, :] - query[:, None, :, None]).float()  # (B, 1, T, L)
        shift = self.digit_shift[None, :, None, None]  # (1, H, 1, 1)
        slope = self.digit_log_slope.exp()[None, :, None, None]  # (1, H, 1, 1)
        penalty = -slope * (gap - shift).abs()  # (B, H, T, L)
        return penalty * (key > 0)[:, None, None, :]
