"""The masked decoder's framer: the words and their record tables in slots, the loop
that walks the records with the head word's table beside it, and the extraction of each
record's bits.

Primitives of ``blocks.sparse_decoder`` (no ``BlockDef``); the design is described in
that module's docstring.  The loop's state is a word pointer ``p``, an offset ``off`` in
that word and the *head table*, a copy of that word's table; a record fires when its
word and the next are in (or, in stream mode, its word is an image's last) and the
output FIFO has a place.  Its next state is the head table's entry at ``off``: no adder
and no data movement in the loop.  The head table is a ring of two (:func:`head`): the head's, and
one that loads every cycle the table of the word that is the head if the head word is
left now, from a table slot or the table pipeline (a choice made a cycle ahead); leaving
the head word flips which ring is the head's (``cur``), so the pop bit enables no load.
The record's bits are then cut from the pair of words by a registered shifter,
``SHIFT_BITS`` offset bits a stage.  For an ECP5 build the loop's selects and the LUTs
after its pop bits are instantiated slice logic where Yosys reads them
(``blocks.ecp5_cells``, :func:`pop_register`; simulators read the plain selects).
"""
from __future__ import annotations

import re

from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv, modbv

from blocks.bit_fields import part_select
from blocks.ecp5_cells import MUX2_INIT, ecp5_select, for_synthesis

SLOTS = 4          # head, the word after it, and two for a pass end that skips a word
FILL_STATES = 8    # the walker's count of filled slots, one-hot: 3 bits' worth, as it wraps
SHIFT_BITS = 3     # offset bits a shifter stage takes (an 8:1 select per bit)
# Copies of the loop's offset for the first level of the head table's entry select: a copy
# is there to cut a fan-out of hundreds, which routing on ECP5 pays for in the loop.
COPIES = 8
COPY_BITS = 4      # a copy: the offset bits of a first-level group (16:1, one ECP5 PFU)
POP_COPIES = 4     # the same for the pop bit's select


@block
def offset_register(aclk, aresetn, fire, at_last, ent, q, *, reps=1):
    """``off``, or a copy of it or of its low bits (``reps`` copies side by side): on a
    fire, 0 after a pass's last record, else the head's entry ``ent``.  The entry goes
    straight to the flip-flops' data (no gate after the select tree): the clear is their
    synchronous reset and ``fire`` their enable, both made from registers beside it.
    Each is kept apart by synthesis: ``(* keep *)`` on its always block (Yosys merges
    equal flip-flops otherwise, even with ``keep`` on the register's declaration)."""
    n = len(q) // reps
    mask = (1 << n) - 1

    @always(aclk.posedge)
    def step():
        if not aresetn or (fire and at_last):
            q.next = 0
        elif fire:
            q.next = sum((int(ent.val) & mask) << (k * n) for k in range(reps))

    q.driven = "reg"
    aclk.read = aresetn.read = fire.read = at_last.read = ent.read = True
    offset_register.verilog_code = """
(* keep *) wire ${q}_clear = !$aresetn | ($fire & $at_last);
(* keep *)
always @(posedge $aclk) begin
    if (${q}_clear) begin
        $q <= 0;
    end
    else if ($fire) begin
        $q <= {REPS{$ent[N:0]}};
    end
end
""".replace("N", str(n - 1)).replace("REPS", str(reps))
    return step


def shift_stages(nb: int) -> int:
    return -(-nb // SHIFT_BITS)


@block
def table_register(aclk, adv, tab_in, word_in, last_in, tab, word, last):
    """A pipeline stage (on ``adv``) after the table pipeline: its entries' last adders
    end in these registers, not in the slots' and head table's selects and enables.
    (Its valid is the walker's ``tv``, made a cycle ahead.)"""

    @always(aclk.posedge)
    def hold():
        if adv:
            tab.next = tab_in
            word.next = word_in
            last.next = last_in

    return hold


@block
def table_slot(aclk, we, we_next, tab_in, last_in, tab, flag, *, W, Q, EB, own=None):
    """A table slot: on ``we`` (its word comes) the word's ``tlast`` flag and own entries
    (offsets 0..W-Q-1, from ``tab_in`` entries Q..W-1); on ``we_next`` (the next word
    comes) the entries of offsets W-Q..W-1 (from ``tab_in`` entries 0..Q-1).  ``own = W``
    (``/2`` with element masks): :func:`slot_overlap`."""
    if own is not None and own != W - Q:
        return slot_overlap(aclk, we, we_next, tab_in, last_in, tab, flag, W=W, Q=Q, EB=EB)
    own = (W - Q) * EB

    if not Q:
        @always(aclk.posedge)
        def load():
            if we:
                tab.next = tab_in
                flag.next = last_in
        return load

    @always(aclk.posedge)
    def load_both():
        if we:
            tab.next[own:0] = tab_in[W * EB:Q * EB]
            flag.next = last_in
        if we_next:
            tab.next[W * EB:own] = tab_in[Q * EB:0]

    return load_both


@block
def slot_overlap(aclk, we, we_next, tab_in, last_in, tab, flag, *, W, Q, EB):
    """:func:`table_slot` when the own entries are all ``W`` (``tab_in``: ``Q`` straddling
    entries, then ``W`` own) and the straddling ones overwrite the last ``Q``."""
    TW, SW = W * EB, Q * EB

    @always(aclk.posedge)
    def load_over():
        if we:
            tab.next = tab_in[SW + TW:SW]
            flag.next = last_in
        if we_next:
            tab.next[TW:TW - SW] = tab_in[SW:0]

    return load_over


@block
def slot_enable(aclk, aresetn, fire, pop, at_last, tv, wr0, write, ptr, we, *, at, m,
                ecp5=False):
    """``we``: a register, ``write and ptr == at`` as it is after this cycle (``ptr``, a
    slot ring's write pointer of ``m`` slots, moves on ``write``; ``write`` after this
    cycle is ``tv`` if the head is left, ``wr0`` if not: :func:`walker`); so a slot's
    load enable is a register (hundreds of flip-flops hang on it)."""
    leave, stay = Signal(bool(0)), Signal(bool(0))
    before = (at - 1) % m

    @always_comb
    def after():
        if (write and ptr == before) or (not write and ptr == at):
            leave.next = tv
            stay.next = wr0
        else:
            leave.next = 0
            stay.next = 0

    return after, pop_register(aclk, aresetn, fire, pop, at_last, leave, stay, we, ecp5=ecp5)


# The walker in detail (its docstring: the ports).  The loop is the head table's entry
# select at ``off`` and ``cur``, which of the two rings of the head table is the head's
# (:func:`head`): a pop flips it (``pop_h``: the head word is left); no load of the head
# table waits for the pop bit.  What the head table's other ring loads (``codes``, one for
# the own part, one for the straddling part: table slot 0..2, or 3 the table pipeline,
# whose slot is being written) is a register, decided a cycle ahead for both outcomes of
# ``pop_h``, as are ``fill_own`` (the head's own part's slot is written now) and the rings'
# load enables (``fills[1]``, :func:`ring_enables`); so is ``fire`` (from the count as
# flags ``ge1``/``ge2``; :func:`walk_outcomes`).
# ``hflag`` is a register of the walker (a pop_register: the other ring's flag source
# ``src_flag`` on a pop, else the head's own on its fill); the walker's own logic reads
# copies of ``code_own`` and (stream mode, for ``skip``) of ``write``, so that the copies
# that drive hundreds of loads do not pull it apart.  After a pass's last record the head
# is the word after the image's ``tlast`` word.  The registers that follow ``pop_h`` take
# both outcomes from registers and the pop bit last (:func:`pop_register`; ``ecp5``: that
# LUT instantiated); among them the fills, the loop's own copy of ``adv``, which the table
# pipeline's enable is not, and ``tv``, the table pipeline's last stage's valid after this
# cycle (so whether a word is written after this cycle is a register too, made a cycle
# ahead from ``tvalid_pre``, the valid of the stage before ``tvalid_in``).  The count of
# filled slots (``filled``) counts this cycle's write too (the count after this cycle if
# the head stays), one-hot (bit k: k slots, modulo 8 as a 3-bit count would be): the load
# codes, ``room`` and the ``ge`` flags read it without the write, and compare it with 0..3,
# each a bit, not a compare after an adder.  (Until 2026-12-03 the count was of the slots
# filled before this cycle, and ``tv`` a LUT: each a LUT level deeper.)  ``skip`` (the head
# after this pass's last record is two words on: ``at_last`` and not ``hflag``) and ``n3``
# (the table slot of the word after the head's) are registers, made from both outcomes like
# the state they follow, not logic after ``at_last`` and ``hflag``; with ``pass_skip``
# known, ``skip`` is ``at_last`` or 0 (:func:`walk_outcomes`).
#
# A ROM decoder knows its image, and so two things the walker otherwise reads from the
# head's flag: ``pass_skip`` (``True``/``False``; ``None``: from the flag), whether leaving
# a pass's last record skips a word (the record starts before the image's last word),
# which makes ``skip`` ``at_last`` or 0; and ``next_always``: the next word always comes
# (the ROM wraps round to the next pass), so a record fires only once the word after its
# own is in, even on the image's last word, and ``fire`` does not read the flag.  Neither
# changes a beat or a cycle of the output.
#
# Its always blocks are written in :func:`walk_logic` and :func:`walk_counts` and
# decorated in the block, its sub-blocks made in it (MyHDL takes a generator's context
# from the frame that decorates it and a sub-block's from the one that calls it, and
# refuses a helper's), and every signal of its Verilog is named in it (85ae8c3: then the
# same Verilog, byte for byte, as the walker of 193 lines).  Split into sub-blocks, the
# same logic converts under other signal names, which places differently
# (docs/estimates.md, 2026-12-03).
#
# Its arguments: ``tvalid_in``: the valid of the table pipeline's last stage's input,
# ``tvalid_pre`` that of its stage before.  ``ent``: the next offset of the head table's
# entry at ``off`` (its pop bit: ``pop``, three copies from :func:`pop_select`: the
# walker's state's, the slot enables' and the head table's registers'); ``hflag``: the head
# word's ``tlast`` flag, ``tflags``: the table slots'; ``codes``, ``fills``: what the head
# table's other ring loads, and whether its slot is written now (each for the own and the
# straddling part); ``off_copies``: copies of ``off``'s low bits side by side
# (``COPY_BITS`` each, or all of them if fewer; :func:`offset_register`), ``pop_copies``
# the same for the pop select; ``enables``: ``(words, tables, nexts)``, the slots' load
# enables, registers (:func:`slot_enable`): the four word slots', the three table slots'
# and their straddling entries' (``nexts``: table slot ``k`` takes them when the write
# pointer is one past it).  Without ``straddle`` (no table has straddling entries: a
# record's header is a single step) the straddling part's code and fill are neither made
# nor driven; ``ecp5``: the LUT after each pop bit instantiated; ``pass_skip``,
# ``next_always``: what a ROM decoder knows of its image (a constant, not the head's flag).
@block
def walker(aclk, aresetn, p, wp, off, fire, at_last, adv, pend_ok, tvalid_in, tvalid_pre,
           hflag, ent, last_in, tflags, write, wp3, codes, fills, pop, cur, src_flag, off_copies,
           pop_copies, enables, *, last_beat, straddle=True, ecp5=False, pass_skip=None,
           next_always=False):
    """The loop (in detail, and its arguments: the comment above): ``p``/``off``/beat
    count/``at_last``, the write pointers (``wp``: the four word slots, ``wp3``: the three
    table slots), the head's table slot ``hp3`` and the count of filled slots."""
    # named in the order MyHDL declares them in the Verilog (the comment above)
    pop, pop_s, pop_c = pop   # pop_s: the slots', pop_c: the head table's registers'
    code_own, code_strad = codes
    filled = Signal(intbv(1)[FILL_STATES:])     # one-hot, with this cycle's write
    skip_reset = bool(at_last.val and (not hflag.val if pass_skip is None else pass_skip))
    hp3 = Signal(intbv(0, min=0, max=3))
    n3 = Signal(intbv(2 if skip_reset else 1, min=0, max=3))
    ge1, ge2 = Signal(bool(0)), Signal(bool(0))
    s0, s0f, s1 = (Signal(bool(0)) for _ in range(3))
    nx0, nx0f, nx1 = (Signal(intbv(0, min=0, max=3)) for _ in range(3))
    own0, own0f, own1, strad0, strad0f, strad1 = (Signal(intbv(0)[2:]) for _ in range(6))
    write_w = Signal(bool(0))
    code_w = Signal(intbv(int(code_own.val))[len(code_own):])
    adv_w = Signal(bool(adv.val))           # adv, the loop's copy
    al_next = Signal(bool(last_beat <= 1))   # at_last after the next fire
    beat = Signal(intbv(0, min=0, max=last_beat + 1))
    f0, f1 = Signal(intbv(0)[FILL_STATES:]), Signal(intbv(0)[FILL_STATES:])
    fill_own = fills[0]
    room, skip = Signal(bool(0)), Signal(bool(skip_reset))
    flags = walk_flags(hflag, ge1, ge2, pend_ok, filled, fire, room,
                       next_always=next_always)
    p_leave = Signal(modbv(0)[len(p):])
    ge1_0, ge1_1, ge2_0, ge2_1 = (Signal(bool(0)) for _ in range(4))
    fo0, fo1, fs0, fs1, wr0 = (Signal(bool(0)) for _ in range(5))
    one, cur_n, h_stay = Signal(bool(1)), Signal(bool(1)), Signal(bool(0))
    tv, tv_in, tv_stay = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    n0, n1 = Signal(intbv(0)[FILL_STATES:]), Signal(intbv(0)[FILL_STATES:])
    filling, filling_own, filling_strad, leaving, leaving_ge1, counting = map(
        always_comb, walk_logic(
            tv, adv_w, tvalid_in, tvalid_pre, tv_in, tv_stay, fo0, fo1, fs0, fs1, wr0, room,
            f0, f1, one, cur_n, cur, h_stay, fill_own, src_flag, hflag, p_leave, skip, p,
            ge1_0, ge1_1, ge2_0, ge2_1, n0, n1))

    by_pops = [pop_register(aclk, aresetn, fire, pop, at_last, leave, stay, q, ecp5=ecp5)
               for q, leave, stay in ((adv, one, room), (adv_w, one, room), (write, tv, wr0),
                                      *([(write_w, tv, wr0)] if pass_skip is None else []),
                                      (tv, tv_in, tv_stay),
                                      (cur, cur_n, cur),
                                      (hflag, src_flag, h_stay), (filled, n1, n0),
                                      *([] if next_always else [(ge1, ge1_1, ge1_0)]),
                                      (ge2, ge2_1, ge2_0), (p, p_leave, p), (hp3, n3, hp3),
                                      (fill_own, fo1, fo0))]
    # the load codes' stay outcome depends on fire (at_last moves on it): both are made
    by_fires = [pop_register(aclk, aresetn, fire, pop_c, at_last, leave, stay, q,
                             stay_fire=stay_fire, ecp5=ecp5)
                for q, leave, stay, stay_fire in (*([(code_w, own1, own0, own0f)]
                                                    if pass_skip is None else []),
                                                  (code_own, own1, own0, own0f),
                                                  *([(skip, s1, s0, s0f)]
                                                    if pass_skip is None else []),
                                                  (n3, nx1, nx0, nx0f),
                                                  *([(code_strad, strad1, strad0, strad0f)]
                                                    if straddle else []))]

    loads = ring_enables(aclk, aresetn, fire, pop_c, at_last, cur, fo0, fo1, fs0, fs1,
                         fills[1], straddle=straddle, ecp5=ecp5)
    wes, tes, tnexts = enables
    wp_low = Signal(intbv(0)[2:])
    slot_regs = (low_bits(wp, wp_low),
                 [slot_enable(aclk, aresetn, fire, pop_s, at_last, tv, wr0, write, wp_low, e,
                              at=k, m=4, ecp5=ecp5) for k, e in enumerate(wes)],
                 [slot_enable(aclk, aresetn, fire, pop_s, at_last, tv, wr0, write, wp3, e, at=k,
                              m=3, ecp5=ecp5) for k, e in enumerate(tes)],
                 [slot_enable(aclk, aresetn, fire, pop_s, at_last, tv, wr0, write, wp3, e,
                              at=(k + 1) % 3, m=3, ecp5=ecp5)
                  for k, e in enumerate(tnexts) if straddle])
    copy_regs = [offset_register(aclk, aresetn, fire, at_last, ent, off)]
    copy_regs.append(offset_register(aclk, aresetn, fire, at_last, ent, pop_copies,
                                     reps=len(pop_copies) // min(COPY_BITS, len(off))))
    copy_regs.append(offset_register(aclk, aresetn, fire, at_last, ent, off_copies,
                                     reps=len(off_copies) // min(COPY_BITS, len(off))))

    outcomes = walk_outcomes(write_w, filled, skip, at_last, al_next, hflag, last_in,
                             tflags, code_w, f0, f1, s0, s0f, s1, pass_skip=pass_skip)
    nexts = (slot_after(hp3, s0, nx0), slot_after(hp3, s0f, nx0f), slot_after(n3, s1, nx1),
             code_for(f0, s0, nx0, own0, strad0 if straddle else None),
             code_for(f0, s0f, nx0f, own0f, strad0f if straddle else None),
             code_for(f1, s1, nx1, own1, strad1 if straddle else None))
    step = always_seq(aclk.posedge, reset=aresetn)(walk_counts(write, wp, wp3, fire, at_last,
                                                              al_next, beat, last_beat))

    return (flags, outcomes, nexts, step, copy_regs, slot_regs, loads, leaving, filling,
            filling_own,
            counting,
            [] if next_always else [leaving_ge1], by_pops, by_fires,
            [filling_strad] if straddle else [])


@block
def ring_enables(aclk, aresetn, fire, pop, at_last, cur, fo0, fo1, fs0, fs1, loads, *,
                 straddle=True, ecp5=False):
    """The head's rings' load enables (:func:`ring_load`), ``loads`` = ring 0's and ring
    1's own part, then (``straddle``) their straddling parts: registers made for both
    outcomes of ``pop_h`` like the state they follow (:func:`pop_register`), so that the
    rings' hundreds of enables hang on registers, not on logic after ``cur`` and the
    fills.  A ring loads a part when it is not the head's or the part's slot is written
    now (a pop flips ``cur``)."""
    lo0, lo1, so0, so1, ls0, ls1, ss0, ss1 = (Signal(bool(0)) for _ in range(8))

    @always_comb
    def owns():
        lo0.next = not cur or fo1
        lo1.next = cur or fo1
        so0.next = cur or fo0
        so1.next = not cur or fo0

    @always_comb
    def strads():
        ls0.next = not cur or fs1
        ls1.next = cur or fs1
        ss0.next = cur or fs0
        ss1.next = not cur or fs0

    regs = [pop_register(aclk, aresetn, fire, pop, at_last, leave, stay, q, ecp5=ecp5)
            for q, leave, stay in zip(loads[:2], (lo0, lo1), (so0, so1))]
    if not straddle:
        return owns, regs
    regs += [pop_register(aclk, aresetn, fire, pop, at_last, leave, stay, q, ecp5=ecp5)
             for q, leave, stay in zip(loads[2:], (ls0, ls1), (ss0, ss1))]
    return owns, strads, regs


def walk_logic(tv, adv_w, tvalid_in, tvalid_pre, tv_in, tv_stay, fo0, fo1, fs0, fs1, wr0,
               room, f0, f1, one, cur_n, cur, h_stay, fill_own, src_flag, hflag, p_leave,
               skip, p, ge1_0, ge1_1, ge2_0, ge2_1, n0, n1):
    """:func:`walker`'s comb logic, undecorated (the walker decorates it): the fills after
    this cycle, the table pipeline's valid after the next (``tv``'s outcomes), and the
    values of its registers when the head is left and when it stays.
    Each parameter bears the name of the walker's signal passed to it (MyHDL reads the
    generators' signals by name in the frame that decorates them; conversion, in these
    closures)."""
    def filling():
        # tv: the table pipeline's last stage's valid after this cycle, a register made
        # a cycle ahead: its input stage's after this cycle if the pipeline moves next
        # cycle (adv after a pop, or room), else tv's
        if adv_w:
            tv_in.next = tvalid_pre
        else:
            tv_in.next = tvalid_in
        if room:
            if adv_w:
                tv_stay.next = tvalid_pre
            else:
                tv_stay.next = tvalid_in
        else:
            tv_stay.next = tv

    def filling_own():
        # f0 at 0 or 1 has room
        fo1.next = tv and f1[0]
        fo0.next = tv and f0[0]
        wr0.next = room and tv

    def filling_strad():
        fs1.next = tv and f1[1]
        fs0.next = tv and f0[1]

    top = FILL_STATES - 1

    def counting():
        # the count with the write after this cycle (one-hot: +1 a rotation)
        if tv:
            n1.next = concat(f1[top:0], f1[top])
        else:
            n1.next = f1
        if room and tv:
            n0.next = concat(f0[top:0], f0[top])
        else:
            n0.next = f0

    def leaving():
        # the values of the walker's pop_registers when the head is left and when it stays
        one.next = 1
        cur_n.next = not cur
        # the head's flag when it stays: its own slot's, if written now
        if fill_own:
            h_stay.next = src_flag
        else:
            h_stay.next = hflag
        if skip:
            p_leave.next = p + 2
        else:
            p_leave.next = p + 1
        ge2_0.next = not (f0[0] or f0[1])
        ge2_1.next = not (f1[0] or f1[1])

    def leaving_ge1():
        ge1_0.next = not f0[0]
        ge1_1.next = not f1[0]

    return filling, filling_own, filling_strad, leaving, leaving_ge1, counting


def walk_counts(write, wp, wp3, fire, at_last, al_next, beat, last_beat):
    """:func:`walker`'s write pointers and beat count, undecorated (the walker decorates
    it, an ``always_seq``; its signals named as the walker's: :func:`walk_logic`)."""
    # the beat two before the last; with fewer than three beats the compare is never
    # reached (al_next or at_last holds), and 0 keeps it within beat's range (lint)
    two_before = last_beat - 2 if last_beat >= 2 else 0

    def step():
        if write:
            wp.next = wp + 1
            if wp3 == 2:
                wp3.next = 0
            else:
                wp3.next = wp3 + 1
        if fire:
            at_last.next = al_next
            # what at_last takes at the fire after this one: equalities, no carry chain
            if al_next:
                al_next.next = last_beat == 0
            elif at_last:
                al_next.next = last_beat == 1
            else:
                al_next.next = beat == two_before
            if at_last:
                beat.next = 0
            else:
                beat.next = beat + 1

    return step


@block
def walk_flags(hflag, ge1, ge2, pend_ok, filled, fire, room, *, next_always=False):
    """The walker's flags: ``fire``, ``room`` (``next_always``: :func:`walker`)."""

    @always_comb
    def ahead():
        # from registers only; filled (one-hot) counts this cycle's write: room is a count
        # below 4 after it
        fire.next = ge1 and (hflag or ge2) and pend_ok
        room.next = filled[SLOTS:0] != 0

    @always_comb
    def ahead_rom():
        fire.next = ge2 and pend_ok
        room.next = filled[SLOTS:0] != 0

    return ahead_rom if next_always else ahead


@block
def walk_outcomes(write, filled, skip, at_last, al_next, hflag, last_in, tflags,
                  code_own, f0, f1, s0, s0f, s1, *, pass_skip=None):
    """The walker's next state for both outcomes of ``pop_h``: filled count and whether
    the next head skips a word (``s0``/``s0f``: the head stays, without and with a fire;
    ``s1``: the head is left).  None of them waits for ``fire``.  ``pass_skip`` known
    (:func:`walker`): ``skip`` is driven here, ``at_last`` or 0, and so are ``s0``,
    ``s0f`` and ``s1``, from ``at_last`` and ``al_next`` (a 0 is folded away by
    synthesis)."""

    @always_comb
    def skips():
        # the head's flag: when it stays, it changes only if its own slot is written now;
        # at_last after this cycle: al_next on a fire, else at_last
        if write and filled[1]:
            s0.next = at_last and not last_in
            s0f.next = al_next and not last_in
        else:
            s0.next = at_last and not hflag
            s0f.next = al_next and not hflag
        # the head is left only on a fire, after which at_last is al_next
        if code_own == 3:
            s1.next = al_next and not last_in
        else:
            s1.next = al_next and not tflags[code_own]

    known = int(bool(pass_skip))    # with pass_skip known: skip is at_last, or never

    @always_comb
    def known_skips():
        skip.next = at_last & known
        s0.next = at_last & known
        s0f.next = al_next & known
        s1.next = al_next & known

    return fill_outcomes(filled, skip, f0, f1), (skips if pass_skip is None
                                                        else known_skips)


@block
def fill_outcomes(filled, skip, f0, f1):
    """The count of filled slots after this cycle (one-hot, so +1 and -1 are rotations)
    if the head stays (``f0``) and if it is left (``f1``; two words on with ``skip``)."""
    top = len(filled) - 1

    @always_comb
    def counts():
        f0.next = filled
        if skip:
            f1.next = concat(filled[2:0], filled[top + 1:2])
        else:
            f1.next = concat(filled[0], filled[top + 1:1])

    return counts


@block
def pop_register(aclk, aresetn, fire, pop, at_last, leave, stay, q, *, stay_fire=None,
                 ecp5=False):
    """A register of the loop's state that takes ``leave`` when the head word is left
    (``pop_h = fire and (pop or at_last)``, a pass's last record always leaves its word)
    and ``stay`` otherwise (reset: its initial value): ``q = pop ? u : v`` with ``u`` and
    ``v`` the outcome for ``pop`` 1 and 0, made from registers beside the pop bit's select
    tree, so that one LUT follows the pop bit (ABC, which sees the instantiated select
    tree of an ECP5 build as an input at time 0, puts it first otherwise).
    ``stay_fire``: the outcome when a record fires and the head stays, where it differs
    from ``stay`` (no fire); so ``fire`` enters ``u`` and ``v`` last, not the logic
    that makes ``stay``.  ``ecp5``: the LUT is instantiated.  Kept apart from an equal
    register (``(* keep *)``, as :func:`offset_register`)."""
    n = len(q)
    init = int(q.val)
    fired = stay if stay_fire is None else stay_fire

    @always_seq(aclk.posedge, reset=aresetn)
    def model():
        if fire and (pop or at_last):
            q.next = leave
        elif fire:
            q.next = fired
        else:
            q.next = stay

    q.driven = "reg"
    aclk.read = aresetn.read = fire.read = pop.read = at_last.read = True
    leave.read = stay.read = fired.read = True
    width = f"[{n - 1}:0] " if n > 1 else ""
    bit = (lambda i: f"[{i}]") if n > 1 else (lambda i: "")
    muxes = "".join(
        f"LUT4 #(.INIT(16'h{MUX2_INIT:04x})) ${{q}}_m{i} (.A($pop), .B(${{q}}_v{bit(i)}), "
        f".C(${{q}}_u{bit(i)}), .D(1'b0), .Z(${{q}}_d{bit(i)}));\n" for i in range(n))
    plain = "assign ${q}_d = $pop ? ${q}_u : ${q}_v;\n"
    v = ("($fire & $at_last) ? $leave : $stay" if stay_fire is None else
         "$fire ? ($at_last ? $leave : $fired) : $stay")
    pop_register.verilog_code = f"""
(* keep *) wire {width}${{q}}_u = $fire ? $leave : $stay;
(* keep *) wire {width}${{q}}_v = {v};
wire {width}${{q}}_d;
""" + (for_synthesis(muxes, plain) if ecp5 else plain) + f"""
(* keep *)
always @(posedge $aclk) begin
    if (!$aresetn) begin
        $q <= {init};
    end
    else begin
        $q <= ${{q}}_d;
    end
end
"""
    return model


@block
def slot_after(k, skip, nxt):
    """``nxt`` = the table slot of the word after slot ``k``'s (two after with ``skip``:
    the word after an image's ``tlast`` word), of three."""

    @always_comb
    def mod3():
        if skip:
            if k == 0:
                nxt.next = 2
            else:
                nxt.next = k - 1
        elif k == 2:
            nxt.next = 0
        else:
            nxt.next = k + 1

    return mod3


@block
def code_for(filled, skip, nxt, own, strad):
    """The head table's load codes for a state (``filled`` slots, one-hot; ``skip``, the
    new head's table slot ``nxt``): 3 where the new head's part is the one the table
    pipeline writes in that state (own: the slot at the write pointer; straddling: the one
    before), else its table slot.  ``strad`` None: the own code only."""
    if strad is None:
        @always_comb
        def own_only():
            if filled[0] or (not skip and filled[1]) or (skip and filled[2]):
                own.next = 3
            else:
                own.next = nxt
        return own_only

    @always_comb
    def decide():
        if filled[0] or (not skip and filled[1]) or (skip and filled[2]):
            own.next = 3
        else:
            own.next = nxt
        if filled[1] or (not skip and filled[2]) or (skip and filled[3]):
            strad.next = 3
        else:
            strad.next = nxt

    return decide


@block
def head(aclk, cur, codes, fills, tabs, tflags, tab_in, last_in, rings, src_flag, *, W, Q, EB,
         own=None):
    """The head word's table and ``tlast`` flag, next to the loop's offset, in a ring of
    two: ``rings`` = ring 1 ++ ring 0 (``W`` entries each); ring ``cur`` is the head's,
    the other holds the table of the word that is the head after a pop now (the walker flips
    ``cur`` on a pop).  No
    load waits for the pop bit: the other ring loads every cycle, from the table slot or
    the table pipeline its code names (``codes``: registers, the new head's own and
    straddling parts); the head's ring loads its own part when its slot is written now
    and its straddling part when the next word's slot is (then the codes name the table
    pipeline).  Each ring's two load enables are registers of the walker (``fills[1]``:
    :func:`ring_enables`), not logic after ``cur`` and the fills.  Three table slots are
    enough: a word's slot is free
    once its table is in the other ring.  ``tab_in``: ``Q`` straddling entries, then
    ``own`` (default ``W - Q``) own ones; in a ring, own entries first.  ``own = W``
    (``/2`` with element masks: every start has an own entry, the straddling ones replace
    the last ``Q``): the last ``Q`` keep the own entries where the ring's own part loads
    from the table pipeline for a new head (its straddling entries are not made yet).
    ``src_flag``: the ``tlast`` flag of the word the other ring loads (the walker keeps
    the head's)."""
    code_own, code_strad = codes
    loads = fills[1]
    TW, SW = W * EB, Q * EB
    own = TW - SW if own is None else own * EB
    src_own, src_strad = Signal(intbv(0)[own:]), Signal(intbv(0)[max(SW, 1):])
    r0, r1 = Signal(intbv(0)[TW:]), Signal(intbv(0)[TW:])

    @always_comb
    def pick():
        if code_own == 0:
            src_own.next = tabs[own:0]
        elif code_own == 1:
            src_own.next = tabs[TW + own:TW]
        elif code_own == 2:
            src_own.next = tabs[2 * TW + own:2 * TW]
        else:
            src_own.next = tab_in[SW + own:SW]
        if code_own == 3:
            src_flag.next = last_in
        else:
            src_flag.next = tflags[code_own]

    parts = [pick]
    if Q:
        @always_comb
        def pick_strad():
            if code_strad == 0:
                src_strad.next = tabs[TW:TW - SW]
            elif code_strad == 1:
                src_strad.next = tabs[2 * TW:2 * TW - SW]
            elif code_strad == 2:
                src_strad.next = tabs[3 * TW:3 * TW - SW]
            else:
                src_strad.next = tab_in[SW:0]
        parts.append(pick_strad)

    @always_comb
    def out():
        rings.next = concat(r1, r0)

    parts += [ring_load(aclk, loads[k], loads[2 + k] if Q else None, code_own, src_own,
                        src_strad, r, TW=TW, SW=SW, own=own)
              for k, r in enumerate((r0, r1))]
    return parts, out


@block
def ring_load(aclk, en_own, en_strad, code_own, src_own, src_strad, ring, *, TW, SW, own):
    """A ring of :func:`head`: its own part from the own source on ``en_own``, its last
    ``SW`` bits from the straddling source on ``en_strad`` (registers:
    :func:`ring_enables`); with ``own = TW`` the two parts overlap there, and the
    straddling source is not taken where the own part loads the new head's own entries
    from the table pipeline (``code_own`` 3: its straddling ones are not made yet).
    (The head's flag is the walker's register.)"""

    if not SW:
        @always(aclk.posedge)
        def load_own():
            if en_own:
                ring.next = src_own
        return load_own

    if own == TW:
        @always(aclk.posedge)
        def load_over():
            if en_own:
                ring.next[own:0] = src_own
            if en_strad and not (code_own == 3 and en_own):
                ring.next[TW:TW - SW] = src_strad
        return load_over

    @always(aclk.posedge)
    def load_both():
        if en_own:
            ring.next[own:0] = src_own
        if en_strad:
            ring.next[TW:own] = src_strad
    return load_both


@block
def entry_mux(tab, off, top, ent, copies, *, EB, ecp5=False):
    """``ent`` = entry ``off`` of ring ``top`` of ``tab`` (two rings of ``EB``-bit
    entries, ring 0 first, each padded to ``2**len(off)`` entries with 0) as a balanced
    tree of selects (an adder-free index; ``top`` the last index bit).  ``copies``:
    copies of ``off``'s low bits side by side (equal to them; ``len(copies)`` a multiple
    of ``min(COPY_BITS, len(off))``) that the tree's first level takes in turn, so that
    no offset bit drives every select of it.  ``ecp5``: for synthesis the tree is ECP5
    slice muxes (``blocks.ecp5_cells.ecp5_select``)."""
    N = len(tab) // EB // 2
    NB = len(off)
    OW = len(ent)                   # the entry's low bits (its offset, without the pop bit)
    mask = (1 << OW) - 1
    cw = min(COPY_BITS, NB)

    @always_comb
    def model():
        o = int(off.val)
        ent.next = ((int(tab.val) >> ((int(top.val) * N + o) * EB)) & mask) if o < N else 0

    level = [f"$tab[{(c * N + i) * EB + OW - 1}:{(c * N + i) * EB}]" if i < N else f"{OW}'d0"
             for c in range(2) for i in range(1 << NB)]
    ent.driven = "wire"
    tab.read = off.read = top.read = copies.read = True
    sel = [f"$off[{b}]" for b in range(NB)] + ["$top"]
    first = [[f"$copies[{k * cw + t}]" for t in range(cw)] for k in range(len(copies) // cw)]
    entry_mux.verilog_code = select_tree(level, sel, "ent", f"[{OW - 1}:0] ", first=first)
    if ecp5:
        bits = [[f"$tab[{(c * N + i) * EB + b}]" if i < N else "1'b0"
                 for c in range(2) for i in range(1 << NB)] for b in range(OW)]
        entry_mux.verilog_code = for_synthesis(ecp5_select(bits, sel, "ent", first=first),
                                               entry_mux.verilog_code)
    return model


def select_tree(level, sel, out, width, first=None):
    """Verilog: ``$<out>`` = ``level[index]``, a balanced tree of 4:1 selects (2:1 at the
    top for an odd count of select bits) whose wires are named after ``out``; ``sel``:
    the index's bits, low first, expressions.  ``first``: copies of the index's low bits
    (lists of bit expressions) that the selects on those bits take in turn (default:
    ``sel``)."""
    lines, bit, depth = [], 0, 0
    while len(level) > 1:
        step = 4 if len(sel) - bit >= 2 else 2
        nxt = []
        for g in range(len(level) // step):
            name = f"${{{out}}}_t{depth}_{g}"
            x = level[g * step:(g + 1) * step]
            copy = first[g % len(first)] if first else []
            by = [copy[b] if b < len(copy) else sel[b] for b in range(bit, bit + 2)
                  if b < len(sel)]
            if step == 4:
                s0, s1 = by[0], by[1]
                expr = f"{s1} ? ({s0} ? {x[3]} : {x[2]}) : ({s0} ? {x[1]} : {x[0]})"
            else:
                expr = f"{by[0]} ? {x[1]} : {x[0]}"
            lines.append(f"wire {width}{name} = {expr};")
            nxt.append(name)
        level, bit, depth = nxt, bit + (2 if step == 4 else 1), depth + 1
    lines.append(f"assign ${out} = {level[0]};")
    return "\n".join(lines) + "\n"


@block
def extract(aclk, aresetn, fire, at_last, p, off, words, rec, rv, rl, *, W, NB, step=1):
    """The fired record's bits: the slot pointer and offset are registered (copies off the
    loop), the next cycle the pair of words is registered, then shifted right by the
    offset (``NB`` bits in units of ``step`` bits) in stages of ``SHIFT_BITS`` offset bits;
    ``rec`` (``W`` bits), ``rv``, ``rl`` after ``2 + shift_stages(NB)`` edges.
    ``words``: the four slots' words side by side."""
    n_st = shift_stages(NB)
    v0, l0, v1, l1 = (Signal(bool(0)) for _ in range(4))
    p0 = Signal(intbv(0)[2:])
    off0, off1 = Signal(intbv(0)[NB:]), Signal(intbv(0)[NB:])
    pair = Signal(intbv(0)[2 * W - 1:])
    pair_now = Signal(intbv(0)[2 * W - 1:])

    @always_seq(aclk.posedge, reset=aresetn)
    def flags0():
        v0.next = fire
        v1.next = v0

    @always(aclk.posedge)
    def take():
        l0.next = at_last
        p0.next = p[2:]
        off0.next = off
        l1.next = l0
        off1.next = off0
        pair.next = pair_now

    if W == 1:
        @always_comb
        def choose():
            pair_now.next = words[p0]
    else:
        @always_comb
        def choose():
            if p0 == 0:
                pair_now.next = words[2 * W - 1:0]
            elif p0 == 1:
                pair_now.next = words[3 * W - 1:W]
            elif p0 == 2:
                pair_now.next = words[4 * W - 1:2 * W]
            else:
                pair_now.next = concat(words[W - 1:0], words[4 * W:3 * W])

    parts = [flags0, take, choose]
    data, amount, valid, last = pair, off1, v1, l1
    for k in range(n_st):
        lo_bit = k * SHIFT_BITS
        digit_bits = min(SHIFT_BITS, NB - lo_bit)
        rest = NB - lo_bit - digit_bits
        reach = step * (((W // step - 1) >> (lo_bit + digit_bits)) << (lo_bit + digit_bits))
        out_w = W + reach if k < n_st - 1 else W
        digit = Signal(intbv(0)[digit_bits:])
        higher = Signal(intbv(0)[rest:]) if rest else None
        shifted = Signal(intbv(0)[out_w:])
        reg = Signal(intbv(0)[out_w:]) if k < n_st - 1 else rec
        nv = Signal(bool(0)) if k < n_st - 1 else rv
        nl = Signal(bool(0)) if k < n_st - 1 else rl
        nh = Signal(intbv(0)[rest:]) if rest else None
        parts.append(digits(amount, digit, higher))
        parts.append(part_select(data, digit, shifted, scale=step << lo_bit))
        parts.append(shift_reg(aclk, aresetn, shifted, reg, valid, nv, last, nl, higher, nh))
        data, amount, valid, last = reg, nh, nv, nl
    return parts


@block
def digits(amount, digit, higher):
    """``digit`` = ``amount``'s lowest bits, ``higher`` (or nothing) the rest."""
    n = len(digit)
    if higher is None:
        @always_comb
        def low():
            digit.next = amount[n:]
        return low

    @always_comb
    def both():
        digit.next = amount[n:]
        higher.next = amount[len(amount):n]

    return both


@block
def shift_reg(aclk, aresetn, shifted, reg, valid, nv, last, nl, higher, nh):
    """A shifter stage's register: data, valid (with reset), tlast, the offset's rest."""

    @always_seq(aclk.posedge, reset=aresetn)
    def flag():
        nv.next = valid

    if nh is None:
        @always(aclk.posedge)
        def load():
            reg.next = shifted
            nl.next = last
        return flag, load

    @always(aclk.posedge)
    def load_rest():
        reg.next = shifted
        nl.next = last
        nh.next = higher

    return flag, load_rest


@block
def side_by_side(a, b, c, d, out):
    """``out`` = ``d ++ c ++ b ++ a`` (``a`` at bit 0)."""

    @always_comb
    def join():
        out.next = concat(d, c, b, a)

    return join


@block
def joined(a, b, c, out):
    """``out`` = ``c ++ b ++ a`` (``a`` at bit 0)."""

    @always_comb
    def join():
        out.next = concat(c, b, a)

    return join


@block
def low_bits(src, dst):
    """``dst`` = the low ``len(dst)`` bits of ``src``."""
    width = len(dst)

    @always_comb
    def take():
        dst.next = src[width:]

    return take


@block
def pop_select(tab, off, top, pop, copies=None, pop2=None, pop3=None, *, EB, ecp5=False):
    """``pop`` = the pop bit of entry ``off`` of ring ``top`` of ``tab`` (as
    :func:`entry_mux`; 0 past the end): the head word's pop decision from a select of
    its own.  ``copies``: copies of ``off``'s low bits for its first level, as
    :func:`entry_mux`'s but its own, so that neither select tree loads the other's
    copies (default: ``off``).  ``pop2`` and (with it) ``pop3``: the same bit again from
    copies of the tree's levels above the first (kept apart: :func:`two_tops`), each for
    another group of the registers after the pop bit.  ``ecp5``: as :func:`entry_mux`."""
    N = len(tab) // EB // 2
    NB = len(off)
    cw = min(COPY_BITS, NB)

    @always_comb
    def model():
        o = int(off.val)
        pop.next = (int(tab.val) >> ((int(top.val) * N + o) * EB + EB - 1)) & 1 if o < N else 0

    level = [f"$tab[{(c * N + i) * EB + EB - 1}]" if i < N else "1'b0"
             for c in range(2) for i in range(1 << NB)]
    pop.driven = "wire"
    tab.read = off.read = top.read = True
    first = None
    if copies is not None:
        copies.read = True
        first = [[f"$copies[{k * cw + t}]" for t in range(cw)] for k in range(len(copies) // cw)]
    sel = [f"$off[{b}]" for b in range(NB)] + ["$top"]
    pop_select.verilog_code = select_tree(level, sel, "pop", "", first=first)
    more = [name for name, q in (("pop2", pop2), ("pop3", pop3)) if q is not None]
    for q in (pop2, pop3):
        if q is not None:
            q.driven = "wire"
    pop_select.verilog_code += "".join(f"assign ${name} = $pop;\n" for name in more)
    if ecp5:
        cells = (two_tops(level, sel, first, more) if more else
                 ecp5_select([level], sel, "pop", first=first, vector=False))
        pop_select.verilog_code = for_synthesis(cells, pop_select.verilog_code)
    if not more:
        return model

    @always_comb
    def again():
        pop2.next = pop

    if pop3 is None:
        return model, again

    @always_comb
    def third():
        pop3.next = pop

    return model, again, third


def two_tops(level, sel, first, more=("pop2",)):
    """ECP5 cells for :func:`pop_select` with copies (``more``: their names): the first
    level's 16:1 groups once, the levels above once for ``$pop`` and once for each copy
    (the copies' cells ``keep``, so that synthesis does not merge them), so that each
    output can sit by its own registers."""
    take = min(4, len(sel))
    if take == len(sel):        # one group: nothing above it to copy
        return ecp5_select([level], sel, "pop", first=first, vector=False) + "".join(
            f"assign ${name} = $pop;\n" for name in more)
    k, lines, groups = 1 << take, [], []
    for g in range(len(level) // k):
        text = ecp5_select([level[g * k:(g + 1) * k]], sel[:take], "pop",
                           first=[first[g % len(first)]] if first else None,
                           vector=False, tag=f"_g{g}")
        *body, last = text.rstrip("\n").split("\n")
        found = re.fullmatch(r"assign \$pop = (.*);", last)
        lines += [f"{line}\n" for line in body]
        groups.append(found.group(1))
    one = ecp5_select([groups], sel[take:], "pop", vector=False, tag="_top")
    for name in more:
        two = ecp5_select([groups], sel[take:], name, vector=False, tag="_top")
        one += re.sub(r"^(LUT4|PFUMX|L6MUX21)\b", r"(* keep *) \1", two, flags=re.M)
    return "".join(lines) + one
