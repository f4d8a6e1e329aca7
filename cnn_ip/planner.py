"""The planner: per layer a folding and a data flow under the device's budget (docs/conventions.md,
§7, Contract 7), and what it costs.

Cost model
----------
*Rate.*  Cycles per frame of a stage (``terms``):

* conv (row): the largest of its input beats ``H*W*Cin/S``, its compute beats
  ``Ho*Wo*(Cout/L)*(K*K*Cin/S)`` and its output beats ``Ho*Wo*Cout/L``, plus the frame
  pause its blocks state (``pause`` in their estimate); a dense layer is a conv whose
  window is its whole input map;
* conv (frame): ``assemblies.conv_frame.cycles_per_frame``: the same beats, the frame
  buffer's fill and reads in turn (one map held) or overlapped (two), and the fetch check
  (each group's weights arrive within the previous group's compute time, else the fetch
  sets the rate and the report says so);
* maxpool: its input beats ``H*W*C/P`` or output beats, whichever is larger (``P``, the
  values a beat, is the lanes of the conv before it);
* the image input: ``H*W`` beats (one pixel a beat).

The pipeline's cycles per frame are the largest stage's; frames per second = clock / that.
The stages state these figures themselves (``cycles`` per ``frame`` in their estimates):
the planner uses theirs, and its tests hold them to the formula above.

*Resources.*  Never a second cost model: every figure is a stage's or block's own
``estimate()`` — ``assemblies.conv_row`` (its blocks' sum, for the weight image at this L
and S: exact bits, word width and depth), ``assemblies.conv_frame`` (frame buffer, group
buffer, decoder, MAC, requantizer, DMA), ``assemblies.pool``, ``blocks.width_adapter`` and
``blocks.axis_fifo``.  Block RAM is counted per target by ``blocks.ram.bram_blocks``
inside those estimates (RAMB36 equivalents on Xilinx, DP16KD on ECP5) and compared with
``fpga.devices``' budget.  Off-chip bytes a frame: a frame stage's group images in whole
beats of the 8-byte bus (``quant.offchip``: the bytes ``memory_map.json`` lays out).

*Frame buffers.*  A frame stage holds one input map when it can fill it and then compute
within the period, two otherwise: one map when ``max(F, U) + max(C, D) <= T``, with ``F``
its fill beats, ``C`` the rest of its one-map cycles (compute, output, fetch), ``U`` the
cycles the stream takes to deliver a map to it (:func:`pace`: the slowest stage
streaming into it since the last frame stage, or that stage's reads) and ``D`` those the
stages after it take to accept its output (up to the next frame buffer, which takes a
map as fast as it comes).  That sum is then the stage's cycles per frame (its ``wait``
term: what the neighbours add).

Search
------
Folds: L divides Cout and S divides Cin (both at most what ``mac_array`` takes), each
stage's S and the L of the stage before divide one another (a width adapter joins raster
stages; a frame buffer takes any such input).  Data flows: row and/or frame as the plan
allows; once a conv is frame-based with ``Cout/L > 1`` groups its output is group-major,
so every later conv is frame-based too (Contract 6).

For a period ``T`` (cycles per frame) every layer may use only the choices whose stage
meets ``T`` (the cheapest by parallelism, each S's cheapest, and the cheapest within T/2
and T/4, for frame each L's, so that one-map stages find fast neighbours); over the
chain a dynamic programme keeps, per (L, output order) of the last weight layer, the
choices not beaten on every one of block RAM, LUTs, DSPs, off-chip bytes and the
stream's pace, dropping any over a budget (beyond ``FRONTIER`` choices a state keeps the
best of each cell of a grid over those figures); of what fits, the least off-chip bytes,
then the fewest LUTs (Contract 7's order after the rate).  The layers the plan leaves
open are first tried all row-based (no off-chip bytes at all), then either way.  The
period is the target's (``clock / target_fps``) when the device reaches it, otherwise
the shortest that fits (bisection over the periods the stages can take; the resources
fall as ``T`` grows).  Ties go to the first choice in (L*S, L, S, row before frame)
order: the result is deterministic.

FIFOs
-----
In front of each stage ``axis_fifo`` of ``fifo_depth`` beats: the beats that arrive during
the stage's frame pause at the pipeline's average rate, ``ceil(pause * in_beats / T)``, with
a floor of 2 (the handshake register pair that keeps a stalled stage from stalling its
producer in the same cycle) or ``axis_fifo``'s smallest depth, rounded up to a power of two.  The line buffer's ring already
holds ``stride`` rows ahead of the window, so producers' row-to-row burstiness needs no more.
"""
from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass, field, fields, replace
from types import SimpleNamespace

import numpy as np

from cnn_ip.plan import (PlanError, check_buildable, fold_limits, frame_flow_available,
                         row_limit)
from quant import offchip, sparse_format, weight_modes

RESOURCES = ("lut", "ff", "dsp", "bram")
RESOURCE_NAMES = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "block RAM"}
BRAM_UNITS = {"xilinx": "RAMB36", "ecp5": "DP16KD"}
MIN_FIFO = 2
CANDIDATES_PER_PERIOD = 6    # cheapest-by-parallelism folds a layer offers the DP at one T
FRONTIER = 64                # partial chains kept per DP state beyond which the front is thinned
GRID = 256                   # thinning: one chain per 1/GRID of the LUT, block RAM, DSP budgets
TRIES = 8                    # complete chains, best first, that may be tried against the budget
FASTER = (2, 4)              # candidates also the cheapest within period/2 and period/4
IMAGE_BITS = 8
BUS_BYTES = 8                # Contract 6: weights.bin is read over a 64-bit AXI bus
FLOWS = ("row", "frame")


# --------------------------------------------------------------------------- results

@dataclass
class Stage:
    """One layer's stage: what was chosen, what it costs, and why."""
    index: int
    layer: object                 # cnn_ip.plan.Layer
    int_layer: object             # quant.reference.IntLayer
    dataflow: str
    lanes: int                    # L (a pool: P, its input's values a beat)
    simd: int                     # S (a pool: P)
    terms: dict                   # cycles: input, compute, output, pause (frame: + reads, fetch, wait)
    cycles: int
    cost: dict                    # lut, ff, dsp, bram (device units), bram_bits
    parts: dict = field(default_factory=dict)     # block -> its estimate's figures
    offchip_bytes: int = 0
    model_bits: int = 0           # bits of weights (on or off chip) and constants as built
    fifo_depth: int = 0
    why: str = ""
    buffers: int = 0              # frame: input maps its frame buffer holds (1 or 2)
    lanes_in: int = 0             # frame: values a beat of its input stream
    groups_in: int = 1            # frame: sub-maps of a group-major input (1: raster)
    bound: str = ""               # the term that sets ``cycles`` ("fetch": the DMA)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def groups_out(self) -> int:
        """Sub-maps of the output stream: Cout/L out of a frame conv, 1 (raster) otherwise."""
        if self.dataflow == "frame" and not self.layer.final:
            return self.layer.out // self.lanes
        return 1


@dataclass
class Result:
    plan: object
    device: object
    stages: list
    links: list                   # width adapters and FIFOs: dicts with their cost
    cycles: int
    bottleneck: int               # index into stages
    budget: dict
    totals: dict
    target_met: bool | None
    notes: list
    rate_limit: str = ""          # what keeps the rate from being higher
    comparison: dict | None = None    # "row" / "frame": the same network with one data flow

    @property
    def clock_hz(self) -> float:
        return self.plan.clock_mhz * 1e6

    @property
    def fps(self) -> float:
        return self.clock_hz / self.cycles

    @property
    def macs_per_frame(self) -> int:
        return sum(macs(s.layer) for s in self.stages)

    @property
    def model_bits(self) -> int:
        return sum(s.model_bits for s in self.stages)

    @property
    def offchip_bytes(self) -> int:
        return sum(s.offchip_bytes for s in self.stages)

    def stage_plans(self):
        """The network top's input (``assemblies.network.StagePlan`` per stage)."""
        from assemblies.network import StagePlan
        takes_buffers = "buffers" in {f.name for f in fields(StagePlan)}
        plans = []
        for s in self.stages:
            extra = {"buffers": s.buffers or 1} if takes_buffers else {}
            plans.append(StagePlan(layer=s.int_layer, lanes=s.lanes, simd=s.simd,
                                   fifo_depth=s.fifo_depth, dataflow=s.dataflow, **extra))
        return plans


def macs(layer) -> int:
    """Multiply-accumulates of a weight layer per frame (0 for a pool)."""
    if not layer.has_weights:
        return 0
    _, ho, wo = layer.out_shape
    return ho * wo * layer.out * layer.reduce


# --------------------------------------------------------------------------- helpers

def divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def block_estimate(module_name: str, **values):
    """``BLOCK.estimate`` of a block or stage module for the given parameter values (those
    it does not take are dropped)."""
    block = importlib.import_module(module_name).BLOCK
    names = {p.name for p in block.params}
    _, args = block.prepared(**{k: v for k, v in values.items() if k in names})
    return block.estimate(**args)


def units(estimate: dict, family: str) -> float:
    """Block RAM of an estimate in the device's budget unit."""
    from blocks.ram import block_units
    return block_units(estimate["bram"])[family]


def _image_meta(W, weights, wbits, lanes, simd, code, beats):
    return {**sparse_format.code_meta(code, weights=weights, wbits=wbits, lanes=lanes,
                                      simd=simd),
            "beats": beats, "cout": int(W.shape[0]), "reduce": int(W.shape[1])}


def weight_image(W, *, weights, wbits, lanes, simd):
    """The geometry of the weight ROM ``quant.sparse_format.encode`` would write at this
    fold — word width, depth, exact bits, coding (the smallest of the codes the decoder
    reads, ``/2``'s block coding included) — from the beats' bit counts alone (the same
    functions the writer uses), without building the words."""
    wbits = weight_modes.normal_wbits(weights, wbits)
    W = np.asarray(W)
    code = sparse_format.layer_bits(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
    beats = W.shape[0] // lanes * (W.shape[1] // simd)
    meta = _image_meta(W, weights, wbits, lanes, simd, code, beats)
    return SimpleNamespace(word_bits=code["word_bits"], depth=code["depth"], bits=code["bits"],
                           meta=meta)


def group_geometry(W, *, weights, wbits, lanes, simd, bus_bytes=BUS_BYTES):
    """The off-chip image ``quant.offchip.group_images``/``layout`` would write at this fold:
    the layer's word width, each group image's depth in words and its bytes in memory
    (``quant.offchip.group_figures``), with the image's sidecar fields."""
    wbits = weight_modes.normal_wbits(weights, wbits)
    f = offchip.group_figures(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd,
                              bus_bytes=bus_bytes)
    code = {"coding": f["coding"], "block": None, "inner": None}    # off-chip images: /1
    meta = _image_meta(np.asarray(W), weights, wbits, lanes, simd, code, f["beats"])
    return SimpleNamespace(word_bits=f["word_bits"], depths=tuple(f["depths"]),
                           bytes=tuple(f["bytes"]), bits=f["word_bits"] * sum(f["depths"]),
                           meta=meta, bus_bytes=bus_bytes)


def stream_formats(layers, int_layers) -> list[tuple[int, bool]]:
    """(bits, signed) of the values entering each layer (Contract 2)."""
    formats, current = [], (IMAGE_BITS, False)
    for layer, il in zip(layers, int_layers):
        formats.append(current)
        if layer.has_weights and not layer.final:
            current = (layer.act_bits, il.lo < 0)
    return formats


def conv_terms(layer, lanes: int, simd: int, pause: int = 0) -> dict:
    """Contract 7's cycle terms of a row conv (or dense) stage."""
    c, h, w = layer.in_shape
    _, ho, wo = layer.out_shape
    k = layer.window
    return {"input": h * w * c // simd,
            "compute": ho * wo * (layer.out // lanes) * (k * k * c // simd),
            "output": ho * wo * layer.out // lanes, "pause": pause}


def pool_terms(layer, lanes: int, pause: int = 0) -> dict:
    c, h, w = layer.in_shape
    _, ho, wo = layer.out_shape
    return {"input": h * w * c // lanes, "compute": 0, "output": ho * wo * c // lanes,
            "pause": pause}


def cycles_of(terms: dict) -> int:
    return max(terms["input"], terms["compute"], terms["output"]) + terms["pause"]


def stage_arguments(stage, values: dict, image) -> dict:
    """``conv_row``'s prepared arguments with the weight image given by its geometry
    (:func:`weight_image`) instead of encoded: what its ``estimate`` reads, in a fraction
    of the time (tests check both give the same estimate)."""
    from blocks import requant
    q = stage.parts(**values)
    _, req = requant.BLOCK.prepared(**q["requant"])
    decoder = {k: v for k, v in q["decoder"].items() if k != "weights_file"}
    return {**values, "layer": q["layer"], "rom_prefix": q["prefix"],
            "decoder": {**decoder, "image": image}, "requant": req}


def _sum_costs(family, estimates: dict) -> tuple[dict, dict]:
    from blocks.ram import add_blocks
    total = {r: sum(int(e[r]) for e in estimates.values()) for r in ("lut", "ff", "dsp", "bram_bits")}
    total["bram"] = units({"bram": add_blocks(*(e["bram"] for e in estimates.values()))}, family)
    parts = {k: {r: e[r] for r in ("lut", "ff", "dsp", "bram_bits")} | {"bram": units(e, family)}
             for k, e in estimates.items()}
    return total, parts


def _terms(rate: dict) -> dict:
    """The cycle terms of a stage's ``cycles_per_frame`` (a frame stage's ``fetch``: the
    longest group fetch)."""
    terms = {key: int(rate.get(key, 0)) for key in ("input", "compute", "output", "pause")}
    if "reads" in rate:
        terms["reads"] = int(rate["reads"])
    if "fetch" in rate:
        terms["fetch"] = int(max(rate["fetch"], default=0))
    return terms


# --------------------------------------------------------------------------- stage costs

class Coster:
    """Stage costs for one network on one device, cached by (layer, data flow, fold, ...)."""

    def __init__(self, plan, int_layers, device):
        self.plan, self.int_layers, self.device = plan, list(int_layers), device
        self.family = device.family
        self.formats = stream_formats(plan.layers, self.int_layers)
        self.cache = {}
        self.refusals = {}        # layer index -> why the frame stage refused (last one)

    def _refuse(self, index, lanes, simd, error):
        layer = self.plan.layers[index]
        return PlanError(f"{self.plan.path}:{layer.line}: layers[{index}]: cannot be built "
                         f"at L={lanes}, S={simd}: {error}")

    def stage(self, index: int, lanes: int, simd: int) -> Stage:
        """A row conv, dense or pool stage."""
        key = (index, lanes, simd)
        if key not in self.cache:
            layer = self.plan.layers[index]
            try:
                self.cache[key] = (self._conv(index, lanes, simd) if layer.has_weights
                                   else self._pool(index, lanes))
            except ValueError as error:      # a block refuses the layer: its limit, one line
                raise self._refuse(index, lanes, simd, error) from None
        return self.cache[key]

    def frame(self, index: int, lanes: int, simd: int, buffers: int, lanes_in: int,
              groups_in: int) -> Stage | None:
        """A frame conv stage, or None when the stage refuses these values (the reason in
        ``refusals``)."""
        key = ("frame", index, lanes, simd, buffers, lanes_in, groups_in)
        if key not in self.cache:
            try:
                self.cache[key] = self._frame(index, lanes, simd, buffers, lanes_in, groups_in)
            except ValueError as error:
                self.refusals[index] = self._refuse(index, lanes, simd, error)
                self.cache[key] = None
        return self.cache[key]

    def weights(self, index, lanes, simd, kind):
        """The weight image's geometry at this fold (``row``: the ROM; ``frame``: the
        group images), computed once."""
        key = ("weights", kind, index, lanes, simd)
        if key not in self.cache:
            layer, il = self.plan.layers[index], self.int_layers[index]
            weights, wbits = layer.mode
            if ("nonzero", index) not in self.cache:
                self.cache[("nonzero", index)] = np.asarray(il.W) != 0
            make = weight_image if kind == "row" else group_geometry
            self.cache[key] = make(self.cache[("nonzero", index)], weights=weights,
                                   wbits=wbits, lanes=lanes, simd=simd)
        return self.cache[key]

    def _values(self, index, lanes, simd):
        abits, asigned = self.formats[index]
        return dict(layer=self.int_layers[index], lanes=lanes, simd=simd, abits=abits,
                    asigned=asigned, target=self.plan.device)

    def _conv(self, index, lanes, simd):
        from assemblies import conv_row
        from blocks import requant
        layer, il = self.plan.layers[index], self.int_layers[index]
        image = self.weights(index, lanes, simd, "row")
        args = stage_arguments(conv_row, self._values(index, lanes, simd), image)
        est = conv_row.BLOCK.estimate(**args)
        rate = conv_row.cycles_per_frame(args)
        total, parts = _sum_costs(self.family, {"conv_row": est})
        bits = image.bits + requant.BLOCK.estimate(**args["requant"])["bram_bits"]
        return Stage(index=index, layer=layer, int_layer=il, dataflow="row", lanes=lanes,
                     simd=simd, terms=_terms(rate), cycles=est["cycles"], cost=total,
                     parts=parts, model_bits=bits, bound=rate.get("bound", ""))

    def _frame_base(self, index, lanes, simd, buffers, lanes_in, groups_in):
        """``conv_frame``'s prepared arguments and estimate at this fold, for an input of
        S values a beat in raster order (or, when the stage refuses that, the stream
        given): everything but the frame buffer and the rate is the same whatever the
        stream before it (:meth:`_frame`)."""
        key = ("frame-base", index, lanes, simd, buffers)
        if key not in self.cache or self.cache[key] is None:
            from assemblies import conv_frame
            stream = ((simd, 1) if self.cache.get(key, 0) is not None else (lanes_in, groups_in))
            values = {**self._values(index, lanes, simd), "lanes_in": stream[0],
                      "order_in": "group-major" if stream[1] > 1 else "raster",
                      "groups_in": stream[1], "buffers": buffers, "bus_bits": 8 * BUS_BYTES}
            self.cache[key] = None
            args = conv_frame.BLOCK.prepared(**values)[1]
            self.cache[key] = (args, conv_frame.BLOCK.estimate(**args))
        return self.cache[key]

    def _frame(self, index, lanes, simd, buffers, lanes_in, groups_in):
        """A frame stage: its estimate at this fold (:meth:`_frame_base`) with the frame
        buffer's own estimate for this input stream in place of the base's, and its rate
        (``conv_frame.cycles_per_frame``) for this stream."""
        from assemblies import conv_frame
        from blocks import frame_buffer
        layer, il = self.plan.layers[index], self.int_layers[index]
        base_args, base = self._frame_base(index, lanes, simd, buffers, lanes_in, groups_in)
        args = {**base_args, "lanes_in": lanes_in, "groups_in": groups_in,
                "order_in": "group-major" if groups_in > 1 else "raster"}
        fb_params = conv_frame.parts(**args)["frame"]
        frame_buffer.BLOCK.validate(**fb_params)
        estimates = {**base["parts"], "frame_buffer": frame_buffer.estimate(**fb_params)}
        rate = conv_frame.cycles_per_frame(args)
        total, parts = _sum_costs(self.family, estimates)
        geometry = self.weights(index, lanes, simd, "frame")
        return Stage(index=index, layer=layer, int_layer=il, dataflow="frame", lanes=lanes,
                     simd=simd, terms=_terms(rate), cycles=rate["cycles"], cost=total,
                     parts=parts, offchip_bytes=int(base["offchip_bytes"]),
                     model_bits=geometry.bits + estimates["requant"]["bram_bits"],
                     buffers=buffers, lanes_in=lanes_in, groups_in=groups_in,
                     bound=rate.get("bound", ""))

    def _pool(self, index, lanes, groups_in=1):
        layer, il = self.plan.layers[index], self.int_layers[index]
        abits, signed = self.formats[index]
        est = block_estimate("assemblies.pool", layer=il, lanes=lanes, abits=abits,
                             signed=signed, groups_in=groups_in,
                             order_in="group-major" if groups_in > 1 else "raster")
        terms = pool_terms(layer, lanes, est.get("pause", 0))
        total, parts = _sum_costs(self.family, {"pool": est})
        return Stage(index=index, layer=layer, int_layer=il, dataflow="row", lanes=lanes,
                     simd=lanes, terms=terms, cycles=est["cycles"], cost=total, parts=parts,
                     groups_in=groups_in)

    def pool(self, index: int, lanes: int, groups_in: int) -> Stage:
        key = ("pool", index, lanes, groups_in)
        if key not in self.cache:
            try:
                self.cache[key] = self._pool(index, lanes, groups_in)
            except ValueError as error:
                raise self._refuse(index, lanes, lanes, error) from None
        return self.cache[key]

    def link(self, lanes_in: int, lanes_out: int, bits: int, fifo_depth: int) -> dict:
        """Cost of what joins two stages: a width adapter when P differs, a FIFO."""
        key = ("link", lanes_in, lanes_out, bits, fifo_depth)
        if key not in self.cache:
            self.cache[key] = self._link(lanes_in, lanes_out, bits, fifo_depth)
        return dict(self.cache[key])

    def _link(self, lanes_in, lanes_out, bits, fifo_depth):
        estimates = {}
        if lanes_in != lanes_out:
            estimates["width_adapter"] = block_estimate(
                "blocks.width_adapter", lanes_in=lanes_in, lanes_out=lanes_out, bits=bits)
        if fifo_depth:
            estimates["axis_fifo"] = block_estimate(
                "blocks.axis_fifo", bits=lanes_out * bits, depth=fifo_depth)
        total, parts = _sum_costs(self.family, estimates)
        return {"lanes_in": lanes_in, "lanes_out": lanes_out, "bits": bits,
                "fifo_depth": fifo_depth, "cost": total, "parts": parts}


# --------------------------------------------------------------------------- the search

@dataclass(frozen=True)
class Path:
    """A partial chain of the DP: its summed cost and the stage/link pairs, linked back."""
    offchip: int
    lut: int
    bram: float
    dsp: int
    ff: int
    bram_bits: int
    pace: int                     # cycles the stream takes to deliver a frame here (pace())
    parent: object                # Path or None
    items: tuple                  # ((stage, link), ...) appended by this step

    def key(self):
        return (self.offchip, self.lut, self.bram, self.dsp, self.pace, self.ff)

    def cell(self, budget: dict, period: int, offchip: int, grid: int) -> tuple:
        """The grid cell of a thinned frontier: 1/grid of each budget and of the off-chip
        bytes of the whole model, 1/8 of the period for the pace."""
        return tuple(int(getattr(self, r) * grid / max(budget[r], 1))
                     for r in ("lut", "bram", "dsp")) + (
            self.offchip * grid // max(offchip, 1), self.pace * 8 // period)

    def pairs(self) -> list:
        steps, node = [], self
        while node is not None:
            steps.append(node.items)
            node = node.parent
        return [pair for items in reversed(steps) for pair in items]


def pace(before: int, stages) -> int:
    """Cycles the stream takes to deliver one frame after ``stages``, ``before`` being its
    pace in front of them: a stage streaming through (row, pool) can go no faster than
    it or the stream it takes; a frame stage hands its output on while it reads its map
    (its cycles, less the fill when it holds one map), whatever came before."""
    for stage in stages:
        if stage.dataflow == "frame":
            alone = stage.cycles - stage.terms.get("wait", 0)
            before = alone - (stage.terms["input"] if stage.buffers == 1 else 0)
        else:
            before = max(before, stage.cycles)
    return before


def occupancy(stage, before: int, after: int) -> int:
    """Cycles a frame a frame stage holding one map is busy: filling it at the stream's
    pace (``before``), then reading it while the stages after take the output
    (``after``: their pace up to the next frame buffer, which takes a map as fast as it
    comes)."""
    fill = stage.terms["input"]
    alone = stage.cycles - stage.terms.get("wait", 0)
    return max(fill, before) + max(alone - fill, after)


def one_map_fits(stage, before: int, after: int, period: int) -> bool:
    """Whether a frame stage may hold one map: its :func:`occupancy` within the period."""
    return occupancy(stage, before, after) <= period


def _dominated(a: Path, b: Path, pace: bool) -> bool:
    """``b`` is no better than ``a`` on anything the rest of the chain or the goal sees
    (the pace only while a frame stage may follow)."""
    return (a.offchip <= b.offchip and a.lut <= b.lut and a.bram <= b.bram and a.dsp <= b.dsp
            and (not pace or a.pace <= b.pace))


class Planner:
    def __init__(self, plan, int_layers, device):
        self.plan, self.device = plan, device
        self.layers = plan.layers
        self.coster = Coster(plan, int_layers, device)
        self.budget = budget(device, plan.limits)
        self.weight_index = [i for i, layer in enumerate(self.layers) if layer.has_weights]
        self.image_cycles = plan.input_shape[1] * plan.input_shape[2]
        # the off-chip bytes' scale for the DP's grid: every weight at 8 bits
        self.offchip_scale = sum(int(np.size(int_layers[i].W)) for i in self.weight_index)
        lanes_hi, simd_hi = fold_limits()
        frame_ok = frame_flow_available()
        self.options = {}
        for i in self.weight_index:
            layer = self.layers[i]
            flows = [f for f in FLOWS if layer.dataflow in (f, "auto")
                     and (f == "row" or frame_ok)]
            cin = layer.in_shape[0]
            folds = [layer.fold] if layer.fold else [
                (lanes, simd) for lanes in divisors(layer.out, lanes_hi)
                for simd in divisors(cin, simd_hi)]
            options = [(flow, lanes, simd) for lanes, simd in folds for flow in flows
                       if flow == "frame" or row_limit(layer, simd) is None]
            if not options:
                problem = row_limit(layer, folds[0][1]) or ("type", "no folding can be built")
                raise PlanError(f"{plan.path}:{layer.line_of(problem[0])}: "
                                f"layers[{i}].{problem[0]}: {problem[1]}")
            # cycles are analytic: sort by parallelism, then L, then S, row before frame
            self.options[i] = sorted(options, key=lambda o: (o[1] * o[2], o[1], o[2],
                                                             FLOWS.index(o[0])))

    def fold_cycles(self, i, fold) -> int:
        return cycles_of(conv_terms(self.layers[i], *fold))

    # -- one period
    def candidates(self, i, period):
        """The choices layer ``i`` offers at ``period``: per data flow the cheapest folds by
        parallelism, each simd's cheapest (the link rule may need it), for frame the
        cheapest with one group (raster output, so later layers may stay row-based), and
        the cheapest within a half and a quarter of the period (a frame stage holding one
        map needs the stages around it faster than the period), for frame each lanes'."""
        fits = [o for o in self.options[i] if self.fold_cycles(i, o[1:]) <= period]
        picked = []
        for flow in FLOWS:
            mine = [o for o in fits if o[0] == flow]
            chosen = mine[:CANDIDATES_PER_PERIOD]
            chosen += [next(o for o in mine if o[2] == simd) for simd in sorted({o[2] for o in mine})]
            chosen += [o for o in mine if o[1] == self.layers[i].out][:1]
            for part in FASTER:
                quick = [o for o in mine if self.fold_cycles(i, o[1:]) <= period // part]
                chosen += quick[:1]
                if flow == "frame":     # its L sets the next frame buffer's banks
                    chosen += [next(o for o in quick if o[1] == lanes)
                               for lanes in sorted({o[1] for o in quick})]
            picked += chosen
        return sorted(dict.fromkeys(picked), key=self.options[i].index)

    def choose(self, period: int, objective: str = "fit"):
        """The stages of the best chain with every stage within ``period`` cycles, or None.
        ``objective``: ``fit`` (within every budget: the least off-chip bytes, then the
        fewest LUTs), ``share`` (the smallest sum of the resources' shares of the budget,
        budgets ignored: what the cheapest choice would need) or ``bram`` (the least block
        RAM)."""
        chains = self.chains(period, objective)
        return chains[0] if chains else None

    def chains(self, period: int, objective: str = "fit", flows=FLOWS) -> list:
        """The best few chains (lists of stages), best first; ``flows``: the data flows
        a layer the plan leaves to the planner may take."""
        options = {}
        for i in self.weight_index:
            allowed = flows if self.layers[i].dataflow == "auto" else FLOWS
            options[i] = [o for o in self.candidates(i, period) if o[0] in allowed]
            if not options[i]:
                return []
        return [[stage for stage, _ in end.pairs()]
                for end in self._dp(options, period, objective) or []]

    def _pools(self, start, stop, lanes, groups, period):
        """Pool stages of layers start..stop-1 at P = lanes, or None if one misses the period."""
        out = []
        for i in range(start, stop):
            stage = self.coster.pool(i, lanes, groups)
            if stage.cycles > period:
                return None
            out.append(stage)
        return out

    def _share(self, path: Path) -> float:
        cost = {"lut": path.lut, "ff": path.ff, "dsp": path.dsp, "bram": path.bram}
        return round(sum(cost[r] / max(self.budget[r], 1) for r in RESOURCES), 12)

    def _frame_stage(self, i, option, lanes, groups, pace, period):
        """The frame stage of ``option`` after a stream of ``lanes`` values a beat
        (``groups`` sub-maps): one map held when fill and compute fit the period in turn
        at the stream's ``pace``, else two; None when neither meets the period."""
        _, L, S = option
        one = self.coster.frame(i, L, S, 1, lanes, groups)
        if one is not None and one.cycles <= period and one_map_fits(one, pace, 0, period):
            return one
        two = self.coster.frame(i, L, S, 2, lanes, groups)
        return two if two is not None and two.cycles <= period else None

    def _link_of(self, lanes, stage, period) -> dict:
        """The FIFO (and, in front of a row stage, the width adapter) before ``stage``."""
        bits = self.coster.formats[stage.index][0]
        depth = max(min_fifo(), math.ceil(stage.terms["pause"] * stage.terms["input"] / period))
        depth = 1 << (depth - 1).bit_length()
        takes = lanes if stage.dataflow == "frame" else stage.simd
        link = self.coster.link(lanes, takes, bits, depth)
        link["before"] = stage.name
        return link

    def _step(self, path, pairs) -> Path:
        costs = [c for s, link in pairs for c in (s.cost, link["cost"])]
        return Path(offchip=path.offchip + sum(s.offchip_bytes for s, _ in pairs),
                    lut=path.lut + sum(c["lut"] for c in costs),
                    bram=path.bram + sum(c["bram"] for c in costs),
                    dsp=path.dsp + sum(c["dsp"] for c in costs),
                    ff=path.ff + sum(c["ff"] for c in costs),
                    bram_bits=path.bram_bits + sum(c["bram_bits"] for c in costs),
                    pace=pace(path.pace, [s for s, _ in pairs]),
                    parent=path, items=tuple(pairs))

    def _fits(self, path: Path) -> bool:
        b = self.budget
        return (path.lut <= b["lut"] and path.ff <= b["ff"] and path.dsp <= b["dsp"]
                and path.bram <= b["bram"])

    def _keep(self, paths, objective, pace, period):
        """The paths worth extending: the best path of each grid cell (:meth:`Path.cell`),
        those of them no other beats on everything (``fit``), coarser cells while more
        than ``FRONTIER`` are left; or the one cheapest (``share``, ``bram``)."""
        if objective != "fit":
            return [min(paths, key=self._goal(objective))]
        paths = sorted(paths, key=Path.key)
        grid = GRID
        while True:
            cells = {}
            for path in paths:                  # sorted: the first in a cell is its best
                cells.setdefault(path.cell(self.budget, period, self.offchip_scale, grid), path)
            kept = []
            for path in cells.values():
                if not any(_dominated(k, path, pace) for k in kept):
                    kept.append(path)
            if len(kept) <= FRONTIER or grid <= 8:
                return kept
            paths, grid = kept, grid // 4

    def _dp(self, options, period, objective):
        """Chain DP over the weight layers; state = (L, output sub-maps) of the last one."""
        start = Path(0, 0, 0, 0, 0, 0, self.image_cycles, None, ())
        frontier = {(self.plan.input_shape[0], 1): [start]}
        position = 0
        for i in self.weight_index:
            new = {}
            for (lanes, groups), paths in sorted(frontier.items()):
                pools = self._pools(position, i, lanes, groups, period)
                if pools is None:
                    continue
                lead = [(p, self._link_of(lanes, p, period)) for p in pools]
                for option in options[i]:
                    flow, L, S = option
                    if (groups > 1 and flow == "row") or (lanes % S and S % lanes):
                        continue
                    row = self.coster.stage(i, L, S) if flow == "row" else None
                    if row is not None and row.cycles > period:
                        continue
                    for path in paths:
                        before = self._step(path, lead)
                        stage = row or self._frame_stage(i, option, lanes, groups,
                                                         before.pace, period)
                        if stage is None:
                            continue
                        after = self._step(before, [(stage, self._link_of(lanes, stage, period))])
                        if objective == "fit" and not self._fits(after):
                            continue
                        new.setdefault((L, stage.groups_out), []).append(after)
            if not new:
                return None
            pace = any("frame" in {o[0] for o in options[j]} for j in self.weight_index if j > i)
            frontier = {state: self._keep(paths, objective, pace, period) for state, paths in new.items()}
            position = i + 1
        ends = []
        for (lanes, groups), paths in sorted(frontier.items()):
            pools = self._pools(position, len(self.layers), lanes, groups, period)
            if pools is None:
                continue
            tail = [(p, self._link_of(lanes, p, period)) for p in pools]
            ends += [end for end in (self._step(path, tail) for path in paths)
                     if objective != "fit" or self._fits(end)]
        if not ends:
            return None
        return sorted(ends, key=self._goal(objective))[:TRIES]

    def _goal(self, objective):
        """The order of complete (``fit``) or single best (``share``, ``bram``) chains."""
        return {"fit": lambda p: (p.offchip, p.lut, self._share(p)),
                "share": lambda p: (self._share(p), p.offchip, p.lut),
                "bram": lambda p: (p.bram, self._share(p))}[objective]

    # -- links, totals, fit
    def finish(self, stages, period):
        """Frame buffers against the stages after them, the waits of the stages holding
        one map, FIFO depths, adapters, totals for a chosen list of stages; None when a
        frame stage needs two maps it cannot have within the period."""
        stages = [replace(s) for s in stages]
        for k, stage in enumerate(stages):
            if stage.dataflow == "frame" and stage.buffers == 1:
                if not one_map_fits(stage, *self.neighbours(stages, k), period):
                    two = self.coster.frame(stage.index, stage.lanes, stage.simd, 2,
                                            stage.lanes_in, stage.groups_in)
                    if two is None or two.cycles > period:
                        return None
                    stages[k] = replace(two)
        waits = {k: occupancy(stage, *self.neighbours(stages, k)) - stage.cycles
                 for k, stage in enumerate(stages)
                 if stage.dataflow == "frame" and stage.buffers == 1}
        for k, wait in waits.items():
            stages[k].terms = {**stages[k].terms, "wait": wait}
            stages[k].cycles += wait
        links, lanes = [], self.plan.input_shape[0]
        for stage in stages:
            link = self._link_of(lanes, stage, period)
            stage.fifo_depth = link["fifo_depth"]
            links.append(link)
            lanes = stage.lanes
        totals = add_costs([s.cost for s in stages] + [link["cost"] for link in links])
        return stages, links, totals

    def neighbours(self, stages, k) -> tuple[int, int]:
        """``(before, after)`` of stage ``k`` (:func:`one_map_fits`): the stream's pace into
        it, and the stages' after it up to the next frame buffer, which takes its fill."""
        after = 0
        for later in stages[k + 1:]:
            if later.dataflow == "frame":
                after = max(after, later.terms["input"])
                break
            after = max(after, later.cycles)
        return pace(self.image_cycles, stages[:k]), after

    def over(self, totals):
        """The first resource over budget: (name, need, budget) or None."""
        for r in ("bram", "dsp", "lut", "ff"):
            if totals[r] > self.budget[r]:
                return r, totals[r], self.budget[r]
        return None

    def feasible(self, period):
        """The chain within ``period`` that fits the budget with the least off-chip bytes,
        then the fewest LUTs; None when nothing fits.  The layers the plan leaves open are first
        all tried row-based (no off-chip bytes at all, when that fits), then either way.  The DP checks a frame stage's one
        map against the stages before it; :meth:`finish`, against those after, may need
        two: then the next best chain is tried."""
        for flows in (("row",), FLOWS):     # no off-chip bytes beat any: try row first
            for stages in self.chains(period, "fit", flows):
                done = self.finish(stages, period)
                if done is not None and not self.over(done[2]):
                    return (*done, "fit")
        return None

    def periods(self) -> list[int]:
        """Every period a stage can take, from the shortest any folding allows."""
        values = {self.image_cycles}
        floor = self.image_cycles
        for i in self.weight_index:
            cycles = [self.fold_cycles(i, o[1:]) for o in self.options[i]]
            values.update(cycles)
            floor = max(floor, min(cycles))
        return sorted(v for v in values if v >= floor)

    def slowest_frame(self) -> int:
        """The most cycles of any frame stage costed so far (a fetch-bound stage may need
        more than the analytic periods)."""
        return max([s.cycles for k, s in self.coster.cache.items()
                    if k[0] == "frame" and s is not None] + [0])


@functools.cache
def min_fifo() -> int:
    """The shallowest FIFO: 2 beats (a register pair), or more where ``axis_fifo`` says."""
    from blocks import axis_fifo
    return max(MIN_FIFO, next(p.lo for p in axis_fifo.BLOCK.params if p.name == "depth"))


def add_costs(costs) -> dict:
    total = dict.fromkeys(("lut", "ff", "dsp", "bram", "bram_bits"), 0)
    for cost in costs:
        for key in total:
            total[key] += cost[key]
    return total


def budget(device, limits) -> dict:
    """What the design may use: each resource's limit share of the device (floored)."""
    have = {"lut": device.lut, "ff": device.ff, "dsp": device.dsp, "bram": device.bram_blocks}
    return {r: math.floor(have[r] * limits[r] + 1e-9) for r in RESOURCES}


def resolve_device(plan):
    from fpga.devices import device as lookup
    name = plan.require("device", "the planner")
    plan.require("clock_mhz", "the planner")
    device = lookup(name)
    if device.family not in BRAM_UNITS:
        plan.fail("device", f"{name}: no block RAM rule for the {device.family} family "
                  f"(blocks.ram counts {', '.join(BRAM_UNITS)})")
    return device


def plan_network(plan, int_layers, *, compare: bool = True) -> Result:
    """Choose folds and data flows for every layer of ``plan`` (its integer model
    ``int_layers``, in plan order) and cost the result; raise ``PlanError`` (one line)
    when nothing fits.  ``compare``: also plan the network all-row and all-frame
    (``Result.comparison``) when the plan leaves a choice of data flow."""
    check_buildable(plan)
    device = resolve_device(plan)
    planner = Planner(plan, int_layers, device)
    periods = planner.periods()
    notes, target_met = [], None
    chosen = None
    if plan.target_fps:
        target = math.floor(plan.clock_mhz * 1e6 / plan.target_fps)
        if target >= periods[0]:
            chosen = planner.feasible(target)
        target_met = chosen is not None
    if chosen is None:
        chosen = _fastest(planner, periods)
        if plan.target_fps:
            notes.append(f"target {plan.target_fps:g} fps not reached: the highest rate that "
                         f"fits is used")
    stages, links, totals, objective = chosen
    cycles = max([s.cycles for s in stages] + [planner.image_cycles])
    bottleneck = max(range(len(stages)), key=lambda k: (stages[k].cycles, -k))
    if target_met:
        limit = f"the target: {plan.target_fps:g} fps needs at most {target:,} cycles/frame"
    else:
        limit = rate_limit(planner, periods, cycles, stages[bottleneck])
    for stage in stages:
        stage.why = explain(planner, stage, stages, totals, cycles)
    result = Result(plan=plan, device=device, stages=stages, links=links, cycles=cycles,
                    bottleneck=bottleneck, budget=planner.budget, totals=totals,
                    target_met=target_met, notes=notes, rate_limit=limit)
    if compare and frame_flow_available():
        result.comparison = {flow: one_flow(plan, int_layers, flow) for flow in FLOWS}
    return result


def forced(plan, flow: str):
    """``plan`` with every weight layer's data flow set to ``flow``."""
    layers = tuple(replace(layer, dataflow=flow) if layer.has_weights else layer
                   for layer in plan.layers)
    return replace(plan, layers=layers, dataflow=flow)


def one_flow(plan, int_layers, flow: str) -> dict:
    """The network with one data flow throughout: whether it fits, and what it costs."""
    try:
        result = plan_network(forced(plan, flow), int_layers, compare=False)
    except PlanError as error:
        return {"fits": False, "why": str(error).split(": ", 1)[-1]}
    return {"fits": True, "cycles": result.cycles, "fps": round(result.fps, 3),
            "bram": result.totals["bram"], "bram_bits": result.totals["bram_bits"],
            "lut": result.totals["lut"], "dsp": result.totals["dsp"],
            "offchip_bytes": result.offchip_bytes,
            "flows": [s.dataflow for s in result.stages if s.layer.has_weights]}


def rate_limit(planner, periods, cycles, bottleneck) -> str:
    """Why the next shorter period was not taken: the floor, or the resource it overruns."""
    shorter = [p for p in periods if p < cycles]
    if not shorter:
        if cycles == planner.image_cycles and bottleneck.cycles < cycles:
            return f"the image input: {cycles:,} pixels a frame, one a cycle"
        if bottleneck.bound == "fetch":
            return (f"the weight fetch of {bottleneck.name} ({bottleneck.cycles:,} "
                    f"cycles/frame at the DMA's rate)")
        return (f"the floor: {bottleneck.name} at its fastest folding "
                f"({bottleneck.cycles:,} cycles/frame)")
    period = shorter[-1]
    stages = planner.choose(period, "share")
    if stages is None:
        return (f"the folding rules: no folds meeting {period:,} cycles/frame join up "
                f"(L and the next S must divide one another)")
    done = planner.finish(stages, period)
    over = planner.over(done[2]) if done else None
    if over is None:
        return (f"the budget: no choice within {period:,} cycles/frame fits every resource "
                f"at once")
    resource, need, have = over
    return (f"{RESOURCE_NAMES[resource]}: {period:,} cycles/frame would need {_num(need)}, "
            f"the budget is {_num(have)}")


def _fastest(planner, periods):
    slowest = max(periods[-1], planner.slowest_frame())
    last = planner.feasible(slowest)
    if last is None and planner.slowest_frame() > slowest:
        slowest = planner.slowest_frame()
        last = planner.feasible(slowest)
    if last is None:
        stages = planner.choose(slowest, "share")
        if stages is None:
            raise next(iter(planner.coster.refusals.values()), None) or PlanError(
                f"{planner.plan.path}:{planner.plan.line('layers')}: layers: no folding "
                f"joins up (L and the next S must divide one another)")
        totals = (planner.finish(stages, slowest) or (None, None, add_costs(
            [s.cost for s in stages])))[2]
        over = planner.over(totals) or min(
            ((r, totals[r], planner.budget[r]) for r in RESOURCES),
            key=lambda x: planner.budget[x[0]] - x[1])
        raise fit_error(planner, *over)
    lo, hi = 0, len(periods) - 1          # periods[hi] feasible; find the first feasible
    found = last
    while lo < hi:
        mid = (lo + hi) // 2
        result = planner.feasible(periods[mid])
        if result is None:
            lo = mid + 1
        else:
            hi, found = mid, result
    return found


def fit_error(planner, resource, need, have) -> PlanError:
    device, plan = planner.device, planner.plan
    unit = {"bram": f" {BRAM_UNITS[device.family]}", "dsp": " DSP", "lut": " LUT", "ff": " FF"}
    total = {"lut": device.lut, "ff": device.ff, "dsp": device.dsp,
             "bram": device.bram_blocks}[resource]
    share = plan.limits[resource]
    return PlanError(f"{plan.path}:{plan.line('device')}: device: does not fit {device.name}: "
                     f"{RESOURCE_NAMES[resource]} needs {_num(need)}{unit[resource]} at the "
                     f"cheapest folding, the budget is {_num(have)} ({share:.0%} of {total})")


def _num(value) -> str:
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def flow_reason(planner, stage, stages, totals) -> str:
    """Why the stage has its data flow (part of the report's sentence)."""
    layer = stage.layer
    if layer.dataflow != "auto":
        return f"{layer.dataflow} (fixed by the plan)"
    if not frame_flow_available():
        return "row (the frame data flow is not built)"
    before = [s for s in stages[:stages.index(stage)] if s.layer.has_weights]
    if stage.dataflow == "row":
        if ("frame", stage.lanes, stage.simd) not in planner.options[stage.index]:
            return "row (no frame stage here)"
        nbytes = sum(planner.coster.weights(stage.index, stage.lanes, stage.simd, "frame").bytes)
        return f"row: its weights on chip, no off-chip traffic (frame would read {nbytes:,} B a frame)"
    if before and before[-1].groups_out > 1:
        return (f"frame: {before[-1].name}'s output is group-major ({before[-1].groups_out} "
                f"sub-maps), which only frame buffers take (Contract 6)")
    if row_limit(layer, stage.simd) is not None:
        return f"frame: row cannot be built ({row_limit(layer, stage.simd)[1]})"
    row = planner.coster.stage(stage.index, stage.lanes, stage.simd)
    unit = BRAM_UNITS[planner.device.family]
    need = {r: totals[r] - stage.cost[r] + row.cost[r] for r in RESOURCES}
    over = [f"{RESOURCE_NAMES[r]} {_num(need[r])} of {_num(planner.budget[r])}"
            for r in RESOURCES if need[r] > planner.budget[r]]
    return (f"frame: {stage.offchip_bytes:,} B a frame off chip; as row its weights would "
            f"take {_num(row.cost['bram'])} {unit} on chip (frame: {_num(stage.cost['bram'])})"
            + (f", and the network would need {', '.join(over)}" if over else ""))


def explain(planner, stage, stages, totals, cycles) -> str:
    """Why this stage got its folding and data flow (one sentence for the report)."""
    layer = stage.layer
    if not layer.has_weights:
        return f"P = {stage.lanes} from the stage before"
    flow = flow_reason(planner, stage, stages, totals)
    if stage.dataflow == "frame":
        flow += (f"; {stage.buffers} map{'s' if stage.buffers > 1 else ''} held (one when the "
                 f"stream fills it, then the stage reads it, within the period)")
    if stage.terms.get("wait"):
        flow += (f"; {stage.terms['wait']:,} of its cycles wait on the stages before and "
                 f"after it")
    if stage.bound == "fetch":
        flow += "; its rate is the weight fetch's"
    if layer.fold:
        return f"fold fixed by the plan; {flow}"
    floor = min(planner.fold_cycles(stage.index, o[1:]) for o in planner.options[stage.index])
    if stage.cycles == cycles and stage.cycles == floor:
        _, ho, wo = layer.out_shape
        return (f"the bottleneck at its fastest folding ({stage.cycles:,} cycles; a conv needs at "
                f"least Ho*Wo*K*K = {ho * wo * layer.window ** 2:,}); {flow}")
    return (f"the least off-chip bytes, then the fewest LUTs, within {cycles:,} cycles/frame: "
            f"{stage.lanes * stage.simd} products a cycle, {stage.cycles:,} cycles; {flow}")
