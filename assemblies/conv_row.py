"""``conv_row``: the row-based conv stage of docs/conventions.md Contract 6, built only from blocks.

One layer of the integer model (``quant.reference.IntLayer``, type ``conv`` or ``dense``)
with its folding (``lanes`` L dividing Cout, ``simd`` S dividing Cin) becomes::

    s_axis_in -> line_buffer (repeat G = Cout/L) -> mac_array -> requant -> m_axis_out
                                                        ^
                           sparse_decoder (ROM image encoded for L, S)

The line buffer emits every K x K window G times, once per output-channel group; the
decoder streams the layer's weights group after group, pass after pass, in the same
order; the MAC array forms the L dot products of a (window, group) pair; the requantizer
adds the bias and applies M/M_neg, S and the clamp of Contract 2 (or emits ``z`` for the
last layer), its constants from a ROM indexed by the group.  A dense layer whose input
map is square and at most 7 x 7 is the same stage with the window covering the whole map
(K = H = W, pad 0): the reduction order (y, x, c) is the window's.

Parameters
----------
layer : IntLayer or "model.npz:name"   the layer (weights ``W (Cout, K*K*Cin)``, bias, M,
                                       M_neg, S, lo, hi, final)
lanes : int                            L, output channels a beat (divides Cout)
simd : int                             S, input channels a beat (divides Cin)
abits : int, 1..8                      A, bits of an input value (8 for the image)
asigned : bool                         inputs are signed (the previous layer is leaky/none)
target : str                           ``generic`` or a device name (the requantizer's
                                       multipliers, the MAC's, the decoder's ROM)
rom_prefix : str                       ROM file stem prefix (default: the layer's name)

Ports
-----
aclk, aresetn           clock; synchronous active-low reset
s_axis_in_t*            raster (y, x, channel groups ascending), S values a beat:
                        ``tdata[S*A-1:0]``, value ``s`` at ``[(s+1)*A-1 : s*A]``; ``tlast``
                        (a frame's last beat) is accepted and ignored: frames are counted
m_axis_out_t*           raster, L channels a beat (the G beats of a pixel ascending):
                        ``tdata[L*OB-1:0]`` with OB = act_bits (unsigned after relu, two's
                        complement after leaky/none) or, for the last layer, the derived
                        width of ``z`` (signed); ``tlast`` on a frame's last beat

Latency and throughput
----------------------
Cycles per frame (Contract 7, :func:`cycles_per_frame`): the largest of the input beats
``H*W*Cin/S``, the compute beats ``Ho*Wo*G*K*K*Cin/S`` plus the line buffer's
frame-boundary pause, and the output beats ``Ho*Wo*G``.  Checked to the cycle in
``tests/assemblies/test_conv_row.py`` and reported by ``bench/stages.py``.  Latency: the
line buffer's to the first window's first beat, then ``K*K*Cin/S - 1`` beats to its last,
the MAC's and the requantizer's pipelines (:func:`estimate`), once the weight decoder has
filled its pipeline (it starts at reset: input right after reset can wait for it).
"""
from __future__ import annotations

import re

import numpy as np
from myhdl import block

from blocks import line_buffer as lb
from blocks import mac
from blocks import requant as rq
from blocks import sparse_decoder as sd
from blocks.ram import add_blocks
from blocks.spec import BlockDef, Param, ParameterError
from blocks.stream import Axis, clock_reset, pack
from quant import reference, weight_modes
from quant.sparse_format import check_matrix, code_bits

PARAMS = (
    Param("layer", "path", help="the layer: MODEL.npz:NAME (an IntLayer from Python)"),
    Param("lanes", int, lo=1, hi=64, help="output channels a beat (L, divides Cout)"),
    Param("simd", int, lo=1, hi=64, help="input channels a beat (S, divides Cin)"),
    Param("abits", int, default=8, lo=1, hi=8, help="bits of an input value"),
    Param("asigned", bool, default=False, help="signed inputs (after a leaky/none layer)"),
    Param("target", str, default="generic", help="generic or a device name"),
    Param("rom_prefix", str, default="", help="ROM file name prefix (default: layer name)"),
)


# --- the layer and its geometry -------------------------------------------------------------

def geometry(layer: reference.IntLayer) -> dict:
    """Window geometry: a dense layer is a conv whose window is the whole (square) map."""
    cin, h, w = (tuple(layer.in_shape) + (1, 1))[:3]
    cout = layer.out_shape[0]
    if layer.type == "conv":
        k, stride, pad = layer.k, layer.stride, layer.pad
    elif layer.type == "dense":
        if h != w:
            raise ValueError(f"layer: a row dense stage needs a square input map, got {h}x{w}")
        k, stride, pad = h, 1, 0
    else:
        raise ValueError(f"layer: conv_row builds conv and dense layers, got {layer.type!r}")
    ho, wo = lb.out_size(h, k, stride, pad), lb.out_size(w, k, stride, pad)
    return {"cin": cin, "height": h, "width": w, "cout": cout, "k": k, "stride": stride,
            "pad": pad, "out_height": ho, "out_width": wo, "reduce": k * k * cin}


def mode(layer) -> tuple[str, int]:
    weights, wbits = weight_modes.parse(layer.weights)
    return weights, (wbits or 8)


def check_numbers(layer, weights, wbits) -> tuple[np.ndarray, dict]:
    """The layer's ``W`` (int64) and constants as the decoder and the requantizer take
    them, or ValueError saying which array is wrong and why (the blocks' own rules, so a
    layer's numbers are judged once, for ``--layer`` and for ``assemble --model``).

    The answer is kept on the layer for the arrays it was given (the planner asks for
    every fold it costs: thousands of times on a large network); an array replaced is
    checked again, one changed in place is not."""
    arrays = (layer.W, layer.bias, layer.M, layer.M_neg)   # held: their ids stay theirs
    rest = (layer.S, layer.final, weights, wbits)
    kept = layer.__dict__.get("_checked_numbers")
    if (kept is not None and kept[1] == rest
            and all(a is b for a, b in zip(kept[0], arrays))):
        return kept[2]
    result = _check_numbers(layer, weights, wbits)
    layer.__dict__["_checked_numbers"] = (arrays, rest, result)
    return result


def _check_numbers(layer, weights, wbits) -> tuple[np.ndarray, dict]:
    try:
        W = check_matrix(layer.W, weights=weights, wbits=wbits, lanes=1, simd=1)
    except ValueError as error:         # "weights_file: what"
        raise ValueError("W: " + str(error).partition(": ")[2]) from None
    try:
        constants = rq.load_constants({"bias": layer.bias, "M": layer.M,
                                       "M_neg": layer.M_neg})
    except ValueError as error:         # "constants: what", naming the array
        raise ValueError(str(error).partition(": ")[2]) from None
    shift = next(p for p in rq.BLOCK.params if p.name == "shift")
    if not layer.final and not shift.allows(layer.S):
        raise ValueError(f"S must be {shift.allowed()} (the requantizer's shift), "
                         f"got {layer.S!r}")
    return W, constants


def cross_check(p: dict) -> None:
    prefix = p.get("rom_prefix", "")
    if prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        # the ROM files' stem, read by $readmemh from the Verilog
        raise ValueError(f"rom_prefix: must be a letter or _, then letters, digits or _, "
                         f"got {prefix!r}")
    layer = reference.find_layer(p["layer"])
    g = geometry(layer)
    if g["out_height"] < 1 or g["out_width"] < 1:
        raise ValueError(f"layer: a {g['k']}x{g['k']} window does not fit its "
                         f"{g['height']}x{g['width']} map padded by {g['pad']}")
    if g["cout"] % p["lanes"]:
        raise ValueError(f"lanes: must divide Cout ({g['cout']}), got {p['lanes']}")
    if g["cin"] % p["simd"]:
        raise ValueError(f"simd: must divide Cin ({g['cin']}), got {p['simd']}")
    if layer.W is None or tuple(np.shape(layer.W)) != (g["cout"], g["reduce"]):
        raise ValueError(f"layer: W must be ({g['cout']}, {g['reduce']}), got "
                         f"{None if layer.W is None else np.shape(layer.W)}")
    if not layer.final:
        lo, hi = rq.out_range(layer.act_bits, layer.lo < 0)
        if (layer.lo, layer.hi) != (lo, hi):
            raise ValueError(f"layer: range {layer.lo}..{layer.hi} is not Contract 2's "
                             f"for {layer.act_bits} bits ({lo}..{hi})")
    if g["cout"] // p["lanes"] > 1 and "repeat" not in {x.name for x in lb.BLOCK.params}:
        raise ValueError(f"lanes: must equal Cout ({g['cout']}) until line_buffer has "
                         f"repeat, got {p['lanes']}")


# --- the parts' parameters ------------------------------------------------------------------

def parts(*, layer, lanes, simd, abits=8, asigned=False, target="generic", rom_prefix="",
          **_) -> dict:
    """Every block's parameters (validated by its own ``BlockDef``)."""
    layer = reference.find_layer(layer)
    g = geometry(layer)
    groups = g["cout"] // lanes
    weights, wbits = mode(layer)
    try:
        W, _ = check_numbers(layer, weights, wbits)
    except ValueError as error:
        raise ParameterError(f"layer: {layer.name}: {error}") from None
    prefix = rom_prefix or layer.name
    line = {"width": g["width"], "height": g["height"], "channels": g["cin"], "k": g["k"],
            "stride": g["stride"], "pad": g["pad"], "abits": abits, "simd": simd}
    if groups > 1:
        line["repeat"] = groups
    macp = {"lanes": lanes, "simd": simd, "weights": weights, "wbits": wbits,
            "abits": abits, "asigned": asigned, "reduce": g["reduce"], "target": target}
    acc = mac.acc_bits(**macp)
    const = {"bias": layer.bias, "M": layer.M,
             "M_neg": layer.M if layer.M_neg is None else layer.M_neg}
    req = {"lanes": lanes, "acc_bits": acc, "abits": layer.act_bits or 8,
           "out_signed": bool(layer.lo < 0), "shift": int(layer.S), "final": bool(layer.final),
           "pixels": g["out_height"] * g["out_width"], "target": target, "constants": const}
    dec = {"lanes": lanes, "simd": simd, "weights": weights, "wbits": wbits,
           "weights_file": W, "target": target}
    return {"layer": layer, "geometry": g, "groups": groups, "line": line, "mac": macp,
            "requant": req, "decoder": dec, "prefix": prefix}


def prepare(p: dict) -> dict:
    """Parameters -> the stage's arguments: the layer loaded, the ROM image encoded once."""
    q = parts(**p)
    _, dec_args = sd.BLOCK.prepared(**q["decoder"])
    dec_args["rom_file"] = f"{q['prefix']}_weights.hex"
    _, req_args = rq.BLOCK.prepared(**q["requant"])
    req_args["rom_file"] = f"{q['prefix']}_requant.hex"
    return {**{k: p[k] for k in ("lanes", "simd", "abits", "asigned", "target")},
            "layer": q["layer"], "rom_prefix": q["prefix"], "decoder": dec_args,
            "requant": req_args}


def rom_files(args: dict, out_dir) -> list:
    """Write the stage's ROM images (weights, requantization constants) and sidecars, and
    the simulation models its Verilog needs; return the file names."""
    q = parts(**args)
    files = (sd.BLOCK.write_files(args["decoder"], out_dir)
             + rq.BLOCK.write_files(args["requant"], out_dir)
             + mac.BLOCK.write_files(q["mac"], out_dir))
    return sorted(set(files))


# --- the stage ------------------------------------------------------------------------------

@block
def conv_row(aclk, aresetn, s_axis_in, m_axis_out, *, layer, lanes, simd, abits=8,
             asigned=False, target="generic", rom_prefix="", decoder=None, requant=None):
    """Row conv stage; see the module docstring.

    ``decoder``/``requant`` are the prepared arguments of those blocks (from
    :func:`prepare`); when omitted they are made here.
    """
    if decoder is None or requant is None:
        _, args = BLOCK.prepared(layer=layer, lanes=lanes, simd=simd, abits=abits,
                                 asigned=asigned, target=target, rom_prefix=rom_prefix)
        decoder, requant = args["decoder"], args["requant"]
    q = parts(layer=layer, lanes=lanes, simd=simd, abits=abits, asigned=asigned,
              target=target, rom_prefix=rom_prefix)
    wb = code_bits(q["mac"]["weights"], q["mac"]["wbits"])
    acc = q["requant"]["acc_bits"]
    window = Axis(simd * abits)
    weights = Axis(lanes * simd * wb)      # its tlast is unused: act's tlast frames the MAC
    sums = Axis(lanes * acc, last=False)
    return (lb.line_buffer(aclk, aresetn, s_axis_in, window, **q["line"]),
            sd.sparse_decoder(aclk, aresetn, weights, **decoder),
            mac.mac_array(aclk, aresetn, window, weights, sums, **q["mac"]),
            rq.requant(aclk, aresetn, sums, m_axis_out, **requant))


# --- golden model, cost, ports --------------------------------------------------------------

def input_beats(frames, *, simd, abits) -> list:
    """Stream beats for ``frames`` (N, H, W, Cin): raster, S values a beat, ``tlast`` on
    each frame's last beat."""
    frames = np.asarray(frames, dtype=np.int64)
    n = frames.shape[0]
    groups = frames.reshape(n, -1, simd)
    per = groups.shape[1]
    return [(pack(v, abits), i == per - 1) for f in groups for i, v in enumerate(f)]


def golden(frames, *, layer, lanes, **_):
    """``(values (beats, L) int64, tlast (beats,))``: ``quant.reference.run_layer`` in the
    stage's output order."""
    layer = reference.find_layer(layer)
    frames = np.asarray(frames, dtype=np.int64)
    g = geometry(layer)
    x = frames.reshape(len(frames), g["height"], g["width"], g["cin"])
    y = reference.run_layer(layer, x if layer.type == "conv" else x.reshape(len(x), -1))
    y = np.asarray(y).reshape(len(frames), -1, lanes)       # raster, channels ascending
    per = y.shape[1]
    values = y.reshape(-1, lanes)
    lasts = (np.arange(len(values)) % per) == per - 1
    return values, lasts


def cycles_per_frame(args: dict) -> dict:
    """Contract 7: input, compute and output beats of a frame, the pause, and the bound."""
    q = parts(**args)
    g, groups, simd = q["geometry"], q["groups"], args["simd"]
    pixels = g["out_height"] * g["out_width"]
    beats = {"input": g["height"] * g["width"] * g["cin"] // simd,
             "compute": pixels * groups * g["reduce"] // simd,
             "output": pixels * groups}
    pause = lb.frame_pause(**q["line"])
    # the line buffer pauses its windows, not its input (lb.frame_cycles): the pause
    # lengthens the compute beats only
    spans = {**beats, "compute": beats["compute"] + pause}
    bound = max(spans, key=spans.get)
    return {**beats, "pause": pause, "bound": bound, "cycles": spans[bound]}


def estimate(**args) -> dict:
    """The sum of the blocks' estimates; the wiring adds nothing (streams connect directly).

    ``bram`` adds the blocks' block RAM units per target (``blocks.ram``): the line
    buffer's ring (block or LUT RAM by size), the weight ROM and the constants ROM.  ``cycles`` per ``frame``: :func:`cycles_per_frame`.
    """
    q = parts(**args)
    line = lb.estimate(**q["line"])
    macs = mac.estimate(**q["mac"])
    dec = sd.BLOCK.estimate(**args["decoder"])
    req = rq.BLOCK.estimate(**args["requant"])
    bram = add_blocks(line["bram"], dec["bram"], req["bram"])
    total = {key: sum(int(e[key]) for e in (line, macs, dec, req))
             for key in ("lut", "ff", "dsp", "bram_bits")}
    rate = cycles_per_frame(args)
    # the line buffer's latency ends at the first window's first beat; its last (the
    # MAC's tlast) follows R/S - 1 beats later
    latency = (line["latency"] + q["geometry"]["reduce"] // args["simd"] - 1
               + mac.latency(args["simd"], q["mac"]["weights"]) + rq.LATENCY)
    return {**total, "bram": bram, "latency": latency, "cycles": rate["cycles"],
            "per": "frame", "bound": rate["bound"]}


def out_bits(args: dict) -> int:
    return rq.widths(**args["requant"])["out_bits"]


def derived(**args) -> dict:
    q = parts(**args)
    return {**{k: v for k, v in q["geometry"].items()}, "groups": q["groups"],
            "acc_bits": q["requant"]["acc_bits"], "out_bits": out_bits(args),
            "out_signed": bool(q["layer"].final or q["layer"].lo < 0),
            "rom_files": [args["decoder"]["rom_file"], args["requant"]["rom_file"]],
            "cycles_per_frame": cycles_per_frame(args)}


def ports(**args):
    return {**clock_reset(), "s_axis_in": Axis(args["simd"] * args["abits"]),
            "m_axis_out": Axis(args["lanes"] * out_bits(args))}


def random_layer(rng, *, cin, height, width, cout, k, stride=1, pad=0, weights="ternary",
                 act="relu", act_bits=4, final=False, abits=8, asigned=False,
                 kind="conv", name="conv") -> reference.IntLayer:
    """A random layer whose constants keep random inputs inside the output range.

    ``M/2**S`` scales the typical accumulator (its standard deviation) to about a quarter
    of the output range, so outputs spread over the range and some clamp.
    """
    kind_w, wbits = weight_modes.parse(weights)
    lo_w, hi_w = weight_modes.value_range(kind_w, wbits)
    reduce = k * k * cin
    W = rng.integers(lo_w, hi_w + 1, size=(cout, reduce))
    if kind_w == "binary":
        W = np.where(W > 0, 1, -1)
    a_lo, a_hi = mac.act_range(abits, asigned)
    spread = max(1.0, np.sqrt(reduce) * (a_hi - a_lo) / 2 * max(abs(lo_w), hi_w) / 2)
    signed_out = act != "relu"
    lo, hi = rq.out_range(act_bits, signed_out)
    ratio = rng.uniform(0.5, 1.5, size=cout) * (hi - lo) / 4 / spread
    shift = max(1, int(np.floor(np.log2(255 / ratio.max()))))
    m = np.clip(np.round(ratio * (1 << shift)), 1, 255).astype(np.int64)
    m_neg = m // 8 if act == "leaky" else m
    bias = rng.integers(-int(spread), int(spread) + 1, size=cout)
    ho = lb.out_size(height, k, stride, pad)
    wo = lb.out_size(width, k, stride, pad)
    out_shape = (cout, ho, wo) if kind == "conv" else (cout, 1, 1)
    return reference.IntLayer(
        type=kind, name=name, in_shape=(cin, height, width), out_shape=out_shape, k=k,
        stride=stride, pad=pad, weights=weights, act=act, act_bits=act_bits, final=final,
        S=shift, lo=lo, hi=hi, W=W, bias=bias, M=m, M_neg=m_neg)


def example() -> dict:
    layer = random_layer(np.random.default_rng(3), cin=4, height=6, width=6, cout=4, k=3,
                         pad=1, weights="ternary", act="relu", act_bits=4)
    return {"layer": layer, "lanes": 4, "simd": 2}


LINT_WAIVERS = {
    "UNUSEDSIGNAL": "s_axis_in_tlast: frames are counted from the geometry; the weight "
                    "stream's tlast: the window stream's tlast frames the MAC; the low "
                    "bits of product + 2**(S-1) in the requantizer are shifted out",
}

BLOCK = BlockDef(name="conv_row", build=conv_row, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 prepare=prepare, write_files=rom_files, example=example,
                 lint_waivers=LINT_WAIVERS)
