"""``frame_buffer``: holds whole input maps on chip and replays every window of them, for
frame-based (deep) layers.

A map comes in (raster or group-major order) and is stored whole in block RAM; once it is
complete, every K x K window of the zero-padded map goes out, beat by beat, in the order
the MAC array consumes a dot product, output pixel after output pixel, and the whole map
of windows ``repeat`` times (once per output-channel group of the MAC behind it: group
``g``'s pass, then group ``g+1``'s).  With ``buffers=2`` the next map fills the second
buffer while the windows of the first are read.

Parameters
----------
width W, height H : int, 1..4096
    Size of the input map.
channels C : int, 1..4096
k K : int, 1..7
    Window size.
stride : int, 1..4
pad P : int, 0..K-1
    Zero rows/columns added on every side.
abits A : int, 1..8
    Bits per activation (stored as they come; the MAC behind says how to read them).
simd S : int, divides C
    Channels per output beat.
lanes_in Li : int, divides C
    Channels per input beat.  Li and S must divide one another (the planner picks folds
    so that they do).
order_in : "raster" | "group-major"
    ``raster``: pixels in (y, x) order, channels ascending, Li a beat.
    ``group-major`` (Contract 6): ``groups_in`` sub-maps one after another, sub-map ``g``
    holding channels ``[g*Lg, (g+1)*Lg)`` (``Lg = C / groups_in``) in raster order, Li a
    beat (Contract 6's stream has Li = Lg; a narrower Li dividing Lg is accepted too).
groups_in : int, 1..4096
    Sub-maps of a group-major input (``C / L`` of the conv before); 1 for raster.
repeat : int, 1..4096
    Passes over the map's windows per frame (a stage's Cout / L).
buffers : int, 1 or 2
    Maps held: one (fill, then read), or two (fill one while the other is read).

Output size per axis: ``OH = (H + 2P - K) // stride + 1``, ``OW = (W + 2P - K) // stride + 1``.

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
s_axis_px_t*      input, ``tdata[Li*A-1:0]``, channel ``c0 + i`` of the beat in lane ``i``
                  (``tdata[(i+1)*A-1 : i*A]``); no ``tlast``: frames are counted from the
                  geometry (``H*W*C/Li`` beats a frame).
m_axis_win_t*     ``tdata[S*A-1:0]``: for each pass, for each output pixel (oy, ox) in
                  raster order, K*K*C/S beats in (ky, kx, c/S) order, packed like the
                  input, all lanes zero where the window covers padding; ``tlast`` on each
                  window's last beat (exactly ``line_buffer``'s ``m_axis_win`` order and
                  packing, with the passes outermost instead of copies innermost).

Storage
-------
A RAM word holds ``D = max(Li, S)`` channels of one pixel; the map is ``M = H*W*C/D``
words a buffer, pixel after pixel, a pixel's words in channel order.  The words are cut
into ``NB = D / Li`` banks of ``Li*A`` bits (one bank when Li >= S): an input beat writes
one bank, so both orders write one beat a cycle whatever the channel offset of the beat.
A read takes one word (all banks at one address); when Li > S a word holds ``Li/S`` output
beats, sent from a shift register of the word, so no wide multiplexer sits behind the RAM.
Limits: Li and S divide one another; ``buffers*M <= 262144`` words (conversion and
simulation become impractical beyond).  Block RAM: ``NB`` memories of ``Li*A`` bits by
``buffers*M`` words, ``buffers*H*W*C*A`` bits in all (``blocks.ram.bram_blocks`` each).
A bank in LUT RAM deeper than 32 words is read in two register stages and written from
registers a cycle after the beat (``blocks.ram.banked_ram``: pieces of 32 words
each with its own read register, then a piece multiplexer), so that no deep read
multiplexer or write-enable decoder follows a long path; the output register and the
stage before it move together whenever the output is free.

Latency and throughput
----------------------
* A frame is ``F = H*W*C/Li`` input beats (one a cycle while a buffer is free) and
  ``R = repeat*OH*OW*K*K*C/S`` output beats (one a cycle while ``m_axis_win.tready`` is
  high; the output never bubbles on its own, ``tvalid`` does not depend on ``tready``).
  A buffer is read once its map is complete, and filled again once its last pass is read.
* Latency: the first output beat moves ``F + stages`` cycles after the first input beat
  (no stalls): one cycle to see the map complete, ``stages`` for the RAM read (2 for a
  bank in LUT RAM deeper than 32 words, else 1: :func:`blocks.line_buffer.read_stages`).
* Cycles per frame, frames back to back, no stalls (:func:`frame_cycles`, the planner's
  figure): ``buffers=1``: ``F + R`` (fill and read in turn); ``buffers=2``:
  ``max(F, R)`` (fill of frame n+1 under the reads of frame n).  Exact, cycle for cycle,
  in simulation over the tested geometries.
"""
from __future__ import annotations

import numpy as np
from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, intbv, modbv

from blocks.line_buffer import WINDOW_PARAMS, ahead, check_window, count_chain, out_size, outside
from blocks.ram import BANK_WORDS, banked_ram, read_stages
from blocks.ram import add_blocks, address_bits
from blocks.ram import estimate as ram_estimate
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset, pack
from quant.reference import im2col

MAX_DEPTH = 1 << 18   # RAM words (all buffers); beyond this conversion becomes impractical
ORDERS = ("raster", "group-major")

PARAMS = WINDOW_PARAMS + (
    Param("simd", int, default=1, lo=1, hi=4096, help="channels per output beat S, divides C"),
    Param("lanes_in", int, default=1, lo=1, hi=4096,
          help="channels per input beat, divides C; it and simd divide one another"),
    Param("order_in", str, default="raster", choices=ORDERS, help="input map order"),
    Param("groups_in", int, default=1, lo=1, hi=4096,
          help="sub-maps of a group-major input (1 for raster)"),
    Param("repeat", int, default=1, lo=1, hi=4096,
          help="passes over the map's windows per frame (a stage's Cout/L)"),
    Param("buffers", int, default=1, lo=1, hi=2, help="maps held: 1, or 2 to fill while reading"),
)


def cross_check(p: dict) -> None:
    """Combinations of individually valid parameters that cannot work."""
    c, s, li, gi = p["channels"], p["simd"], p["lanes_in"], p["groups_in"]
    if c % s:
        raise ValueError(f"simd: must divide channels ({c}), got {s}")
    if p["order_in"] == "raster" and gi != 1:
        raise ValueError(f"groups_in: must be 1 for a raster input, got {gi}")
    if c % gi:
        raise ValueError(f"groups_in: must divide channels ({c}), got {gi}")
    if (c // gi) % li:
        raise ValueError(f"lanes_in: must divide the channels of a sub-map "
                         f"(channels/groups_in = {c // gi}), got {li}")
    if li % s and s % li:
        raise ValueError(f"lanes_in: must divide simd ({s}) or be a multiple of it, got {li}")
    check_window(p)
    depth = p["buffers"] * p["height"] * p["width"] * c // max(s, li)
    if depth > MAX_DEPTH:
        raise ValueError(f"channels: buffers*height*width*channels/max(simd, lanes_in) = "
                         f"{depth} words exceeds {MAX_DEPTH}; use wider beats or a smaller map")


class Geometry:
    """The sizes every part of one frame buffer derives from its parameters."""

    def __init__(self, *, width, height, channels, k, stride, pad, abits, simd, lanes_in,
                 order_in, groups_in, repeat, buffers):
        self.W, self.H, self.C, self.K, self.ST, self.P = width, height, channels, k, stride, pad
        self.A, self.S, self.LI, self.REP, self.BUF = abits, simd, lanes_in, repeat, buffers
        self.GI = groups_in
        self.D = max(simd, lanes_in)               # channels a RAM word
        self.NB = self.D // lanes_in               # banks
        self.NSEL = self.D // simd                 # output beats a word
        self.CD = channels // self.D               # words a pixel
        self.CS = channels // simd                 # output beats a pixel
        self.CPS = channels // groups_in // lanes_in  # input beats a pixel of a sub-map
        self.HW = height * width
        self.M = self.HW * self.CD                 # words a buffer
        self.depth = buffers * self.M
        self.n = address_bits(self.depth)
        self.stages = read_stages(lanes_in * abits, self.depth)   # of the RAM's read
        self.OW, self.OH = out_size(width, k, stride, pad), out_size(height, k, stride, pad)
        self.XS = width + 2 * pad + 1
        self.YS = height + 2 * pad + 1
        mod = 1 << self.n
        # Reader addresses are kept modulo 2**n ("virtual" addresses of padding pixels
        # included): only sums of constants, right whenever the pixel is real.
        self.first_row = [(b * self.M - pad * width * self.CD) % mod for b in range(buffers)]
        self.first_win = [(r - pad * self.CD) % mod for r in self.first_row]
        self.step_right = stride * self.CD % mod
        self.step_down = stride * width * self.CD % mod
        self.step_down_win = (stride * width - pad) * self.CD % mod
        self.row_words = width * self.CD % mod


def _count(limit: int, init: int = 0):
    """A register for 0..limit-1, at least three bits (constant steps in branches a small
    geometry never takes stay lint-clean)."""
    return Signal(intbv(init, min=0, max=max(8, limit)))


def _addr(geo, init: int = 0):
    return Signal(modbv(init)[geo.n:])


@block
def bank_enable(we, accept, bank, *, index):
    """``we``: the input beat goes to bank ``index``."""
    @always_comb
    def enable():
        we.next = accept and bank == index
    return enable


@block
def next_sub_map(aclk, sub_wo, sub_b, wbuf, wo_next, addr_next, b_next, last_next, *, geo):
    """Where the next sub-map starts, from the current one's first word ``sub_wo`` and bank
    ``sub_b``: its first word within a pixel (``wo_next``) and in the buffer being
    written (``addr_next``), its bank and whether that is the last (registers when a
    sub-map takes two beats or more)."""
    NB, CPS, BUF = geo.NB, geo.CPS, geo.BUF
    M = geo.M if BUF == 2 else 0                 # as in fb_writer
    QW, RB = divmod(CPS, NB)
    wo_calc, addr_calc, b_calc = _addr(geo), _addr(geo), _count(NB)
    last_calc = Signal(bool(0))
    parts = [ahead(aclk, q, d, registered=geo.HW * CPS > 1)
             for q, d in ((wo_next, wo_calc), (addr_next, addr_calc), (b_next, b_calc),
                          (last_next, last_calc))]
    # constants as plain integers (MyHDL writes a constant expression as a signed one)
    WRAP, NBR, LASTB = RB > 0, (NB - RB if RB > 0 else 1), NB - 1 - RB
    # ... reduced modulo the addresses' range, as the n-bit registers hold them
    mod = 1 << geo.n
    QW0, QW1, QWM, QW1M = QW % mod, (QW + 1) % mod, (QW + M) % mod, (QW + 1 + M) % mod

    @always_comb
    def calc():
        if WRAP and sub_b >= NBR:                # the bank wraps once more
            b_calc.next = sub_b - NBR
            wo_calc.next = sub_wo + QW1
        else:
            b_calc.next = sub_b + RB
            wo_calc.next = sub_wo + QW0
        last_calc.next = sub_b == LASTB
        if BUF == 2 and wbuf:
            if WRAP and sub_b >= NBR:
                addr_calc.next = sub_wo + QW1M
            else:
                addr_calc.next = sub_wo + QWM
        else:
            if WRAP and sub_b >= NBR:
                addr_calc.next = sub_wo + QW1
            else:
                addr_calc.next = sub_wo + QW0
    return parts, calc


@block
def fb_writer(aclk, aresetn, s_axis_px, accept, waddr, bank, wbuf, filled, free, *, geo):
    """Stores input beats in the buffer ``wbuf`` while it is ``free`` (a register,
    :func:`fb_control`, that is ``tready``); ``filled`` pulses with a frame's last beat.
    ``waddr`` (the beat's word) and ``bank`` are registers loaded with the next beat's
    place as a beat moves: the RAM's write address comes straight from a flip-flop.

    A sub-map's beats take the same words and banks of every pixel, from ``(sub_wo,
    sub_b)`` on; the next sub-map starts ``CPS`` beats further on.  The first word of
    the next pixel and of the next sub-map are computed from registers that hold still
    while a pixel (a sub-map) is written, and are registers themselves when that takes
    two beats or more (timing: a multiplexer of flip-flops in front of the address)."""
    NB, CPS, HW, GI, CD, BUF = geo.NB, geo.CPS, geo.HW, geo.GI, geo.CD, geo.BUF
    # Buffer 1's first word as the n-bit address registers hold it (one buffer: never
    # used, 0 keeps the constant inside the addresses' width).
    M = geo.M if BUF == 2 else 0
    ws, px, sg = _count(CPS), _count(HW), _count(GI)
    # Each counter at its last value (and the bank at NB - 1) as a flag updated with it
    # (timing: the frame's end and the next address are picked one gate after flip-flops)
    ws_last, px_last = Signal(bool(CPS == 1)), Signal(bool(HW == 1))
    sg_last, bank_last = Signal(bool(GI == 1)), Signal(bool(NB == 1))
    NB1, NB2, NB_1 = NB == 1, max(NB - 2, 0), NB - 1
    CD_STEP = CD % (1 << geo.n)                 # as the n-bit address registers hold it
    sub_wo, sub_b = _addr(geo), _count(NB)      # the sub-map's first word and bank
    pix = _addr(geo)                             # the pixel's first word of the sub-map
    pix_calc, pix_next = _addr(geo), _addr(geo)
    # the next sub-map's first word (within a pixel, and in the buffer) and bank
    wo_next, addr_next, b_next = _addr(geo), _addr(geo), _count(NB)
    last_next = Signal(bool(0))
    parts = [ahead(aclk, pix_next, pix_calc, registered=CPS > 1),
             next_sub_map(aclk, sub_wo, sub_b, wbuf, wo_next, addr_next, b_next, last_next,
                          geo=geo),
             count_chain(aclk, aresetn, accept, [(ws, ws_last, CPS), (px, px_last, HW),
                                                 (sg, sg_last, GI)])]

    @always_comb
    def handshake():
        s_axis_px.tready.next = free
        accept.next = free and s_axis_px.tvalid
        filled.next = free and s_axis_px.tvalid and ws_last and px_last and sg_last
        pix_calc.next = pix + CD_STEP

    @always_seq(aclk.posedge, reset=aresetn)
    def write():
        if accept:
            if not ws_last:                      # the pixel's next channels
                if bank_last:
                    bank.next = 0
                    bank_last.next = NB1
                    waddr.next = waddr + 1
                else:
                    bank.next = bank + 1
                    bank_last.next = bank == NB2
            elif not px_last:                    # next pixel of the sub-map
                pix.next = pix_next
                waddr.next = pix_next
                bank.next = sub_b
                bank_last.next = sub_b == NB_1
            elif not sg_last:                    # next sub-map, from the first pixel
                sub_wo.next = wo_next
                sub_b.next = b_next
                pix.next = addr_next
                waddr.next = addr_next
                bank.next = b_next
                bank_last.next = last_next
            else:                                # frame complete: the other buffer
                sub_wo.next = 0
                sub_b.next = 0
                bank.next = 0
                bank_last.next = NB1
                if BUF == 2 and not wbuf:
                    pix.next = M
                    waddr.next = M
                else:
                    pix.next = 0
                    waddr.next = 0
    return parts, handshake, write


@block
def pad_mask(mask, value, *, offset, lo, hi):
    """``mask[j]``: the padded coordinate ``value + offset + j`` lies in the padding
    (outside ``[lo, hi)``), for each of ``len(mask)`` columns or rows of a window."""
    flags = [Signal(bool(0)) for _ in range(len(mask))]
    checks = [outside(value, flags[j], offset=offset + j, lo=lo, hi=hi)
              for j in range(len(mask))]
    packed_flags = ConcatSignal(*reversed(flags)) if len(flags) > 1 else flags[0]

    @always_comb
    def gather():
        mask.next = packed_flags
    return checks, gather


@block
def window_masks(aclk, aresetn, move, ox_last, oy_last, ix0p, iy0p, xmask_here, xmask_start,
                 ymask_start, *, registered, geo):
    """The padding masks of where the walk goes next (``xmask_start``, ``ymask_start``;
    a cycle ahead when ``registered``) and the current window's columns
    (``xmask_here``), loaded as a window ends (``move``)."""
    ST, K, W, H, P = geo.ST, geo.K, geo.W, geo.H, geo.P
    # masks of the window to the right and of the next row's first window's rows
    # (the first column's and the top row's are constants)
    x0_mask = sum(1 << j for j in range(K) if not P <= j < W + P)
    y0_mask = sum(1 << j for j in range(K) if not P <= j < H + P)
    x_right, y_down = Signal(intbv(0)[K:]), Signal(intbv(0)[K:])
    ymask_here = Signal(intbv(y0_mask)[K:])
    xs_calc, ys_calc = Signal(intbv(0)[K:]), Signal(intbv(0)[K:])
    parts = [pad_mask(x_right, ix0p, offset=ST, lo=P, hi=W + P),
             pad_mask(y_down, iy0p, offset=ST, lo=P, hi=H + P),
             ahead(aclk, xmask_start, xs_calc, registered=registered),
             ahead(aclk, ymask_start, ys_calc, registered=registered)]

    @always_comb
    def start_masks():
        if not ox_last:
            xs_calc.next = x_right
            ys_calc.next = ymask_here
        elif not oy_last:
            xs_calc.next = x0_mask
            ys_calc.next = y_down
        else:
            xs_calc.next = x0_mask
            ys_calc.next = y0_mask

    @always_seq(aclk.posedge, reset=aresetn)
    def masks():
        if move:
            xmask_here.next = xmask_start
            ymask_here.next = ymask_start
    return parts, start_masks, masks


@block
def fb_position(aclk, aresetn, issue, window_end, rbuf, start_addr, xmask_here, xmask_start,
                ymask_start, read_done, *, geo):
    """Which window is read (top-left ``ix0p``, ``iy0p`` in padded coordinates), which
    pass, which buffer; ``start_*``: where the walk goes after a window's last beat, and
    its padding masks (bit j: the window's column or row j is padding; ``xmask_here``
    the current window's columns).  ``read_done`` pulses with the last beat of a
    buffer's last pass.  The counters' last values are flags, and the start a register
    loaded a cycle ahead when a window is two or more beats (timing: nothing but a
    multiplexer of flip-flops in front of the walk's address)."""
    ST, OW, OH, REP, BUF, K, P = geo.ST, geo.OW, geo.OH, geo.REP, geo.BUF, geo.K, geo.P
    FR0, FW0 = geo.first_row[0], geo.first_win[0]
    FR1, FW1 = geo.first_row[-1], geo.first_win[-1]
    ox, oy, rep = _count(OW), _count(OH), _count(REP)
    ox_last, oy_last = Signal(bool(OW == 1)), Signal(bool(OH == 1))
    rep_last = Signal(bool(REP == 1))
    ix0p, iy0p = _count(geo.XS), _count(geo.YS)
    row_addr, win_addr = _addr(geo, FR0), _addr(geo, FW0)
    win_right, row_down, row_down_win = _addr(geo), _addr(geo), _addr(geo)
    this_row, this_win, next_row_a, next_win_a = _addr(geo), _addr(geo), _addr(geo), _addr(geo)
    move = Signal(bool(0))
    addr_calc, x_calc, y_calc = _addr(geo), _count(geo.XS), _count(geo.YS)
    start_x, start_y = _count(geo.XS), _count(geo.YS)
    parts = []
    registered = K * K * geo.CS > 1
    if P > 0:
        parts.append(window_masks(aclk, aresetn, move, ox_last, oy_last, ix0p, iy0p,
                                  xmask_here, xmask_start, ymask_start,
                                  registered=registered, geo=geo))

    @always_comb
    def adders():
        win_right.next = win_addr + geo.step_right
        row_down.next = row_addr + geo.step_down
        row_down_win.next = row_addr + geo.step_down_win
        # the first window of this buffer (next pass) and of the other (next frame)
        if BUF == 2 and rbuf:
            this_row.next = FR1
            this_win.next = FW1
            next_row_a.next = FR0
            next_win_a.next = FW0
        else:
            this_row.next = FR0
            this_win.next = FW0
            next_row_a.next = FR1
            next_win_a.next = FW1

    @always_comb
    def moves():
        move.next = issue and window_end
        read_done.next = issue and window_end and ox_last and oy_last and rep_last
        if not ox_last:
            addr_calc.next = win_right
            x_calc.next = ix0p + ST
            y_calc.next = iy0p
        elif not oy_last:
            addr_calc.next = row_down_win
            x_calc.next = 0
            y_calc.next = iy0p + ST
        elif not rep_last:
            addr_calc.next = this_win
            x_calc.next = 0
            y_calc.next = 0
        else:
            addr_calc.next = next_win_a
            x_calc.next = 0
            y_calc.next = 0

    parts += [ahead(aclk, start_addr, addr_calc, registered=registered),
              ahead(aclk, start_x, x_calc, registered=registered),
              ahead(aclk, start_y, y_calc, registered=registered)]

    parts.append(count_chain(aclk, aresetn, move, [(ox, ox_last, OW), (oy, oy_last, OH),
                                                    (rep, rep_last, REP)]))

    @always_seq(aclk.posedge, reset=aresetn)
    def windows():
        if move:
            win_addr.next = start_addr
            ix0p.next = start_x
            iy0p.next = start_y
            if ox_last:
                if not oy_last:
                    row_addr.next = row_down
                elif not rep_last:
                    row_addr.next = this_row
                else:
                    row_addr.next = next_row_a
                    if BUF == 2:
                        rbuf.next = not rbuf
    return parts, adders, moves, windows


@block
def fb_walk(aclk, aresetn, issue, start_addr, xmask_here, xmask_start, ymask_start, rd_addr,
            sel, sel_first, window_end, pad_now, *, geo):
    """Walks the RAM addresses of a window's beats in (ky, kx, c/S) order.

    ``rd_addr``: the word of the beat ``issue`` reads next, ``sel`` which of the word's
    ``NSEL`` beats it is (``sel_first``: the first), ``pad_now`` whether it is padding
    (bit 0 of masks of the window row's columns and the window's rows, shifted as the
    walk moves); ``window_end``: the beat is the window's last.  A pixel's words are
    consecutive, so the walk steps by one word within a window row and jumps a map row
    (``W*C/D`` words) between window rows.  Counters' last values are flags."""
    K, CS, NSEL, P = geo.K, geo.CS, geo.NSEL, geo.P
    cs, kx, ky = _count(CS), _count(K), _count(K)
    cs_last, kx_last = Signal(bool(CS == 1)), Signal(bool(K == 1))
    ky_last, sel_last = Signal(bool(K == 1)), Signal(bool(NSEL == 1))
    CS1, K1, NSEL1 = CS == 1, K == 1, NSEL == 1
    CS2, K2, NSEL2 = max(CS - 2, 0), max(K - 2, 0), max(NSEL - 2, 0)
    win_row = _addr(geo, geo.first_win[0])
    rd_step, win_down, down_calc = _addr(geo), _addr(geo), _addr(geo)
    # win_row moves K*CS beats apart or more: the next row's address can be registered
    # a cycle ahead when that is two or more (timing).
    parts = [ahead(aclk, win_down, down_calc, registered=K * CS > 1)]

    @always_comb
    def adders():
        rd_step.next = rd_addr + 1
        down_calc.next = win_row + geo.row_words
        window_end.next = cs_last and kx_last and ky_last

    @always_seq(aclk.posedge, reset=aresetn)
    def beats():
        if issue:
            if sel_last:
                sel.next = 0
                sel_first.next = 1
                sel_last.next = NSEL1
            else:
                sel.next = sel + 1
                sel_first.next = 0
                sel_last.next = sel == NSEL2
            if not cs_last:
                cs.next = cs + 1
                cs_last.next = cs == CS2
                if sel_last:
                    rd_addr.next = rd_step
            else:
                cs.next = 0
                cs_last.next = CS1
                if not kx_last:                      # next pixel of the window row
                    kx.next = kx + 1
                    kx_last.next = kx == K2
                    rd_addr.next = rd_step
                elif not ky_last:                    # next row of the window
                    kx.next = 0
                    kx_last.next = K1
                    ky.next = ky + 1
                    ky_last.next = ky == K2
                    win_row.next = win_down
                    rd_addr.next = win_down
                else:                                # next window
                    kx.next = 0
                    ky.next = 0
                    kx_last.next = K1
                    ky_last.next = K1
                    win_row.next = start_addr
                    rd_addr.next = start_addr
    parts += [adders, beats]
    if P == 0:
        return parts

    y0_mask = sum(1 << j for j in range(K) if not P <= j < geo.H + P)
    x0_mask = sum(1 << j for j in range(K) if not P <= j < geo.W + P)
    xm, ym = Signal(intbv(x0_mask)[K:]), Signal(intbv(y0_mask)[K:])

    @always_comb
    def padding():
        pad_now.next = xm[0] or ym[0]

    @always_seq(aclk.posedge, reset=aresetn)
    def masks():
        if issue and cs_last:
            if not kx_last:
                xm.next = xm >> 1
            elif not ky_last:
                xm.next = xmask_here
                ym.next = ym >> 1
            else:
                xm.next = xmask_start
                ym.next = ymask_start
    return parts, padding, masks


@block
def fb_output(aclk, aresetn, m_axis_win, out_valid, advance, issue, window_end, sel_first,
              word, *, geo, staged):
    """The output register: a word read from the RAM goes out ``S*A`` bits a beat (the
    low bits first; when a word holds several beats, the rest from a shift register).
    ``staged``: the RAM's word comes two register stages after the read
    (``banked_ram``), so the beat's flags wait a stage in registers too; the whole
    pipeline moves when it ``advance``s."""
    SA, NSEL = geo.S * geo.A, geo.NSEL
    out_last, from_ram = Signal(bool(0)), Signal(bool(1))
    rest = Signal(intbv(0)[len(word):])
    # The beat entering the output register: valid, last of a window, first of a word.
    valid1, last1, first1 = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))

    @always_seq(aclk.posedge, reset=aresetn)
    def stage_one():
        if advance:
            valid1.next = issue
            last1.next = window_end

    @always_comb
    def at_once():
        valid1.next = issue
        last1.next = window_end

    @always_seq(aclk.posedge, reset=aresetn)
    def first_one():
        if advance:
            first1.next = sel_first

    @always_comb
    def first_at_once():
        first1.next = sel_first

    entering = stage_one if staged else at_once

    @always_seq(aclk.posedge, reset=aresetn)
    def out_register():
        if advance:
            out_valid.next = valid1
            out_last.next = last1

    @always_comb
    def outputs():
        m_axis_win.tvalid.next = out_valid
        m_axis_win.tlast.next = out_last

    if NSEL == 1:
        @always_comb
        def data():
            m_axis_win.tdata.next = word
        return entering, out_register, outputs, data
    first = first_one if staged else first_at_once

    @always_seq(aclk.posedge, reset=aresetn)
    def shift():
        if advance and valid1:
            from_ram.next = first1
            if from_ram:
                rest.next = word >> SA
            else:
                rest.next = rest >> SA

    @always_comb
    def data():
        if from_ram:
            m_axis_win.tdata.next = word[SA:]
        else:
            m_axis_win.tdata.next = rest[SA:]
    return entering, first, out_register, outputs, shift, data


@block
def frame_buffer(aclk, aresetn, s_axis_px, m_axis_win, *, width, height, channels, k,
                 stride=1, pad=0, abits, simd=1, lanes_in=1, order_in="raster", groups_in=1,
                 repeat=1, buffers=1):
    """Whole-map window generator; see the module docstring."""
    params = BLOCK.validate(width=width, height=height, channels=channels, k=k, stride=stride,
                            pad=pad, abits=abits, simd=simd, lanes_in=lanes_in,
                            order_in=order_in, groups_in=groups_in, repeat=repeat,
                            buffers=buffers)
    geo = Geometry(**params)
    W, H, P, NB = geo.W, geo.H, geo.P, geo.NB
    check_width("s_axis_px.tdata", s_axis_px.tdata, lanes_in * abits)
    check_width("m_axis_win.tdata", m_axis_win.tdata, simd * abits)

    accept, filled, read_done, free, issue = (Signal(bool(0)) for _ in range(5))
    wbuf, rbuf, advance = (Signal(bool(0)) for _ in range(3))
    waddr, rd_addr, start_addr = _addr(geo), _addr(geo, geo.first_win[0]), _addr(geo)
    bank = _count(NB)
    sel, sel_first = _count(geo.NSEL), Signal(bool(1))
    window_end, read_word, out_valid = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    if P > 0:
        # the padding masks of the current window's columns, and of the next window
        first_cols = sum(1 << j for j in range(geo.K) if not P <= j < W + P)
        pad_now = Signal(bool(0))
        xmask_here = Signal(intbv(first_cols)[geo.K:])
        xmask_start, ymask_start = Signal(intbv(0)[geo.K:]), Signal(intbv(0)[geo.K:])
    else:
        pad_now = xmask_here = xmask_start = ymask_start = None

    writer = fb_writer(aclk, aresetn, s_axis_px, accept, waddr, bank, wbuf, filled, free,
                       geo=geo)
    position = fb_position(aclk, aresetn, issue, window_end, rbuf, start_addr, xmask_here,
                           xmask_start, ymask_start, read_done, geo=geo)
    walk = fb_walk(aclk, aresetn, issue, start_addr, xmask_here, xmask_start, ymask_start,
                   rd_addr, sel, sel_first, window_end, pad_now, geo=geo)
    outs = [Signal(intbv(0)[lanes_in * abits:]) for _ in range(NB)]
    enables = [Signal(bool(0)) for _ in range(NB)] if NB > 1 else [accept]
    gates = [bank_enable(enables[i], accept, bank, index=i) for i in range(NB)] if NB > 1 else []
    # A padding pixel reads nothing but clears the read register (block RAM's synchronous
    # output reset); without padding there is no such pixel.  A deep map in LUT RAM is
    # read in two register stages (timing; ``banked_ram``).
    banks = [banked_ram(aclk, write=enables[i], waddr=waddr, wdata=s_axis_px.tdata,
                        read=read_word, raddr=rd_addr, clear=pad_now, advance=advance,
                        rdata=outs[i], depth=geo.depth, guard=True, write_stage=True)
             for i in range(NB)]
    word = ConcatSignal(*reversed(outs)) if NB > 1 else outs[0]
    output = fb_output(aclk, aresetn, m_axis_win, out_valid, advance, issue, window_end,
                       sel_first, word, geo=geo, staged=geo.stages == 2)
    control = fb_control(aclk, aresetn, advance, sel_first, filled, read_done, wbuf, rbuf,
                         free, issue, read_word, geo=geo)

    @always_comb
    def pipeline():
        advance.next = not out_valid or m_axis_win.tready
    return writer, position, walk, gates, banks, output, control, pipeline


@block
def fb_control(aclk, aresetn, advance, sel_first, filled, read_done, wbuf, rbuf, free, issue,
               read_word, *, geo):
    """Which buffer is full: from its frame's last input beat to its last pass's last
    beat.  The writer fills ``wbuf`` while it is not full; the reader reads ``rbuf``
    while it is (and the output pipeline ``advance``s).  ``free`` (the writer's buffer
    is not full) and ``readable`` (the reader's is) are registers loaded with what the
    flags are about to be (timing: ``tready`` and the read enables one gate after
    flip-flops)."""
    full0, full1, readable = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))

    @always_comb
    def reads():
        issue.next = readable and advance
        read_word.next = readable and advance and sel_first

    if geo.BUF == 1:
        @always_seq(aclk.posedge, reset=aresetn)
        def flags():
            wbuf.next = 0                # one buffer: always buffer 0 (driven, not floating)
            if filled:
                full0.next = 1
                readable.next = 1
            elif read_done:
                full0.next = 0
                readable.next = 0
            free.next = not filled and (read_done or not full0)
        return reads, flags

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        if filled and not wbuf:
            full0.next = 1
        elif read_done and not rbuf:
            full0.next = 0
        if filled and wbuf:
            full1.next = 1
        elif read_done and rbuf:
            full1.next = 0
        if filled:
            wbuf.next = not wbuf
        # the writer's buffer after this edge: the other one after a frame's last beat
        if filled == wbuf:
            free.next = not full0 or (read_done and not rbuf)
        else:
            free.next = not full1 or (read_done and rbuf)
        # the reader's buffer after this edge: the other one after its last pass
        if read_done == rbuf:
            readable.next = full0 or (filled and not wbuf)
        else:
            readable.next = full1 or (filled and wbuf)

    return reads, flags


# ---------------------------------------------------------------------------- models

def pixel_beats(frames, *, lanes_in, abits, order_in="raster", groups_in=1, **_):
    """Input beats for ``frames`` (array N x H x W x C) in the given order:
    ``[(tdata, False), ...]``."""
    frames = np.asarray(frames)
    n, h, w, c = frames.shape
    if order_in == "raster":
        groups_in = 1
    # (N, G, H, W, C/G): sub-maps one after another, each in raster order
    sub = frames.reshape(n, h, w, groups_in, c // groups_in).transpose(0, 3, 1, 2, 4)
    return [(pack(lanes, abits), False) for lanes in sub.reshape(-1, lanes_in)]


def golden(frames, *, width, height, channels, k, stride=1, pad=0, abits, simd=1,
           lanes_in=1, order_in="raster", groups_in=1, repeat=1, buffers=1):
    """Output beats ``[(tdata, tlast), ...]`` for ``frames`` (N x H x W x C integers):
    per frame, ``repeat`` passes of every window (``quant.reference.im2col``), each
    window's (ky, kx, c/S) beats with ``tlast`` on its last.  The input order, lanes and
    buffers change only the timing."""
    frames = np.asarray(frames, dtype=np.int64)
    assert frames.shape[1:] == (height, width, channels), frames.shape
    cols = im2col(frames, k, stride, pad)
    n = cols.shape[0]
    per = k * k * channels // simd
    windows = cols.reshape(n, -1, per, simd)
    beats = []
    for frame in windows:
        one = [(pack(v, abits), i == per - 1) for window in frame for i, v in enumerate(window)]
        beats += one * repeat
    return beats


def beats_per_frame(*, width, height, channels, k, stride=1, pad=0, simd=1, lanes_in=1,
                    repeat=1, **_):
    """``(F, R)``: input beats and output beats of one frame."""
    fill = height * width * channels // lanes_in
    read = (repeat * out_size(height, k, stride, pad) * out_size(width, k, stride, pad)
            * k * k * channels // simd)
    return fill, read


def frame_cycles(*, buffers=1, **params):
    """Cycles per frame in steady state, frames back to back, no stalls (module
    docstring): ``F + R`` with one buffer, ``max(F, R)`` with two."""
    fill, read = beats_per_frame(**params)
    return fill + read if buffers == 1 else max(fill, read)


def estimate(*, width, height, channels, k, stride=1, pad=0, abits, simd=1, lanes_in=1,
             order_in="raster", groups_in=1, repeat=1, buffers=1):
    """Cost and timing from the parameters (the project's estimate convention).

    ``bram_bits``: the buffers exactly (``buffers*H*W*C*A``, the converted design's memory
    declarations); ``bram``: the banks' block RAM units (``blocks.ram``).  ``ff``: the
    design's register bits (counters and their last-value flags, addresses and the
    registered next ones, coordinates, padding masks, output and shift register) counted
    from its widths, and ``lut`` one LUT a bit of every adder and comparator on them, each
    scaled to Yosys 0.70 ``synth_xilinx`` counts (LUT x1.12, FF x0.9), plus
    ``blocks.ram.estimate``'s cost of banks in LUT RAM; a map read in two stages
    (``banked_ram``) adds a read register a piece of 32 words, its write registers and
    a piece multiplexer.  ``latency``: ``F + stages``.  ``cycles`` per ``frame``:
    :func:`frame_cycles`; ``fill`` and ``read`` are its ``F`` and ``R``.
    """
    p = dict(width=width, height=height, channels=channels, k=k, stride=stride, pad=pad,
             abits=abits, simd=simd, lanes_in=lanes_in, order_in=order_in,
             groups_in=groups_in, repeat=repeat, buffers=buffers)
    geo = Geometry(**p)
    fill, read = beats_per_frame(**p)
    bits = lambda limit: max(3, (limit - 1).bit_length())
    coord = 2 * bits(geo.XS) + 2 * bits(geo.YS)          # ix0p, start_x and y's
    masks = 6 * k if pad > 0 else 0
    counters = (bits(geo.CPS) + bits(geo.HW) + bits(geo.GI) + 3 * bits(geo.NB)
                + bits(geo.CS) + 2 * bits(geo.K) + bits(geo.NSEL) + bits(geo.OW)
                + bits(geo.OH) + bits(geo.REP) + 14)   # and their flags
    addresses = 11 * geo.n
    shift = simd * abits * (geo.NSEL - 1) if geo.NSEL > 1 else 0
    ff = counters + coord + masks + addresses + shift + 2 * buffers + 6
    lut = 2 * counters + coord + masks + 8 * geo.n + shift + 20
    bank = ram_estimate(width=lanes_in * abits, depth=geo.depth)
    if geo.stages == 2:
        pieces = -(-geo.depth // BANK_WORDS)
        word = lanes_in * abits
        ff += geo.NB * (pieces * word + 2) + geo.n + word + geo.NB + 3
        lut += geo.NB * (pieces - 1) * word
    return {"lut": round(1.12 * lut) + geo.NB * bank["lut"],
            "ff": round(0.9 * ff) + geo.NB * bank["ff"],
            "dsp": 0,
            "bram_bits": geo.NB * bank["bram_bits"],
            "bram": add_blocks(*[bank["bram"]] * geo.NB),
            "latency": fill + geo.stages,
            "cycles": frame_cycles(**p),
            "per": "frame",
            "fill": fill,
            "read": read}


def ports(*, width, height, channels, k, stride=1, pad=0, abits, simd=1, lanes_in=1,
          order_in="raster", groups_in=1, repeat=1, buffers=1):
    return {**clock_reset(), "s_axis_px": Axis(lanes_in * abits, last=False),
            "m_axis_win": Axis(simd * abits)}


def derived(*, width, height, channels, k, stride=1, pad=0, abits, simd=1, lanes_in=1,
            order_in="raster", groups_in=1, repeat=1, buffers=1):
    geo = Geometry(width=width, height=height, channels=channels, k=k, stride=stride,
                   pad=pad, abits=abits, simd=simd, lanes_in=lanes_in, order_in=order_in,
                   groups_in=groups_in, repeat=repeat, buffers=buffers)
    return {"out_width": geo.OW, "out_height": geo.OH,
            "beats_per_window": k * k * geo.CS,
            "banks": geo.NB, "bank_width": lanes_in * abits, "bank_depth": geo.depth,
            "words_per_map": geo.M}


def example():
    return {"width": 7, "height": 5, "channels": 8, "k": 3, "stride": 1, "pad": 1,
            "abits": 4, "simd": 4, "lanes_in": 2, "order_in": "group-major",
            "groups_in": 2, "repeat": 2, "buffers": 2}


BLOCK = BlockDef(name="frame_buffer", build=frame_buffer, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 example=example)
