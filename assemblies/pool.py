"""``maxpool_stage``: the max-pool stage of Contract 6 — one ``maxpool`` layer of the
integer model (``quant.reference.IntLayer``) in hardware, built from ``blocks.maxpool``.

Raster in, raster out, the same P values a beat; ``tlast`` on each frame's last output
beat; frames back to back.  Padding (``pad`` before, ``pad_end`` after) holds the smallest
value of the input's range, as ``quant.reference`` pads (Contract 2: 0 when unsigned,
``-2**(A-1)`` when signed); it never wins a window, so the block just leaves it out.

A group-major stream (``order_in`` group-major, ``groups_in`` G sub-maps of C/G channels each, one after another, each
raster; what a frame conv with G = Cout/L > 1 emits) is pooled sub-map by sub-map:
``blocks.maxpool`` is built for C/G channels and takes every sub-map as a frame, and
``tlast`` is passed on only on the G-th sub-map's last beat, so the output is the pooled
map in the same group-major order with ``tlast`` on a frame's last beat.

Parameters
----------
layer : IntLayer or "model.npz:NAME"   a ``maxpool`` layer: ``in_shape (C, H, W)``,
                                       ``k``, ``stride``, ``pad``, ``pad_end``
lanes : int, divides C                 P, values a beat in and out
abits : int, 1..8                      bits of a value
signed : bool                          values are two's complement (after leaky/none)
order_in : "raster" | "group-major"    the input's map order (Contract 6)
groups_in : int, divides C             G, sub-maps of a group-major input (P divides
                                       C/G); 1 for raster

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
s_axis_in_t*      raster (y, x, c/P), ``tdata[P*A-1:0]``, channel ``g*P+i`` in lane ``i``;
                  no ``tlast`` (frames are counted from the layer's shape); group-major:
                  sub-map after sub-map, each so over its C/G channels
m_axis_out_t*     the pooled map in the input's order, packed the same way; ``tlast`` on
                  a frame's last beat

Latency and throughput
----------------------
Cycles per frame (Contract 7: a pool's input beats, ``H*W*C/P``) plus the flushes of
windows that end in the trailing padding (``blocks.maxpool.frame_cycles``; none when
``pad_end`` is 0); latency as ``blocks.maxpool``.
"""
from __future__ import annotations

import numpy as np
from myhdl import Signal, always_comb, always_seq, block, intbv

from blocks import maxpool as mp
from blocks.spec import BlockDef, Param
from blocks.stream import Axis, clock_reset, pack
from quant import reference

ORDERS = ("raster", "group-major")

PARAMS = (
    Param("layer", "path", help="the layer: MODEL.npz:NAME (an IntLayer from Python)"),
    Param("lanes", int, lo=1, hi=4096, help="values a beat P, divides the channels"),
    Param("abits", int, default=8, lo=1, hi=8, help="bits of a value"),
    Param("signed", bool, default=False, help="signed values (after a leaky/none layer)"),
    Param("order_in", str, default="raster", choices=ORDERS, help="input map order"),
    Param("groups_in", int, default=1, lo=1, hi=4096,
          help="sub-maps of a group-major input (C/groups_in channels each; 1 for raster)"),
)


def block_values(*, layer, lanes, abits=8, signed=False, groups_in=1, **_) -> dict:
    """The ``blocks.maxpool`` parameters of this stage (one sub-map's channels)."""
    layer = reference.find_layer(layer)
    channels, height, width = layer.in_shape
    return {"width": width, "height": height, "channels": channels // groups_in, "lanes": lanes,
            "k": layer.k, "stride": layer.stride, "pad": layer.pad,
            "pad_end": -1 if layer.pad_end is None else layer.pad_end, "abits": abits,
            "signed": signed}


def cross_check(p: dict) -> None:
    layer = reference.find_layer(p["layer"])
    if layer.type != "maxpool":
        raise ValueError(f"layer: maxpool_stage builds maxpool layers, got {layer.type!r}")
    if layer.in_shape[0] % p["groups_in"]:
        raise ValueError(f"groups_in: must divide the channels ({layer.in_shape[0]}), got "
                         f"{p['groups_in']}")
    if p["order_in"] == "raster" and p["groups_in"] != 1:
        raise ValueError(f"groups_in: must be 1 for a raster input, got {p['groups_in']}")
    sub_map = layer.in_shape[0] // p["groups_in"]
    if sub_map % p["lanes"]:     # said here: blocks.maxpool would name a sub-map's channels
        of = (f"the channels ({sub_map})" if p["groups_in"] == 1 else f"a sub-map's channels "
              f"({layer.in_shape[0]} / groups_in {p['groups_in']} = {sub_map})")
        raise ValueError(f"lanes: must divide {of}, got {p['lanes']}")
    values = mp.BLOCK.validate(**block_values(**p))
    want = (values["channels"] * p["groups_in"], mp.BLOCK.derived(**values)["out_height"],
            mp.BLOCK.derived(**values)["out_width"])
    if tuple(layer.out_shape) != want:
        raise ValueError(f"layer: out_shape {tuple(layer.out_shape)} is not what its "
                         f"geometry gives, {want}")


def prepare(p: dict) -> dict:
    return {**p, "layer": reference.find_layer(p["layer"])}


@block
def maxpool_stage(aclk, aresetn, s_axis_in, m_axis_out, *, layer, lanes, abits=8,
                  signed=False, order_in="raster", groups_in=1):
    """The pool stage; see the module docstring."""
    BLOCK.validate(layer=layer, lanes=lanes, abits=abits, signed=signed, order_in=order_in,
                   groups_in=groups_in)
    values = block_values(layer=layer, lanes=lanes, abits=abits, signed=signed,
                          groups_in=groups_in)
    if groups_in == 1:
        return mp.maxpool(aclk, aresetn, s_axis_in, m_axis_out, **values)
    pooled = Axis(len(m_axis_out.tdata))
    return (mp.maxpool(aclk, aresetn, s_axis_in, pooled, **values),
            frame_last(aclk, aresetn, pooled, m_axis_out, groups=groups_in))


@block
def frame_last(aclk, aresetn, s_axis_in, m_axis_out, *, groups):
    """``s_axis_in`` passed through, ``tlast`` kept only on every ``groups``-th one: the
    end of a group-major frame (sub-map G-1's last beat).  No register, no latency."""
    count = Signal(intbv(0, min=0, max=groups))

    @always_comb
    def through():
        m_axis_out.tdata.next = s_axis_in.tdata
        m_axis_out.tvalid.next = s_axis_in.tvalid
        m_axis_out.tlast.next = s_axis_in.tlast and count == groups - 1
        s_axis_in.tready.next = m_axis_out.tready

    @always_seq(aclk.posedge, reset=aresetn)
    def counting():
        if s_axis_in.tvalid and m_axis_out.tready and s_axis_in.tlast:
            if count == groups - 1:
                count.next = 0
            else:
                count.next = count + 1

    return through, counting


def group_major(maps, groups: int) -> np.ndarray:
    """``(N, H, W, C)`` maps -> ``(N, G, H, W, C/G)``: the order of a group-major stream."""
    maps = np.asarray(maps, dtype=np.int64)
    n, h, w, c = maps.shape
    return maps.reshape(n, h, w, groups, c // groups).transpose(0, 3, 1, 2, 4)


def input_beats(frames, *, lanes, abits, groups_in=1, **_):
    """Input beats for ``frames`` (N x H x W x C integers) in the stage's order (raster,
    or group-major of ``groups_in`` sub-maps), ``tlast`` ignored."""
    maps = group_major(frames, groups_in)
    return mp.frame_beats(maps.reshape(-1, *maps.shape[2:]), lanes=lanes, abits=abits)


def golden(frames, *, layer, lanes, abits=8, signed=False, order_in="raster", groups_in=1):
    """Output beats ``[(tdata, tlast), ...]``: ``quant.reference.run_layer`` on each frame
    (padding with the smallest value of the A-bit range), in the input's order."""
    layer = reference.find_layer(layer)
    lo = -(1 << (abits - 1)) if signed else 0
    beats = []
    for frame in np.asarray(frames, dtype=np.int64):
        pooled = reference.run_layer(layer, frame[None], lo=lo)
        words = group_major(pooled, groups_in).reshape(-1, lanes)
        beats += [(pack(v, abits), n == len(words) - 1) for n, v in enumerate(words)]
    return beats


def estimate(*, layer, lanes, abits=8, signed=False, order_in="raster", groups_in=1) -> dict:
    """``blocks.maxpool``'s estimate for one sub-map, its ``cycles`` G times a frame; the
    tlast counter of a group-major stage is a few LUTs and FFs."""
    one = mp.BLOCK.estimate(**block_values(layer=layer, lanes=lanes, abits=abits,
                                           signed=signed, groups_in=groups_in))
    if groups_in == 1:
        return one
    count = max(1, (groups_in - 1).bit_length())
    return {**one, "lut": one["lut"] + count + 1, "ff": one["ff"] + count,
            "cycles": one["cycles"] * groups_in}


def derived(*, layer, lanes, abits=8, signed=False, order_in="raster", groups_in=1) -> dict:
    values = block_values(layer=layer, lanes=lanes, abits=abits, signed=signed,
                          groups_in=groups_in)
    return {**mp.BLOCK.derived(**values), "in_beats": values["width"] * values["height"]
            * values["channels"] * groups_in // lanes}


def ports(*, layer, lanes, abits=8, signed=False, order_in="raster", groups_in=1):
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
