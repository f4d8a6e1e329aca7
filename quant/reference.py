"""The integer reference model: the golden model the hardware is checked against.

numpy ``int64`` only, no floats anywhere in the forward pass (docs/conventions.md Contract 2), in
the hardware's data order:

* feature maps are NHWC; the network input is uint8 ``(N, H, W, C)``;
* a conv layer's weights are the matrix ``W`` of shape ``(Cout, K*K*Cin)`` whose columns
  run in the reduction order ``(ky, kx, cin)`` (the line buffer's window order); padding
  feeds activation value 0;
* a dense layer after a conv/pool sees the map flattened in ``(y, x, c)`` order (raster,
  channels fastest: the order pixels stream in hardware);
* ``acc = bias[c] + sum(a * w)``; then per output channel
  ``y = clamp((acc * M[c] + (1 << (S-1))) >> S, lo, hi)`` with an arithmetic shift, where
  ``M_neg[c]`` replaces ``M[c]`` for negative ``acc`` (leaky ReLU; equal to ``M`` otherwise);
  ``lo, hi = 0, 2**A-1`` after ReLU and ``-2**(A-1), 2**(A-1)-1`` after leaky/none
  (those outputs are signed, see docs/quant.md);
* max-pooling works on the requantized integers; a padded pool pads with ``lo``, the
  smallest value of its input's range (0 after ReLU and for the uint8 image, -2**(A-1)
  after leaky/none), so padding never wins a window; ``pad`` cells go before (top, left)
  and ``pad_end`` cells (default ``pad``) after (bottom, right): Tiny-YOLOv2's last pool is
  k=2, stride 1, pad 0, pad_end 1, which keeps 13x13;
* the last layer (the classifier) outputs ``z[c] = acc[c] * M[c]``, unshifted and
  unclamped: ``M[c] / 2**S`` is its channel's weight scale relative to the largest, so
  ``z`` is proportional to the real logit and ``argmax(z)`` (first maximum) is the class.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class IntLayer:
    """One layer of the integer model.  ``in_shape``/``out_shape`` are (C, H, W)."""
    type: str                      # conv | maxpool | dense
    name: str
    in_shape: tuple
    out_shape: tuple
    k: int = 1
    stride: int = 1
    pad: int = 0
    pad_end: int | None = None     # maxpool: padding after (bottom/right); None: ``pad``
    weights: str | None = None     # binary | ternary | intN
    act: str = "none"
    act_bits: int | None = None
    final: bool = False
    S: int = 1
    lo: int = 0
    hi: int = 0
    W: np.ndarray | None = field(default=None, repr=False)       # (Cout, R) weight values
    bias: np.ndarray | None = field(default=None, repr=False)
    M: np.ndarray | None = field(default=None, repr=False)
    M_neg: np.ndarray | None = field(default=None, repr=False)

    ARRAYS = ("W", "bias", "M", "M_neg")

    def meta(self) -> dict:
        info = {k: v for k, v in asdict(self).items() if k not in self.ARRAYS}
        info["in_shape"], info["out_shape"] = list(self.in_shape), list(self.out_shape)
        return info


# --------------------------------------------------------------------------- arithmetic

def requantize(acc, M, M_neg, S: int, lo: int, hi: int) -> np.ndarray:
    """Contract 2's requantization, per output channel on the last axis."""
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.where(acc < 0, np.asarray(M_neg, np.int64), np.asarray(M, np.int64))
    if acc.size and int(np.abs(acc).max()) * int(np.abs(mult).max()) >= 2 ** 62:
        raise OverflowError("requantize: acc * M does not fit in int64")
    return np.clip((acc * mult + (1 << (S - 1))) >> S, lo, hi)


def im2col(x, k: int, stride: int, pad: int) -> np.ndarray:
    """NHWC map -> ``(N, Ho, Wo, K*K*C)`` windows in ``(ky, kx, c)`` order, zero padding."""
    n, h, w, c = x.shape
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=np.int64)
    xp[:, pad:pad + h, pad:pad + w] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, ho, wo, k, k, c), dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            cols[:, :, :, ky, kx] = xp[:, ky:ky + stride * ho:stride, kx:kx + stride * wo:stride]
    return cols.reshape(n, ho, wo, k * k * c)


def maxpool(x, k: int, stride: int, pad: int = 0, pad_end: int | None = None,
            lo: int = 0) -> np.ndarray:
    """Max over K x K windows of an NHWC map, padded with ``lo`` (the smallest value of the
    input's range): ``pad`` rows/columns before, ``pad_end`` (default ``pad``) after."""
    pad_end = pad if pad_end is None else pad_end
    x = np.asarray(x, dtype=np.int64)
    if (pad or pad_end) and x.size and int(x.min()) < lo:
        raise ValueError(f"lo: the padding value {lo} must be the smallest value of the "
                         f"input's range, but the input holds {int(x.min())}")
    n, h, w, c = x.shape
    xp = np.full((n, h + pad + pad_end, w + pad + pad_end, c), lo, dtype=np.int64)
    xp[:, pad:pad + h, pad:pad + w] = x
    ho, wo = (h + pad + pad_end - k) // stride + 1, (w + pad + pad_end - k) // stride + 1
    out = np.full((n, ho, wo, c), np.iinfo(np.int64).min, dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            out = np.maximum(out, xp[:, ky:ky + stride * ho:stride, kx:kx + stride * wo:stride])
    return out


def accumulate(layer: IntLayer, x) -> np.ndarray:
    """``acc = bias + sum(a * w)`` of a conv (NHWC out) or dense (N, Cout) layer."""
    W = np.asarray(layer.W, dtype=np.int64)
    if layer.type == "conv":
        cols = im2col(x, layer.k, layer.stride, layer.pad)
    else:
        cols = np.asarray(x, dtype=np.int64).reshape(len(x), -1)      # (y, x, c) order
    return cols @ W.T + np.asarray(layer.bias, dtype=np.int64)


def run_layer(layer: IntLayer, x, *, lo: int = 0) -> np.ndarray:
    """One layer on NHWC ``x``; ``lo`` is the smallest value of ``x``'s range (0 for the
    uint8 image and after ReLU, the previous layer's ``lo`` otherwise): a padded max-pool
    pads with it."""
    if layer.type == "maxpool":
        return maxpool(x, layer.k, layer.stride, layer.pad, layer.pad_end, lo)
    acc = accumulate(layer, x)
    if layer.final:
        return acc * np.asarray(layer.M, dtype=np.int64)
    return requantize(acc, layer.M, layer.M_neg, layer.S, layer.lo, layer.hi)


def run(layers, x_u8) -> np.ndarray:
    """The network on uint8 NHWC images: the classifier's ``z`` (N, classes), int64."""
    x = np.asarray(x_u8)
    if x.dtype != np.uint8:
        raise ValueError("x_u8: the network input is 8-bit unsigned (uint8)")
    x = x.astype(np.int64)
    lo = 0                                     # the image's range is [0, 255]
    for layer in layers:
        x = run_layer(layer, x, lo=lo)
        if layer.type != "maxpool":            # a pool keeps its input's range
            lo = layer.lo
    return x


def predict(layers, x_u8) -> np.ndarray:
    return np.argmax(run(layers, x_u8), axis=1)


# --------------------------------------------------------------------------- model.npz

def save_model(path, layers) -> None:
    arrays = {"meta": np.array(json.dumps([layer.meta() for layer in layers]))}
    for layer in layers:
        for key in IntLayer.ARRAYS:
            value = getattr(layer, key)
            if value is not None:
                arrays[f"{layer.name}/{key}"] = np.asarray(value, dtype=np.int64)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


# What np.load raises on a file that is not the array or archive it should be (EOFError: an
# empty file; BadZipFile: a damaged .npz), and load_model besides on an archive that is
# not a model (KeyError: no meta; json's ValueError; TypeError, AttributeError: a meta
# of other shapes).  Catching these is how a reader turns a user's bad file into one line.
DAMAGED_FILE = (OSError, ValueError, EOFError, zipfile.BadZipFile)
MODEL_ERRORS = DAMAGED_FILE + (KeyError, TypeError, AttributeError)


def load_model(path) -> list[IntLayer]:
    """The layers of a ``model.npz`` (:func:`save_model`); one of ``MODEL_ERRORS`` when
    the file is not one."""
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        raise ValueError("one array (.npy), not an .npz archive")
    with data:
        layers = []
        for info in json.loads(str(data["meta"])):
            info["in_shape"], info["out_shape"] = tuple(info["in_shape"]), tuple(info["out_shape"])
            arrays = {k: data[f"{info['name']}/{k}"] for k in IntLayer.ARRAYS
                      if f"{info['name']}/{k}" in data}
            layers.append(IntLayer(**info, **arrays))
    return layers


def find_layer(layer) -> IntLayer:
    """An ``IntLayer`` from itself or from ``"MODEL.npz:NAME"`` (a stage's ``layer``
    parameter on the command line); ``ValueError`` naming ``layer`` otherwise."""
    if isinstance(layer, IntLayer):
        return layer
    if not isinstance(layer, (str, os.PathLike)) or ":" not in str(layer):
        raise ValueError(f"layer: must be MODEL.npz:NAME or an IntLayer, got {layer!r}")
    path, name = str(layer).rsplit(":", 1)
    try:
        layers = load_model(path)
    except FileNotFoundError:
        raise ValueError(f"layer: {path}: no such file") from None
    except MODEL_ERRORS as error:
        raise ValueError(f"layer: {path}: not a model.npz ({error})") from None
    for item in layers:
        if item.name == name:
            return item
    raise ValueError(f"layer: {path} has no layer {name!r} "
                     f"(it has {', '.join(x.name for x in layers)})")
