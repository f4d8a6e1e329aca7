"""``sparse_decoder``: the dense weight stream of one layer, decoded from a compressed ROM.

Reads the layer's weights from an on-chip ROM in the sparse format of
``docs/sparse_format.md`` (written by ``quant.sparse_format``) and streams them, dense,
in the order ``mac_array`` consumes them (docs/conventions.md, Contract 5): for each output-channel
group ``g`` in ``range(Cout // lanes)``, for each reduction step ``r`` in
``range(R // simd)``, one beat whose lane ``l``, element ``s`` is
``W[g*lanes + l, r*simd + s]``; ``tlast`` on the last beat of a pass; passes repeat
without a gap for as long as the consumer reads.

Parameters
----------
lanes : int, 1..64            L, output channels per beat
simd : int, 1..64             S, reduction elements per beat
weights : binary|ternary|int  weight mode; codes as ``mac_array``: binary 1 bit (1 = +1,
                              0 = -1), ternary 2-bit two's complement, int ``wbits``-bit
                              two's complement.  WB = 1, 2 or ``wbits``.
wbits : int, 2..8             int weights only (default 8)
weights_file : path or array  the weight VALUES, an integer ``(Cout, R)`` matrix
                              (``.npy`` on the command line).  ``Cout % lanes == 0``,
                              ``R % simd == 0``, values in the mode's range.

From Python, either pass ``weights_file=`` a numpy array (to ``BLOCK.prepared``,
``cnn_ip.export.generate`` or ``cnn_ip.cosim.run_streams``), or call the ``@block``
directly with an encoded image::

    image = quant.sparse_format.encode(W, weights="ternary", lanes=4, simd=8)
    sparse_decoder(aclk, aresetn, m_axis_wgt, lanes=4, simd=8, weights="ternary",
                   wbits=8, image=image, rom_file="sparse_decoder_rom.hex")

and write the image beside the Verilog (``BLOCK.write_files``), since the Verilog reads
it with ``$readmemh("<rom_file>")`` relative to where the simulator or synthesis runs.

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
m_axis_wgt_t*     ``tdata[L*S*WB-1:0]``, element ``s`` of lane ``l`` at bits
                  ``[(l*S+s+1)*WB-1 : (l*S+s)*WB]``; ``tvalid``, ``tready``, ``tlast``

Architecture, latency and throughput
------------------------------------
*dense coding* (always for binary; for ternary/int when masks would not save bits): the
ROM word is the beat; the ROM's output register drives ``tdata``.  One beat a cycle.

*masked coding*, pipelined so that no cycle holds more than one step of the decoding:

1. ``framer``: a ring of six ROM words takes one word a cycle while it has room; a
   register holds the ring's bits from the head record on (``word_bits + P`` bits, taken
   through a wrapping part-select of the ring a cycle before use).  The head record's
   mask count is known a cycle ahead: from that window the framer computes, as balanced
   adder trees, the mask count of every place the next record can start (``P + VB*k``
   bits on, one candidate per possible count ``k`` of the head record), and the head's
   registered count picks the next record's among them.  A pass's first record follows
   every last one, so its count is a constant of the image.  A record fires when its bits
   and the next mask are in the window and the output FIFO has a place for it; the head
   then moves past it (and past the word padding after a pass's last record).
2. ``expander``: three registered steps: the mask's local counts in groups of four and
   the group counts; each group's first value (a prefix sum of group counts); each
   group's values (a part-select per group).  The codes are written into
3. ``out_fifo``: eight beats, with a credit count of the beats in flight, so the
   expansion never waits for ``tready`` and ``tvalid`` comes from a register.

``word_bits`` is the layer's longest record, so a word a cycle always covers a beat a
cycle: one beat per cycle sustained for every layer, every sparsity, every mode, passes
back to back (checked in the tests on worst-case and random patterns).

Latency: the first beat is valid 1 cycle (dense) or 8 cycles (masked) after reset is
released.  ``tvalid`` never depends on ``tready``; a stall holds the beat.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv, modbv

from blocks.bit_fields import field_sums, group_shift, part_select, ring_store, ring_window
from blocks.ram import bram_blocks
from blocks.rom import address_bits, rom
from blocks.spec import BlockDef, Param, ParameterError, check_width, weight_params
from blocks.stream import Axis, clock_reset
from quant import sparse_format, weight_modes
from quant.rom_image import write_rom

ROM_STEM = "sparse_decoder_rom"
SLOTS = 6          # ROM words in the masked reader's ring (one beat a cycle needs 6: tests)
GROUP = 4          # mask elements per group in the expansion
FIFO_DEPTH = 8     # output FIFO: every beat in flight has a place (credit)

PARAMS = (
    Param("lanes", int, lo=1, hi=64, help="output channels in parallel (L)"),
    Param("simd", int, lo=1, hi=64, help="reduction elements per beat (S)"),
    *weight_params(),
    Param("weights_file", "path",
          help="integer (Cout, R) .npy matrix of weight values (an array from Python)"),
)


# --- parameters and the image -------------------------------------------------------------

def load_matrix(weights_file) -> np.ndarray:
    """The weight matrix named by ``weights_file`` (a path to a ``.npy``, or an array)."""
    if isinstance(weights_file, np.ndarray):
        return weights_file
    if not isinstance(weights_file, (str, Path)):
        raise ValueError(f"weights_file: must be a .npy file name or an integer array, "
                         f"got {type(weights_file).__name__}")
    try:
        loaded = np.load(weights_file, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"weights_file: {weights_file}: no such file") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"weights_file: {weights_file}: not a .npy array ({error})") from None
    if not isinstance(loaded, np.ndarray):
        raise ValueError(f"weights_file: {weights_file}: holds several arrays, expected one")
    return loaded


def prepare(params: dict) -> dict:
    """Parameters -> ``@block`` arguments: the one place ``weights_file`` is read and encoded."""
    W = load_matrix(params["weights_file"])
    if not (np.issubdtype(W.dtype, np.integer) or W.dtype == bool):
        raise ValueError(f"weights_file: must hold integers, got dtype {W.dtype}")
    image = sparse_format.encode(W, weights=params["weights"],
                                 wbits=weight_modes.normal_wbits(params["weights"], params["wbits"]),
                                 lanes=params["lanes"], simd=params["simd"])
    kwargs = {k: params[k] for k in ("lanes", "simd", "weights", "wbits")}
    return {**kwargs, "image": image, "rom_file": ROM_STEM + ".hex"}


def write_files(args: dict, out_dir) -> list:
    """Write the ROM image and its sidecar beside the Verilog; return their names."""
    image = args["image"]
    stem = Path(args["rom_file"]).stem
    meta = {k: v for k, v in image.meta.items() if k not in ("format", "word_bits", "depth", "bits")}
    write_rom(out_dir, stem, image.words, image.word_bits, format=image.meta["format"], **meta)
    return [f"{stem}.hex", f"{stem}.json"]


def check_image(image, *, lanes, simd, weights, wbits) -> None:
    meta = getattr(image, "meta", None)
    if meta is None or meta.get("format") != sparse_format.FORMAT:
        raise ParameterError(f"image: must be a {sparse_format.FORMAT} image from "
                             f"quant.sparse_format.encode")
    expected = {"lanes": lanes, "simd": simd, "weights": weights,
                "wbits": weight_modes.normal_wbits(weights, wbits)}
    for key, value in expected.items():
        if meta[key] != value:
            raise ParameterError(f"image: was encoded with {key} = {meta[key]}, "
                                 f"the block has {key} = {value}")


# --- the block ----------------------------------------------------------------------------

@block
def sparse_decoder(aclk, aresetn, m_axis_wgt, *, lanes, simd, weights, wbits, image,
                   rom_file=ROM_STEM + ".hex"):
    """Dense weight beats decoded from a sparse ROM; see the module docstring."""
    BLOCK.validate(lanes=lanes, simd=simd, weights=weights, wbits=wbits, weights_file=image)
    check_image(image, lanes=lanes, simd=simd, weights=weights, wbits=wbits)
    meta = image.meta
    check_width("m_axis_wgt.tdata", m_axis_wgt.tdata, lanes * simd * meta["code_bits"])
    depth, word_bits = image.depth, image.word_bits
    rom_en = Signal(bool(0))
    rom_addr = Signal(intbv(0)[address_bits(depth):])
    rom_dout = Signal(intbv(0)[word_bits:])
    memory = rom(aclk, rom_en, rom_addr, rom_dout, words=image.words, word_bits=word_bits,
                 file=rom_file)
    address = rom_address(aclk, aresetn, rom_en, rom_addr, depth=depth)
    if meta["coding"] == "dense":
        core = dense_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_addr, rom_dout,
                            depth=depth)
    else:
        core = masked_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_dout, image=image)
    return memory, address, core


@block
def rom_address(aclk, aresetn, en, addr, *, depth):
    """The ROM's read address: the next word on every enabled cycle, wrapping after the last."""
    top = depth - 1

    @always_seq(aclk.posedge, reset=aresetn)
    def step():
        if en:
            if addr == top:
                addr.next = 0
            else:
                addr.next = addr + 1

    return step


@block
def dense_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_addr, rom_dout, *, depth):
    """One ROM word a beat: the ROM's output register is the stream's data register."""
    valid = Signal(bool(0))
    last = Signal(bool(0))
    top = depth - 1

    @always_comb
    def enable():
        rom_en.next = not valid or m_axis_wgt.tready

    @always_seq(aclk.posedge, reset=aresetn)
    def advance():
        if rom_en:
            valid.next = 1
            last.next = rom_addr == top

    @always_comb
    def outputs():
        m_axis_wgt.tdata.next = rom_dout
        m_axis_wgt.tvalid.next = valid
        m_axis_wgt.tlast.next = last

    return enable, advance, outputs


@block
def masked_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_dout, *, image):
    """The masked coding, pipelined: ``framer`` finds the records, ``expander`` turns each
    into a dense beat in three registered steps, ``out_fifo`` holds the beats in flight."""
    meta = image.meta
    P = meta["lanes"] * meta["simd"]
    last_beat = meta["beats"] - 1
    lay = layout(meta, image.word_bits, first_count(image), SLOTS)
    fire = Signal(bool(0))
    rec_win = Signal(intbv(0)[image.word_bits:])
    at_last = Signal(bool(last_beat == 0))
    pending_ok = Signal(bool(1))
    push, push_last = Signal(bool(0)), Signal(bool(0))
    push_data = Signal(intbv(0)[P * meta["code_bits"]:])
    frames = framer(aclk, aresetn, rom_en, rom_dout, fire, rec_win, at_last, pending_ok,
                    lay=lay, last_beat=last_beat)
    expand = expander(aclk, aresetn, fire, rec_win, at_last, push, push_data, push_last, P=P,
                      VB=meta["value_bits"], WB=meta["code_bits"], W=image.word_bits)
    out = out_fifo(aclk, aresetn, push, push_data, push_last, m_axis_wgt, pending_ok, fire)
    return frames, expand, out


def first_count(image) -> int:
    """Non-zeros of the image's first beat: the record that follows every pass's last."""
    meta = image.meta
    W = sparse_format.decode(image.words, meta)
    return int(np.count_nonzero(W[:meta["lanes"], :meta["simd"]]))


def layout(meta, word_bits, first_count, slots):
    """Sizes of the masked reader for an image (see masked_reader)."""
    P, VB, W = meta["lanes"] * meta["simd"], meta["value_bits"], word_bits
    most = (W - P) // VB
    win = W + P
    return {"P": P, "VB": VB, "W": W, "most": most, "first": first_count, "WIN": win,
            "RING": slots * W, "CW": P.bit_length(), "pad": meta["pad_bits"],
            "offsets": [P + VB * k for k in range(most + 1)] + [0]}


@block
def framer(aclk, aresetn, rom_en, rom_dout, fire, rec_win, at_last, pending_ok, *, lay, last_beat):
    """Finds record boundaries: ring of ROM words, the head's window a cycle late, and the
    next record's mask count chosen among candidates computed from that window."""
    P, VB, W, WIN, RING, CW = (lay[k] for k in ("P", "VB", "W", "WIN", "RING", "CW"))
    NC = len(lay["offsets"])
    PAD = lay["pad"]
    slots = RING // W
    ring = Signal(intbv(0)[RING:])
    HB = (RING - 1).bit_length()
    win = Signal(intbv(0)[WIN:])
    win_next = Signal(intbv(0)[WIN:])
    head = Signal(intbv(0, min=0, max=RING))
    head_next = Signal(intbv(0, min=0, max=RING))
    fill = Signal(intbv(0, min=0, max=RING + 1))
    win_fill = Signal(intbv(0, min=0, max=RING + 1))
    arriving = Signal(bool(0))
    write_slot = Signal(intbv(0, min=0, max=slots))
    cands = Signal(intbv(0)[NC * CW:])
    chosen = Signal(intbv(0)[CW:])
    cnt = Signal(intbv(0, min=0, max=P + 1))
    cnt_ok = Signal(bool(0))
    ell = Signal(intbv(P, min=0, max=2 * W + 1))
    need = Signal(intbv(2 * P, min=0, max=2 * W + P + 1))
    beat = Signal(intbv(0, min=0, max=last_beat + 1))
    FIRST = lay["first"]
    counts = field_sums(win, cands, groups=[[(o + j, 1) for j in range(P)] for o in lay["offsets"]],
                        out_bits=CW)
    select = part_select(cands, cnt, chosen, scale=CW)
    window = ring_window(ring, head_next, win_next)
    stores = ring_store(aclk, arriving, write_slot, rom_dout, ring)
    SELF_CAND = (NC - 1) * CW

    @always_comb
    def decide():
        f = cnt_ok and win_fill >= need and pending_ok
        fire.next = f
        s = intbv(0, min=0, max=2 * RING + 1)
        s[:] = head + ell
        if s >= RING:
            s[:] = s - RING
        if f:
            head_next.next = s[HB:]
        else:
            head_next.next = head
        if arriving:
            rom_en.next = fill <= RING - 2 * W
        else:
            rom_en.next = fill <= RING - W

    @always_seq(aclk.posedge, reset=aresetn)
    def step():
        rest = intbv(0, min=0, max=RING + 1)
        c = intbv(0, min=0, max=P + 1)
        nxt_last = bool(0)
        if fire:
            rest[:] = fill - ell
            if at_last:
                c[:] = FIRST    # the next pass starts with the image's first record
                beat.next = 0
            else:
                c[:] = chosen
                beat.next = beat + 1
            if at_last:
                nxt_last = bool(last_beat == 0)
            else:
                nxt_last = bool(beat + 1 == last_beat)
            cnt_ok.next = 1
        else:
            rest[:] = fill
            c[:] = cands[SELF_CAND + CW:SELF_CAND]
            nxt_last = bool(at_last)
            cnt_ok.next = win_fill >= P
        at_last.next = nxt_last
        cnt.next = c
        if nxt_last:
            # the padding goes with the last record; the next mask is a constant
            ell.next = P + VB * c + PAD
            need.next = P + VB * c + PAD
        else:
            ell.next = P + VB * c
            need.next = 2 * P + VB * c
        head.next = head_next
        win.next = win_next
        win_fill.next = rest
        if arriving:
            fill.next = rest + W
            if write_slot == slots - 1:
                write_slot.next = 0
            else:
                write_slot.next = write_slot + 1
        else:
            fill.next = rest
        arriving.next = rom_en

    @always_comb
    def record():
        rec_win.next = win[len(rec_win):]

    return counts, select, window, stores, decide, step, record


@block
def expander(aclk, aresetn, fire, rec_win, at_last, push, push_data, push_last, *, P, VB, WB, W):
    """Mask expansion in three registered steps after ``fire``: group counts, group
    offsets, per-group values; the codes are pushed (into the FIFO) on the fourth edge."""
    G = GROUP
    NG = (P + G - 1) // G
    CW = P.bit_length()
    LB = max(1, (G - 1).bit_length())
    GB = G.bit_length()
    VALW = max(W - P, 1)
    mask1, mask2, mask3 = (Signal(intbv(0)[P:]) for _ in range(3))
    vals1, vals2 = (Signal(intbv(0)[VALW:]) for _ in range(2))
    lp0, lp1, lp2, lp3 = (Signal(intbv(0)[P * LB:]) for _ in range(4))
    gs0, gs1 = (Signal(intbv(0)[max(NG - 1, 1) * GB:]) for _ in range(2))
    gp1, gp2 = (Signal(intbv(0)[NG * CW:]) for _ in range(2))
    vg2, vg3 = (Signal(intbv(0)[NG * G * VB:]) for _ in range(2))
    codes = Signal(intbv(0)[P * WB:])
    v1, v2, v3 = (Signal(bool(0)) for _ in range(3))
    l1, l2, l3 = (Signal(bool(0)) for _ in range(3))
    local = field_sums(rec_win, lp0, out_bits=LB, groups=[
        [(p - p % G + j, 1) for j in range(p % G)] for p in range(P)])
    if NG > 1:
        # the last group's count is never needed: offsets sum the groups before each group
        groups = [field_sums(rec_win, gs0, out_bits=GB, groups=[
                      [(g * G + j, 1) for j in range(G)] for g in range(NG - 1)]),
                  field_sums(gs1, gp1, out_bits=CW, groups=[
                      [(j * GB, GB) for j in range(g)] for g in range(NG)]),
                  group_shift(vals2, gp2, vg2, off_bits=CW, scale=VB, width=G * VB),
                  group_registers(aclk, gs0, gs1, gp1, gp2)]
    else:
        groups = one_group(vals2, vg2)
    expand = expand_codes(mask3, lp3, vg3, codes, group=G, vb=VB, wb=WB, lb=LB)

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        v1.next = fire
        v2.next = v1
        v3.next = v2
        l1.next = at_last
        l2.next = l1
        l3.next = l2

    @always(aclk.posedge)
    def data():
        mask1.next = rec_win[P:]
        vals1.next = rec_win[P + VALW:P] if W > P else 0
        lp1.next = lp0
        mask2.next = mask1
        vals2.next = vals1
        lp2.next = lp1
        mask3.next = mask2
        lp3.next = lp2
        vg3.next = vg2

    @always_comb
    def out():
        push.next = v3
        push_data.next = codes
        push_last.next = l3

    return local, groups, expand, flags, data, out


@block
def group_registers(aclk, gs0, gs1, gp1, gp2):
    @always(aclk.posedge)
    def load():
        gs1.next = gs0
        gp2.next = gp1

    return load


@block
def one_group(vals, vg):
    """A single group: its values start at the record's first value."""

    @always_comb
    def pass_on():
        vg.next = vals

    return pass_on


@block
def expand_codes(mask, lp, vg, codes, *, group, vb, wb, lb):
    """Element ``p`` (group ``g``, local index ``lp_p``): mask bit set -> its value
    ``vg_g[lp_p]`` below ``wb - vb`` one bits (ternary ``x1``), else code 0."""
    P = len(mask)
    filled = wb - vb
    gw = group * vb

    @always_comb
    def model():
        m, l, v = int(mask.val), int(lp.val), int(vg.val)
        res = 0
        for p in range(P):
            if (m >> p) & 1:
                k = (l >> (p * lb)) & ((1 << lb) - 1)
                value = (v >> ((p // group) * gw + k * vb)) & ((1 << vb) - 1)
                res |= ((value << filled) | ((1 << filled) - 1)) << (p * wb)
        codes.next = res

    codes.driven = "wire"
    mask.read = lp.read = vg.read = True
    lines = []
    for p in range(P):
        g = p // group
        pick = f"$vg[{g * gw} + $lp[{(p + 1) * lb - 1}:{p * lb}] * {vb} +: {vb}]"
        code = f"{{{pick}, {filled}'b{'1' * filled}}}" if filled else pick
        lines.append(f"assign $codes[{(p + 1) * wb - 1}:{p * wb}] = $mask[{p}] ? {code} : {wb}'d0;")
    expand_codes.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def out_fifo(aclk, aresetn, push, push_data, push_last, m_axis_wgt, pending_ok, fire):
    """The output FIFO and its credit: a record is fired only while every beat in flight
    has a place, so the expansion pipeline never waits for ``tready``."""
    D = FIFO_DEPTH
    OW = len(push_data)
    mem = [Signal(intbv(0)[OW + 1:]) for _ in range(D)]
    wptr, rptr = Signal(modbv(0)[3:]), Signal(modbv(0)[3:])
    count = Signal(intbv(0, min=0, max=D + 1))
    pending = Signal(intbv(0, min=0, max=D + 1))
    pop = Signal(bool(0))
    head = Signal(intbv(0)[OW + 1:])

    @always(aclk.posedge)
    def write():
        if push:
            mem[wptr].next = concat(push_last, push_data)

    @always_comb
    def read():
        head.next = mem[rptr]
        pop.next = count != 0 and m_axis_wgt.tready

    @always_seq(aclk.posedge, reset=aresetn)
    def pointers():
        if push:
            wptr.next = wptr + 1
        if pop:
            rptr.next = rptr + 1
        if push and not pop:
            count.next = count + 1
        elif pop and not push:
            count.next = count - 1
        if fire and not pop:
            pending.next = pending + 1
            pending_ok.next = pending + 1 < D
        elif pop and not fire:
            pending.next = pending - 1
            pending_ok.next = 1
        else:
            pending_ok.next = pending < D

    @always_comb
    def outputs():
        m_axis_wgt.tdata.next = head[OW:]
        m_axis_wgt.tlast.next = head[OW]
        m_axis_wgt.tvalid.next = count != 0

    return write, read, pointers, outputs


# --- golden model, estimate, ports --------------------------------------------------------

def golden(image, *, passes: int = 1) -> list[tuple[int, bool]]:
    """``(tdata, tlast)`` of ``passes`` passes, from the ROM words alone (decode + pack)."""
    meta = image.meta
    W = sparse_format.decode(image.words, meta)
    one = sparse_format.beat_codes(W, weights=meta["weights"], wbits=meta["wbits"],
                                   lanes=meta["lanes"], simd=meta["simd"])
    return [(data, i == len(one) - 1) for data, i in
            ((d, i) for _ in range(passes) for i, d in enumerate(one))]


def derived(*, lanes, simd, image, rom_file, **_) -> dict:
    meta = image.meta
    return {"tdata_bits": lanes * simd * meta["code_bits"],
            "coding": meta["coding"], "rom_word_bits": image.word_bits,
            "rom_depth": image.depth, "rom_bits": image.bits,
            "beats_per_pass": meta["beats"], "bits_per_weight": meta["bits_per_weight"],
            "sparsity": meta["sparsity"], "rom_file": rom_file}


def estimate(*, image, **_) -> dict:
    """Cost of the decoder for an encoded image.

    LUTs of the masked reader: the head window's shifter (``(W + P) * log2(6W)``), one
    mask-count tree per candidate, the expansion (group offsets and value selects) and
    the output FIFO in LUT RAM, with coefficients fitted to synthesis (three masked
    layers within 2 %, ``docs/estimates.md``).  FFs are counted register by register.  The ROM itself is ``bram_bits`` (exact) in block RAM (``rom``'s
    ``rom_style = "block"``), no LUT.
    """
    meta = image.meta
    W, P = image.word_bits, meta["lanes"] * meta["simd"]
    addr = address_bits(image.depth)
    bram = bram_blocks(W, image.depth, style="block")  # rom_style = "block"
    if meta["coding"] == "dense":
        # address counter and its wrap compare; the ROM's output register is the data
        return {"lut": addr, "ff": addr + 2, "dsp": 0, "bram_bits": image.bits,
                "bram": bram, "latency": 1, "cycles": 1, "per": "beat"}
    ff, lut = masked_cost(meta, W, addr)
    return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": image.bits,
            "bram": bram, "latency": MASKED_LATENCY, "cycles": 1, "per": "beat"}


MASKED_LATENCY = 8  # reset released -> first beat valid (the pipeline filling)


def masked_cost(meta, W, addr) -> tuple[int, int]:
    """``(FF, LUT)`` of the masked reader: registers counted one by one (without the bits
    synthesis finds constant), LUTs per structure with a coefficient fitted to synthesis.

    On Xilinx the expansion's two three-stage delay chains without reset (masks, local
    counts) become SRL16 shift registers: a LUT per bit instead of three flip-flops."""
    P, VB, WB = meta["lanes"] * meta["simd"], meta["value_bits"], meta["code_bits"]
    ring = SLOTS * W
    G, NG = GROUP, -(-P // GROUP)
    most = (W - P) // VB                       # the most values a record holds
    cw = P.bit_length()
    local = sum((j).bit_length() for j in range(G)) * (P // G) \
        + sum((j).bit_length() for j in range(P % G))   # live bits of the local counts
    group_offsets = sum((G * g).bit_length() for g in range(1, NG))
    ff = (ring + (W + P)                            # ring, head window
          + 3 * ring.bit_length() + 5               # head, fill, window fill, slot, flags
          + cw + (2 * W).bit_length() + (2 * W + P).bit_length()   # count, length, need
          + (meta["beats"] - 1).bit_length() + addr
          + 2 * max(W - P, 1)                       # expansion: values (masks, counts: SRL)
          + (NG - 1) * (G.bit_length()) + group_offsets + NG * G * VB + 6
          + 6 + 2 * (FIFO_DEPTH.bit_length()) + 1)  # FIFO pointers, count, credit
    shifter = (W + P) * (ring - 1).bit_length()
    counts = (most + 2) * P                          # one popcount tree per candidate
    expansion = P * (VB * G + cw) + NG * G * VB * max(most, 1).bit_length()
    fifo = 1.66 * (P * WB + 1)                       # LUT RAM, as synth_xilinx maps it
    srl = P + local
    lut = int(round(1.45 * shifter + 3.0 * counts + 0.4 * expansion + fifo + srl + 60))
    return ff, lut


def ports(*, lanes, simd, weights, wbits, **_):
    wb = weight_modes.code_bits(weights, wbits)
    return {**clock_reset(), "m_axis_wgt": Axis(lanes * simd * wb)}


def example() -> dict:
    """A seeded 32x72 ternary layer at about 80% zeros, written to a temporary .npy."""
    rng = np.random.default_rng(2021)
    W = rng.choice([-1, 1], size=(32, 72)) * (rng.random((32, 72)) < 0.2)
    path = Path(tempfile.gettempdir()) / "cnn_ip-sparse_decoder-example.npy"
    scratch = path.with_name(f".{path.name}.{os.getpid()}.npy")
    np.save(scratch, W.astype(np.int8))
    os.replace(scratch, path)  # atomic: parallel test workers share the file
    return {"lanes": 4, "simd": 8, "weights": "ternary", "weights_file": str(path)}


BLOCK = BlockDef(name="sparse_decoder", build=sparse_decoder, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, prepare=prepare,
                 write_files=write_files, example=example)
