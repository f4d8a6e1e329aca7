"""``sparse_decoder``: the dense weight stream of one layer, decoded from a compressed ROM
or from a stream of compressed words.

Reads the layer's weights in the sparse format of ``docs/sparse_format.md`` (written by
``quant.sparse_format``) and streams them, dense, in the order ``mac_array`` consumes them
(docs/conventions.md, Contract 5): for each output-channel group ``g``, for each reduction
step ``r`` in ``range(R // simd)``, one beat whose lane ``l``, element ``s`` is
``W[g*lanes + l, r*simd + s]``; ``tlast`` on the last beat of a pass.

* ``source="rom"`` (default): the whole layer's image sits in an on-chip ROM; a pass is
  every group, ``Cout/lanes * R/simd`` beats, and passes repeat without a gap for as long
  as the consumer reads.
* ``source="stream"`` (frame-based stages): the words come on ``s_axis_words``, one
  *group image* per pass (``quant.offchip.group_images(W, ...)[g].words``: the group's
  own records and padding, ``tlast`` on its last word); a pass is that group's
  ``R/simd`` beats.  Images follow back to back, each its own length and padding.

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
                              ``R % simd == 0``, values in the mode's range.  Required
                              with ``rom``; with ``stream`` it gives the three below
                              (``quant.offchip.layer_format``, ``beats = R/simd``).
source : rom|stream           where the words come from (default ``rom``)
coding : auto|dense|masked|block
                              the layer's coding.  With ``weights_file`` the writer's
                              choice (``auto``: the smallest of all, ``/1`` or ``/2``,
                              ``quant.sparse_format.encode``) or the one forced; stream
                              mode without ``weights_file``: the coding of its words
block : int                   block coding: ``B``, a power of two dividing ``L*S``
                              (with ``weights_file``: 0 lets the writer choose)
inner : auto|mask|dense       block coding: a non-zero block's element masks and values,
                              or its ``B`` codes (``auto``: the writer's choice)
word_bits : int               stream only, without ``weights_file``: the word width (the
                              layer's longest record; ``P*WB`` for dense, ``P..P+VB*P``
                              for masked, ``K..K+P+VB*P`` (element masks) or
                              ``K..K+P*WB`` (dense blocks) for block, ``P = L*S``,
                              ``K = P/B``, VB = 1 ternary, N int)
beats : int >= 1              stream only, without ``weights_file``: beats a pass, R/S
target : str                  ``generic`` (default) or a device name of ``fpga/devices.py``:
                              on an ECP5 device the ROM is instantiated DP16KD blocks
                              read through their output register (``blocks.rom``; the
                              directory then carries ``DP16KD_sim.v``); the cycle
                              behaviour is the same on every target

From Python, either pass ``weights_file=`` a numpy array (to ``BLOCK.prepared``,
``cnn_ip.export.generate`` or ``cnn_ip.cosim.run_streams``), or call the ``@block``
directly with an encoded image::

    image = quant.sparse_format.encode(W, weights="ternary", lanes=4, simd=8)
    sparse_decoder(aclk, aresetn, m_axis_wgt, lanes=4, simd=8, weights="ternary",
                   wbits=8, image=image, rom_file="sparse_decoder_rom.hex")

and write the image beside the Verilog (``BLOCK.write_files``), since the Verilog reads
it with ``$readmemh("<rom_file>")`` relative to where the simulator or synthesis runs.
Stream mode: ``sparse_decoder(aclk, aresetn, m_axis_wgt, s_axis_words, lanes=4, simd=8,
weights="ternary", wbits=8, source="stream", coding="masked", word_bits=44, beats=9)``.

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
s_axis_words_t*   stream mode only: ``tdata[word_bits-1:0]`` one word (stream bit ``i``
                  of an image is bit ``i % word_bits`` of its word ``i // word_bits``),
                  ``tvalid``, ``tready``, ``tlast`` on an image's last word
m_axis_wgt_t*     ``tdata[L*S*WB-1:0]``, element ``s`` of lane ``l`` at bits
                  ``[(l*S+s+1)*WB-1 : (l*S+s)*WB]``; ``tvalid``, ``tready``, ``tlast``

Architecture, latency and throughput
------------------------------------
*dense coding* (always for binary; for ternary/int when masks would not save bits): the
word is the beat.  ROM: the ROM's read and output registers (``blocks.rom`` with
``out_enable``: on ECP5 the block RAM's own, so its slow clock-to-out stays inside it)
move together, and the output register drives ``tdata``.  Stream: a register slice
(``axis_register``) from ``s_axis_words`` to ``m_axis_wgt``.  One beat a cycle.

*masked coding*.  A record's start is the previous start plus ``P + VB*c``, ``c`` the
previous mask's count: a recurrence, which is the only loop of the design.  Everything
else (counting, shifting, expanding) is pipelined off it:

1. the front: a ROM read (the ROM's read register, its output register, then the word
   register; on ECP5 the first two are the DP16KD's own, so the block RAM's slow
   clock-to-out ends at its output register) or a word of ``s_axis_words``
   (``tready``), with its ``tlast`` flag (ROM: the top address), entering a pipeline that
   moves in lock step on ``adv`` (a register: the slots below have room);
2. the *table pipeline* (``blocks.sparse_table``): for every word, from prefix counts of
   its bits (and the top ``P-1`` bits of the word before it), the entry of every offset
   ``o`` in ``0..W-1`` a record can start at (multiples of ``g``, the largest power of
   two dividing ``P``, ``VB`` and ``W``: ``W/g`` entries, offsets in units of ``g``):
   whether the record starting there leaves the word, and where the next record starts
   in the word it starts in.  A record is at most ``W`` bits, so it
   ends in its word or the next; the entries of offsets whose mask runs into the next
   word are made when that word comes.  ``table_stages`` registers: chunk counts, the
   chunk prefix (an adder level a stage), prefix counts, the value bits; the entries
   made from them are registered once more (``table_register``, a stage of the same
   lock step: the entries' last adders end there, not in the slots' and the head
   table's selects and enables), then in the slots;
3. four word *slots* and three table slots (``blocks.sparse_framer``) hold the words,
   tables and ``tlast`` flags in rings; the *loop* holds a word pointer ``p``, an offset
   ``off`` and the *head table*, a copy of the head word's table beside ``off``: its next
   state is the head table's entry at ``off`` (a tree of 4:1 selects, no adder; the pop
   bit from a select of its own on ``off``, its low index bits from ``POP_COPIES``
   copies of their own), or, after a pass's
   last record, offset 0 in the word after the image's ``tlast`` word (the padding
   skipped, whatever its length).  The head table is a ring of two tables: one is the
   head's (``cur``, a register), the other holds the table of the word that becomes the
   head if the head word is left now, loaded every cycle from its table slot or
   straight from the table pipeline when that slot is being written (a choice
   registered a cycle ahead for both outcomes); leaving the head word flips ``cur``.
   So the pop bit enables no load: it reaches only the loop's few registers, each one
   LUT after it, both outcomes made beside the select (``pop_register``); the rings'
   load enables are such registers too (``ring_enables``), and the slots' load enables
   take the pop bit from a copy of the pop select's levels above its first.  The entry
   select's first level takes ``off``'s low bits from ``COPIES`` copies in turn
   (registers Yosys keeps apart); on an ECP5 target the selects are 16:1 PFU muxes
   (``LUT4``, ``PFUMX``, ``L6MUX21``) for synthesis, two routing hops for 64 entries
   where ABC's mapping took six.  A record fires
   when its word and the next are in (or, in stream mode, its word is its image's
   last) and the output FIFO has a place.  A ROM's walker knows its image: whether a
   pass's last record starts before the last word (and the head then leaves it two
   words on) is a constant of the generated Verilog, not logic after the head word's
   flag, and the ROM's next word always comes, so no record waits on that flag (so
   the Verilog belongs to its image: another image, even of the same shape, needs the
   block generated again, not only a new ``.hex``);
4. *extraction*: the pointer and offset are copied into registers, the pair of words is
   registered, then shifted right by the offset in ``shift_stages`` registered stages of
   8:1 selects, giving the record's bits;
5. ``expander``: three registered steps (four above five groups: the group offsets'
   two adder levels a register apart, :func:`offset_split`): the mask's local counts in
   groups of four and the group counts; each group's first value (a prefix sum of group
   counts); each group's values (a part-select per group; on an ECP5 target slice muxes for
   synthesis, on the offset bits the group can use: group ``g`` starts at most ``4g``
   values in).  The codes are written into
6. ``out_fifo``: sixteen beats in LUT RAM, with a credit count of the beats in flight,
   so the pipeline never waits for ``tready`` and ``tvalid`` comes from a register.

``word_bits`` is the layer's longest record, so a word a cycle always covers a beat a
cycle: one beat per cycle sustained for every layer, every sparsity, every mode, passes
back to back; in stream mode as long as the words come one a cycle (checked in the tests
on worst-case and random patterns, groups of different lengths).  The word slots are
four: the head, the word after it, and two more for a pass end whose last record runs
into its image's ``tlast`` word (then ``p`` moves by two); the head's table is in the head
table, so three table slots hold the others'.

*block coding* (``cnn_ip.sparse/2``) goes through the masked coding's reader with the
same loop; only the table and the expansion differ.  With dense blocks
(``inner="dense"``) a record is, to the table, a masked record of a ``P/B``-bit mask
and ``B*WB``-bit values, so the table is the masked one for those.  With element masks
the table (``blocks.sparse_table.block_tail``) computes each start's length
``P/B + B*m + VB*n``, padded to an even length, from prefix counts (a ``(P/B+1)``-way
select, a subtraction, then the sum: three more pipeline stages).  The coding pads
these records to even lengths (``quant.sparse_format.RECORD_ALIGN``) so that a ternary
layer's records start at even bits: its table has half the starts, and the loop's
selects half the entries, of an unpadded one's.  A header of variable length means a
record near a word's end may end inside it, so every start has an entry made with the
bits past the word read as zero, overwritten for the last starts by the entries made
with the next word when it comes (``table_slot``/``head`` with ``own = W``; a ring of
the head table that loads a new head from the table pipeline keeps the own entries
there).  After the extraction
``blocks.block_mask.block_expand`` (two registered steps) turns the record into the
masked record the expander takes, or (dense blocks) into the beat's codes.

Latency: the first beat is valid 2 cycles (dense ROM: the ROM's two registers) after
reset is released, 1 cycle (dense stream) after the first word is taken; masked: ``masked_latency`` cycles after the first word is
taken (stream), two more after reset (ROM): ``13 + levels + ceil(NB/3)``, one more
where ``P`` is above 20 (:func:`offset_split`), with
``levels = bits(floor((W+P-1)/4) - 1)`` and ``NB`` the loop's offset bits
(``blocks.sparse_table.Shape.ob``: those of ``W/g - 1``, for ``/1`` at least 3):
21 (stream) for the 32x72 ternary layer of the bench at lanes 4, simd 8 (``W = 43``);
one cycle less when the first image is a single word (its records need no next word).
``tvalid`` never depends on ``tready``; a stall holds the beat.  Stream mode:
``s_axis_words.tready`` is ``adv``; a pass's last beat waits for its image's ``tlast``
word, never for the next image.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from myhdl import (Signal, always, always_comb, always_seq, block, concat, intbv,
                   modbv)

from blocks.axis_register import BLOCK as REGISTER, axis_register
from blocks.bit_fields import field_sums, group_shift
from blocks.dsp_mult import is_ecp5
from blocks.mac import operand_register
from blocks.block_mask import block_expand, value_bits as block_value_bits
from blocks.block_mask import latency as block_mask_latency
from blocks.sparse_framer import (COPIES, COPY_BITS, FILL_STATES, POP_COPIES, entry_mux,
                                  extract, head, joined, pop_select, shift_stages,
                                  side_by_side, table_register, table_slot, walker)
from blocks.sparse_table import (Layout, Shape, prefix_levels, reach, record_table,
                                 table_stages)
from blocks.ram import TARGETS, add_blocks, bram_blocks, write_sim_files
from blocks.rom import address_bits, rom, sim_files, uses_dp16kd
from blocks.spec import BlockDef, Param, ParameterError, check_width, weight_params
from blocks.stream import Axis, clock_reset
from quant import offchip, sparse_format, weight_modes
from quant.reference import DAMAGED_FILE
from quant.rom_image import write_rom

ROM_STEM = "sparse_decoder_rom"
GROUP = 4          # mask elements per group in the expansion
FIFO_DEPTH = 16    # output FIFO: every beat in flight has a place (credit)
SOURCES = ("rom", "stream")
CODINGS = ("auto", "dense", "masked", "block")
MAX_WORD_BITS = 64 * 64 * 9   # P + VB*P at the largest P (int8): the longest record

PARAMS = (
    Param("lanes", int, lo=1, hi=64, help="output channels in parallel (L)"),
    Param("simd", int, lo=1, hi=64, help="reduction elements per beat (S)"),
    *weight_params(),
    Param("weights_file", "path", default=None,
          help="integer (Cout, R) .npy matrix of weight values (an array from Python); "
               "required with source rom"),
    Param("source", str, default="rom", choices=SOURCES,
          help="rom: the image in an on-chip ROM; stream: group images on s_axis_words"),
    Param("coding", str, default="auto", choices=CODINGS,
          help="the layer's coding: with weights_file the writer's choice (auto: the "
               "smallest), else (stream) the one its words have"),
    Param("block", int, default=0, lo=0, hi=64 * 64,
          help="block coding: B, elements per block (0: the writer's choice)"),
    Param("inner", str, default="auto", choices=("auto",) + sparse_format.INNERS,
          help="block coding: a non-zero block's coding (auto: the writer's choice)"),
    Param("word_bits", int, default=0, lo=0, hi=MAX_WORD_BITS,
          help="stream without weights_file: bits of a word (the layer's longest record)"),
    Param("beats", int, default=0, lo=0, hi=1 << 24,
          help="stream without weights_file: beats per pass (R/simd)"),
    Param("target", str, default="generic", choices=TARGETS,
          help="generic or a device name: the ROM's block RAM primitive"),
)
STREAM_ONLY = {"word_bits": 0, "beats": 0}
CHOICE = {"coding": "auto", "block": 0, "inner": "auto"}   # the layer's coding


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
    except DAMAGED_FILE as error:
        raise ValueError(f"weights_file: {weights_file}: not a .npy array ({error})") from None
    if not isinstance(loaded, np.ndarray):
        raise ValueError(f"weights_file: {weights_file}: holds several arrays, expected one")
    return loaded


def read_matrix(weights_file) -> np.ndarray:
    W = load_matrix(weights_file)
    if not (np.issubdtype(W.dtype, np.integer) or W.dtype == bool):
        raise ValueError(f"weights_file: must hold integers, got dtype {W.dtype}")
    return W


def prepare(params: dict) -> dict:
    """Parameters -> ``@block`` arguments: the one place ``weights_file`` is read and encoded."""
    kwargs = {k: params[k] for k in ("lanes", "simd", "weights", "wbits", "target")}
    wbits = weight_modes.normal_wbits(params["weights"], params["wbits"])
    if params["source"] == "stream":
        if params["weights_file"] is None:
            layer = {k: params[k] for k in (*STREAM_ONLY, *CHOICE)}
        else:
            W = read_matrix(params["weights_file"])
            code = offchip.layer_code(W, weights=params["weights"], wbits=wbits,
                                      lanes=params["lanes"], simd=params["simd"])
            layer = {"coding": code["coding"], "word_bits": code["word_bits"],
                     "beats": W.shape[1] // params["simd"], "block": code["block"] or 0,
                     "inner": code["inner"] or "auto"}
        return {**kwargs, "source": "stream", **layer}
    W = read_matrix(params["weights_file"])
    image = sparse_format.encode(W, weights=params["weights"], wbits=wbits,
                                 lanes=params["lanes"], simd=params["simd"],
                                 coding=params["coding"], block=params["block"] or None,
                                 inner=None if params["inner"] == "auto" else params["inner"])
    return {**kwargs, "image": image, "rom_file": ROM_STEM + ".hex"}


def cross_check(p: dict) -> None:
    given = [name for name, default in STREAM_ONLY.items() if p[name] != default]
    if p["source"] == "rom":
        if p["weights_file"] is None:
            raise ValueError("weights_file: required with source = rom (the ROM's contents)")
        if given:
            raise ValueError(f"{given[0]}: only with source = stream")
        return
    if p["weights_file"] is not None:
        given += [name for name, default in CHOICE.items() if p[name] != default]
        if given:
            raise ValueError(f"{given[0]}: follows from weights_file with source = stream; "
                             f"give one or the other")
        return
    if p["coding"] == "auto":
        raise ValueError("coding: must be dense, masked or block with source = stream and no "
                         "weights_file")
    if p["beats"] < 1:
        raise ValueError("beats: must be an integer >= 1 with source = stream and no "
                         "weights_file")
    P = p["lanes"] * p["simd"]
    wb = weight_modes.code_bits(p["weights"], p["wbits"])
    vb = weight_modes.value_bits(p["weights"], p["wbits"])
    if p["coding"] == "dense" and p["word_bits"] != P * wb:
        raise ValueError(f"word_bits: must be lanes*simd*code bits = {P * wb} for the dense "
                         f"coding, got {p['word_bits']}")
    if p["coding"] != "block" and (p["block"] or p["inner"] != "auto"):
        raise ValueError(f"{'block' if p['block'] else 'inner'}: only with coding = block")
    if p["coding"] != "dense" and p["weights"] == "binary":
        raise ValueError("coding: binary weights are always dense")
    if p["coding"] == "block":
        if p["block"] not in sparse_format.block_sizes(P):
            raise ValueError(f"block: must be a power of two dividing lanes*simd = {P} with "
                             f"coding = block, got {p['block']}")
        if p["inner"] == "auto":
            raise ValueError("inner: must be mask or dense with coding = block")
    lo, hi = (P * wb, P * wb) if p["coding"] == "dense" else record_range(
        P, vb, wb, p["coding"], p["block"], p["inner"])
    if not lo <= p["word_bits"] <= hi:
        raise ValueError(f"word_bits: must be in {lo}..{hi} (the longest record of the "
                         f"{p['coding']} coding), got {p['word_bits']}")
    align = sparse_format.record_align(p["coding"], p["inner"])
    if p["word_bits"] % align:
        raise ValueError(f"word_bits: must be a multiple of {align} with coding = block and "
                         f"inner = mask (records are padded to it), got {p['word_bits']}")


def record_range(P, VB, WB, coding, block, inner) -> tuple[int, int]:
    """The shortest and longest record of a coding: what a word of a layer may be."""
    if coding == "masked":
        return P, P + VB * P
    K = P // block
    if inner == "mask":
        align = sparse_format.record_align(coding, inner)
        return (sparse_format.padded(K, align),
                sparse_format.padded(K + P + VB * P, align))
    return K, K + P * WB


def stream_format(*, lanes, simd, weights, wbits, coding, word_bits, beats, block=0,
                  inner="auto", **_) -> dict:
    """What the decoder needs to know of a stream-mode layer (the keys of an image's meta)."""
    wbits = weight_modes.normal_wbits(weights, wbits)
    stores = coding == "masked" or (coding == "block" and inner == "mask")
    fmt = {"lanes": lanes, "simd": simd, "weights": weights, "wbits": wbits,
           "coding": coding, "beats": beats, "word_bits": word_bits, "pad_bits": 0,
           "code_bits": weight_modes.code_bits(weights, wbits),
           "value_bits": weight_modes.value_bits(weights, wbits) if stores else None}
    if coding == "block":
        fmt.update(block=block, inner=inner)
    return fmt


def write_files(args: dict, out_dir) -> list:
    """Write the ROM image and its sidecar beside the Verilog, and the simulation model of
    the ROM's block RAM primitive when it has one; return their names."""
    image = args.get("image")
    if image is None:   # stream mode reads no file
        return []
    stem = Path(args["rom_file"]).stem
    meta = {k: v for k, v in image.meta.items() if k not in ("format", "word_bits", "depth", "bits")}
    write_rom(out_dir, stem, image.words, image.word_bits, format=image.meta["format"], **meta)
    models = sim_files(image.depth, out_register=True, target=args.get("target", "generic"))
    return [f"{stem}.hex", f"{stem}.json", *write_sim_files(models, out_dir)]


def check_image(image, *, lanes, simd, weights, wbits) -> None:
    meta = getattr(image, "meta", None)
    if meta is None or meta.get("format") not in (sparse_format.FORMAT, sparse_format.FORMAT2):
        raise ParameterError(f"image: must be a {sparse_format.FORMAT} or "
                             f"{sparse_format.FORMAT2} image from quant.sparse_format.encode")
    expected = {"lanes": lanes, "simd": simd, "weights": weights,
                "wbits": weight_modes.normal_wbits(weights, wbits)}
    for key, value in expected.items():
        if meta[key] != value:
            raise ParameterError(f"image: was encoded with {key} = {meta[key]}, "
                                 f"the block has {key} = {value}")


# --- the block ----------------------------------------------------------------------------

@block
def sparse_decoder(aclk, aresetn, m_axis_wgt, s_axis_words=None, *, lanes, simd, weights,
                   wbits, image=None, rom_file=ROM_STEM + ".hex", source="rom",
                   coding="auto", word_bits=0, beats=0, block=0, inner="auto",
                   target="generic"):
    """Dense weight beats decoded from a sparse ROM or word stream; see the module docstring."""
    if source == "stream":
        BLOCK.validate(lanes=lanes, simd=simd, weights=weights, wbits=wbits, source=source,
                       coding=coding, word_bits=word_bits, beats=beats, block=block,
                       inner=inner, target=target)
        if s_axis_words is None:
            raise ParameterError("s_axis_words: required with source = stream")
        check_width("s_axis_words.tdata", s_axis_words.tdata, word_bits)
        fmt = stream_format(lanes=lanes, simd=simd, weights=weights, wbits=wbits,
                            coding=coding, word_bits=word_bits, beats=beats, block=block,
                            inner=inner)
        check_width("m_axis_wgt.tdata", m_axis_wgt.tdata, lanes * simd * fmt["code_bits"])
        return stream_reader(aclk, aresetn, s_axis_words, m_axis_wgt, fmt=fmt,
                             target=target)
    BLOCK.validate(lanes=lanes, simd=simd, weights=weights, wbits=wbits, weights_file=image,
                   source=source, target=target)
    check_image(image, lanes=lanes, simd=simd, weights=weights, wbits=wbits)
    meta = image.meta
    check_width("m_axis_wgt.tdata", m_axis_wgt.tdata, lanes * simd * meta["code_bits"])
    depth, word_bits = image.depth, image.word_bits
    rom_en = Signal(bool(meta["coding"] != "dense"))   # masked: adv, a register (reset: 1)
    rom_addr = Signal(intbv(0)[address_bits(depth):])
    rom_dout = Signal(intbv(0)[word_bits:])
    memory = rom(aclk, rom_en, rom_addr, rom_dout, words=image.words, word_bits=word_bits,
                 file=rom_file, out_enable=rom_en, target=target)
    address = rom_address(aclk, aresetn, rom_en, rom_addr, depth=depth)
    if meta["coding"] == "dense":
        core = dense_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_addr, rom_dout,
                            depth=depth)
    else:
        wvalid, wlast = Signal(bool(0)), Signal(bool(0))
        word = Signal(intbv(0)[word_bits:])
        core = (rom_front(aclk, aresetn, rom_en, rom_addr, rom_dout, word, wvalid, wlast,
                          depth=depth),
                masked_reader(aclk, aresetn, m_axis_wgt, rom_en, word, wvalid, wlast,
                              fmt=meta, word_bits=word_bits, target=target,
                              pass_skip=pass_skips(image), next_always=depth > 1))
    return memory, address, core


def pass_skips(image) -> bool:
    """Whether the head leaves a pass's last record two words on: the record starts
    before the image's last word (a ROM image's constant; the walker reads it from the
    words' flags in stream mode)."""
    last = sparse_format.record_starts(image.words, image.meta)[-1]
    return last // image.word_bits < image.depth - 1


@block
def stream_reader(aclk, aresetn, s_axis_words, m_axis_wgt, *, fmt, target="generic"):
    """Stream mode: a dense word is the beat (through a register slice); masked words go
    through the masked reader, which finds each pass's start from ``tlast``."""
    if fmt["coding"] == "dense":
        return axis_register(aclk, aresetn, s_axis_words, m_axis_wgt, bits=fmt["word_bits"])
    adv = Signal(bool(1))     # a register of the walker: the slots are empty after reset
    wvalid, wlast = Signal(bool(0)), Signal(bool(0))
    word = Signal(intbv(0)[fmt["word_bits"]:])
    take = stream_front(aclk, aresetn, adv, s_axis_words, word, wvalid, wlast)
    core = masked_reader(aclk, aresetn, m_axis_wgt, adv, word, wvalid, wlast, fmt=fmt,
                         word_bits=fmt["word_bits"], target=target)
    return take, core


@block
def stream_front(aclk, aresetn, adv, s_axis_words, word, wvalid, wlast):
    """The pipeline's first stage in stream mode: a word (or a bubble) taken on ``adv``."""

    @always_comb
    def handshake():
        s_axis_words.tready.next = adv

    @always_seq(aclk.posedge, reset=aresetn)
    def valid():
        if adv:
            wvalid.next = s_axis_words.tvalid

    @always(aclk.posedge)
    def hold():
        if adv:
            word.next = s_axis_words.tdata
            wlast.next = s_axis_words.tlast

    return handshake, valid, hold


@block
def rom_front(aclk, aresetn, adv, rom_addr, rom_dout, word, wvalid, wlast, *, depth):
    """ROM mode: the ROM's read and output registers (on ECP5 the block RAM's own: its
    clock-to-out is slow, so the word register after them takes only its output), then
    the word register: the pipeline's first three stages, read on ``adv``; a word's
    ``tlast`` is the top address.  (The register that used to sit beside the block RAM
    after its read register is the output register now: same latency.)"""
    top = depth - 1
    rvalid, rlast, nvalid, nlast = (Signal(bool(0)) for _ in range(4))

    @always_seq(aclk.posedge, reset=aresetn)
    def valid():
        if adv:
            rvalid.next = 1
            nvalid.next = rvalid
            wvalid.next = nvalid

    @always(aclk.posedge)
    def hold():
        if adv:
            rlast.next = rom_addr == top
            nlast.next = rlast
            word.next = rom_dout
            wlast.next = nlast

    return valid, hold


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
    """One ROM word a beat: the ROM's output register is the stream's data register; its
    read register before it moves with it (both on ``rom_en``)."""
    read_valid, valid = Signal(bool(0)), Signal(bool(0))
    read_last, last = Signal(bool(0)), Signal(bool(0))
    top = depth - 1

    @always_comb
    def enable():
        rom_en.next = not valid or m_axis_wgt.tready

    @always_seq(aclk.posedge, reset=aresetn)
    def advance():
        if rom_en:
            read_valid.next = 1
            valid.next = read_valid
            read_last.next = rom_addr == top
            last.next = read_last

    @always_comb
    def outputs():
        m_axis_wgt.tdata.next = rom_dout
        m_axis_wgt.tvalid.next = valid
        m_axis_wgt.tlast.next = last

    return enable, advance, outputs


@block
def masked_reader(aclk, aresetn, m_axis_wgt, adv, word, wvalid, wlast, *, fmt, word_bits,
                  target="generic", pass_skip=None, next_always=False):
    """The masked coding: the table pipeline (``blocks.sparse_table``) fed by ``word``
    (a stage moving on ``adv``, which this block drives), the slots, loop and extraction
    (``blocks.sparse_framer``), the expansion and the output FIFO.  On an ECP5
    ``target`` the loop's selects and the expander's value selects are ECP5 slice muxes
    for synthesis (``blocks.ecp5_cells.ecp5_select``), and the LUT after the pop bit of
    each register that follows it an instantiated ``LUT4`` (``pop_register``)."""
    ecp5 = is_ecp5(target)
    P, VB, W = fmt["lanes"] * fmt["simd"], fmt["value_bits"], word_bits
    TP, TVB, TB = table_params(fmt)
    shape = Shape(W, TP, TVB, TB)
    g = shape.g
    Q, TN = shape.QN, shape.TN         # a table's straddling entries, and all of them
    NB = shape.ob                      # the loop's offsets, in units of g
    EB = NB + 1
    tab0, tab = Signal(intbv(0)[shape.entries * EB:]), Signal(intbv(0)[shape.entries * EB:])
    tword0, tword = Signal(intbv(0)[W:]), Signal(intbv(0)[W:])
    tlast0, tvalid0, tlast, tpre = (Signal(bool(0)) for _ in range(4))
    table = (record_table(aclk, aresetn, adv, word, wvalid, wlast, tab0, tword0, tlast0,
                          tvalid0, P=TP, VB=TVB, W=W, block=TB, tvalid_pre=tpre),
             table_register(aclk, adv, tab0, tword0, tlast0, tab, tword, tlast))
    p, wp = Signal(modbv(0)[3:]), Signal(modbv(0)[3:])
    wp3 = Signal(intbv(0, min=0, max=3))
    off = Signal(intbv(0)[NB:])
    # the pop bit, and copies for the slot enables and the head table's registers
    pop, pop_s, pop_c = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    fire, write = Signal(bool(0)), Signal(bool(0))
    at_last = Signal(bool(fmt["beats"] == 1))
    pend_ok = Signal(bool(1))
    w0, w1, w2, w3 = (Signal(intbv(0)[W:]) for _ in range(4))
    t0, t1, t2 = (Signal(intbv(0)[TN * EB:]) for _ in range(3))
    g0, g1, g2 = (Signal(bool(0)) for _ in range(3))
    we = [Signal(bool(0)) for _ in range(4 + 6)]
    slots = [operand_register(aclk, we[k], tword, w) for k, w in enumerate((w0, w1, w2, w3))]
    strad = we[7:] if Q else [None] * 3
    tables = [table_slot(aclk, we[4 + j], strad[j], tab, tlast, t, f, W=TN, Q=Q, EB=EB,
                         own=shape.own)
              for j, (t, f) in enumerate(((t0, g0), (t1, g1), (t2, g2)))]
    words, tflags, tabs = (Signal(intbv(0)[4 * W:]), Signal(intbv(0)[3:]),
                           Signal(intbv(0)[3 * TN * EB:]))
    buses = (side_by_side(w0, w1, w2, w3, words),
             joined(g0, g1, g2, tflags), joined(t0, t1, t2, tabs))
    rings = Signal(intbv(0)[2 * TN * EB:])
    cur, hflag, src_flag = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    ent = Signal(intbv(0)[NB:])     # the head's next offset (its pop bit: pop_select)
    codes = (Signal(intbv(3)[2:]), Signal(intbv(0)[2:]))    # reset: the first word is the head
    # the fills and the rings' load enables (blocks.sparse_framer.ring_enables) as after
    # reset: ring 1 is not the head's
    fills = (Signal(bool(0)), tuple(Signal(bool(b)) for b in (0, 1, 0, 1)))
    # copies of off's low bits for the entry select's first level (as many as it has
    # groups, at most COPIES), and the pop select's own (at most POP_COPIES)
    copies = Signal(intbv(0)[copies_of(NB) * min(COPY_BITS, NB):])
    pop_copies = Signal(intbv(0)[pop_copies_of(NB) * min(COPY_BITS, NB):])
    walk = (walker(aclk, aresetn, p, wp, off, fire, at_last, adv, pend_ok, tvalid0, tpre,
                   hflag, ent, tlast, tflags, write, wp3, codes, fills, (pop, pop_s, pop_c), cur,
                   src_flag, copies, pop_copies, (we[:4], we[4:7], we[7:]),
                   last_beat=fmt["beats"] - 1, straddle=bool(Q), ecp5=ecp5,
                   pass_skip=pass_skip, next_always=next_always),
            head(aclk, cur, codes, fills, tabs, tflags, tab, tlast, rings, src_flag, W=TN, Q=Q,
                 EB=EB, own=shape.own),
            entry_mux(rings, off, cur, ent, copies, EB=EB, ecp5=ecp5),
            pop_select(rings, off, cur, pop, pop_copies, pop_s, pop_c, EB=EB, ecp5=ecp5))
    rec = Signal(intbv(0)[W:])
    rv, rl = Signal(bool(0)), Signal(bool(0))
    cut = extract(aclk, aresetn, fire, at_last, p, off, words, rec, rv, rl, W=W, NB=NB,
                  step=g)
    push, push_last = Signal(bool(0)), Signal(bool(0))
    push_data = Signal(intbv(0)[P * fmt["code_bits"]:])
    if fmt["coding"] == "block":
        expand = block_stage(aclk, aresetn, rv, rec, rl, push, push_data, push_last, fmt=fmt,
                             ecp5=ecp5)
    else:
        expand = expander(aclk, aresetn, rv, rec, rl, push, push_data, push_last, P=P,
                          VB=VB, WB=fmt["code_bits"], W=W, ecp5=ecp5)
    out = out_fifo(aclk, aresetn, push, push_data, push_last, m_axis_wgt, pend_ok, fire)
    return table, slots, tables, buses, walk, cut, expand, out


def table_params(fmt) -> tuple:
    """``(P, VB, block)`` of the record table (``blocks.sparse_table``) for a layer's
    coding: ``/1`` masked as it is; ``/2`` with element masks its own table (``block``);
    ``/2`` with dense blocks that of a ``P/B``-bit mask of ``B*WB``-bit values, which is
    what it is to the table."""
    P, VB = fmt["lanes"] * fmt["simd"], fmt["value_bits"]
    if fmt["coding"] != "block":
        return P, VB, None
    B = fmt["block"]
    if fmt["inner"] == "dense":
        return P // B, B * fmt["code_bits"], None
    return P, VB, B


@block
def block_stage(aclk, aresetn, rv, rec, rl, push, push_data, push_last, *, fmt, ecp5=False):
    """``/2``: ``blocks.block_mask`` turns the record into the beat's codes (dense blocks)
    or into the ``/1`` record the :func:`expander` expands (element masks; ``ecp5``: its
    value selects are ECP5 slice muxes for synthesis)."""
    P, B, WB = fmt["lanes"] * fmt["simd"], fmt["block"], fmt["code_bits"]
    if fmt["inner"] == "dense":
        return block_expand(aclk, aresetn, rv, rec, rl, push, push_data, push_last, P=P, B=B,
                            WB=WB, inner="dense")
    VB = fmt["value_bits"]
    W1 = P + block_value_bits(len(rec), P, B, VB)
    v1, l1 = Signal(bool(0)), Signal(bool(0))
    rec1 = Signal(intbv(0)[W1:])
    return (block_expand(aclk, aresetn, rv, rec, rl, v1, rec1, l1, P=P, B=B, WB=WB,
                         inner="mask"),
            expander(aclk, aresetn, v1, rec1, l1, push, push_data, push_last, P=P, VB=VB, WB=WB,
                     W=W1, ecp5=ecp5))


# The expander's ``ecp5``: for synthesis the per-group value selects are ECP5 slice muxes
# (``blocks.bit_fields.group_shift``), each on the offset bits its group can use: group
# ``g``'s offset counts the values of the ``g`` groups before it, at most ``GROUP * g``.
# Its counts for the group offsets (``gs0``/``gs1``): the even groups but the last, and
# the pairs of groups (two offsets' adder levels done in the first step; the second sums
# half as many).
@block
def expander(aclk, aresetn, fire, rec_win, at_last, push, push_data, push_last, *, P, VB, WB, W,
             ecp5=False):
    """Mask expansion in three registered steps after ``fire`` (four with
    :func:`offset_split`: the group offsets' adder tree a register apart): local and
    group counts (of pairs of groups, and of the even groups), group offsets, per-group
    values; the codes are pushed (into the FIFO) on the fourth edge (the fifth with
    :func:`offset_split`).  ``ecp5``: the comment above."""
    G = GROUP
    NG = (P + G - 1) // G
    CW = P.bit_length()
    LB = max(1, (G - 1).bit_length())
    VALW = max(W - P, 1)
    mask1, mask2, mask3 = (Signal(intbv(0)[P:]) for _ in range(3))
    vals1, vals2 = (Signal(intbv(0)[VALW:]) for _ in range(2))
    lp0, lp1, lp2, lp3 = (Signal(intbv(0)[P * LB:]) for _ in range(4))
    evens, pairs = list(range(0, NG - 1, 2)), (NG - 1) // 2
    # a count field: a pair of groups' (up to 2G), but never more bits than P's (P < 2G)
    SB = min((2 * G).bit_length(), CW)
    gs0, gs1 = (Signal(intbv(0)[max(len(evens) + pairs, 1) * SB:]) for _ in range(2))
    gp1, gp2 = (Signal(intbv(0)[NG * CW:]) for _ in range(2))
    vg2, vg3 = (Signal(intbv(0)[NG * G * VB:]) for _ in range(2))
    codes = Signal(intbv(0)[P * WB:])
    v1, v2, v3 = (Signal(bool(0)) for _ in range(3))
    l1, l2, l3 = (Signal(bool(0)) for _ in range(3))
    split = offset_split(P)
    if split:   # a step more between the group counts and the group offsets
        mask1x, lp1x, vals1x = Signal(intbv(0)[P:]), Signal(intbv(0)[P * LB:]), \
            Signal(intbv(0)[VALW:])
        v1x, l1x = Signal(bool(0)), Signal(bool(0))
        extra = [expander_delay(aclk, aresetn, mask1, lp1, vals1, v1, l1, mask1x, lp1x,
                                vals1x, v1x, l1x)]
    else:
        mask1x, lp1x, vals1x, v1x, l1x, extra = mask1, lp1, vals1, v1, l1, []
    local = field_sums(rec_win, lp0, out_bits=LB, groups=[
        [(p - p % G + j, 1) for j in range(p % G)] for p in range(P)])
    if NG > 1:
        # the last group's count is never needed: offsets sum the groups before each group
        ne = len(evens)
        terms = [[((ne + k) * SB, SB) for k in range(g // 2)]
                 + ([((g - 1) // 2 * SB, SB)] if g % 2 else []) for g in range(NG)]
        if split:
            # each offset's terms in two halves, each summed and registered, then added
            halves = [h for t in terms for h in (t[:(len(t) + 1) // 2], t[(len(t) + 1) // 2:])]
            gh, gh2 = Signal(intbv(0)[2 * NG * CW:]), Signal(intbv(0)[2 * NG * CW:])
            offsets = [field_sums(gs1, gh, out_bits=CW, groups=halves),
                       half_register(aclk, gh, gh2),
                       field_sums(gh2, gp1, out_bits=CW, groups=[
                           [(2 * g * CW, CW), ((2 * g + 1) * CW, CW)] for g in range(NG)])]
        else:
            offsets = [field_sums(gs1, gp1, out_bits=CW, groups=terms)]
        groups = [field_sums(rec_win, gs0, out_bits=SB, groups=[
                      [(g * G + j, 1) for j in range(G)] for g in evens] + [
                      [(2 * k * G + j, 1) for j in range(2 * G)] for k in range(pairs)]),
                  offsets,
                  group_shift(vals2, gp2, vg2, off_bits=CW, scale=VB, width=G * VB,
                              ecp5=ecp5, reach=[G * g for g in range(NG)]),
                  group_registers(aclk, gs0, gs1, gp1, gp2)]
    else:
        groups = one_group(vals2, vg2)
    expand = expand_codes(mask3, lp3, vg3, codes, group=G, vb=VB, wb=WB, lb=LB)

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        v1.next = fire
        v2.next = v1x
        v3.next = v2
        l1.next = at_last
        l2.next = l1x
        l3.next = l2

    if W > P:
        @always(aclk.posedge)
        def values():
            vals1.next = rec_win[P + VALW:P]
    else:       # no record holds a value (an all-zero layer): a select past the word
        @always(aclk.posedge)
        def values():
            vals1.next = 0

    @always(aclk.posedge)
    def data():
        mask1.next = rec_win[P:]
        lp1.next = lp0
        mask2.next = mask1x
        vals2.next = vals1x
        lp2.next = lp1x
        mask3.next = mask2
        lp3.next = lp2
        vg3.next = vg2

    @always_comb
    def out():
        push.next = v3
        push_data.next = codes
        push_last.next = l3

    return local, groups, expand, flags, values, data, out, extra


def offset_split(P) -> bool:
    """Whether the :func:`expander`'s group offsets take a step more: an offset sums more
    than two counts (more than five groups), so two adder levels, which it then takes a
    register apart (on ECP5 the two carry chains in one cycle were the critical path)."""
    ng = -(-P // GROUP)
    return (ng - 1) // 2 + (ng - 1) % 2 > 2


def expander_steps(P) -> int:
    """The :func:`expander`'s registered steps (its latency)."""
    return 3 + offset_split(P)


@block
def expander_delay(aclk, aresetn, mask, lp, vals, v, l, mask_x, lp_x, vals_x, v_x, l_x):
    """The expander's step more (:func:`offset_split`) for what rides beside the offsets."""

    @always_seq(aclk.posedge, reset=aresetn)
    def flag():
        v_x.next = v
        l_x.next = l

    @always(aclk.posedge)
    def hold():
        mask_x.next = mask
        lp_x.next = lp
        vals_x.next = vals

    return flag, hold


@block
def half_register(aclk, gh, gh2):
    @always(aclk.posedge)
    def load():
        gh2.next = gh

    return load


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
    wptr, rptr = (Signal(modbv(0)[(D - 1).bit_length():]) for _ in range(2))
    count = Signal(intbv(0, min=0, max=D + 1))
    pending = Signal(intbv(0, min=0, max=D + 1))
    pop = Signal(bool(0))
    nonempty = Signal(bool(0))      # count != 0, as a register: tvalid and pop leave it
    head = Signal(intbv(0)[OW + 1:])

    @always(aclk.posedge)
    def write():
        if push:
            mem[wptr].next = concat(push_last, push_data)

    @always_comb
    def read():
        head.next = mem[rptr]
        pop.next = nonempty and m_axis_wgt.tready

    pointers = fifo_pointers(aclk, aresetn, push, pop, wptr, rptr, count)

    @always_seq(aclk.posedge, reset=aresetn)
    def occupied():
        if push and not pop:
            nonempty.next = 1
        elif pop and not push:
            nonempty.next = count != 1

    @always_seq(aclk.posedge, reset=aresetn)
    def credit():
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
        m_axis_wgt.tvalid.next = nonempty

    return write, read, pointers, credit, outputs, occupied


@block
def fifo_pointers(aclk, aresetn, push, pop, wptr, rptr, level):
    """A FIFO's write and read pointers (wrapping) and its ``level`` of entries held."""

    @always_seq(aclk.posedge, reset=aresetn)
    def step():
        if push:
            wptr.next = wptr + 1
        if pop:
            rptr.next = rptr + 1
        if push and not pop:
            level.next = level + 1
        elif pop and not push:
            level.next = level - 1

    return step


# --- golden model, estimate, ports --------------------------------------------------------

def pass_beats(image) -> list[tuple[int, bool]]:
    """``(tdata, tlast)`` of one pass over an image, from its words alone (decode + pack)."""
    meta = image.meta
    W = sparse_format.decode(image.words, meta)
    one = sparse_format.beat_codes(W, weights=meta["weights"], wbits=meta["wbits"],
                                   lanes=meta["lanes"], simd=meta["simd"])
    return [(data, i == len(one) - 1) for i, data in enumerate(one)]


def golden(image=None, *, passes: int = 1, images=None) -> list[tuple[int, bool]]:
    """``(tdata, tlast)`` out of the decoder: ROM mode, ``passes`` passes over ``image``;
    stream mode, one pass per image of ``images`` (the group images fed, in order)."""
    if images is not None:
        return [beat for one in images for beat in pass_beats(one)]
    return pass_beats(image) * passes


def stream_words(images) -> list[tuple[int, bool]]:
    """``s_axis_words`` beats that feed ``images`` (``tlast`` on each image's last word)."""
    return [(word, i == len(one.words) - 1) for one in images for i, word in enumerate(one.words)]


def derived(*, lanes, simd, image=None, rom_file=None, source="rom", **args) -> dict:
    if source == "stream":
        fmt = stream_format(lanes=lanes, simd=simd, **args)
        return {"tdata_bits": lanes * simd * fmt["code_bits"], "source": "stream",
                "coding": fmt["coding"], "word_bits": fmt["word_bits"],
                "beats_per_pass": fmt["beats"]}
    meta = image.meta
    return {"tdata_bits": lanes * simd * meta["code_bits"], "source": "rom",
            "coding": meta["coding"], "rom_word_bits": image.word_bits,
            "rom_depth": image.depth, "rom_bits": image.bits,
            "beats_per_pass": meta["beats"], "bits_per_weight": meta["bits_per_weight"],
            "sparsity": meta["sparsity"], "rom_file": rom_file,
            "fifo_bits": fifo_bits(meta) if meta["coding"] != "dense" else 0}


def estimate(*, image=None, source="rom", **args) -> dict:
    """Cost of the decoder.

    LUTs of the masked reader: the table pipeline's adders, the loop's select trees,
    the extraction's shifter, the expansion (group offsets and value selects) and the
    output FIFO in LUT RAM, scaled by one coefficient fitted to ``synth_xilinx``
    (:func:`masked_cost`).  FFs are counted register by register, less the chains
    Xilinx turns into shift registers.
    ``bram_bits`` are every memory's exact bits: the ROM (block RAM, ``rom_style =
    "block"``) and the masked reader's output FIFO in LUT RAM (:func:`fifo_bits`);
    ``bram`` counts the block RAM units (the FIFO takes none).  Stream mode has no ROM:
    a dense word goes through a register slice; a masked one through the same reader,
    plus the word register and the pass ends.  ``/2`` (block) goes through the same
    reader with its table (:func:`table_params`), plus the lengths' selects (element
    masks) and ``blocks.block_mask`` (``BLOCK_FIT``).
    """
    if source == "stream":
        fmt = stream_format(**args)
        W, P = fmt["word_bits"], fmt["lanes"] * fmt["simd"]
        if fmt["coding"] == "dense":
            return REGISTER.estimate(bits=W)
        ff, lut = masked_cost(fmt, W, 0)
        return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": fifo_bits(fmt),
                "bram": add_blocks(), "latency": masked_latency(fmt, W), "cycles": 1, "per": "beat"}
    meta = image.meta
    W, P = image.word_bits, meta["lanes"] * meta["simd"]
    addr = address_bits(image.depth)
    bram = bram_blocks(W, image.depth, style="block")  # rom_style = "block"
    if meta["coding"] == "dense":
        # address counter and its wrap compare; the ROM's output register is the data:
        # inside the ECP5 DP16KD blocks, in fabric otherwise (synth_xilinx puts it there:
        # 266 FF for the int8 16x72 layer at L4 S8, 43 for the binary 32x72 one)
        inside = uses_dp16kd(image.depth, out_register=True,
                             target=args.get("target", "generic"))
        return {"lut": addr, "ff": addr + 4 + (0 if inside else W), "dsp": 0,
                "bram_bits": image.bits, "bram": bram, "latency": 2, "cycles": 1,
                "per": "beat"}
    ff, lut = masked_cost(meta, W, addr, image.depth)
    return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": image.bits + fifo_bits(meta),
            "bram": bram, "latency": masked_latency(meta, W) + 2, "cycles": 1, "per": "beat"}


def fifo_bits(meta) -> int:
    """Bits of the masked reader's output FIFO (LUT RAM): sixteen beats and their tlast."""
    return FIFO_DEPTH * (meta["lanes"] * meta["simd"] * meta["code_bits"] + 1)


def masked_latency(fmt, W) -> int:
    """Cycles from the first word taken (stream) to the first beat valid; ROM mode: one
    more (the ROM's register).  The word's register, the table pipeline and the register
    after it (``table_register``), the slot, the second word (a record may straddle into
    it), the loop's copy and the pair's register, the shifter, the expansion's three steps
    and the FIFO; ``/2``: the block expansion's two steps before the expander's three
    (element masks, whose table has three stages more) or instead of them (dense blocks)."""
    P, VB, block = table_params(fmt)
    steps = expander_steps(fmt["lanes"] * fmt["simd"])
    expand = {None: steps, "mask": block_mask_latency() + steps, "dense": block_mask_latency()}[
        fmt.get("inner")]
    return (1 + table_stages(W, P, block) + 1 + 1 + 1 + 2
            + shift_stages(Shape(W, P, VB, block).ob) + expand + 1)


def masked_registers(P, VB, W, beats, addr, block=None, depth=0) -> dict:
    """Flip-flops of the masked reader by part, as ECP5 keeps them (``addr``: the ROM's
    address bits, or 0 in stream mode; ``depth``: the ROM's words).  Widths are the live
    bits: a prefix field of ``n`` chunks needs ``bits(4n)``, a count below position
    ``k < 4`` two bits, the value bits of a window lose ``VB``'s trailing zero bits, and
    a straddling entry's pop bit (always 1) is a constant."""
    shape = Shape(W, P, VB, block)
    lay = Layout(W, P, shape.Q)
    Q, NCH, nb, ob = lay.Q, lay.NCH, shape.nb, shape.ob
    ypn = len(lay.kept)
    levels = prefix_levels(W, P, shape.Q)
    carry = W + 1 + ypn + 1                       # word, tlast, prev's kept bits, valid
    # a register after every prefix level (record_table's rule)
    prefix = sum(carry + sum(min(nb, (4 * min(c + 1, 1 << level)).bit_length())
                             for c in range(NCH))
                 for level in range(1, levels + 1))
    tz = (VB & -VB).bit_length() - 1
    g = shape.g
    t, TN = g.bit_length() - 1, W // g
    own = TN - shape.QN if block is None else TN  # entries with a pop bit
    live = ob - (tz - t if P % (1 << tz) == 0 else 0)   # offset bits not constant
    ps_bits = (min(3, lay.YW + 1) + max(lay.YW - 3, 0) * nb if g == 1
               else (lay.YW + 1) // g * nb)
    parts = {
        # ROM: address, the block RAM's valid and last, the register beside it, the word
        "front": (addr + 6 + W if addr else 2) + W,
        "table": (Q + carry + 3 * NCH + prefix
                  + W + 2 + ps_bits                                        # PS(k)
                  + W + 2 + TN * (nb - tz + t)                             # value bits
                  + W + 1 + TN * live + own                    # table_register: entries
                  # /2 element masks (blocks.sparse_table.block_tail): the prefix counts
                  # past the element masks and before them, then the masks' counts, each
                  # with the block counts beside them, a stage each
                  + (2 * (W + 2) + shape.entries * (3 * nb + 2 * (P // block).bit_length())
                     if block else 0)),
        # four word slots; three table slots (entries and tlast flag) and the head table's
        # two rings (entries; the head's flag, a walker register, is counted here with the
        # slots' three): W/g entries (g the offset
        # step, offsets in its units; an entry's low bits are constants when VB and P are
        # multiples of 2**tz)
        "slots": 4 * W + 5 * (TN * live + own) + 4,
        # pointers, offset, beat, flags, the count (one-hot) and the head table's load
        # codes (and the copies of the offset's low bits for the entry and pop selects,
        # blocks.sparse_framer.COPIES and POP_COPIES; the loop's copy of adv, write and
        # its copy, the fill flags, which ring is the head's, a copy of the own code, the
        # slots' load enables; the skip flag and the next word's table slot)
        "loop": (3 + 3 + ob + max(beats - 1, 0).bit_length() + 2 + FILL_STATES + 2 + 2 + 2
                 + 4 + 1 + 3
                 + (copies_of(ob) + pop_copies_of(ob)) * min(COPY_BITS, ob)
                 + 7 + (1 if shape.QN else 0) + 4 + 3 + (3 if shape.QN else 0)
                 # tv (the table pipeline's valid after this cycle, a cycle ahead)
                 + 1
                 # the rings' load enables (blocks.sparse_framer.ring_enables: two, two
                 # more for the straddling parts, whose fill flag they replace)
                 + 2 + (1 if shape.QN else 0)
                 # a ROM's walker knows its pass end (blocks.sparse_framer.walker): no skip
                 # flag, no copy of the own code, and past one word no count-of-one flag
                 - (4 + (depth > 1) if addr else 0)),
        "extract": 6 + 2 * ob + 2 * W - 1 + sum(
            out + 2 + rest for out, rest in shifter_widths(W, ob, g)),
    }
    return parts


def copies_of(nb) -> int:
    """Copies of the offset's low bits for the entry select's first level: one a group
    of it (``2**COPY_BITS`` leaves of a ring, two rings), at most ``COPIES``."""
    return min(COPIES, max(1, 2 * (1 << nb) >> COPY_BITS))


def pop_copies_of(nb) -> int:
    """The same for the pop bit's select (``POP_COPIES`` at most)."""
    return min(POP_COPIES, copies_of(nb))


def shifter_widths(W, nb, g=1) -> list[tuple[int, int]]:
    """``(data bits, offset bits passed on)`` of each shifter stage's register (``nb``
    offset bits in units of ``g`` bits)."""
    n_st = shift_stages(nb)
    out = []
    for k in range(n_st):
        done = min((k + 1) * 3, nb)
        reach = g * (((W // g - 1) >> done) << done)
        out.append((W + reach if k < n_st - 1 else W, nb - done))
    return out


def masked_cost(meta, W, addr, depth=0) -> tuple[int, int]:
    """``(FF, LUT)`` of the masked reader, as ``synth_xilinx`` maps it.  FFs: registers
    counted part by part (:func:`masked_registers`, the expansion, the FIFO's pointers
    and credit) less the shift registers Xilinx makes of pass-through chains (``srl``):
    the word, flags and kept bits that ride through the table pipeline, and the
    expansion's delayed masks and local counts, an SRL16 a bit (ECP5 has none: it keeps
    ``FF + srl`` flip-flops).  LUTs per structure with coefficients fitted to synthesis.
    ``addr``: the ROM's address bits (ROM mode), else 0."""
    P, WB = meta["lanes"] * meta["simd"], meta["code_bits"]
    ff, srl = masked_flops(meta, W, addr, depth)
    TP, VB, block = table_params(meta)
    shape = Shape(W, TP, VB, block)
    lay = Layout(W, TP, shape.Q)
    nb, ob, g, TN = shape.nb, shape.ob, shape.g, shape.TN
    table = (lay.NCH * 3 + lay.NCH * nb * prefix_levels(W, TP, shape.Q)
             + (lay.YW + 1) // g * nb
             + TN * nb * (1 if VB & (VB - 1) == 0 else 2) + 3 * TN * nb)
    if block:   # element masks: lengths from a select of prefix counts a start
        K = TP // block
        table += BLOCK_FIT[0] * shape.entries * nb * ((K + 1) // 2 + 3)
    select = 8 * TN * (ob + 3) // 3 + (ob + 1)   # the selects and loads of two head rings
    shifter = (2 * W - 1) + sum(2 * out for out, _ in shifter_widths(W, ob, g))
    expansion = expansion_luts(meta, W)
    fifo = 1.66 * (P * WB + 1)                       # LUT RAM, as synth_xilinx maps it
    srl_luts = (srl - (W + 1 if addr else 0)) // 3   # the reader's: ROM or stream alike
    lut = int(round(LUT_FIT * (table + select + shifter + 0.4 * expansion + fifo)
                    + srl_luts + 60))
    return ff - srl, lut


LUT_FIT = 0.70   # synth_xilinx against the structures' counts (see masked_cost)
# /2: the lengths' selects and blocks.block_mask's shifts against synth_xilinx, fitted to
# two layers (32x288 at lanes 4, simd 8, 90 % zeros, ternary and int4: 7,266 and 5,861
# LUTs; the shifts are the templates' variable part-selects, wider than a select)
BLOCK_FIT = (1.78, 4.75)


def expander_width(meta, W) -> int:
    """The record width the :func:`expander` reads: the word, or (``/2`` element masks)
    the ``/1`` record ``blocks.block_mask`` makes."""
    if meta["coding"] != "block":
        return W
    P = meta["lanes"] * meta["simd"]
    return P + block_value_bits(W, P, meta["block"], meta["value_bits"])


def expansion_luts(meta, W) -> float:
    """Structure count of the expansion: the expander's group offsets and value selects
    (``/1``, ``/2`` element masks), ``blocks.block_mask``'s counts and selects (``/2``)."""
    P, WB = meta["lanes"] * meta["simd"], meta["code_bits"]
    G, NG, cw = GROUP, -(-P // GROUP), P.bit_length()
    luts = 0
    if meta.get("inner") != "dense":
        VB, W1 = meta["value_bits"], expander_width(meta, W)
        most = (W1 - P) // VB                       # the most values a record holds
        luts += P * (VB * G + cw) + NG * G * VB * max(most, 1).bit_length()
    if meta["coding"] == "block":
        K, B = P // meta["block"], meta["block"]
        F = B if meta["inner"] == "mask" else B * WB
        values = expander_width(meta, W) - P if meta["inner"] == "mask" else 0
        luts += BLOCK_FIT[1] * (K * K // 2 + F * K * (K + 1) // 4 + values * (K + 1) // 2)
    return luts


def masked_flops(meta, W, addr, depth=0) -> tuple[int, int]:
    """``(all flip-flops, those in pass-through chains)`` of the masked reader (``depth``:
    the ROM's words, 0 in stream mode)."""
    P, VB = meta["lanes"] * meta["simd"], meta["value_bits"]
    G, NG = GROUP, -(-P // GROUP)
    TP, TVB, block = table_params(meta)
    lay = Layout(W, TP, reach(W, TP, block))
    local = sum((j).bit_length() for j in range(G)) * (P // G) \
        + sum((j).bit_length() for j in range(P % G))   # live bits of the local counts
    group_offsets = sum((G * g).bit_length() for g in range(1, NG))
    regs = masked_registers(TP, TVB, W, meta["beats"], addr, block, depth)
    expansion = srl = 0
    if meta.get("inner") != "dense":
        W1 = expander_width(meta, W)
        expansion = (2 * max(W1 - P, 1) + 3 * P + 3 * local          # values, masks, counts
                     + (NG // 2 + (NG - 1) // 2) * (2 * G).bit_length() + group_offsets
                     + NG * G * VB + 6)
        srl = 3 * P + 3 * local
        if offset_split(P):     # the expander's step more: halves of the offsets, and
            # what rides beside them
            expansion += (max(W1 - P, 1) + P + local + 2
                          + sum(2 * (G * g).bit_length() for g in range(2, NG)))
            srl += P + local
    if meta["coding"] == "block":       # blocks.block_mask: counts, block mask, rest, out
        K = P // meta["block"]
        expansion += ((K + 1) * K.bit_length() + W + 4
                      + (expander_width(meta, W) if meta["inner"] == "mask"
                         else P * meta["code_bits"]))
    # pointers, count and credit, pending_ok and nonempty
    fifo = 2 * (FIFO_DEPTH - 1).bit_length() + 2 * FIFO_DEPTH.bit_length() + 2
    first = 1 + prefix_levels(W, TP, lay.Q)       # chunk stage and prefix stages
    srl += ((first * (W + 2 + len(lay.kept)) if first >= 2 else 0)
            + 2 * (W + 1) + (W + 1 if addr else 0))
    return sum(regs.values()) + expansion + fifo, srl


def ports(*, lanes, simd, weights, wbits, source="rom", word_bits=0, **_):
    wb = weight_modes.code_bits(weights, wbits)
    words = {"s_axis_words": Axis(word_bits)} if source == "stream" else {}
    return {**clock_reset(), **words, "m_axis_wgt": Axis(lanes * simd * wb)}


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
                 write_files=write_files, example=example, cross_check=cross_check)
