"""The planner: per layer a folding and a data flow under the device's budget (docs/conventions.md,
Contract 7), and what it costs.

Cost model
----------
*Rate.*  Cycles per frame of a stage (``terms``):

* conv (row): the largest of its input beats ``H*W*Cin/S``, its compute beats
  ``Ho*Wo*(Cout/L)*(K*K*Cin/S)`` and its output beats ``Ho*Wo*Cout/L``, plus the frame
  pause its blocks state (``pause`` in their estimate); a dense layer is a conv whose
  window is its whole input map;
* maxpool: its input beats ``H*W*C/P`` or output beats, whichever is larger (``P``, the
  values a beat, is the lanes of the conv before it);
* the image input: ``H*W`` beats (one pixel a beat).

The pipeline's cycles per frame are the largest stage's; frames per second = clock / that.
The stages state these figures themselves (``cycles`` per ``frame`` in their estimates):
the planner uses theirs, and its tests hold them to the formula above.

*Resources.*  Never a second cost model: every figure is a stage's or block's own
``estimate()`` — ``assemblies.conv_row`` (its blocks' sum, for the weight image at this L
and S: exact bits, word width and depth), ``assemblies.pool``, ``blocks.width_adapter``
and ``blocks.axis_fifo``.  Block RAM is counted per target
by ``blocks.ram.bram_blocks`` inside those estimates (RAMB36 equivalents on Xilinx, DP16KD
on ECP5) and compared with ``fpga.devices``' budget.

Search
------
Folds: L divides Cout and S divides Cin (both at most what ``mac_array`` takes), each raster
stage's L and the next stage's S divide one another (a width adapter joins them).  For a
period ``T`` (cycles per frame) every layer may use only folds whose stage meets ``T``; among
those a dynamic programme over the chain picks the folds with the fewest LUTs (Contract 7's
last objective), or, when that choice overruns another resource, the smallest sum of the
resources' shares of the budget (LUT + FF + DSP + block RAM, each divided by its budget),
with the divisibility rule on every link.  The period is the target's (``clock /
target_fps``) when the device reaches it, otherwise the shortest that fits (bisection over
the periods the stages can take; the resources fall as ``T`` grows).  Ties go to the other
objective, then to the first fold in (L*S, L, S) order: the result is deterministic.

FIFOs
-----
In front of each stage ``axis_fifo`` of ``fifo_depth`` beats: the beats that arrive during
the stage's frame pause at the pipeline's average rate, ``ceil(pause * in_beats / T)``, with
a floor of 2 (the handshake register pair that keeps a stalled stage from stalling its
producer in the same cycle) or ``axis_fifo``'s smallest depth, rounded up to a power of two.  The line buffer's ring already
holds ``stride`` rows ahead of the window, so producers' row-to-row burstiness needs no more.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from cnn_ip.plan import PlanError, check_buildable, fold_limits, row_limit
from quant import sparse_format, weight_modes

RESOURCES = ("lut", "ff", "dsp", "bram")
RESOURCE_NAMES = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "block RAM"}
BRAM_UNITS = {"xilinx": "RAMB36", "ecp5": "DP16KD"}
MIN_FIFO = 2
CANDIDATES_PER_PERIOD = 6    # cheapest-by-parallelism folds a layer offers the DP at one T
IMAGE_BITS = 8


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
    terms: dict                   # cycles: input, compute, output, pause
    cycles: int
    cost: dict                    # lut, ff, dsp, bram (device units), bram_bits
    parts: dict = field(default_factory=dict)     # block -> its estimate's figures
    offchip_bytes: int = 0
    model_bits: int = 0           # ROM bits of weights and constants as built
    fifo_depth: int = 0
    why: str = ""

    @property
    def name(self) -> str:
        return self.layer.name


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

    def stage_plans(self):
        """The network top's input (``assemblies.network.StagePlan`` per stage)."""
        from assemblies.network import StagePlan
        return [StagePlan(layer=s.int_layer, lanes=s.lanes, simd=s.simd,
                          fifo_depth=s.fifo_depth, dataflow=s.dataflow) for s in self.stages]


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


def weight_image(W, *, weights, wbits, lanes, simd):
    """The geometry of the weight ROM ``quant.sparse_format.encode`` would write at this
    fold — word width, depth, exact bits, coding — from the beats' bit counts alone (the
    same functions the writer uses), without building the words."""
    wbits = weight_modes.normal_wbits(weights, wbits)
    beats = sparse_format.to_beats(np.asarray(W), lanes, simd)
    coding = sparse_format.choose_coding(beats, weights=weights, wbits=wbits)
    bits = sparse_format.beat_bits(beats, weights=weights, wbits=wbits, coding=coding)
    word = int(bits.max())
    depth = -(-int(bits.sum()) // word)
    meta = {"lanes": lanes, "simd": simd, "coding": coding, "weights": weights, "wbits": wbits,
            "code_bits": weight_modes.code_bits(weights, wbits),
            "value_bits": weight_modes.value_bits(weights, wbits) if coding == "masked" else None,
            "beats": len(beats), "cout": int(W.shape[0]), "reduce": int(W.shape[1])}
    return SimpleNamespace(word_bits=word, depth=depth, bits=word * depth, meta=meta)


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


# --------------------------------------------------------------------------- stage costs

class Coster:
    """Stage costs for one network on one device, cached by (layer, L, S)."""

    def __init__(self, plan, int_layers, device):
        self.plan, self.int_layers, self.device = plan, list(int_layers), device
        self.family = device.family
        self.formats = stream_formats(plan.layers, self.int_layers)
        self.cache = {}

    def stage(self, index: int, lanes: int, simd: int) -> Stage:
        key = (index, lanes, simd)
        if key not in self.cache:
            layer = self.plan.layers[index]
            make = self._conv if layer.has_weights else self._pool
            try:
                self.cache[key] = make(index, lanes, simd)
            except ValueError as error:      # a block refuses the layer: its limit, one line
                raise PlanError(f"{self.plan.path}:{layer.line}: layers[{index}]: cannot be "
                                f"built at L={lanes}, S={simd}: {error}") from None
        return self.cache[key]

    def _conv(self, index, lanes, simd):
        from assemblies import conv_row
        from blocks import requant
        layer, il = self.plan.layers[index], self.int_layers[index]
        abits, asigned = self.formats[index]
        weights, wbits = layer.mode
        image = weight_image(il.W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
        values = dict(layer=il, lanes=lanes, simd=simd, abits=abits, asigned=asigned,
                      target=self.plan.device)
        args = stage_arguments(conv_row, values, image)
        est = conv_row.BLOCK.estimate(**args)
        rate = conv_row.cycles_per_frame(args)
        terms = {key: rate[key] for key in ("input", "compute", "output", "pause")}
        total, parts = _sum_costs(self.family, {"conv_row": est})
        bits = image.bits + requant.BLOCK.estimate(**args["requant"])["bram_bits"]
        return Stage(index=index, layer=layer, int_layer=il, dataflow="row", lanes=lanes,
                     simd=simd, terms=terms, cycles=est["cycles"], cost=total, parts=parts,
                     model_bits=bits)

    def _pool(self, index, lanes, _simd):
        layer, il = self.plan.layers[index], self.int_layers[index]
        abits, signed = self.formats[index]
        est = block_estimate("assemblies.pool", layer=il, lanes=lanes, abits=abits, signed=signed)
        terms = pool_terms(layer, lanes, est.get("pause", 0))
        total, parts = _sum_costs(self.family, {"pool": est})
        return Stage(index=index, layer=layer, int_layer=il, dataflow="row", lanes=lanes,
                     simd=lanes, terms=terms, cycles=est["cycles"], cost=total, parts=parts)

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

class Planner:
    def __init__(self, plan, int_layers, device):
        self.plan, self.device = plan, device
        self.layers = plan.layers
        self.coster = Coster(plan, int_layers, device)
        self.budget = budget(device, plan.limits)
        self.weight_index = [i for i, layer in enumerate(self.layers) if layer.has_weights]
        self.image_cycles = plan.input_shape[1] * plan.input_shape[2]
        lanes_hi, simd_hi = fold_limits()
        self.folds = {}
        for i in self.weight_index:
            layer = self.layers[i]
            if layer.fold:
                options = [layer.fold]
            else:
                cin = layer.in_shape[0]
                options = [(lanes, simd) for lanes in divisors(layer.out, lanes_hi)
                           for simd in divisors(cin, simd_hi) if row_limit(layer, simd) is None]
            # cycles are analytic: sort by parallelism, then L, then S (deterministic)
            self.folds[i] = sorted(options, key=lambda f: (f[0] * f[1], f[0], f[1]))

    def fold_cycles(self, i, fold) -> int:
        return cycles_of(conv_terms(self.layers[i], *fold))

    # -- one period
    def choose(self, period: int, objective: str = "share"):
        """The cheapest folds with every stage within ``period`` cycles, or None.
        ``objective``: ``share`` (the sum of the resources' shares of the budget) or
        ``lut`` (the fewest LUTs)."""
        options = {}
        for i in self.weight_index:
            fits = [f for f in self.folds[i] if self.fold_cycles(i, f) <= period]
            if not fits:
                return None
            # the cheapest by parallelism, plus each simd's cheapest (the link rule may need it)
            picked = fits[:CANDIDATES_PER_PERIOD]
            for simd in sorted({f[1] for f in fits}):
                first = next(f for f in fits if f[1] == simd)
                if first not in picked:
                    picked.append(first)
            options[i] = [self.coster.stage(i, *f) for f in picked]
            options[i] = [s for s in options[i] if s.cycles <= period]
            if not options[i]:
                return None
        return self._dp(options, period, objective)

    def _pools_between(self, start, stop, lanes, period):
        """Pool stages of layers start..stop-1 at P = lanes, or None if one misses the period."""
        out = []
        for i in range(start, stop):
            stage = self.coster.stage(i, lanes, lanes)
            if stage.cycles > period:
                return None
            out.append(stage)
        return out

    def _score(self, cost: dict) -> float:
        return sum(cost[r] / max(self.budget[r], 1) for r in RESOURCES)

    def _dp(self, options, period, objective):
        """Chain DP over the weight layers: state = the fold of the last weight layer; a
        path's cost holds its stages and the width adapters between them."""
        channels = self.plan.input_shape[0]
        best = {}                      # fold of layer w -> (score, luts, stages)
        first = self.weight_index[0]
        lead = self._pools_between(0, first, channels, period)
        if lead is None:
            return None
        for stage in options[first]:
            stages = lead + [self._adapter(channels, stage), stage]
            best[(stage.lanes, stage.simd)] = self._entry(stages, objective)
        previous = first
        for i in self.weight_index[1:]:
            new = {}
            for key, (_, _, stages) in sorted(best.items()):
                lanes = key[0]
                pools = self._pools_between(previous + 1, i, lanes, period)
                if pools is None:
                    continue
                for stage in options[i]:
                    if lanes % stage.simd and stage.simd % lanes:
                        continue
                    adapter = self._adapter(lanes, stage)
                    candidate = self._entry(stages + pools + [adapter, stage], objective)
                    fold = (stage.lanes, stage.simd)
                    if fold not in new or candidate[:2] < new[fold][:2]:
                        new[fold] = candidate
            if not new:
                return None
            best, previous = new, i
        tails = []
        for key, (_, _, stages) in sorted(best.items()):
            pools = self._pools_between(previous + 1, len(self.layers), key[0], period)
            if pools is not None:
                tails.append(self._entry(stages + pools, objective))
        if not tails:
            return None
        return [s for s in min(tails, key=lambda entry: entry[:2])[2] if isinstance(s, Stage)]

    def _adapter(self, lanes: int, stage: Stage):
        """The width adapter in front of ``stage`` (its cost; none when P = S)."""
        bits = self.coster.formats[stage.index][0]
        return SimpleNamespace(cost=self.coster.link(lanes, stage.simd, bits, 0)["cost"])

    def _entry(self, stages, objective):
        cost = add_costs(s.cost for s in stages)
        share = round(self._score(cost), 12)
        return ((cost["lut"], share) if objective == "lut" else (share, cost["lut"])) + (stages,)

    # -- links, totals, fit
    def finish(self, stages, period):
        """FIFO depths, adapters, totals for a chosen list of stages."""
        formats = self.coster.formats
        stages = [replace(s) for s in stages]
        links, lanes = [], self.plan.input_shape[0]
        for stage in stages:
            bits = formats[stage.index][0]
            in_beats = stage.terms["input"]
            depth = max(min_fifo(), math.ceil(stage.terms["pause"] * in_beats / period))
            stage.fifo_depth = 1 << (depth - 1).bit_length()
            link = self.coster.link(lanes, stage.simd, bits, stage.fifo_depth)
            link["before"] = stage.name
            links.append(link)
            lanes = stage.lanes
        totals = add_costs([s.cost for s in stages] + [link["cost"] for link in links])
        return stages, links, totals

    def over(self, totals):
        """The first resource over budget: (name, need, budget) or None."""
        for r in ("bram", "dsp", "lut", "ff"):
            if totals[r] > self.budget[r]:
                return r, totals[r], self.budget[r]
        return None

    def feasible(self, period):
        """The fewest LUTs that fit within ``period`` (Contract 7's last objective); when
        that choice overruns another resource, the smallest sum of budget shares."""
        for objective in ("lut", "share"):
            stages = self.choose(period, objective)
            if stages is None:
                return None
            stages, links, totals = self.finish(stages, period)
            if not self.over(totals):
                return stages, links, totals, objective
        return None

    def periods(self) -> list[int]:
        """Every period a stage can take, from the shortest any folding allows."""
        values = {self.image_cycles}
        floor = self.image_cycles
        for i in self.weight_index:
            cycles = [self.fold_cycles(i, f) for f in self.folds[i]]
            values.update(cycles)
            floor = max(floor, min(cycles))
        return sorted(v for v in values if v >= floor)


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


def plan_network(plan, int_layers) -> Result:
    """Choose folds for every layer of ``plan`` (its integer model ``int_layers``, in plan
    order) and cost the result; raise ``PlanError`` (one line) when nothing fits."""
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
        stage.why = explain(planner, stage, cycles, objective)
    return Result(plan=plan, device=device, stages=stages, links=links, cycles=cycles,
                  bottleneck=bottleneck, budget=planner.budget, totals=totals,
                  target_met=target_met, notes=notes, rate_limit=limit)


def rate_limit(planner, periods, cycles, bottleneck) -> str:
    """Why the next shorter period was not taken: the floor, or the resource it overruns."""
    shorter = [p for p in periods if p < cycles]
    if not shorter:
        if cycles == planner.image_cycles and bottleneck.cycles < cycles:
            return f"the image input: {cycles:,} pixels a frame, one a cycle"
        return (f"the floor: {bottleneck.name} at its fastest folding "
                f"({bottleneck.cycles:,} cycles/frame)")
    period = shorter[-1]
    stages = planner.choose(period)
    if stages is None:
        return (f"the folding rules: no folds meeting {period:,} cycles/frame join up "
                f"(L and the next S must divide one another)")
    _, _, totals = planner.finish(stages, period)
    resource, need, have = planner.over(totals)
    return (f"{RESOURCE_NAMES[resource]}: {period:,} cycles/frame would need {_num(need)}, "
            f"the budget is {_num(have)}")


def _fastest(planner, periods):
    slowest = periods[-1]
    last = planner.feasible(slowest)
    if last is None:
        stages = planner.choose(slowest)
        _, _, totals = planner.finish(stages, slowest)
        resource, need, have = planner.over(totals)
        raise fit_error(planner, resource, need, have)
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


def explain(planner, stage, cycles, objective) -> str:
    """Why this stage got its folding (one sentence for the report)."""
    layer = stage.layer
    if not layer.has_weights:
        return f"P = {stage.lanes} from the stage before"
    flow = ("row (the only data flow built yet)" if layer.dataflow == "auto"
            else f"{layer.dataflow} (fixed by the plan)")
    if layer.fold:
        return f"fold fixed by the plan; {flow}"
    floor = min(planner.fold_cycles(stage.index, f) for f in planner.folds[stage.index])
    if stage.cycles == cycles and stage.cycles == floor:
        _, ho, wo = layer.out_shape
        return (f"the bottleneck at its fastest folding ({stage.cycles:,} cycles; a conv needs at "
                f"least Ho*Wo*K*K = {ho * wo * layer.window ** 2:,}); {flow}")
    goal = ("the fewest LUTs" if objective == "lut"
            else "the smallest share of the budget")
    return (f"{goal} within {cycles:,} cycles/frame: {stage.lanes * stage.simd} products a "
            f"cycle, {stage.cycles:,} cycles; {flow}")
