"""``Linear``: ``nn.Linear`` whose CPU inference runs on oneDNN's prepacked GEMM (the CPU fast path)."""

from __future__ import annotations

import functools
import os
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

ONEDNN_INFERENCE = os.environ.get("SYMLIT_ONEDNN", "1") != "0"
"""Run inference-time linear layers on CPU through oneDNN's prepacked fp32 GEMM (``SYMLIT_ONEDNN=0``
turns it off). Same arithmetic as ``F.linear`` up to fp32 rounding; how much faster it is depends on
the CPU (``experiments/README.md`` has the measurement)."""
ONEDNN_MIN_ROWS = 16  # below this many rows MKL's GEMM is faster than oneDNN's
_packed_weights: WeakIdKeyDictionary = WeakIdKeyDictionary()  # weight -> (version, oneDNN layout)


def _onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether :class:`Linear` may take the oneDNN path for ``x``: CPU fp32 inference without autograd,
    autocast or ``torch.compile`` (which packs weights its own way), and enough rows to pay."""
    return (
        ONEDNN_INFERENCE
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and x.numel() >= ONEDNN_MIN_ROWS * x.shape[-1]
        and _onednn_available()
    )


@functools.cache
def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) whose CPU inference runs on oneDNN.

    Without autograd, its weight is reordered once into oneDNN's blocked layout (again whenever the
    weight changes: a new tensor or an in-place update) and the product runs in oneDNN's fp32 GEMM,
    optionally fused with the activation that follows (``"gelu"``, exact, or ``"relu"``). Training,
    GPUs, autocast and compiled graphs use ``F.linear``. The packed copy (as large as the weight)
    lives until the layer is switched to training mode.
    """

    def train(self, mode: bool = True) -> Linear:
        if mode:  # training does not use the packed copy: free its memory until the next inference
            _packed_weights.pop(self.weight, None)
        return super().train(mode)

    def forward(self, x: Tensor, activation: str = "none") -> Tensor:
        if not _onednn(x, self.weight):
            y = F.linear(x, self.weight, self.bias)
            return y if activation == "none" else F.gelu(y) if activation == "gelu" else F.relu(y)
        key = (self.weight.data_ptr(), self.weight._version)
        packed = _packed_weights.get(self.weight)
        algorithm = "none" if activation == "gelu" else ""  # exact (erf) GELU
        try:
            if packed is None or packed[0] != key:
                packed = (key, torch.ops.mkldnn._reorder_linear_weight(self.weight, None))
                _packed_weights[self.weight] = packed
            return torch.ops.mkldnn._linear_pointwise(x, packed[1], self.bias, activation, [], algorithm)
        except RuntimeError as err:  # a oneDNN build without this kernel (e.g. some ARM builds)
            global ONEDNN_INFERENCE
            ONEDNN_INFERENCE = False
            warnings.warn(f"oneDNN linear failed ({err}); symlit uses F.linear from now on", stacklevel=2)
            return self.forward(x, activation)
