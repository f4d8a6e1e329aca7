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
coding : dense|masked         stream only, without ``weights_file``: the layer's coding
word_bits : int               stream only, without ``weights_file``: the word width (the
                              layer's longest record; ``P*WB`` for dense, ``P..P+VB*P``
                              for masked, ``P = L*S``, VB = 1 ternary, N int)
beats : int >= 1              stream only, without ``weights_file``: beats a pass, R/S

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
word is the beat.  ROM: the ROM's output register drives ``tdata``.  Stream: a register
slice (``axis_register``) from ``s_axis_words`` to ``m_axis_wgt``.  One beat a cycle.

*masked coding*, pipelined so that no cycle holds more than one step of the decoding:

1. ``framer``: a ring of six words takes one word a cycle while it has room (a ROM read,
   or a word taken from ``s_axis_words`` into a register); a register holds the ring's
   bits from the head record on (``word_bits + P`` bits, taken through a wrapping
   part-select of the ring a cycle before use).  The head record's mask count is known a
   cycle ahead: from that window the framer computes, as balanced adder trees, the mask
   count of every place the next record can start (``P + VB*k`` bits on, one candidate
   per possible count ``k`` of the head record), and the head's registered count picks
   the next record's among them.  A record fires when its bits and the next mask are in
   the window and the output FIFO has a place for it; the head then moves past it.
   After a pass's last record the head skips the word padding: in ROM mode by the
   image's constant ``pad_bits`` (and the next record's count is a constant: the image's
   first), in stream mode to the word after the image's ``tlast`` word (``pass_ends``
   keeps the ring slots of those words, and every arriving word's first-mask count
   gives the next pass's first count).
2. ``expander``: three registered steps: the mask's local counts in groups of four and
   the group counts; each group's first value (a prefix sum of group counts); each
   group's values (a part-select per group).  The codes are written into
3. ``out_fifo``: eight beats, with a credit count of the beats in flight, so the
   expansion never waits for ``tready`` and ``tvalid`` comes from a register.

``word_bits`` is the layer's longest record, so a word a cycle always covers a beat a
cycle: one beat per cycle sustained for every layer, every sparsity, every mode, passes
back to back; in stream mode as long as the words come one a cycle (checked in the tests
on worst-case and random patterns, groups of different lengths).

Latency: the first beat is valid 1 cycle (dense) or 8 cycles (masked) after reset is
released (ROM) or after the first word is taken (stream).  ``tvalid`` never depends on
``tready``; a stall holds the beat.  Stream mode: ``s_axis_words.tready`` is high while
the ring has room for a word; a pass's last beat waits for its image's ``tlast`` word,
never for the next image.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv, modbv

from blocks.axis_register import BLOCK as REGISTER, axis_register
from blocks.bit_fields import field_sums, group_shift, part_select, ring_store, ring_window
from blocks.ram import add_blocks, bram_blocks
from blocks.rom import address_bits, rom
from blocks.spec import BlockDef, Param, ParameterError, check_width, weight_params
from blocks.stream import Axis, clock_reset
from quant import offchip, sparse_format, weight_modes
from quant.rom_image import write_rom

ROM_STEM = "sparse_decoder_rom"
SLOTS = 6          # ROM words in the masked reader's ring (one beat a cycle needs 6: tests)
GROUP = 4          # mask elements per group in the expansion
FIFO_DEPTH = 8     # output FIFO: every beat in flight has a place (credit)
STARTS_DEPTH = 8   # stream mode: tlast words in the ring (at most SLOTS)
SOURCES = ("rom", "stream")
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
    Param("coding", str, default="auto", choices=("auto", "dense", "masked"),
          help="stream without weights_file: the layer's coding"),
    Param("word_bits", int, default=0, lo=0, hi=MAX_WORD_BITS,
          help="stream without weights_file: bits of a word (the layer's longest record)"),
    Param("beats", int, default=0, lo=0, hi=1 << 24,
          help="stream without weights_file: beats per pass (R/simd)"),
)
STREAM_ONLY = {"coding": "auto", "word_bits": 0, "beats": 0}


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


def read_matrix(weights_file) -> np.ndarray:
    W = load_matrix(weights_file)
    if not (np.issubdtype(W.dtype, np.integer) or W.dtype == bool):
        raise ValueError(f"weights_file: must hold integers, got dtype {W.dtype}")
    return W


def prepare(params: dict) -> dict:
    """Parameters -> ``@block`` arguments: the one place ``weights_file`` is read and encoded."""
    kwargs = {k: params[k] for k in ("lanes", "simd", "weights", "wbits")}
    wbits = weight_modes.normal_wbits(params["weights"], params["wbits"])
    if params["source"] == "stream":
        if params["weights_file"] is None:
            layer = {k: params[k] for k in STREAM_ONLY}
        else:
            W = read_matrix(params["weights_file"])
            coding, word_bits = offchip.layer_format(W, weights=params["weights"], wbits=wbits,
                                                     lanes=params["lanes"], simd=params["simd"])
            layer = {"coding": coding, "word_bits": word_bits,
                     "beats": W.shape[1] // params["simd"]}
        return {**kwargs, "source": "stream", **layer}
    W = read_matrix(params["weights_file"])
    image = sparse_format.encode(W, weights=params["weights"], wbits=wbits,
                                 lanes=params["lanes"], simd=params["simd"])
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
        if given:
            raise ValueError(f"{given[0]}: follows from weights_file with source = stream; "
                             f"give one or the other")
        return
    if p["coding"] == "auto":
        raise ValueError("coding: must be dense or masked with source = stream and no "
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
    if p["coding"] == "masked":
        if p["weights"] == "binary":
            raise ValueError("coding: binary weights are always dense")
        if not P <= p["word_bits"] <= P + vb * P:
            raise ValueError(f"word_bits: must be in {P}..{P + vb * P} (the longest record of "
                             f"the masked coding), got {p['word_bits']}")


def stream_format(*, lanes, simd, weights, wbits, coding, word_bits, beats, **_) -> dict:
    """What the decoder needs to know of a stream-mode layer (the keys of an image's meta)."""
    wbits = weight_modes.normal_wbits(weights, wbits)
    return {"lanes": lanes, "simd": simd, "weights": weights, "wbits": wbits,
            "coding": coding, "beats": beats, "word_bits": word_bits, "pad_bits": 0,
            "code_bits": weight_modes.code_bits(weights, wbits),
            "value_bits": weight_modes.value_bits(weights, wbits) if coding == "masked" else None}


def write_files(args: dict, out_dir) -> list:
    """Write the ROM image and its sidecar beside the Verilog; return their names."""
    image = args.get("image")
    if image is None:   # stream mode reads no file
        return []
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
def sparse_decoder(aclk, aresetn, m_axis_wgt, s_axis_words=None, *, lanes, simd, weights,
                   wbits, image=None, rom_file=ROM_STEM + ".hex", source="rom",
                   coding="auto", word_bits=0, beats=0):
    """Dense weight beats decoded from a sparse ROM or word stream; see the module docstring."""
    if source == "stream":
        BLOCK.validate(lanes=lanes, simd=simd, weights=weights, wbits=wbits, source=source,
                       coding=coding, word_bits=word_bits, beats=beats)
        if s_axis_words is None:
            raise ParameterError("s_axis_words: required with source = stream")
        check_width("s_axis_words.tdata", s_axis_words.tdata, word_bits)
        fmt = stream_format(lanes=lanes, simd=simd, weights=weights, wbits=wbits,
                            coding=coding, word_bits=word_bits, beats=beats)
        check_width("m_axis_wgt.tdata", m_axis_wgt.tdata, lanes * simd * fmt["code_bits"])
        return stream_reader(aclk, aresetn, s_axis_words, m_axis_wgt, fmt=fmt)
    BLOCK.validate(lanes=lanes, simd=simd, weights=weights, wbits=wbits, weights_file=image,
                   source=source)
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
        # a ROM word is read the cycle it is asked for: the request is the arrival
        core = masked_reader(aclk, aresetn, m_axis_wgt, rom_en, rom_en, rom_dout, None,
                             fmt=meta, word_bits=word_bits, first=first_count(image))
    return memory, address, core


@block
def stream_reader(aclk, aresetn, s_axis_words, m_axis_wgt, *, fmt):
    """Stream mode: a dense word is the beat (through a register slice); masked words go
    through the masked reader, which finds each pass's start from ``tlast``."""
    if fmt["coding"] == "dense":
        return axis_register(aclk, aresetn, s_axis_words, m_axis_wgt, bits=fmt["word_bits"])
    want, got = Signal(bool(0)), Signal(bool(0))
    word = Signal(intbv(0)[fmt["word_bits"]:])
    word_last = Signal(bool(0))
    take = word_input(aclk, s_axis_words, want, got, word, word_last)
    core = masked_reader(aclk, aresetn, m_axis_wgt, want, got, word, word_last, fmt=fmt,
                         word_bits=fmt["word_bits"], first=None)
    return take, core


@block
def word_input(aclk, s_axis_words, want, got, word, word_last):
    """Takes a word while the reader wants one; the register plays the ROM's output register."""

    @always_comb
    def handshake():
        s_axis_words.tready.next = want
        got.next = want and s_axis_words.tvalid

    @always(aclk.posedge)
    def hold():
        if got:
            word.next = s_axis_words.tdata
            word_last.next = s_axis_words.tlast

    return handshake, hold


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
def masked_reader(aclk, aresetn, m_axis_wgt, want, got, word, word_last, *, fmt, word_bits,
                  first):
    """The masked coding, pipelined: ``framer`` finds the records, ``expander`` turns each
    into a dense beat in three registered steps, ``out_fifo`` holds the beats in flight.

    ``want``: the framer asks for a word; ``got``: one comes (in ``word`` the cycle after).
    ``word_last`` (stream mode; ``None`` for a ROM): the word ends an image, whose pass
    starts are kept by ``pass_starts``; a ROM's next pass starts ``first``'s record."""
    P = fmt["lanes"] * fmt["simd"]
    last_beat = fmt["beats"] - 1
    lay = layout(fmt, word_bits, first, SLOTS)
    fire = Signal(bool(0))
    rec_win = Signal(intbv(0)[word_bits:])
    at_last = Signal(bool(last_beat == 0))
    pending_ok = Signal(bool(1))
    push, push_last = Signal(bool(0)), Signal(bool(0))
    push_data = Signal(intbv(0)[P * fmt["code_bits"]:])
    frames = framer(aclk, aresetn, want, got, word, word_last, fire, rec_win, at_last,
                    pending_ok, lay=lay, last_beat=last_beat)
    expand = expander(aclk, aresetn, fire, rec_win, at_last, push, push_data, push_last, P=P,
                      VB=fmt["value_bits"], WB=fmt["code_bits"], W=word_bits)
    out = out_fifo(aclk, aresetn, push, push_data, push_last, m_axis_wgt, pending_ok, fire)
    return frames, expand, out


def first_count(image) -> int:
    """Non-zeros of the image's first beat: the record that follows every pass's last."""
    meta = image.meta
    W = sparse_format.decode(image.words, meta)
    return int(np.count_nonzero(W[:meta["lanes"], :meta["simd"]]))


def layout(fmt, word_bits, first_count, slots):
    """Sizes of the masked reader for a layer (see masked_reader)."""
    P, VB, W = fmt["lanes"] * fmt["simd"], fmt["value_bits"], word_bits
    most = (W - P) // VB
    win = W + P
    return {"P": P, "VB": VB, "W": W, "most": most, "first": first_count, "WIN": win,
            "RING": slots * W, "CW": P.bit_length(), "pad": fmt["pad_bits"],
            "offsets": [P + VB * k for k in range(most + 1)] + [0]}


@block
def framer(aclk, aresetn, want, got, word, word_last, fire, rec_win, at_last, pending_ok, *,
           lay, last_beat):
    """Finds record boundaries: ring of words, the head's window a cycle late, and the
    next record's mask count chosen among candidates computed from that window."""
    P, VB, W, WIN, RING, CW = (lay[k] for k in ("P", "VB", "W", "WIN", "RING", "CW"))
    NC = len(lay["offsets"])
    PAD = lay["pad"]
    slots = RING // W
    ring = Signal(intbv(0)[RING:])
    win = Signal(intbv(0)[WIN:])
    win_next = Signal(intbv(0)[WIN:])
    head = Signal(intbv(0, min=0, max=RING))
    head_next = Signal(intbv(0, min=0, max=RING))
    target = Signal(intbv(0, min=0, max=RING))
    adv = Signal(intbv(0)[(2 * W).bit_length():])   # a record, or up to the next word
    enough, first_ok = Signal(bool(0)), Signal(bool(0))
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
    counts = field_sums(win, cands, groups=[[(o + j, 1) for j in range(P)] for o in lay["offsets"]],
                        out_bits=CW)
    select = part_select(cands, cnt, chosen, scale=CW)
    window = ring_window(ring, head_next, win_next)
    stores = ring_store(aclk, arriving, write_slot, word, ring)
    if word_last is None:
        FIRST = lay["first"]     # the next pass starts with the image's first record
        moves = advance_rom(head, ell, need, win_fill, enough, target, adv, first_ok)
    else:
        FIRST = Signal(intbv(0, min=0, max=P + 1))   # the next image's first record
        start = Signal(intbv(0, min=0, max=slots))
        known = Signal(bool(0))
        moves = (pass_ends(aclk, aresetn, arriving, write_slot, word, word_last,
                           fire, at_last, start, FIRST, known),
                 advance_stream(head, ell, need, fill, win_fill, at_last, start, known, enough,
                                target, adv, first_ok, W=W))
    SELF_CAND = (NC - 1) * CW

    @always_comb
    def decide():
        f = cnt_ok and enough and pending_ok
        fire.next = f
        if f:
            head_next.next = target
        else:
            head_next.next = head
        if arriving:
            want.next = fill <= RING - 2 * W
        else:
            want.next = fill <= RING - W

    @always_seq(aclk.posedge, reset=aresetn)
    def step():
        rest = intbv(0, min=0, max=RING + 1)
        c = intbv(0, min=0, max=P + 1)
        nxt_last = bool(0)
        if fire:
            rest[:] = fill - adv
            if at_last:
                c[:] = FIRST
                beat.next = 0
                nxt_last = bool(last_beat == 0)
                cnt_ok.next = first_ok
            else:
                c[:] = chosen
                beat.next = beat + 1
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
            # the padding goes with the last record; the next mask is known apart
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
        arriving.next = got

    @always_comb
    def record():
        rec_win.next = win[len(rec_win):]

    return counts, select, window, stores, moves, decide, step, record


@block
def advance_rom(head, ell, need, win_fill, enough, target, adv, first_ok):
    """ROM mode: a record fires once it and the next mask are in the window (the last
    one: it and the padding); the head moves past it, round the ring."""
    RING, HB = head.max, len(head)

    @always_comb
    def move():
        s = intbv(0, min=0, max=2 * RING + 1)
        enough.next = win_fill >= need
        s[:] = head + ell
        if s >= RING:
            s[:] = s - RING
        target.next = s[HB:]
        adv.next = ell
        first_ok.next = True    # the next pass's first count is a constant

    return move


@block
def advance_stream(head, ell, need, fill, win_fill, at_last, start, known, enough, target, adv,
                   first_ok, *, W):
    """Stream mode: as ``advance_rom``, but a pass's last record fires once the image's
    ``tlast`` word is in the window (``known``, and the window reaches the end of that
    word), and the head then moves to the word after it (slot ``start``): the padding is
    whatever lies between.  The next record's count is known when that word is in."""
    RING, HB = head.max, len(head)

    @always_comb
    def move():
        s = intbv(0, min=0, max=2 * RING + 1)
        d = intbv(0, min=0, max=2 * RING + 1)
        t = intbv(0, min=0, max=RING)
        e = intbv(0, min=0, max=2 * RING + W + 1)
        s[:] = head + ell
        if s >= RING:
            s[:] = s - RING
        d[:] = start * W + RING - head
        if d >= RING:
            d[:] = d - RING
        e[:] = d + W
        first_ok.next = fill >= e
        t[:] = start * W
        if at_last:
            enough.next = known and win_fill >= d
            target.next = t
            adv.next = d[len(adv):]
        else:
            enough.next = win_fill >= need
            target.next = s[HB:]
            adv.next = ell

    return move


@block
def pass_ends(aclk, aresetn, arriving, write_slot, word, word_last, fire, at_last, start,
              first, known):
    """Stream mode: the ring slot after each ``tlast`` word in the ring, in order (where
    the next pass starts), and ``known`` while there is one; it goes when its pass's last
    record fires.  ``first``: the mask count at the start of slot ``start``, counted as
    each word arrives."""
    D = STARTS_DEPTH
    P = first.max - 1
    CW = len(first)
    SB = len(write_slot)
    slots = write_slot.max
    count_now = Signal(intbv(0)[CW:])
    popcount = field_sums(word, count_now, groups=[[(j, 1) for j in range(P)]], out_bits=CW)
    counts = [Signal(intbv(0)[CW:]) for _ in range(slots)]
    ends = [Signal(intbv(0)[SB:]) for _ in range(D)]
    entry = Signal(intbv(0)[SB:])
    wptr, rptr = Signal(modbv(0)[3:]), Signal(modbv(0)[3:])
    level = Signal(intbv(0, min=0, max=D + 1))
    push, pop = Signal(bool(0)), Signal(bool(0))

    @always_comb
    def control():
        push.next = arriving and word_last
        pop.next = fire and at_last

    @always(aclk.posedge)
    def store():
        if arriving:
            counts[write_slot].next = count_now
        if push:
            if write_slot == slots - 1:
                ends[wptr].next = 0
            else:
                ends[wptr].next = write_slot + 1

    pointers = fifo_pointers(aclk, aresetn, push, pop, wptr, rptr, level)

    @always_comb
    def read():
        entry.next = ends[rptr]

    @always_comb
    def fields():
        start.next = entry
        first.next = counts[start]
        known.next = level != 0

    return popcount, control, store, pointers, read, fields


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

    pointers = fifo_pointers(aclk, aresetn, push, pop, wptr, rptr, count)

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
        m_axis_wgt.tvalid.next = count != 0

    return write, read, pointers, credit, outputs


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
            "fifo_bits": fifo_bits(meta) if meta["coding"] == "masked" else 0}


def estimate(*, image=None, source="rom", **args) -> dict:
    """Cost of the decoder.

    LUTs of the masked reader: the head window's shifter (``(W + P) * log2(6W)``), one
    mask-count tree per candidate, the expansion (group offsets and value selects) and
    the output FIFO in LUT RAM, with coefficients fitted to synthesis (three masked
    layers within 2 %, ``docs/estimates.md``).  FFs are counted register by register.
    ``bram_bits`` are every memory's exact bits: the ROM (block RAM, ``rom_style =
    "block"``), the masked reader's output FIFO in LUT RAM (:func:`fifo_bits`), and in
    stream mode the pass ends' and first counts' few bits; ``bram`` counts the block RAM
    units (the LUT RAMs take none).  Stream mode has no ROM:
    a dense word goes through a register slice; a masked one through the same reader,
    plus the word register and the pass ends.
    """
    if source == "stream":
        fmt = stream_format(**args)
        W, P = fmt["word_bits"], fmt["lanes"] * fmt["simd"]
        if fmt["coding"] == "dense":
            return REGISTER.estimate(bits=W)
        ff, lut = masked_cost(fmt, W, 0)
        cw, sb = P.bit_length(), (SLOTS - 1).bit_length()
        ends_bits = STARTS_DEPTH * sb + SLOTS * cw
        ff += W + 1 + 2 * 3 + STARTS_DEPTH.bit_length()     # word register, ends' pointers
        lut += P + 2 * (2 * SLOTS * W).bit_length() + cw    # first counts, distance, select
        return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": fifo_bits(fmt) + ends_bits,
                "bram": add_blocks(), "latency": MASKED_LATENCY, "cycles": 1, "per": "beat"}
    meta = image.meta
    W, P = image.word_bits, meta["lanes"] * meta["simd"]
    addr = address_bits(image.depth)
    bram = bram_blocks(W, image.depth, style="block")  # rom_style = "block"
    if meta["coding"] == "dense":
        # address counter and its wrap compare; the ROM's output register is the data
        return {"lut": addr, "ff": addr + 2, "dsp": 0, "bram_bits": image.bits,
                "bram": bram, "latency": 1, "cycles": 1, "per": "beat"}
    ff, lut = masked_cost(meta, W, addr)
    return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": image.bits + fifo_bits(meta),
            "bram": bram, "latency": MASKED_LATENCY, "cycles": 1, "per": "beat"}


def fifo_bits(meta) -> int:
    """Bits of the masked reader's output FIFO (LUT RAM): eight beats and their tlast."""
    return FIFO_DEPTH * (meta["lanes"] * meta["simd"] * meta["code_bits"] + 1)


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
