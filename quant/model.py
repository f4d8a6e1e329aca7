"""The fp32 torch model built from a plan's layers, and batch-norm folding.

Layers are :class:`cnn_ip.plan.Layer`-like objects (``type``, ``out``, ``k``, ``stride``,
``pad``, ``act``, ``slope``, ``bn``, ``in_shape``, ``name``).  The model takes float
NCHW input ``x_u8 / 255`` (the real value of the 8-bit input) and returns logits.
:func:`layers_from_module` goes the other way, so users with a torch ``nn.Sequential``
of supported layers are not tied to YAML.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from quant import weight_modes
from quant.fakequant import pool_padding


class FloatLayer(nn.Module):
    """conv (+ batch norm) + activation, or max-pool, or dense + activation."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        cin = spec.in_shape[0] * max(1, spec.in_shape[1] * spec.in_shape[2])
        if spec.type == "conv":
            self.op = nn.Conv2d(spec.in_shape[0], spec.out, spec.k, spec.stride, spec.pad)
            self.bn = nn.BatchNorm2d(spec.out) if spec.bn else None
        elif spec.type == "dense":
            self.op = nn.Linear(cin, spec.out)
            self.bn = None
        else:
            self.op = nn.MaxPool2d(spec.k, spec.stride)
            self.bn = None
            # Darknet's split, as the integer reference pads; -inf so padding never wins
            # a window, which is what the integer model's smallest-value fill amounts to.
            self.pool_pad = pool_padding(spec)
        self.act = {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(spec.slope)}.get(spec.act, nn.Identity())

    def forward(self, x):
        if self.spec.type == "dense":
            x = x.flatten(1)
        elif self.spec.type == "maxpool" and any(self.pool_pad):
            before, after = self.pool_pad
            x = F.pad(x, (before, after, before, after), value=float("-inf"))
        x = self.op(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.spec.type == "maxpool" else self.act(x)


class FloatNet(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(FloatLayer(spec) for spec in layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def folded_parameters(layer: FloatLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's weight and bias (float64) with its batch norm folded in (eval statistics)."""
    weight = layer.op.weight.detach().double()
    bias = layer.op.bias.detach().double()
    if layer.bn is not None:
        bn = layer.bn
        gain = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * gain.view(-1, *([1] * (weight.dim() - 1)))
        bias = (bias - bn.running_mean.double()) * gain + bn.bias.detach().double()
    return weight, bias


def fp32_parameter_count(layers) -> int:
    """Parameters of the deployed fp32 model (batch norm folded: weights + biases)."""
    count = 0
    for spec in layers:
        if spec.type in ("conv", "dense"):
            fan_in = spec.in_shape[0] * (spec.k * spec.k if spec.type == "conv"
                                         else max(1, spec.in_shape[1] * spec.in_shape[2]))
            count += spec.out * fan_in + spec.out
    return count


def layers_from_module(module: nn.Module, input_shape, *, weights="int8", act_bits=8,
                       sparsity=0.0):
    """Plan-like layer specs from an ``nn.Sequential`` of Conv2d [BatchNorm2d] act, MaxPool2d,
    Flatten, Linear; every weight layer gets the given ``weights``/``act_bits``/``sparsity``.
    The last module group is the ``Linear`` classifier or a ``Conv2d`` head without an
    activation (a detector, ``quant.detect``).  Returns ``(specs, FloatNet)``
    with the module's parameters copied in."""
    mods = [m for m in module if not isinstance(m, nn.Flatten)]
    specs, shape, sources, i = [], tuple(input_shape), [], 0
    while i < len(mods):
        m = mods[i]
        bn = act = None
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                bn, i = mods[i + 1], i + 1
            if i + 1 < len(mods) and isinstance(mods[i + 1], (nn.ReLU, nn.LeakyReLU)):
                act, i = mods[i + 1], i + 1
        last = i == len(mods) - 1
        if isinstance(m, nn.Conv2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            h, w = ((shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
            spec = dict(type="conv", out=m.out_channels, k=k, stride=s, pad=p, bn=bn is not None)
            out_shape = (m.out_channels, h, w)
        elif isinstance(m, nn.Linear):
            spec = dict(type="dense", out=m.out_features, k=None, stride=1, pad=0, bn=False)
            out_shape = (m.out_features, 0, 0)
        elif isinstance(m, nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            spec = dict(type="maxpool", out=None, k=k, stride=s, pad=0, bn=False)
            out_shape = (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)
        else:
            raise ValueError(f"module: unsupported layer {type(m).__name__}")
        has_w = spec["type"] != "maxpool"
        act_name = ("leaky" if isinstance(act, nn.LeakyReLU) else "relu" if act else "none")
        specs.append(SimpleNamespace(
            **spec, name=f"{spec['type']}{len(specs)}", in_shape=shape, out_shape=out_shape,
            act=act_name if has_w else "none",
            slope=act.negative_slope if isinstance(act, nn.LeakyReLU) else 0.125,
            weights=weights if has_w else None,
            act_bits=None if (last or not has_w) else act_bits,
            sparsity=sparsity if has_w else 0.0, has_weights=has_w,
            wbits=weight_modes.parse(weights)[1] if has_w else None))
        sources.append((m, bn))
        shape, i = out_shape, i + 1
    net = FloatNet(specs)
    for layer, (m, bn) in zip(net.layers, sources):
        if not isinstance(m, nn.MaxPool2d):
            layer.op.load_state_dict(m.state_dict())
        if bn is not None:
            layer.bn.load_state_dict(bn.state_dict())
    return specs, net
