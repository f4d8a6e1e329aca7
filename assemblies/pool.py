"""``maxpool_stage``: the max-pool stage of Contract 6 — one ``maxpool`` layer of the
integer model (``quant.reference.IntLayer``) in hardware, built from ``blocks.maxpool``.

Raster in, raster out, the same P values a beat; ``tlast`` on each frame's last output
beat; frames back to back.  Padding (``pad`` before, ``pad_end`` after) holds the smallest
value of the input's range, as ``quant.reference`` pads (Contract 2: 0 when unsigned,
``-2**(A-1)`` when signed); it never wins a window, so the block just leaves it out.

A group-major stream (Cout/L sub-maps, L channels a beat) is pooled by building this
stage for a layer of L channels with ``lanes = L`` and sending it the sub-maps as frames
(``blocks.maxpool``'s docstring); the frame data flow that produces such streams does
not exist yet.

Parameters
----------
layer : IntLayer or "model.npz:NAME"   a ``maxpool`` layer: ``in_shape (C, H, W)``,
                                       ``k``, ``stride``, ``pad``, ``pad_end``
lanes : int, divides C                 P, values a beat in and out
abits : int, 1..8                      bits of a value
signed : bool                          values are two's complement (after leaky/none)

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
s_axis_in_t*      raster (y, x, c/P), ``tdata[P*A-1:0]``, channel ``g*P+i`` in lane ``i``;
                  no ``tlast`` (frames are counted from the layer's shape)
m_axis_out_t*     the pooled map, raster, packed the same way; ``tlast`` on a frame's
                  last beat

Latency and throughput
----------------------
Cycles per frame (Contract 7: a pool's input beats, ``H*W*C/P``) plus the flushes of
windows that end in the trailing padding (``blocks.maxpool.frame_cycles``; none when
``pad_end`` is 0); latency as ``blocks.maxpool``.
"""
from __future__ import annotations

import numpy as np
from myhdl import block

from blocks import maxpool as mp
from blocks.spec import BlockDef, Param
from blocks.stream import Axis, clock_reset, pack
from quant import reference

PARAMS = (
    Param("layer", "path", help="the layer: MODEL.npz:NAME (an IntLayer from Python)"),
    Param("lanes", int, lo=1, hi=4096, help="values a beat P, divides the channels"),
    Param("abits", int, default=8, lo=1, hi=8, help="bits of a value"),
    Param("signed", bool, default=False, help="signed values (after a leaky/none layer)"),
)


def block_values(*, layer, lanes, abits=8, signed=False) -> dict:
    """The ``blocks.maxpool`` parameters of this stage."""
    layer = reference.find_layer(layer)
    channels, height, width = layer.in_shape
    return {"width": width, "height": height, "channels": channels, "lanes": lanes,
            "k": layer.k, "stride": layer.stride, "pad": layer.pad,
            "pad_end": -1 if layer.pad_end is None else layer.pad_end, "abits": abits,
            "signed": signed}


def cross_check(p: dict) -> None:
    layer = reference.find_layer(p["layer"])
    if layer.type != "maxpool":
        raise ValueError(f"layer: maxpool_stage builds maxpool layers, got {layer.type!r}")
    values = mp.BLOCK.validate(**block_values(**p))
    want = (values["channels"], mp.BLOCK.derived(**values)["out_height"],
            mp.BLOCK.derived(**values)["out_width"])
    if tuple(layer.out_shape) != want:
        raise ValueError(f"layer: out_shape {tuple(layer.out_shape)} is not what its "
                         f"geometry gives, {want}")


def prepare(p: dict) -> dict:
    return {**p, "layer": reference.find_layer(p["layer"])}


@block
def maxpool_stage(aclk, aresetn, s_axis_in, m_axis_out, *, layer, lanes, abits=8,
                  signed=False):
    """The pool stage; see the module docstring."""
    BLOCK.validate(layer=layer, lanes=lanes, abits=abits, signed=signed)
    return mp.maxpool(aclk, aresetn, s_axis_in, m_axis_out,
                      **block_values(layer=layer, lanes=lanes, abits=abits, signed=signed))


def input_beats(frames, *, lanes, abits):
    """Input beats for ``frames`` (N x H x W x C integers), ``tlast`` ignored."""
    return mp.frame_beats(frames, lanes=lanes, abits=abits)


def golden(frames, *, layer, lanes, abits=8, signed=False):
    """Output beats ``[(tdata, tlast), ...]``: ``quant.reference.run_layer`` on each frame,
    padding with the smallest value of the A-bit range."""
    layer = reference.find_layer(layer)
    lo = -(1 << (abits - 1)) if signed else 0
    beats = []
    for frame in np.asarray(frames, dtype=np.int64):
        words = reference.run_layer(layer, frame[None], lo=lo).reshape(-1, lanes)
        beats += [(pack(v, abits), n == len(words) - 1) for n, v in enumerate(words)]
    return beats


def estimate(*, layer, lanes, abits=8, signed=False) -> dict:
    """``blocks.maxpool``'s estimate: the stage is that block; ``cycles`` per frame."""
    return mp.BLOCK.estimate(**block_values(layer=layer, lanes=lanes, abits=abits,
                                            signed=signed))


def derived(*, layer, lanes, abits=8, signed=False) -> dict:
    values = block_values(layer=layer, lanes=lanes, abits=abits, signed=signed)
    return {**mp.BLOCK.derived(**values), "in_beats": values["width"] * values["height"]
            * values["channels"] // lanes}


def ports(*, layer, lanes, abits=8, signed=False):
    return {**clock_reset(), "s_axis_in": Axis(lanes * abits, last=False),
            "m_axis_out": Axis(lanes * abits)}


def example() -> dict:
    """Tiny-YOLOv2's last pool, on 16 channels: 2x2, stride 1, padded after to keep 13x13."""
    layer = reference.IntLayer(type="maxpool", name="pool6", in_shape=(16, 13, 13),
                               out_shape=(16, 13, 13), k=2, stride=1, pad=0, pad_end=1)
    return {"layer": layer, "lanes": 8, "abits": 8, "signed": True}


BLOCK = BlockDef(name="maxpool_stage", build=maxpool_stage, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 prepare=prepare, example=example)
