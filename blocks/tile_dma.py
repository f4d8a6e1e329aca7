"""``tile_dma``: an AXI4 master that moves 2-D tiles between off-chip memory and streams.

The only path to off-chip memory in a design, so it also counts the off-chip traffic.
A read command streams a tile out of memory; a write command plus the tile's data writes it.

Parameters
----------
data_bits : 32, 64 or 128
    Width of the AXI data bus and of the data streams.  ``NB = data_bits / 8`` bytes a beat.
addr_bits : 32
    AXI address width (only 32 is supported).
max_burst : int, 1..256
    Longest AXI burst in beats.
outstanding : int, 1..8
    Read bursts in flight (issued, data not yet all returned); also the number of write
    bursts that may wait for their response.
target : "generic" or a device name (``fpga.devices``), default generic
    The device the Verilog is for.  On ECP5 a read FIFO in block RAM (more than 64 and at
    most 512 beats) is built from instantiated DP16KD blocks whose output register is the
    FIFO's output register (``blocks.ram``); the directory then carries their simulation
    model ``DP16KD_sim.v``.  Behaviour and latency are the same on every target.

Command packing (``s_axis_rdcmd`` and ``s_axis_wrcmd``: ``tdata`` 128 bits, no ``tlast``)
---------------------------------------------------------------------------------------
``[31:0]`` base address, ``[63:32]`` row stride in bytes, ``[79:64]`` bytes per row,
``[95:80]`` rows, ``[127:96]`` reserved, zero.  Row ``r`` covers the bytes
``base + r*stride ... base + r*stride + bytes_per_row - 1``; addresses wrap at 2**32.
Base, stride and bytes per row must be multiples of ``NB``, rows and bytes per row must
not be zero and the reserved bits must be zero.  A command that breaks this is consumed,
not executed (no data, no ``wrdone`` beat, no bus traffic) and sets ``error``.

Ports
-----
aclk, aresetn           clock; synchronous active-low reset
s_axis_rdcmd_t*         read commands: ``tdata[127:0]`` as above, ``tvalid``, ``tready``
m_axis_rd_t*            the read tile: ``tdata[data_bits-1:0]``, bytes in address order
                        (row after row), little-endian in a beat (the byte at the lower
                        address in ``tdata[7:0]``); ``tlast`` on the tile's last beat
s_axis_wrcmd_t*         write commands, as ``s_axis_rdcmd``
s_axis_wr_t*            the data of the write tiles, packed as ``m_axis_rd``; ``tdata``,
                        ``tvalid``, ``tready`` and no ``tlast``: the command says how
                        many beats a tile has
m_axis_wrdone_t*        one beat per executed write command once all its write responses
                        are back: ``tdata[7:0]``, ``[1:0]`` = worst ``bresp`` of the tile
                        (OKAY 0 < EXOKAY 1 < SLVERR 2 < DECERR 3), ``[7:2]`` zero; ``tlast`` 1
m_axi_*                 AXI4 master: ``araddr arlen arsize arburst arvalid arready rdata rresp
                        rlast rvalid rready awaddr awlen awsize awburst awvalid awready wdata
                        wstrb wlast wvalid wready bresp bvalid bready``, plus 1-bit ``arid`` and
                        ``awid`` (always 0) and ``rid``/``bid`` inputs (a non-zero ID is
                        answered with ``error``): verification IP such as cocotbext-axi's
                        ``AxiBus.from_prefix`` requires the ID signals.  INCR bursts of full
                        bus width (``arsize = awsize = log2(NB)``), ``wstrb`` all ones.
error                   sticky until reset: a rejected command, a non-OKAY ``rresp``/``bresp``
                        or an unexpected response ID.  Data still completes.
rd_bytes[63:0]          bytes read from memory since reset (``NB`` per R beat)
wr_bytes[63:0]          bytes written to memory since reset (``NB`` per W beat)

Bursts
------
Each row is cut into INCR bursts of at most ``max_burst`` beats that never cross a 4 KB
boundary.  A read burst is issued only when the read-data FIFO (``outstanding *
max_burst`` beats) has room for ``max_burst`` more beats beyond those of the bursts in
flight, so ``rready`` is always high and the R channel never stalls, whatever
``m_axis_rd`` does.  (For timing, each burst first reserves ``max_burst`` beats and
hands back what it does not use four cycles later, and FIFO space freed by a beat
counts again three cycles after the beat left: the count is conservative, never wrong.)
Each channel issues a burst at most every other cycle, so bursts of one beat
(``max_burst`` 1, one-beat rows) use at most half of it.  Write address and data go out in order, the address
of a burst never after its data; ``wvalid`` waits for ``s_axis_wr``.

Latency and throughput
----------------------
Read: the first AR handshake comes 3 cycles after the command's at the earliest, and an R
beat leaves on ``m_axis_rd`` 3 cycles after it arrived: 6 cycles plus the memory's latency
from command to first data.  With ``outstanding`` bursts in flight the R channel stays
busy (one beat per cycle) while the memory's latency is below about
``(outstanding - 1) *`` burst length; with ``outstanding = 1`` each burst pays the full
round trip.  Write: one beat per cycle when ``s_axis_wr`` and the W channel allow; the AW
channel stops only while ``outstanding`` bursts await their responses.  A new command is
accepted as soon as the previous one has issued its last burst.  bench/tile_dma.py
measures both directions; :class:`ReadTimeline` gives every read burst's cycles (a
model of the above, equal to the simulation's with a fixed-latency memory and an
always-ready ``m_axis_rd``).

Cost
----
Read FIFO: ``outstanding * max_burst`` words of ``data_bits + 1`` bits (LUT RAM up to 64
deep, asked for in the Verilog, block RAM beyond), write-length FIFO: 8 bits per
outstanding burst; about 850-950 LUTs and 700 + 3 * ``data_bits`` flip-flops of logic
(see :func:`estimate`).

Timing: the read FIFO's last stage is its RAM's output register, which drives
``m_axis_rd``; on an ECP5 target with the FIFO in block RAM that register is the DP16KD's
own (without it the block's 5.8 ns clock-to-output, in nextpnr's model, limits the design
to about 145 MHz).  Measured figures are in the project's estimate notes.
"""
from __future__ import annotations

import functools

import numpy as np
from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv, modbv

from blocks.axis_register import axis_register
from blocks.ram import TARGETS, ram, sim_files, write_sim_files
from blocks.ram import estimate as estimate_ram
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset

PARAMS = (
    Param("data_bits", int, default=64, choices=(32, 64, 128), help="AXI data bus width"),
    Param("addr_bits", int, default=32, choices=(32,), help="AXI address width"),
    Param("max_burst", int, default=16, lo=1, hi=256, help="longest AXI burst in beats"),
    Param("outstanding", int, default=4, lo=1, hi=8, help="read bursts in flight"),
    Param("target", str, default="generic", choices=TARGETS,
          help="device the Verilog is for: on ECP5 a block-RAM read FIFO is built from "
               "DP16KD with their output register"),
)

CMD_BITS = 128
DONE_BITS = 8
PAGE = 4096  # AXI: a burst never crosses a 4 KB boundary
ID_BITS = 1


class AxiMaster:
    """The AXI4 master port: attributes flatten to ``m_axi_araddr`` etc. in Verilog."""

    def __init__(self, data_bits: int, addr_bits: int = 32):
        def bits(n):
            return Signal(intbv(0)[n:])

        def flag():
            return Signal(bool(0))

        self.arid, self.araddr, self.arlen = bits(ID_BITS), bits(addr_bits), bits(8)
        self.arsize, self.arburst = bits(3), bits(2)
        self.arvalid, self.arready = flag(), flag()
        self.rid, self.rdata, self.rresp = bits(ID_BITS), bits(data_bits), bits(2)
        self.rlast, self.rvalid, self.rready = flag(), flag(), flag()
        self.awid, self.awaddr, self.awlen = bits(ID_BITS), bits(addr_bits), bits(8)
        self.awsize, self.awburst = bits(3), bits(2)
        self.awvalid, self.awready = flag(), flag()
        self.wdata, self.wstrb = bits(data_bits), bits(data_bits // 8)
        self.wlast, self.wvalid, self.wready = flag(), flag(), flag()
        self.bid, self.bresp = bits(ID_BITS), bits(2)
        self.bvalid, self.bready = flag(), flag()


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _pointer_depth(count: int) -> int:
    """Smallest power of two >= ``count`` (at least 2), for FIFOs with wrapping pointers."""
    depth = 2
    while depth < count:
        depth *= 2
    return depth


@block
def command_check(cmd, busy, cmd_ok, bad_cmd, *, lg):
    """Accepts a command while idle and checks it (``cmd_ok``; ``bad_cmd`` if consumed)."""

    @always_comb
    def check():
        # Alignment: the low lg bits of base, stride and bytes per row must be zero.
        # Reserved bits must be zero; rows and bytes per row must not be.
        cmd_ok.next = (cmd.tdata[lg:0] == 0 and cmd.tdata[32 + lg:32] == 0
                       and cmd.tdata[64 + lg:64] == 0
                       and cmd.tdata[80:64 + lg] != 0 and cmd.tdata[96:80] != 0
                       and cmd.tdata[128:96] == 0)

    @always_comb
    def handshake():
        cmd.tready.next = not busy
        bad_cmd.next = cmd.tvalid and not busy and not cmd_ok

    return check, handshake


@block
def page_steps(cmd, to_page, next_row, mid_page, mid_step, row_page, row_step, load_page,
               load_step, *, data_bits, max_burst):
    """Beats to the next 4 KB boundary and the next burst inside a row, for each move."""
    lanes = data_bits // 8
    lg = _log2(lanes)
    page_beats = PAGE // lanes
    pad_offset = 4 + lg  # an address's beat offset in its page, addr[12:lg], in 16 bits
    # A burst that fits in its page up to max_burst beats: the page's remaining beats are
    # at most max_burst exactly when the beat offset in the page is at least this.
    near_offset = page_beats - max_burst  # 0 when max_burst is a whole page
    first_step = min(page_beats, max_burst)  # after a burst that ends at a boundary
    double_burst = 2 * max_burst

    @always_comb
    def pages():
        # step = min(to_page, max_burst) always holds, so the next to_page and step after
        # a burst inside a row follow from comparisons of to_page with constants and one
        # subtraction, side by side rather than one after the other (timing).
        if to_page <= max_burst:  # this burst reaches the 4 KB boundary
            mid_page.next = intbv(page_beats)[16:]
            mid_step.next = intbv(first_step)[16:]
        elif to_page <= double_burst:
            mid_page.next = to_page - max_burst
            mid_step.next = to_page - max_burst
        else:
            mid_page.next = to_page - max_burst
            mid_step.next = intbv(max_burst)[16:]
        row_page.next = intbv(page_beats)[16:] - concat(intbv(0)[pad_offset:], next_row[12:lg])
        load_page.next = (intbv(page_beats)[16:]
                          - concat(intbv(0)[pad_offset:], cmd.tdata[12:lg]))

    if near_offset == 0:
        @always_comb
        def steps():
            row_step.next = row_page
            load_step.next = load_page
    else:
        @always_comb
        def steps():
            if next_row[12:lg] >= near_offset:
                row_step.next = row_page
            else:
                row_step.next = intbv(max_burst)[16:]
            if cmd.tdata[12:lg] >= near_offset:
                load_step.next = load_page
            else:
                load_step.next = intbv(max_burst)[16:]

    return pages, steps


@block
def burst_length(beats_left, step, ends_row, burst_code, advance, *, data_bits, max_burst):
    """Whether the burst at the walk's position ends its row, its length code and stride."""
    lg = _log2(data_bits // 8)
    pad_advance = 16 - lg  # step * NB in 32 bits
    step_bits = max_burst.bit_length()  # step <= max_burst fits in these low bits
    left_code = Signal(modbv(0)[8:])  # AXI length codes of the two candidate bursts
    step_code = Signal(modbv(0)[8:])

    @always_comb
    def length_codes():
        # modbv: a 256-beat burst's 0 - 1 wraps to 255, as AXI wants.
        left_code.next = beats_left[8:] - intbv(1)[8:]
        step_code.next = step[8:] - intbv(1)[8:]

    @always_comb
    def next_burst():
        # beats_left <= step, narrowed to the bits step can have (timing)
        fits = beats_left[16:step_bits] == 0 and beats_left[step_bits:] <= step[step_bits:]
        ends_row.next = fits
        if fits:
            burst_code.next = left_code
        else:
            burst_code.next = step_code
        advance.next = concat(intbv(0)[pad_advance:], step, intbv(0)[lg:])

    return length_codes, next_burst


@block
def burst_issue(aclk, aresetn, busy, can_issue, ends_row, burst_code, rows_left, addr,
                issue, row_end, tile_end, next_len, issue_last, axaddr, axlen, axvalid,
                axready):
    """Registers the next burst's shape and loads it into the address channel."""
    last_row = Signal(bool(0))
    out_valid = Signal(bool(0))

    @always_comb
    def flags():
        issue_last.next = tile_end
        tile_end.next = row_end and last_row
        axvalid.next = out_valid

    @always_seq(aclk.posedge, reset=aresetn)
    def load():
        # The next burst's shape (row_end, next_len, last_row) is registered: it describes
        # the walk's position from the second cycle after the walk moved, so a burst
        # goes out at most every other cycle (timing).  issue is a register too (it
        # enables some 150 flip-flops): a burst goes out next cycle if the walk is busy
        # and did not move this cycle, the parent allows it (can_issue speaks of the next
        # cycle) and the address register will be free.
        issue.next = busy and not issue and can_issue and (not out_valid or axready)
        row_end.next = ends_row
        next_len.next = burst_code
        last_row.next = rows_left == 1
        if issue:
            out_valid.next = 1
            axaddr.next = addr
            axlen.next = next_len
        elif axready:
            out_valid.next = 0

    return flags, load


@block
def burst_splitter(aclk, aresetn, cmd, axaddr, axlen, axvalid, axready, can_issue,
                   next_len, issue, issue_last, bad_cmd, *, data_bits, max_burst):
    """Cuts tile commands from ``cmd`` into AXI bursts on ``ax*`` (one AR or AW channel).

    ``next_len`` is the AXI length code (beats - 1) of the burst that would be issued
    next; the parent says with ``can_issue`` whether a burst may go in the next cycle.
    ``issue`` (a register) pulses when a burst is loaded into the address register,
    ``issue_last`` with it when that burst ends the tile.
    ``bad_cmd`` pulses when a command that breaks the rules (alignment, empty tile,
    reserved bits) is consumed.

    For timing, the walk keeps in registers what the next burst needs: ``to_page``, the
    beats from ``addr`` to the next 4 KB boundary, and ``step = min(max_burst, to_page)``,
    the length of a burst that does not end the row; ``next_row`` is the next row's start.
    Each is updated from registers only, so no adder or comparator chain follows another.
    Whether the burst ends its row (and the tile) and its length code are registered too,
    a cycle after the walk moved: a burst is issued at most every other cycle, which
    costs nothing on a channel whose bursts are two beats or longer.
    """
    lg = _log2(data_bits // 8)
    # Constants are written as sized intbv literals in the generators so that the Verilog
    # operands have matching widths (Verilator -Wall WIDTH).
    busy, cmd_ok = Signal(bool(0)), Signal(bool(0))
    addr, next_row = Signal(modbv(0)[32:]), Signal(modbv(0)[32:])
    stride, advance = Signal(intbv(0)[32:]), Signal(intbv(0)[32:])
    row_beats, beats_left = Signal(intbv(0)[16:]), Signal(intbv(0)[16:])
    rows_left = Signal(intbv(0)[16:])
    to_page, step = Signal(intbv(0)[16:]), Signal(intbv(0)[16:])
    ends_row = Signal(bool(0))  # the burst the walk stands at ends its row
    burst_code = Signal(modbv(0)[8:])  # and its AXI length code
    row_end, tile_end = Signal(bool(0)), Signal(bool(0))  # registered: the burst to issue
    # to_page and step after a burst inside a row, at the next row, for a new command
    mid_page, mid_step = Signal(intbv(0)[16:]), Signal(intbv(0)[16:])
    row_page, row_step = Signal(intbv(0)[16:]), Signal(intbv(0)[16:])
    load_page, load_step = Signal(intbv(0)[16:]), Signal(intbv(0)[16:])

    checker = command_check(cmd, busy, cmd_ok, bad_cmd, lg=lg)
    pager = page_steps(cmd, to_page, next_row, mid_page, mid_step, row_page, row_step,
                       load_page, load_step, data_bits=data_bits, max_burst=max_burst)
    shaper = burst_length(beats_left, step, ends_row, burst_code, advance,
                          data_bits=data_bits, max_burst=max_burst)
    issuer = burst_issue(aclk, aresetn, busy, can_issue, ends_row, burst_code, rows_left,
                         addr, issue, row_end, tile_end, next_len, issue_last, axaddr, axlen,
                         axvalid, axready)

    @always_seq(aclk.posedge, reset=aresetn)
    def walk():
        if not busy:
            if cmd.tvalid and cmd_ok:
                busy.next = 1
                addr.next = cmd.tdata[32:0]
                next_row.next = cmd.tdata[32:0] + cmd.tdata[64:32]
                stride.next = cmd.tdata[64:32]
                row_beats.next = concat(intbv(0)[lg:], cmd.tdata[80:64 + lg])
                beats_left.next = concat(intbv(0)[lg:], cmd.tdata[80:64 + lg])
                rows_left.next = cmd.tdata[96:80]
                to_page.next = load_page
                step.next = load_step
        if issue:
            if row_end:
                addr.next = next_row
                next_row.next = next_row + stride
                beats_left.next = row_beats
                rows_left.next = rows_left - intbv(1)[16:]
                to_page.next = row_page
                step.next = row_step
                if tile_end:
                    busy.next = 0
            else:
                addr.next = addr + advance
                beats_left.next = beats_left - step
                to_page.next = mid_page
                step.next = mid_step

    return checker, pager, shaper, issuer, walk


LUT_RAM_DEPTH = 64  # read FIFOs up to this deep are kept out of block RAM


def fifo_style(depth: int) -> str:
    """Where the read FIFO goes: LUT RAM up to ``LUT_RAM_DEPTH`` words, whatever its width.

    On ECP5, Yosys would otherwise pick a DP16KD block RAM, whose read it can only map
    without the output register; that read's clock-to-output delay (about 5.8 ns in
    nextpnr's model) alone would hold the block below 150 MHz.  Xilinx synthesis uses
    LUT RAM at these depths anyway.
    """
    return "distributed" if depth <= LUT_RAM_DEPTH else "block"


@block
def up_down(aclk, aresetn, up, down, count):
    """``count`` of entries held: one more on ``up``, one fewer on ``down``, both: same."""

    @always_seq(aclk.posedge, reset=aresetn)
    def counter():
        if up and not down:
            count.next = count + 1
        elif down and not up:
            count.next = count - 1

    return counter


def channel_wires() -> tuple:
    """Fresh signals between an engine and its :func:`burst_channel`: ``next_len``
    (8 bits), ``allow``, ``issue``, ``retire``, ``ends_tile`` and ``bad_cmd``."""
    return (Signal(modbv(0)[8:]), *(Signal(bool(0)) for _ in range(5)))


@block
def burst_channel(aclk, aresetn, cmd, axaddr, axlen, axvalid, axready, allow, retire,
                  next_len, issue, ends_tile, bad_cmd, *, data_bits, max_burst, outstanding):
    """One AR or AW channel: bursts cut from commands, at most ``outstanding`` in flight.

    ``allow`` is the parent's further condition for a burst next cycle (it may depend on
    ``issue``); ``retire`` pulses as the oldest burst in flight completes, and
    ``ends_tile`` says whether that burst ends its tile.
    """
    depth = _pointer_depth(outstanding)
    can_issue = Signal(bool(0))
    issue_last = Signal(bool(0))
    splitter = burst_splitter(aclk, aresetn, cmd, axaddr, axlen, axvalid, axready, can_issue,
                              next_len, issue, issue_last, bad_cmd, data_bits=data_bits,
                              max_burst=max_burst)
    in_flight = Signal(intbv(0, min=0, max=outstanding + 1))
    flight = up_down(aclk, aresetn, issue, retire, in_flight)
    # One flag per burst in flight: does it end its tile?
    last_flags = Signal(intbv(0)[depth:])
    flag_wr = Signal(modbv(0, min=0, max=depth))
    flag_rd = Signal(modbv(0, min=0, max=depth))

    @always_comb
    def control():
        # Whether a burst may go next cycle: decided from in_flight as it will be at the
        # worst (this cycle's issue counted, nothing retired).
        if issue:
            can_issue.next = allow and in_flight < outstanding - 1
        else:
            can_issue.next = allow and in_flight < outstanding
        ends_tile.next = last_flags[flag_rd]

    @always_seq(aclk.posedge, reset=aresetn)
    def bookkeeping():
        if issue:
            last_flags.next[flag_wr] = issue_last
            flag_wr.next = flag_wr + 1
        if retire:
            flag_rd.next = flag_rd + 1

    return splitter, flight, control, bookkeeping


@block
def read_credit(aclk, aresetn, issue, arlen, read_ram, allow, *, depth, max_burst):
    """Beats of read FIFO space not yet promised to a burst; ``allow``: room for one more."""
    # For timing, no burst length and no comparison of the credit sits between one
    # register and the next credit:
    # - an issued burst first reserves max_burst beats (a constant); the next cycle, when
    #   its length code sits in the arlen register, the unused part goes into a register
    #   (``unused``), then joins the beat that left the FIFO in ``back``, which the cycle
    #   after hands back;
    # - whether a burst may be issued (the splitter's issue register) is decided a cycle
    #   ahead from the credit as it will be at the worst (this cycle's issue taken,
    #   nothing back).
    # The credit is thus never above the true free space, only below it for a few cycles.
    space = Signal(modbv(depth)[16:])
    issued = Signal(bool(0))  # a burst was issued last cycle
    unused = Signal(intbv(0)[16:])  # max_burst minus a burst's length, or 0
    unused_less = Signal(modbv(0)[16:])  # unused - max_burst, modulo 2**16
    arlen_inverted = Signal(intbv(0)[8:])
    back = Signal(intbv(0)[16:])  # beats handed back to the credit this cycle
    back_less = Signal(modbv(0)[16:])  # back - max_burst, modulo 2**16: with an issue

    @always_comb
    def control():
        # Room for a longest burst, not just for the next one: keeps the burst length
        # calculation out of the issue decision (timing), and costs nothing in
        # throughput, since the FIFO holds outstanding * max_burst beats.
        if issue:
            allow.next = space >= 2 * max_burst
        else:
            allow.next = space >= max_burst
        arlen_inverted.next = ~arlen

    @always_seq(aclk.posedge, reset=aresetn)
    def credit():
        issued.next = issue
        if issued:  # arlen holds the length code of the burst issued last cycle
            unused.next = intbv(max_burst - 1)[16:] - concat(intbv(0)[8:], arlen)
            unused_less.next = concat(intbv(0xFF)[8:], arlen_inverted)  # -1 - arlen
        else:
            unused.next = 0
            unused_less.next = intbv(2**16 - max_burst)[16:]
        if read_ram:  # a beat leaves the FIFO: its space comes back too
            back.next = unused + 1
            back_less.next = unused_less + 1
        else:
            back.next = unused
            back_less.next = unused_less
        if issue:  # reserve max_burst beats (never below zero: can_issue saw to it)
            space.next = space + back_less
        else:
            space.next = space + back

    return control, credit


@block
def read_engine(aclk, aresetn, s_axis_rdcmd, m_axis_rd, m_axi, rd_error, rd_bytes, *,
                data_bits, max_burst, outstanding, target):
    """AR issue with credits, the read-data FIFO and ``m_axis_rd``."""
    lanes = data_bits // 8
    depth = outstanding * max_burst  # beats the FIFO holds: every issued burst fits

    # beat_done: the last beat of a burst arrives
    next_len, allow, issue, beat_done, ends_tile, bad_cmd = channel_wires()
    channel = burst_channel(aclk, aresetn, s_axis_rdcmd, m_axi.araddr, m_axi.arlen,
                            m_axi.arvalid, m_axi.arready, allow, beat_done, next_len, issue,
                            ends_tile, bad_cmd, data_bits=data_bits, max_burst=max_burst,
                            outstanding=outstanding)

    # The FIFO: a simple dual-port RAM with a registered read, then an output register.
    wr_ptr = Signal(intbv(0, min=0, max=depth))
    rd_ptr = Signal(intbv(0, min=0, max=depth))
    stored = Signal(intbv(0, min=0, max=depth + 1))
    q_valid = Signal(bool(0))
    out_valid = Signal(bool(0))
    out_word = Signal(intbv(0)[data_bits + 1:])
    beat_in = Signal(bool(0))
    beat_word = Signal(intbv(0)[data_bits + 1:])
    read_ram = Signal(bool(0))
    load_out = Signal(bool(0))
    level = up_down(aclk, aresetn, beat_in, read_ram, stored)
    credit = read_credit(aclk, aresetn, issue, m_axi.arlen, read_ram, allow, depth=depth,
                         max_burst=max_burst)
    # The FIFO never reads the word being written (a word is read a cycle after it was
    # stored at the earliest, and the credits keep the writer from catching up with the
    # reader), so the RAM needs no read-during-write bypass.
    # Its read has two stages: the RAM's read register (q_valid says it holds a beat) and
    # its output register, which is m_axis_rd's (on ECP5 block RAM: inside the DP16KD).
    fifo = ram(aclk, write=beat_in, waddr=wr_ptr, wdata=beat_word, read=read_ram,
               raddr=rd_ptr, rdata=out_word, out_enable=load_out, depth=depth,
               style=fifo_style(depth), target=target)

    @always_comb
    def control():
        beat_in.next = m_axi.rvalid  # rready is always high
        beat_done.next = m_axi.rvalid and m_axi.rlast
        load_out.next = q_valid and (not out_valid or m_axis_rd.tready)
        read_ram.next = stored != 0 and (not q_valid or load_out)

    @always_comb
    def word_in():
        beat_word.next = concat(m_axi.rlast and ends_tile, m_axi.rdata)

    size_code = _log2(lanes)

    @always_comb
    def outputs():
        m_axi.rready.next = 1
        m_axi.arid.next = 0
        m_axi.arsize.next = size_code
        m_axi.arburst.next = 1  # INCR
        m_axis_rd.tvalid.next = out_valid
        m_axis_rd.tdata.next = out_word[data_bits:]
        m_axis_rd.tlast.next = out_word[data_bits]

    @always_seq(aclk.posedge, reset=aresetn)
    def bookkeeping():
        if beat_in:
            if wr_ptr == depth - 1:
                wr_ptr.next = 0
            else:
                wr_ptr.next = wr_ptr + 1
            rd_bytes.next = rd_bytes + lanes
        if read_ram:
            if rd_ptr == depth - 1:
                rd_ptr.next = 0
            else:
                rd_ptr.next = rd_ptr + 1
        q_valid.next = read_ram or (q_valid and not load_out)
        if load_out:
            out_valid.next = 1
        elif m_axis_rd.tready:
            out_valid.next = 0
        rd_error.next = bad_cmd or (beat_in and (m_axi.rresp != 0 or m_axi.rid != 0))

    return channel, credit, level, control, word_in, outputs, fifo, bookkeeping


@block
def write_responses(aclk, aresetn, m_axi, m_axis_wrdone, ends_tile, bad_cmd, response,
                    wr_error):
    """Takes B responses (``response``) and sends a tile's worst one on ``m_axis_wrdone``."""
    pad_done = DONE_BITS - 2
    worst = Signal(intbv(0)[2:])
    done_valid = Signal(bool(0))
    done_resp = Signal(intbv(0)[2:])
    merged = Signal(intbv(0)[2:])

    @always_comb
    def merge():
        response.next = m_axi.bvalid and not done_valid
        # The worst response so far in this tile, including the one arriving now.
        if m_axi.bresp > worst:
            merged.next = m_axi.bresp
        else:
            merged.next = worst

    @always_comb
    def outputs():
        m_axi.bready.next = not done_valid
        m_axis_wrdone.tvalid.next = done_valid
        m_axis_wrdone.tdata.next = concat(intbv(0)[pad_done:], done_resp)
        m_axis_wrdone.tlast.next = 1

    @always_seq(aclk.posedge, reset=aresetn)
    def done():
        if response:
            if ends_tile:
                done_valid.next = 1
                done_resp.next = merged
                worst.next = 0
            else:
                worst.next = merged
        elif m_axis_wrdone.tready:
            done_valid.next = 0
        wr_error.next = bad_cmd or (response and (m_axi.bresp != 0 or m_axi.bid != 0))

    return merge, outputs, done


@block
def write_engine(aclk, aresetn, s_axis_wrcmd, s_axis_wr, m_axis_wrdone, m_axi, wr_error,
                 wr_bytes, *, data_bits, max_burst, outstanding):
    """AW issue, the W channel (through a register slice) and the write responses."""
    lanes = data_bits // 8
    depth = _pointer_depth(outstanding)

    next_len, allow, issue, response, ends_tile, bad_cmd = channel_wires()
    # Bursts issued on AW whose response is not back yet: the channel counts them and
    # keeps whether each ends its tile (for wrdone); their lengths (for wlast) wait here.
    channel = burst_channel(aclk, aresetn, s_axis_wrcmd, m_axi.awaddr, m_axi.awlen,
                            m_axi.awvalid, m_axi.awready, allow, response, next_len, issue,
                            ends_tile, bad_cmd, data_bits=data_bits, max_burst=max_burst,
                            outstanding=outstanding)
    responses = write_responses(aclk, aresetn, m_axi, m_axis_wrdone, ends_tile, bad_cmd,
                                response, wr_error)
    lengths = [Signal(intbv(0)[8:]) for _ in range(depth)]  # AXI length codes (beats - 1)
    len_wr = Signal(modbv(0, min=0, max=depth))
    after_head = Signal(modbv(1, min=0, max=depth))  # slot of the burst after the oldest
    len_count = Signal(intbv(0, min=0, max=depth + 1))
    burst_done = Signal(bool(0))  # the last beat of the oldest burst goes into the slice
    have_burst = Signal(bool(0))  # len_count != 0, as a register (timing)
    # Index of the last beat of the oldest burst: a register, loaded as that burst becomes
    # the oldest, so no RAM read precedes the comparison with beat (timing).
    head_last = Signal(intbv(0)[8:])
    second_last = Signal(intbv(0)[8:])  # the same for the burst after it
    beat = Signal(intbv(0)[8:])

    w_in = Axis(data_bits)
    w_out = Axis(data_bits)
    slice_ = axis_register(aclk, aresetn, w_in, w_out, bits=data_bits)
    accept = Signal(bool(0))
    count = up_down(aclk, aresetn, issue, burst_done, len_count)

    @always_comb
    def head():
        second_last.next = lengths[after_head]
        burst_done.next = accept and beat == head_last

    @always_comb
    def control():
        allow.next = 1  # the W channel never holds back an AW burst
        w_in.tvalid.next = s_axis_wr.tvalid and have_burst
        w_in.tdata.next = s_axis_wr.tdata
        w_in.tlast.next = beat == head_last
        s_axis_wr.tready.next = w_in.tready and have_burst
        accept.next = s_axis_wr.tvalid and w_in.tready and have_burst

    size_code = _log2(lanes)
    all_strobes = (1 << lanes) - 1

    @always_comb
    def outputs():
        m_axi.awid.next = 0
        m_axi.awsize.next = size_code
        m_axi.awburst.next = 1  # INCR
        m_axi.wstrb.next = all_strobes
        m_axi.wdata.next = w_out.tdata
        m_axi.wlast.next = w_out.tlast
        m_axi.wvalid.next = w_out.tvalid
        w_out.tready.next = m_axi.wready

    @always(aclk.posedge)
    def length_ram():
        if issue:
            lengths[len_wr].next = next_len

    @always_seq(aclk.posedge, reset=aresetn)
    def bookkeeping():
        if issue:
            len_wr.next = len_wr + 1
        if burst_done:
            after_head.next = after_head + 1
            if issue and len_count == 1:  # the next burst's length is being stored now
                head_last.next = next_len
            else:
                head_last.next = second_last
        elif issue and not have_burst:
            head_last.next = next_len
        if issue:
            have_burst.next = 1
        elif burst_done and len_count == 1:
            have_burst.next = 0
        if accept:
            if burst_done:
                beat.next = 0
            else:
                beat.next = beat + 1
        if m_axi.wvalid and m_axi.wready:
            wr_bytes.next = wr_bytes + lanes

    return channel, responses, slice_, count, head, control, outputs, length_ram, bookkeeping


@block
def tile_dma(aclk, aresetn, s_axis_rdcmd, m_axis_rd, s_axis_wrcmd, s_axis_wr, m_axis_wrdone,
             m_axi, error, rd_bytes, wr_bytes, *, data_bits=64, addr_bits=32, max_burst=16,
             outstanding=4, target="generic"):
    """AXI4 tile DMA; see the module docstring."""
    BLOCK.validate(data_bits=data_bits, addr_bits=addr_bits, max_burst=max_burst,
                   outstanding=outstanding, target=target)
    for port, signal, bits in (("s_axis_rdcmd.tdata", s_axis_rdcmd.tdata, CMD_BITS),
                               ("s_axis_wrcmd.tdata", s_axis_wrcmd.tdata, CMD_BITS),
                               ("m_axis_rd.tdata", m_axis_rd.tdata, data_bits),
                               ("s_axis_wr.tdata", s_axis_wr.tdata, data_bits),
                               ("m_axis_wrdone.tdata", m_axis_wrdone.tdata, DONE_BITS),
                               ("m_axi.rdata", m_axi.rdata, data_bits),
                               ("m_axi.wdata", m_axi.wdata, data_bits),
                               ("m_axi.araddr", m_axi.araddr, addr_bits),
                               ("m_axi.awaddr", m_axi.awaddr, addr_bits),
                               ("rd_bytes", rd_bytes, 64), ("wr_bytes", wr_bytes, 64)):
        check_width(port, signal, bits)

    rd_error = Signal(bool(0))
    wr_error = Signal(bool(0))
    rd_count = Signal(modbv(0)[64:])
    wr_count = Signal(modbv(0)[64:])
    sticky = Signal(bool(0))
    reader = read_engine(aclk, aresetn, s_axis_rdcmd, m_axis_rd, m_axi, rd_error, rd_count,
                         data_bits=data_bits, max_burst=max_burst, outstanding=outstanding,
                         target=target)
    writer = write_engine(aclk, aresetn, s_axis_wrcmd, s_axis_wr, m_axis_wrdone, m_axi,
                          wr_error, wr_count, data_bits=data_bits, max_burst=max_burst,
                          outstanding=outstanding)

    @always_seq(aclk.posedge, reset=aresetn)
    def error_flag():
        if rd_error or wr_error:
            sticky.next = 1

    @always_comb
    def outputs():
        error.next = sticky
        rd_bytes.next = rd_count
        wr_bytes.next = wr_count

    return reader, writer, error_flag, outputs


# ---------------------------------------------------------------------------------------
# Golden model: the byte movement, command by command.

def decode_command(word: int) -> dict:
    """The fields of a 128-bit command word."""
    return {"base": word & 0xFFFF_FFFF, "stride": (word >> 32) & 0xFFFF_FFFF,
            "row_bytes": (word >> 64) & 0xFFFF, "rows": (word >> 80) & 0xFFFF}


def encode_command(*, base: int, stride: int, row_bytes: int, rows: int) -> int:
    """A 128-bit command word (the inverse of :func:`decode_command`)."""
    return ((base & 0xFFFF_FFFF) | (stride & 0xFFFF_FFFF) << 32
            | (row_bytes & 0xFFFF) << 64 | (rows & 0xFFFF) << 80)


def command_valid(word: int, *, data_bits: int) -> bool:
    """Whether the block executes ``word`` (aligned to the bus, not empty, reserved zero)."""
    lanes = data_bits // 8
    c = decode_command(word)
    return (word >> 96 == 0 and c["base"] % lanes == 0 and c["stride"] % lanes == 0
            and c["row_bytes"] % lanes == 0 and c["row_bytes"] > 0 and c["rows"] > 0)


def tile_beat_addresses(word: int, *, data_bits: int) -> list[int]:
    """Byte address of every beat of the tile ``word`` names, in stream order."""
    lanes = data_bits // 8
    c = decode_command(word)
    return [(c["base"] + r * c["stride"] + b * lanes) % 2**32
            for r in range(c["rows"]) for b in range(c["row_bytes"] // lanes)]


def golden(memory, operations, *, data_bits: int, base_address: int = 0,
           failing=None) -> dict:
    """What the DMA does to ``memory`` and its streams for ``operations`` run one by one.

    memory:      ``np.uint8`` array, the bytes at ``base_address ...`` (addresses outside
                 it must not be touched); it is not modified.
    operations:  ``("read", command)`` or ``("write", command, [tdata, ...])`` in order.
    failing:     optional ``failing(address) -> bool``: the memory answers SLVERR (2) for
                 the beat at that address, with zero read data and without storing a
                 write (what cocotbext-axi's ``AxiRam`` does when its storage fails).
    Returns ``{"memory": new memory, "reads": [[(tdata, tlast), ...] per executed read],
    "wrdone": [worst bresp ...] per executed write, "error": bool, "rd_bytes",
    "wr_bytes"}``.
    """
    failing = failing or (lambda address: False)
    lanes = data_bits // 8
    mem = np.array(memory, dtype=np.uint8, copy=True)
    out = {"reads": [], "wrdone": [], "error": False, "rd_bytes": 0, "wr_bytes": 0}

    def offset(address):
        off = address - base_address
        if not 0 <= off <= len(mem) - lanes:
            raise ValueError(f"address 0x{address:x} is outside the modelled memory")
        return off

    for op in operations:
        kind, word = op[0], op[1]
        if not command_valid(word, data_bits=data_bits):
            out["error"] = True
            continue
        addresses = tile_beat_addresses(word, data_bits=data_bits)
        if kind == "read":
            beats = []
            for i, address in enumerate(addresses):
                off = offset(address)
                data = int.from_bytes(mem[off:off + lanes].tobytes(), "little")
                if failing(address):
                    data, out["error"] = 0, True
                beats.append((data, i == len(addresses) - 1))
            out["reads"].append(beats)
            out["rd_bytes"] += lanes * len(addresses)
        elif kind == "write":
            data = op[2]
            if len(data) != len(addresses):
                raise ValueError(f"write of {len(addresses)} beats given {len(data)}")
            worst = 0
            for address, value in zip(addresses, data):
                off = offset(address)
                if failing(address):
                    worst, out["error"] = 2, True
                    continue
                mem[off:off + lanes] = np.frombuffer(int(value).to_bytes(lanes, "little"),
                                                     dtype=np.uint8)
            out["wrdone"].append(worst)
            out["wr_bytes"] += lanes * len(addresses)
        else:
            raise ValueError(f"operation: must be 'read' or 'write', got {kind!r}")
    out["memory"] = mem
    return out


def bursts(word: int, *, data_bits: int, max_burst: int) -> list[tuple[int, int]]:
    """``(address, beats)`` of every AXI burst the block issues for command ``word``."""
    if not command_valid(word, data_bits=data_bits):
        return []
    lanes = data_bits // 8
    c = decode_command(word)
    out = []
    for r in range(c["rows"]):
        address = (c["base"] + r * c["stride"]) % 2**32
        left = c["row_bytes"] // lanes
        while left:
            beats = min(left, max_burst, (PAGE - address % PAGE) // lanes)
            out.append((address, beats))
            address = (address + beats * lanes) % 2**32
            left -= beats
    return out



# Read timing: a model of the RTL with a memory of fixed latency (AR handshake to first R
# beat) and an always-ready ``m_axis_rd``, the cycle of every burst's data.  Equal to the
# MyHDL simulation's cycle count on 150 random tiles (bus 32/64/128, max_burst 1-64,
# outstanding 1-8, memory latency 2-20, one or three rows; tests/blocks/test_tile_dma.py
# checks eight more), and within assemblies.conv_frame's measured figures on 262 layers.
FIRST_AR = 3        # a command's handshake to its first AR handshake, at the earliest
AR_GAP = 2          # the address channel carries a burst at most every other cycle
OUT_LATENCY = 3     # an R beat to its beat on m_axis_rd
NEXT_COMMAND = 3    # a command's last burst issued to the next (waiting) command's first
UNUSED_BACK = 4     # a burst's issue to the credit's taking back what it does not use
BEAT_BACK = 3       # an R beat to the credit's taking its FIFO space back


class ReadTimeline:
    """The read engine's bursts in time: :meth:`command` places one command's bursts
    after the ones before (a command is taken once the one before has issued its last
    burst).  A burst is issued (its AR handshake a cycle later) at most every
    :data:`AR_GAP` cycles, while fewer than ``outstanding`` are in flight and the read
    FIFO's credit (``outstanding * max_burst`` beats) has ``max_burst`` beats: each burst
    takes ``max_burst`` at its issue and gives back what it does not use
    :data:`UNUSED_BACK` cycles later, each beat :data:`BEAT_BACK` cycles after it came.
    Its data come ``latency`` cycles after its AR, after the previous burst's last beat."""

    def __init__(self, *, outstanding: int, max_burst: int, latency: int):
        self.outstanding, self.max_burst, self.latency = outstanding, max_burst, latency
        # (issue cycle, beats, first R beat, last R beat) of the last bursts: no burst
        # depends on more than the ``outstanding + 3`` before it
        self.bursts = []
        self.keep = outstanding + 3

    def _held(self, t: int) -> int:
        """FIFO credit held at cycle ``t`` by the bursts issued so far."""
        held, mb = 0, self.max_burst
        for issue, beats, first, last in self.bursts[-self.outstanding - 2:]:
            if t <= issue:
                continue
            back = t - BEAT_BACK - first + 1            # beats whose space is back
            held += (mb if t < issue + UNUSED_BACK else beats) - (
                beats if back >= beats else back if back > 0 else 0)
        return held

    def command(self, lengths, at: int) -> tuple[int, int]:
        """Cycles of the first and last beat on ``m_axis_rd`` of a command of bursts of
        ``lengths`` beats whose handshake is at cycle ``at`` at the earliest."""
        key = lengths if isinstance(lengths, tuple) else tuple(lengths)
        issue = at + FIRST_AR - 1
        if not self.bursts or issue > max(self.bursts[-1][3] + BEAT_BACK,
                                          self.bursts[-1][0] + max(UNUSED_BACK, NEXT_COMMAND)):
            # an idle engine: the command runs as on a fresh one, shifted
            (first_out, last_out), tail = _idle_command(self.outstanding, self.max_burst,
                                                        self.latency, key)
            self.bursts = self.bursts[-self.keep:] + [(i + at, b, f + at, e + at)
                                                      for i, b, f, e in tail]
            return first_out + at, last_out + at
        return self._run(lengths, at)

    def _run(self, lengths, at: int) -> tuple[int, int]:
        first_out, n = None, 0
        while n < len(lengths):
            self._place(lengths[n], at if n == 0 else None)
            first_out = self.bursts[-1][2] if first_out is None else first_out
            n += 1 + self._repeat(lengths, n)
            del self.bursts[:-self.keep]
        return first_out + OUT_LATENCY, self.bursts[-1][3] + OUT_LATENCY

    def _place(self, beats: int, command_at: int | None) -> None:
        """Issue one burst: a command's first when ``command_at`` is given."""
        if command_at is not None:
            issue = command_at + FIRST_AR - 1
            if self.bursts:
                issue = max(issue, self.bursts[-1][0] + NEXT_COMMAND)
        else:
            issue = self.bursts[-1][0] + AR_GAP
        if len(self.bursts) >= self.outstanding:
            issue = max(issue, self.bursts[-self.outstanding][3] + 2)
        room = self.outstanding * self.max_burst - self.max_burst
        if self._held(issue - 1) > room:
            # the credit only grows from here: the first cycle it has room
            lo, hi = issue, self.bursts[-1][3] + BEAT_BACK + UNUSED_BACK + 1
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (mid + 1, hi) if self._held(mid - 1) > room else (lo, mid)
            issue = lo
        first = issue + 1 + self.latency
        if self.bursts:
            first = max(first, self.bursts[-1][3] + 1)
        self.bursts.append((issue, beats, first, first + beats - 1))

    def _repeat(self, lengths, n: int) -> int:
        """Bursts after ``lengths[n]`` placed at once (returns how many): when the bursts
        the next one depends on are all of its length and the last one came as the one
        before it (everything shifted by one period), the rest of that run repeats."""
        recent = self.bursts[-self.keep:]
        if len(recent) < self.keep:
            return 0
        beats = recent[-1][1]
        period = recent[-1][0] - recent[-2][0]
        if any(b[1] != beats or b[0] - a[0] != period or b[2] - a[2] != period
               for a, b in zip(recent, recent[1:])):
            return 0
        run = 0
        while n + 1 + run < len(lengths) and lengths[n + 1 + run] == beats:
            run += 1
        last = recent[-1]
        self.bursts.extend((last[0] + i * period, beats, last[2] + i * period,
                            last[3] + i * period)
                           for i in range(max(1, run - self.keep + 1), run + 1))
        return run


@functools.lru_cache(maxsize=4096)
def _idle_command(outstanding: int, max_burst: int, latency: int, lengths: tuple) -> tuple:
    """A command on an idle engine from cycle 0: its first and last beat out, and the
    bursts the next command depends on."""
    fresh = ReadTimeline(outstanding=outstanding, max_burst=max_burst, latency=latency)
    return fresh._run(lengths, 0), tuple(fresh.bursts)


def burst_lengths(word: int, *, data_bits: int, max_burst: int) -> tuple[int, ...]:
    """The beats of every AXI burst the block issues for command ``word``, in order."""
    return tuple(n for _, n in bursts(word, data_bits=data_bits, max_burst=max_burst))


def read_cycles(word: int, *, data_bits: int, max_burst: int, outstanding: int,
                latency: int) -> int:
    """A read command's handshake to its last beat on ``m_axis_rd``
    (:class:`ReadTimeline`; what bench/tile_dma.py measures)."""
    lengths = burst_lengths(word, data_bits=data_bits, max_burst=max_burst)
    return ReadTimeline(outstanding=outstanding, max_burst=max_burst,
                        latency=latency).command(lengths, 0)[1]


# ---------------------------------------------------------------------------------------
# Cost estimate, calibrated against Yosys synth_xilinx (xc7vx485t) on five configurations
# (data_bits/max_burst/outstanding 64/16/4, 32/16/2, 128/64/4, 64/256/8, 32/1/1): LUT and
# FF within 6 %; memory bits exact.  bench/tile_dma.py prints the comparison.

def estimate(*, data_bits=64, addr_bits=32, max_burst=16, outstanding=4,
             target="generic"):
    depth = outstanding * max_burst
    width = data_bits + 1  # a beat and its tlast
    length_slots = _pointer_depth(outstanding)
    pointer_bits = max(1, (depth - 1).bit_length())
    # The read FIFO: flip-flops for one entry, else as blocks.ram estimates it (LUT RAM up
    # to 64 deep, block RAM beyond, whose read register is then inside the block).
    fifo = estimate_ram(width=width, depth=depth, style=fifo_style(depth))
    fifo_luts, fifo_ffs = (0, width) if depth == 1 else (fifo["lut"], fifo["ff"])
    # The write-burst length FIFO (8 bits a slot): two RAM32M from 4 slots on, else FFs.
    length_luts, length_ffs = (8, 0) if length_slots >= 4 else (0, 8 * length_slots)
    # Logic: two burst splitters (address walk, 4 KB / max_burst minimum, counters), two
    # 64-bit byte counters, credit and pointer arithmetic, stream muxes.
    logic_luts = 800 + int(0.6 * data_bits) + 8 * pointer_bits - (130 if max_burst == 1 else 0)
    # Flip-flops: about 2 x 230 in the splitters' address registers, counters and
    # registered burst shapes, 128 in the byte counters, about 110 of control and read
    # credit; the read output register and the W register slice (output and skid) hold 3
    # data words.
    ff = 702 + 3 * data_bits + fifo_ffs + length_ffs
    return {"lut": logic_luts + fifo_luts + length_luts, "ff": ff, "dsp": 0,
            "bram_bits": depth * width + 8 * length_slots,
            # the burst-length FIFO is a few words of LUT RAM or flip-flops
            "bram": fifo["bram"],
            "latency": 6, "cycles": 1, "per": "beat"}


def fifo_sim_files(*, data_bits=64, addr_bits=32, max_burst=16, outstanding=4,
                   target="generic"):
    """Simulation models the Verilog needs beside it (the read FIFO's DP16KD on ECP5)."""
    depth = outstanding * max_burst
    return sim_files(data_bits + 1, depth, style=fifo_style(depth), out_register=True,
                     target=target)


def derived(*, data_bits=64, addr_bits=32, max_burst=16, outstanding=4,
            target="generic"):
    return {"bytes_per_beat": data_bits // 8, "read_fifo_beats": outstanding * max_burst,
            "command_bits": CMD_BITS, "wrdone_bits": DONE_BITS,
            "command_fields": {"base": [31, 0], "stride": [63, 32], "row_bytes": [79, 64],
                               "rows": [95, 80]}}


def ports(*, data_bits=64, addr_bits=32, max_burst=16, outstanding=4,
          target="generic"):
    return {**clock_reset(),
            "s_axis_rdcmd": Axis(CMD_BITS, last=False), "m_axis_rd": Axis(data_bits),
            "s_axis_wrcmd": Axis(CMD_BITS, last=False),
            "s_axis_wr": Axis(data_bits, last=False),
            "m_axis_wrdone": Axis(DONE_BITS), "m_axi": AxiMaster(data_bits, addr_bits),
            "error": Signal(bool(0)),
            "rd_bytes": Signal(intbv(0)[64:]), "wr_bytes": Signal(intbv(0)[64:])}


BLOCK = BlockDef(
    name="tile_dma", build=tile_dma, params=PARAMS, ports=ports, golden=golden,
    estimate=estimate, derived=derived,
    lint_waivers={},
    write_files=lambda kw, out_dir: write_sim_files(fifo_sim_files(**kw), out_dir),
    example=lambda: {"data_bits": 64, "addr_bits": 32, "max_burst": 16, "outstanding": 4})
