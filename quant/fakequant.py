"""Quantization-aware model: torch, float64, whose forward pass IS Contract 2's arithmetic.

Every tensor passed between layers holds integers (activation codes) in float64, which
represents them exactly (all values stay far below 2**53).  A weight layer computes

* weight codes (binary -1/+1, ternary -1/0/+1 after pruning, intN symmetric) and their
  per-channel scale ``s_w[c]``;
* ``bias_q[c] = round(bias[c] / (s_in * s_w[c]))``;
* ``acc = conv(a, codes) + bias_q`` - exact integers;
* ``(M, S) = requant_constants(s_in * s_w / s_out)`` (fxpmath) and
  ``y = clamp(floor((acc * M + 2**(S-1)) / 2**S), lo, hi)`` - exact, equal to the integer
  reference model's arithmetic shift;
* the classifier returns ``z = acc * M`` with ``M / 2**S`` = ``s_w[c] / max(s_w)``.

Gradients use straight-through estimators: each rounded quantity is written
``exact.detach() + (smooth - smooth.detach())``, whose VALUE is exactly ``exact`` (x - x
is exactly 0 in IEEE arithmetic) and whose gradient is that of the smooth surrogate
(the unrounded, unclamped-inside-range expression).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quant import weight_modes
from quant.fixedpoint import requant_constants
from quant.reference import IntLayer

DEFAULT_MBITS = 12


def ste(exact: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """Value of ``exact``, gradient of ``smooth``."""
    return exact.detach() + (smooth - smooth.detach())


def act_range(act: str, bits: int) -> tuple[int, int]:
    """Output range of a requantized activation: unsigned after ReLU, signed otherwise."""
    if act == "relu":
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def pool_padding(spec) -> tuple[int, int]:
    """A max-pool's padding ``(before, after)``: the plan's ``pad_before``/``pad_after``
    (Darknet: ``pad // 2`` before, the rest after), filled with the smallest value of the
    input's range as in :func:`quant.reference.maxpool`."""
    pad = getattr(spec, "pad", 0) or 0
    before = getattr(spec, "pad_before", pad // 2)
    return before, getattr(spec, "pad_after", pad - before)


def prune_mask(weight: torch.Tensor, sparsity: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the largest magnitudes, zero the smallest ``round(sparsity * n)`` (stable order).
    ``keep``: the current mask, whose kept weights rank above every dropped one.  A dropped
    weight's gradient is zero, so it holds its value from when it was dropped, often larger
    than the fine-tuned kept ones: ranked by that stale magnitude, a fine-tuned detector
    re-pruned at its own sparsity lost 37 validation mAP@0.5 points (docs/detect.md)."""
    flat = weight.detach().abs().flatten()
    if keep is not None:
        flat = torch.where(keep.flatten() > 0, flat + flat.max() + 1.0, flat)
    drop = int(round(float(sparsity) * flat.numel()))
    mask = torch.ones_like(flat)
    if drop:
        order = torch.from_numpy(np.argsort(flat.numpy(), kind="stable"))
        mask[order[:drop]] = 0
    return mask.view_as(weight)


class QLayer(nn.Module):
    """One conv/dense layer with exact integer forward (see module docstring)."""

    def __init__(self, spec, weight, bias, *, s_in: float, s_out: float | None,
                 final: bool, mbits: int = DEFAULT_MBITS):
        super().__init__()
        self.spec, self.final, self.mbits = spec, final, mbits
        self.s_in, self.s_out = float(s_in), s_out
        self.weight = nn.Parameter(weight.detach().clone().double())
        self.bias = nn.Parameter(bias.detach().clone().double())
        self.register_buffer("mask", torch.ones_like(self.weight))
        if not final:
            self.lo, self.hi = act_range(spec.act, spec.act_bits)
        self.slope = spec.slope if spec.act == "leaky" else None
        self.sparsity = 0.0

    def set_sparsity(self, sparsity: float) -> None:
        self.sparsity = float(sparsity)
        self.mask.copy_(prune_mask(self.weight, sparsity, self.mask))

    # -- weights ---------------------------------------------------------------------
    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(codes with STE, s_w per output channel)``."""
        w = self.weight * self.mask
        axes = tuple(range(1, w.dim()))
        mode = self.spec.weights
        with torch.no_grad():
            if mode == "binary":
                scale = w.abs().mean(axes)
            elif mode == "ternary":
                kept = self.mask.sum(axes).clamp(min=1)
                scale = w.abs().sum(axes) / kept
            else:
                scale = w.abs().amax(axes) / weight_modes.value_range(*weight_modes.parse(mode))[1]
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        shape = (-1,) + (1,) * (w.dim() - 1)
        scaled = w / scale.view(shape)
        with torch.no_grad():
            if mode == "binary":
                codes = torch.where(self.weight >= 0, 1.0, -1.0).double()
            elif mode == "ternary":
                codes = torch.sign(self.weight) * self.mask
            else:
                qmax = weight_modes.value_range(*weight_modes.parse(mode))[1]
                codes = torch.clamp(torch.round(scaled), -qmax, qmax) * self.mask
        return ste(codes, scaled), scale

    def constants(self, scale: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
        """``(M, M_neg, S)`` for the current weight scales."""
        s_w = scale.detach().numpy()
        if self.final:
            m, s = requant_constants(s_w / s_w.max(), self.mbits)
            return m, m, s
        m, s = requant_constants(self.s_in * s_w / self.s_out, self.mbits)
        if self.slope is None:
            return m, m, s
        m_neg, _ = requant_constants(self.slope * self.s_in * s_w / self.s_out, self.mbits, s)
        return m, m_neg, s

    # -- forward ---------------------------------------------------------------------
    def accumulate(self, a):
        codes, scale = self.weight_codes()
        b = self.bias / (self.s_in * scale)
        bias_q = ste(torch.round(b), b)
        if self.spec.type == "conv":
            acc = F.conv2d(a, codes, bias_q, self.spec.stride, self.spec.pad)
        else:
            acc = F.linear(a.flatten(1), codes, bias_q)
        return acc, codes, bias_q, scale

    def forward(self, a):
        acc, _, _, scale = self.accumulate(a)
        m, m_neg, s = self.constants(scale)
        view = (1, -1) + (1,) * (acc.dim() - 2)
        m_t = torch.from_numpy(m.astype(np.float64)).view(view)
        if self.final:
            self.logit_scale = self.s_in * float(scale.max()) / 2 ** s
            self.out_scale = self.output_scale(scale.detach().numpy(), m)
            return acc * m_t
        mult = torch.where(acc < 0, torch.from_numpy(m_neg.astype(np.float64)).view(view), m_t)
        exact = torch.clamp(torch.floor((acc * mult + 2 ** (s - 1)) / 2 ** s), self.lo, self.hi)
        smooth = torch.clamp(acc * mult / 2 ** s, self.lo, self.hi)
        return ste(exact, smooth)

    def output_scale(self, s_w: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The last layer's absolute output scale per channel: the real value of one
        unit of ``z[c] = acc[c] * M[c]`` is ``s_in * s_w[c] / M[c]`` (0 where ``M`` is 0:
        that channel's ``z`` is always 0)."""
        m = m.astype(np.float64)
        return np.where(m > 0, self.s_in * s_w / np.where(m > 0, m, 1.0), 0.0)

    # -- export ----------------------------------------------------------------------
    def to_int_layer(self) -> IntLayer:
        spec = self.spec
        with torch.no_grad():
            _, codes, bias_q, scale = self.accumulate(torch.zeros(1, *self.input_dims(), dtype=torch.float64))
        m, m_neg, s = self.constants(scale)
        W = codes.detach().round().long()
        if spec.type == "conv":                        # (Cout, Cin, K, K) -> (Cout, K*K*Cin)
            W = W.permute(0, 2, 3, 1)
        elif spec.in_shape[1]:                         # dense after a map: (c, y, x) -> (y, x, c)
            c, h, w = spec.in_shape
            W = W.view(spec.out, c, h, w).permute(0, 2, 3, 1)
        lo, hi = (0, 0) if self.final else (self.lo, self.hi)
        return IntLayer(type=spec.type, name=spec.name, in_shape=tuple(spec.in_shape),
                        out_shape=tuple(spec.out_shape), k=spec.k or 1, stride=spec.stride,
                        pad=spec.pad, weights=spec.weights, act=spec.act,
                        act_bits=None if self.final else spec.act_bits, final=self.final,
                        S=int(s), lo=lo, hi=hi,
                        W=W.reshape(spec.out, -1).numpy().astype(np.int64),
                        bias=bias_q.detach().round().long().numpy(),
                        M=m, M_neg=m_neg)

    def input_dims(self):
        c, h, w = self.spec.in_shape
        return (c, h, w) if h else (c,)


class QuantNet(nn.Module):
    """The whole quantized network: uint8 NCHW images (as float64) in, ``z`` out."""

    def __init__(self, specs, qlayers: dict):
        super().__init__()
        self.specs = list(specs)
        self.qlayers = nn.ModuleDict(qlayers)

    def forward(self, x):
        lo = 0                                   # the uint8 image's smallest value
        for spec in self.specs:
            if spec.type == "maxpool":
                before, after = pool_padding(spec)
                x = F.max_pool2d(F.pad(x, (before, after, before, after), value=lo),
                                 spec.k, spec.stride)
            else:
                layer = self.qlayers[spec.name]
                x = layer(x)
                lo = None if layer.final else layer.lo
        return x

    def logits(self, x):
        """``z`` scaled to real logits (for the training loss; argmax unchanged)."""
        z = self(x)
        return z * self.qlayers[self.specs[-1].name].logit_scale

    def real_outputs(self, x):
        """The last layer's outputs in real units, ``z[c] * out_scale[c]`` (a detection
        head's loss and decoding need absolute values, not only their order)."""
        z = self(x)
        scale = torch.from_numpy(self.qlayers[self.specs[-1].name].out_scale)
        return z * scale.view((1, -1) + (1,) * (z.dim() - 2))

    def head_scale(self) -> np.ndarray:
        """``out_scale`` of the last layer for the current weights."""
        head = self.qlayers[self.specs[-1].name]
        with torch.no_grad():
            _, _, _, scale = head.accumulate(torch.zeros(1, *head.input_dims(), dtype=torch.float64))
        m, _, _ = head.constants(scale)
        return head.output_scale(scale.detach().numpy(), m)

    def weight_layers(self):
        return [self.qlayers[s.name] for s in self.specs if s.type != "maxpool"]

    def int_layers(self) -> list[IntLayer]:
        out = []
        for spec in self.specs:
            if spec.type == "maxpool":
                c, h, w = spec.in_shape
                before, after = pool_padding(spec)
                out.append(IntLayer(type="maxpool", name=spec.name, in_shape=(c, h, w),
                                    out_shape=tuple(spec.out_shape), k=spec.k, stride=spec.stride,
                                    pad=before, pad_end=after))
            else:
                out.append(self.qlayers[spec.name].to_int_layer())
        return out
