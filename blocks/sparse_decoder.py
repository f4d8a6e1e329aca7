"""``sparse_decoder``: the dense weight stream of one layer, decoded from a compressed ROM.

Reads the layer's weights from an on-chip ROM in the sparse format of
``docs/sparse_format.md`` (written by ``quant.sparse_format``) and streams them, dense,
in the order ``mac_array`` consumes them (DESIGN.md, Contract 5): for each output-channel
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

*masked coding*: a ring of four ROM words takes one word a cycle while it has room; the
record at its read pointer (a ``P = L*S`` bit mask, then one value per set bit), seen
through a ``word_bits``-wide window, is expanded into the output register and the pointer
moves past it (on the last beat of a pass past the word padding too).  ``word_bits`` is
the layer's longest record, so a word a cycle always covers a beat a cycle: one beat per
cycle sustained for every layer, every sparsity, every mode (checked in the tests on
worst-case patterns; 2304 beats in 2304 cycles on a 64x576 layer in
``bench/sparse_format.py``).  There is no slower fallback because none is needed; the
price of a wide beat is logic (see ``estimate``).

Latency: the first beat is valid 1 cycle (dense) or 3 cycles (masked) after reset is
released.  ``tvalid`` never depends on ``tready``; a stall holds the beat.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from myhdl import Signal, always_comb, always_seq, block, concat, intbv, modbv

from blocks.ram import bram_blocks
from blocks.rom import address_bits, rom
from blocks.spec import BlockDef, Param, ParameterError, check_width, weight_params
from blocks.stream import Axis, clock_reset
from quant import sparse_format, weight_modes
from quant.rom_image import write_rom

ROM_STEM = "sparse_decoder_rom"

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
        core = masked_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_dout, meta=meta,
                             word_bits=word_bits)
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
def masked_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_dout, *, meta, word_bits):
    """Ring of four ROM words + mask expansion for the masked coding (module docstring).

    Stream bit ``i`` lives at ring bit ``i % (4 * W)``: words are written whole into the
    next slot, and the record at the head is read through a ``W``-bit window at the read
    pointer, so the only shifter is the window's (``W`` wide), not the ring's.
    """
    P = meta["lanes"] * meta["simd"]
    WB, VB = meta["code_bits"], meta["value_bits"]
    FILLED = WB - VB  # low code bits that are 1 for every non-zero (ternary: 1)
    W = word_bits
    RING = 4 * W  # capacity that never starves at one word and one beat a cycle
    PAD = meta["pad_bits"]
    last_beat = meta["beats"] - 1
    OW = P * WB
    NEED_MAX = P + P * VB + PAD + 1
    VALW = max(W - P, 1)  # the longest record's values
    WIN = P + VALW        # the window: one whole record (W, or W + 1 if no values at all)
    HEAD_BITS = (RING - 1).bit_length()

    slot0, slot1, slot2, slot3 = (Signal(intbv(0)[W:]) for _ in range(4))
    window = Signal(intbv(0)[WIN:])
    write_slot = Signal(modbv(0)[2:])
    head = Signal(intbv(0, min=0, max=RING))  # read pointer: ring bit of the record
    fill = Signal(intbv(0, min=0, max=RING + 1))
    arriving = Signal(bool(0))  # rom_dout holds a word read last cycle: store it now
    beat = Signal(intbv(0, min=0, max=last_beat + 1))
    out_data = Signal(intbv(0)[OW:])
    out_valid = Signal(bool(0))
    out_last = Signal(bool(0))

    reader = ring_window(slot0, slot1, slot2, slot3, head, window)

    @always_comb
    def room():
        # Read another word when it fits even if nothing is consumed meanwhile.
        if arriving:
            rom_en.next = fill <= RING - 2 * W
        else:
            rom_en.next = fill <= RING - W

    @always_seq(aclk.posedge, reset=aresetn)
    def step():
        # Expand the record at the head: mask bit p set -> the next stored value.  A record has at most
        # VALW / VB values, so each element selects among that many only.
        values = intbv(0)[VALW:]
        values[:] = window[WIN:P]
        codes = intbv(0)[OW:]
        count = intbv(0, min=0, max=P + 1)
        for p in range(P):
            if window[p]:
                # ternary: code 01 / 11, the stored sign bit is the high bit;
                # int: the stored value is the whole code (WB == VB)
                for j in range(FILLED):
                    codes[p * WB + j] = 1
                for j in range(VB):
                    codes[p * WB + FILLED + j] = values[count * VB + j]
                count += 1
        need = intbv(0, min=0, max=NEED_MAX)
        need[:] = P + count * VB
        if beat == last_beat:
            need[:] = need + PAD  # the last word's padding goes with the last beat
        # Bits past `fill` are stale, so `need` may be wrong while fill < need; then the
        # record is incomplete and nothing fires, since need >= P always.
        fire = fill >= need and (not out_valid or m_axis_wgt.tready)
        rest = intbv(0, min=0, max=RING + 1)
        moved = intbv(0, min=0, max=RING + NEED_MAX)
        if fire:
            rest[:] = fill - need
            moved[:] = head + need
            if moved >= RING:
                moved[:] = moved - RING
            head.next = moved[HEAD_BITS:]
            out_data.next = codes
            out_valid.next = 1
            out_last.next = beat == last_beat
            if beat == last_beat:
                beat.next = 0
            else:
                beat.next = beat + 1
        else:
            rest[:] = fill
            if m_axis_wgt.tready:
                out_valid.next = 0
        if arriving:
            fill.next = rest + W
            write_slot.next = write_slot + 1
            if write_slot == 0:
                slot0.next = rom_dout
            elif write_slot == 1:
                slot1.next = rom_dout
            elif write_slot == 2:
                slot2.next = rom_dout
            else:
                slot3.next = rom_dout
        else:
            fill.next = rest
        arriving.next = rom_en

    @always_comb
    def outputs():
        m_axis_wgt.tdata.next = out_data
        m_axis_wgt.tvalid.next = out_valid
        m_axis_wgt.tlast.next = out_last

    return reader, room, step, outputs


@block
def ring_window(slot0, slot1, slot2, slot3, head, window):
    """``window`` = bits ``[head, head + len(window))`` of the four-slot ring, wrapping round.

    Verilog's indexed part-select (a user-defined template), because a shifted copy of
    the ring held in a MyHDL variable declares bits that nothing reads.
    """
    W, WIN = len(slot0), len(window)
    if WIN > W + 1:
        raise ValueError(f"window: {WIN} bits, at most one slot and a bit ({W + 1})")
    mask = (1 << WIN) - 1
    ring_bits = 5 * W  # the ring and its first slot again: head + WIN never passes it

    @always_comb
    def pick():
        window.next = (concat(slot0, slot3, slot2, slot1, slot0) >> head) & mask

    window.driven = "wire"
    slot0.read = slot1.read = slot2.read = slot3.read = head.read = True
    ring_window.verilog_code = """
wire [$ring_bits-1:0] ${window}_ring = {$slot0, $slot3, $slot2, $slot1, $slot0};
assign $window = ${window}_ring[$head +: $WIN];
"""
    return pick


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

    LUTs of the masked reader: the window shifter (``W * log2(4W)``), the expansion
    multiplexers (each of the ``P`` elements chooses among the longest record's values),
    the running count of mask bits (``P * log2(P)``) and the pointer arithmetic, with
    coefficients fitted to synthesis (``docs/estimates.md``).  FFs are counted register by
    register.  The ROM itself is ``bram_bits`` (exact) in block RAM (``rom``'s
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
    ring = 4 * W
    values = max(W - P, 1)
    most = values // meta["value_bits"]  # the most non-zeros a record holds
    lut = 0.84 * (2.3 * W * (ring - 1).bit_length() + 1.0 * P * most
                  + 1.7 * P * P.bit_length() + 54)
    ff = (ring                                  # four word slots
          + 2 * ring.bit_length() + 2           # read pointer, fill, write slot
          + P * meta["code_bits"] + 3           # output register, valid, last, arriving
          + addr + (meta["beats"] - 1).bit_length())
    return {"lut": int(round(lut)), "ff": int(ff), "dsp": 0, "bram_bits": image.bits,
            "bram": bram, "latency": 3, "cycles": 1, "per": "beat"}


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
