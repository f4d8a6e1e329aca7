"""The masked decoder's framer: the words and their record tables in four slots, the
loop that walks the records, and the extraction of each record's bits.

Primitives of ``blocks.sparse_decoder`` (no ``BlockDef``); the design is described in
that module's docstring.  The loop's state is a slot pointer ``p`` and an offset ``off``
in slot ``p``'s word; a record fires when its slot and the next one are filled (or its
word is an image's last) and the output FIFO has a place.  Its next state is a select
among registers: ``off`` picks an entry of each slot's table, ``p`` one of the four; no
adder and no data movement are in the loop.  The record's bits are then cut from the
pair of words by a registered shifter, ``SHIFT_BITS`` offset bits a stage.
"""
from __future__ import annotations

from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv, modbv

from blocks.bit_fields import part_select

SLOTS = 4          # head, the word after it, and two for a pass end that skips a word
SHIFT_BITS = 3     # offset bits a shifter stage takes (an 8:1 select per bit)


def shift_stages(nb: int) -> int:
    return -(-nb // SHIFT_BITS)


@block
def slot(aclk, we, we_next, tab_in, word_in, last_in, tab, word, flag, *, W, Q, EB):
    """Slot ``k``: on ``we`` its word, ``tlast`` flag and own entries (offsets 0..W-Q-1,
    from ``tab_in`` entries Q..W-1); on ``we_next`` (the next word's table) the entries of
    offsets W-Q..W-1 (from ``tab_in`` entries 0..Q-1)."""
    own = (W - Q) * EB

    if not Q:
        @always(aclk.posedge)
        def load():
            if we:
                tab.next = tab_in
                word.next = word_in
                flag.next = last_in
        return load

    @always(aclk.posedge)
    def load_both():
        if we:
            tab.next[own:0] = tab_in[W * EB:Q * EB]
            word.next = word_in
            flag.next = last_in
        if we_next:
            tab.next[W * EB:own] = tab_in[Q * EB:0]

    return load_both


@block
def slot_writes(adv, tvalid, wp, we, we_next, *, k):
    """Slot ``k`` takes the table pipeline's word when the write pointer is at it, and the
    straddling entries when the pointer is one past it."""
    mine = k
    before = (k + 1) % SLOTS
    if we_next is None:
        @always_comb
        def own():
            we.next = adv and tvalid and wp[2:0] == mine
        return own

    @always_comb
    def decide():
        go = adv and tvalid
        we.next = go and wp[2:0] == mine
        we_next.next = go and wp[2:0] == before

    return decide


@block
def walker(aclk, aresetn, p, wp, off, fire, at_last, adv, pend_ok, tvalid, flags, ents, *,
           last_beat, NB):
    """The loop: ``p``/``off``/beat count/``at_last`` and the write pointer ``wp``.
    ``flags``: the four slots' ``tlast`` flags; ``ents``: each slot's entry at ``off``
    (``NB + 1`` bits, pop on top).  Everything but the entry's select is computed from
    registers, so the loop is the select and one LUT: ``p`` picks between two pointers
    made ahead, ``off`` takes the entry (a clock enable: ``fire``), and ``adv`` (the
    slots have room, registered) between two verdicts made ahead."""
    EB = NB + 1
    beat = Signal(intbv(0, min=0, max=last_beat + 1))
    entry = Signal(intbv(0)[EB:])
    flag_p, write, room = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    filled = Signal(modbv(0)[3:])
    n = Signal(intbv(0)[2:])
    p_pop, p_stay = Signal(modbv(0)[3:]), Signal(modbv(0)[3:])

    @always_comb
    def head():
        filled.next = wp - p
        n.next = p[2:]

    @always_comb
    def pick():
        flag_p.next = flags[n]
        if n == 0:
            entry.next = ents[EB:0]
        elif n == 1:
            entry.next = ents[2 * EB:EB]
        elif n == 2:
            entry.next = ents[3 * EB:2 * EB]
        else:
            entry.next = ents[4 * EB:3 * EB]

    @always_comb
    def decide():
        fire.next = filled >= 1 and (flag_p or filled >= 2) and pend_ok
        write.next = adv and tvalid
        room.next = filled < SLOTS - 1 or (filled == SLOTS - 1 and not write)

    @always_comb
    def ahead():
        # where p goes if the record leaves its word (a pass's last record always does:
        # to the word after its image's tlast word), and if it does not
        if at_last and not flag_p:
            p_pop.next = p + 2
        else:
            p_pop.next = p + 1
        if at_last:
            p_stay.next = p_pop
        else:
            p_stay.next = p

    @always_seq(aclk.posedge, reset=aresetn)
    def step():
        if write:
            wp.next = wp + 1
        adv.next = room or (fire and (at_last or entry[NB]))
        if fire:
            if entry[NB]:
                p.next = p_pop
            else:
                p.next = p_stay
            if at_last:
                off.next = 0
                beat.next = 0
                at_last.next = last_beat == 0
            else:
                off.next = entry[NB:]
                beat.next = beat + 1
                at_last.next = beat + 1 == last_beat

    return head, pick, decide, ahead, step


@block
def entry_mux(tab, off, ent, *, EB):
    """``ent`` = entry ``off`` of ``tab`` (``EB``-bit entries; 0 past the end) as a
    balanced tree of 4:1 selects on two offset bits each (an adder-free index)."""
    N = len(tab) // EB
    NB = len(off)
    mask = (1 << EB) - 1

    @always_comb
    def model():
        o = int(off.val)
        ent.next = (int(tab.val) >> (o * EB)) & mask if o < N else 0

    level = [f"$tab[{(i + 1) * EB - 1}:{i * EB}]" if i < N else f"{EB}'d0"
             for i in range(1 << NB)]
    lines, bit, depth = [], 0, 0
    while len(level) > 1:
        step = 4 if NB - bit >= 2 else 2
        nxt = []
        for g in range(len(level) // step):
            name = f"${{ent}}_t{depth}_{g}"
            x = level[g * step:(g + 1) * step]
            if step == 4:
                s0, s1 = f"$off[{bit}]", f"$off[{bit + 1}]"
                expr = f"{s1} ? ({s0} ? {x[3]} : {x[2]}) : ({s0} ? {x[1]} : {x[0]})"
            else:
                expr = f"$off[{bit}] ? {x[1]} : {x[0]}"
            lines.append(f"wire [{EB - 1}:0] {name} = {expr};")
            nxt.append(name)
        level, bit, depth = nxt, bit + (2 if step == 4 else 1), depth + 1
    lines.append(f"assign $ent = {level[0]};")
    ent.driven = "wire"
    tab.read = off.read = True
    entry_mux.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def extract(aclk, aresetn, fire, at_last, p, off, words, rec, rv, rl, *, W, NB):
    """The fired record's bits: the slot pointer and offset are registered (copies off the
    loop), the next cycle the pair of words is registered, then shifted right by the
    offset in stages of ``SHIFT_BITS`` bits; ``rec`` (``W`` bits), ``rv``, ``rl`` after
    ``2 + shift_stages(NB)`` edges.  ``words``: the four slots' words side by side."""
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
        reach = ((W - 1) >> (lo_bit + digit_bits)) << (lo_bit + digit_bits)
        out_w = W + reach if k < n_st - 1 else W
        digit = Signal(intbv(0)[digit_bits:])
        higher = Signal(intbv(0)[rest:]) if rest else None
        shifted = Signal(intbv(0)[out_w:])
        reg = Signal(intbv(0)[out_w:]) if k < n_st - 1 else rec
        nv = Signal(bool(0)) if k < n_st - 1 else rv
        nl = Signal(bool(0)) if k < n_st - 1 else rl
        nh = Signal(intbv(0)[rest:]) if rest else None
        parts.append(digits(amount, digit, higher))
        parts.append(part_select(data, digit, shifted, scale=1 << lo_bit))
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
def slot_unit(aclk, adv, tvalid, wp, off, tab_in, word_in, last_in, word, flag, ent, *, k,
              W, Q, EB):
    """Slot ``k``: its registers, when they are written, and its table's entry at ``off``."""
    tab = Signal(intbv(0)[W * EB:])
    we, we_next = Signal(bool(0)), Signal(bool(0)) if Q else None
    return (slot_writes(adv, tvalid, wp, we, we_next, k=k),
            slot(aclk, we, we_next, tab_in, word_in, last_in, tab, word, flag, W=W, Q=Q, EB=EB),
            entry_mux(tab, off, ent, EB=EB))


@block
def side_by_side(a, b, c, d, out):
    """``out`` = ``d ++ c ++ b ++ a`` (``a`` at bit 0)."""

    @always_comb
    def join():
        out.next = concat(d, c, b, a)

    return join
