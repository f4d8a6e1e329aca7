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

Latency and throughput
----------------------
* A frame is ``F = H*W*C/Li`` input beats (one a cycle while a buffer is free) and
  ``R = repeat*OH*OW*K*K*C/S`` output beats (one a cycle while ``m_axis_win.tready`` is
  high; the output never bubbles on its own, ``tvalid`` does not depend on ``tready``).
  A buffer is read once its map is complete, and filled again once its last pass is read.
* Latency: the first output beat moves ``F + 1`` cycles after the first input beat (no
  stalls): one cycle to see the map complete, one for the RAM read.
* Cycles per frame, frames back to back, no stalls (:func:`frame_cycles`, the planner's
  figure): ``buffers=1``: ``F + R`` (fill and read in turn); ``buffers=2``:
  ``max(F, R)`` (fill of frame n+1 under the reads of frame n).  Exact, cycle for cycle,
  in simulation over the tested geometries.
"""
from __future__ import annotations

import numpy as np
from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, intbv, modbv

from blocks.ram import add_blocks, address_bits, ram
from blocks.ram import estimate as ram_estimate
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset, pack
from quant.reference import im2col

MAX_DEPTH = 1 << 18   # RAM words (all buffers); beyond this conversion becomes impractical
ORDERS = ("raster", "group-major")

PARAMS = (
    Param("width", int, lo=1, hi=4096, help="input width W in pixels"),
    Param("height", int, lo=1, hi=4096, help="input height H in pixels"),
    Param("channels", int, lo=1, hi=4096, help="channels per pixel C"),
    Param("k", int, lo=1, hi=7, help="window size K"),
    Param("stride", int, default=1, lo=1, hi=4, help="window stride"),
    Param("pad", int, default=0, lo=0, hi=6, help="zero padding P on each side, below K"),
    Param("abits", int, lo=1, hi=8, help="activation bits A"),
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
    if p["pad"] >= p["k"]:
        raise ValueError(f"pad: must be less than k ({p['k']}), got {p['pad']}")
    for axis in ("height", "width"):
        if p["k"] > p[axis] + 2 * p["pad"]:
            raise ValueError(f"k: must be at most {axis} + 2*pad = "
                             f"{p[axis] + 2 * p['pad']}, got {p['k']}")
    depth = p["buffers"] * p["height"] * p["width"] * c // max(s, li)
    if depth > MAX_DEPTH:
        raise ValueError(f"channels: buffers*height*width*channels/max(simd, lanes_in) = "
                         f"{depth} words exceeds {MAX_DEPTH}; use wider beats or a smaller map")


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


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
def fb_writer(aclk, aresetn, s_axis_px, accept, waddr, bank, wbuf, filled, free, *, geo):
    """Stores input beats in the buffer ``wbuf`` while it is ``free``; ``filled`` pulses
    with a frame's last beat.  ``waddr`` (the beat's word) and ``bank`` are registers
    loaded with the next beat's place as a beat moves: the RAM's write address comes
    straight from a flip-flop."""
    NB, CPS, HW, GI, CD, BUF = geo.NB, geo.CPS, geo.HW, geo.GI, geo.CD, geo.BUF
    # Buffer 1's first word, and that plus one, as the n-bit address registers hold them
    # (one buffer: never used, 0 keeps the constants inside the addresses' width).
    M = geo.M if BUF == 2 else 0
    M1 = (M + 1) % (1 << geo.n)
    running = Signal(bool(0))
    ws, px, sg = _count(CPS), _count(HW), _count(GI)
    wo, sub_wo = _addr(geo), _addr(geo)          # the beat's word within its pixel
    sub_b = _count(NB)
    pix = _addr(geo)                             # the pixel's first word of the sub-map
    pix_next = _addr(geo)

    @always_comb
    def handshake():
        s_axis_px.tready.next = running and free
        accept.next = running and free and s_axis_px.tvalid
        filled.next = (running and free and s_axis_px.tvalid and ws == CPS - 1
                       and px == HW - 1 and sg == GI - 1)
        pix_next.next = pix + CD

    @always_seq(aclk.posedge, reset=aresetn)
    def write():
        running.next = 1
        if accept:
            if ws != CPS - 1:
                ws.next = ws + 1
            else:
                ws.next = 0
            if ws != CPS - 1 or (px == HW - 1 and sg != GI - 1):
                # the next beat continues in channel order (a pixel's next words, or the
                # next sub-map's first channels)
                if bank == NB - 1:
                    bank.next = 0
                    wo.next = wo + 1
                else:
                    bank.next = bank + 1
            if ws != CPS - 1:
                if bank == NB - 1:
                    waddr.next = waddr + 1
            elif px != HW - 1:                   # next pixel of the sub-map
                px.next = px + 1
                pix.next = pix_next
                waddr.next = pix_next
                bank.next = sub_b
                wo.next = sub_wo
            elif sg != GI - 1:                   # next sub-map, from the first pixel
                px.next = 0
                sg.next = sg + 1
                if bank == NB - 1:
                    sub_b.next = 0
                    sub_wo.next = wo + 1
                    if BUF == 2 and wbuf:
                        pix.next = wo + M1
                        waddr.next = wo + M1
                    else:
                        pix.next = wo + 1
                        waddr.next = wo + 1
                else:
                    sub_b.next = bank + 1
                    sub_wo.next = wo
                    if BUF == 2 and wbuf:
                        pix.next = wo + M
                        waddr.next = wo + M
                    else:
                        pix.next = wo
                        waddr.next = wo
            else:                                # frame complete: the other buffer
                px.next = 0
                sg.next = 0
                bank.next = 0
                wo.next = 0
                sub_b.next = 0
                sub_wo.next = 0
                if BUF == 2 and not wbuf:
                    pix.next = M
                    waddr.next = M
                else:
                    pix.next = 0
                    waddr.next = 0
    return handshake, write


@block
def fb_position(aclk, aresetn, issue, window_end, rbuf, ix0p, iy0p, start_addr, start_x,
                start_y, read_done, *, geo):
    """Which window is read (top-left ``ix0p``, ``iy0p`` in padded coordinates), which
    pass, which buffer; ``start_*``: where the walk goes after a window's last beat.
    ``read_done`` pulses with the last beat of a buffer's last pass."""
    ST, OW, OH, REP, BUF = geo.ST, geo.OW, geo.OH, geo.REP, geo.BUF
    FR0, FW0 = geo.first_row[0], geo.first_win[0]
    FR1, FW1 = geo.first_row[-1], geo.first_win[-1]
    ox, oy, rep = _count(OW), _count(OH), _count(REP)
    row_addr, win_addr = _addr(geo, FR0), _addr(geo, FW0)
    win_right, row_down, row_down_win = _addr(geo), _addr(geo), _addr(geo)
    this_row, this_win, next_row_a, next_win_a = _addr(geo), _addr(geo), _addr(geo), _addr(geo)
    move = Signal(bool(0))

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
        read_done.next = (issue and window_end and ox == OW - 1 and oy == OH - 1
                          and rep == REP - 1)
        if ox != OW - 1:
            start_addr.next = win_right
            start_x.next = ix0p + ST
            start_y.next = iy0p
        elif oy != OH - 1:
            start_addr.next = row_down_win
            start_x.next = 0
            start_y.next = iy0p + ST
        elif rep != REP - 1:
            start_addr.next = this_win
            start_x.next = 0
            start_y.next = 0
        else:
            start_addr.next = next_win_a
            start_x.next = 0
            start_y.next = 0

    @always_seq(aclk.posedge, reset=aresetn)
    def windows():
        if move:
            win_addr.next = start_addr
            ix0p.next = start_x
            iy0p.next = start_y
            if ox != OW - 1:
                ox.next = ox + 1
            else:
                ox.next = 0
                if oy != OH - 1:
                    oy.next = oy + 1
                    row_addr.next = row_down
                else:
                    oy.next = 0
                    if rep != REP - 1:
                        rep.next = rep + 1
                        row_addr.next = this_row
                    else:
                        rep.next = 0
                        row_addr.next = next_row_a
                        if BUF == 2:
                            rbuf.next = not rbuf
    return adders, moves, windows


@block
def fb_walk(aclk, aresetn, issue, ix0p, start_addr, start_x, start_y, rd_addr, ixp, iyp,
            sel, window_end, *, geo):
    """Walks the RAM addresses of a window's beats in (ky, kx, c/S) order.

    ``rd_addr``: the word of the beat ``issue`` reads next, ``sel`` which of the word's
    ``NSEL`` beats it is, ``(ixp, iyp)`` its padded coordinates; ``window_end``: the beat
    is the window's last.  A pixel's words are consecutive, so the walk steps by one word
    within a window row and jumps a map row (``W*C/D`` words) between window rows."""
    K, CS, NSEL = geo.K, geo.CS, geo.NSEL
    cs, kx, ky = _count(CS), _count(K), _count(K)
    win_row = _addr(geo, geo.first_win[0])
    rd_step, win_down = _addr(geo), _addr(geo)

    @always_comb
    def adders():
        rd_step.next = rd_addr + 1
        win_down.next = win_row + geo.row_words
        window_end.next = cs == CS - 1 and kx == K - 1 and ky == K - 1

    @always_seq(aclk.posedge, reset=aresetn)
    def beats():
        if issue:
            if sel == NSEL - 1:
                sel.next = 0
            else:
                sel.next = sel + 1
            if cs != CS - 1:
                cs.next = cs + 1
                if sel == NSEL - 1:
                    rd_addr.next = rd_step
            else:
                cs.next = 0
                if kx != K - 1:                      # next pixel of the window row
                    kx.next = kx + 1
                    ixp.next = ixp + 1
                    rd_addr.next = rd_step
                elif ky != K - 1:                    # next row of the window
                    kx.next = 0
                    ixp.next = ix0p
                    ky.next = ky + 1
                    iyp.next = iyp + 1
                    win_row.next = win_down
                    rd_addr.next = win_down
                else:                                # next window
                    kx.next = 0
                    ky.next = 0
                    ixp.next = start_x
                    iyp.next = start_y
                    win_row.next = start_addr
                    rd_addr.next = start_addr
    return adders, beats


@block
def fb_output(aclk, aresetn, m_axis_win, out_valid, issue, window_end, sel, word, *, geo):
    """The output register: a word read from the RAM goes out ``S*A`` bits a beat (the
    low bits first; when a word holds several beats, the rest from a shift register)."""
    SA, NSEL = geo.S * geo.A, geo.NSEL
    out_last, from_ram = Signal(bool(0)), Signal(bool(1))
    rest = Signal(intbv(0)[len(word):])

    @always_seq(aclk.posedge, reset=aresetn)
    def out_register():
        if issue:
            out_valid.next = 1
            out_last.next = window_end
        elif m_axis_win.tready:
            out_valid.next = 0

    @always_comb
    def outputs():
        m_axis_win.tvalid.next = out_valid
        m_axis_win.tlast.next = out_last

    if NSEL == 1:
        @always_comb
        def data():
            m_axis_win.tdata.next = word
        return out_register, outputs, data

    @always_seq(aclk.posedge, reset=aresetn)
    def shift():
        if issue:
            from_ram.next = sel == 0
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
    return out_register, outputs, shift, data


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
    wbuf, rbuf, full0, full1 = (Signal(bool(0)) for _ in range(4))
    waddr, rd_addr, start_addr = _addr(geo), _addr(geo, geo.first_win[0]), _addr(geo)
    bank = _count(NB)
    ixp, ix0p, start_x = _count(geo.XS), _count(geo.XS), _count(geo.XS)
    iyp, iy0p, start_y = _count(geo.YS), _count(geo.YS), _count(geo.YS)
    sel = _count(geo.NSEL)
    window_end, read_word, out_valid = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    pad_now = Signal(bool(0)) if P > 0 else None

    writer = fb_writer(aclk, aresetn, s_axis_px, accept, waddr, bank, wbuf, filled, free,
                       geo=geo)
    position = fb_position(aclk, aresetn, issue, window_end, rbuf, ix0p, iy0p, start_addr,
                           start_x, start_y, read_done, geo=geo)
    walk = fb_walk(aclk, aresetn, issue, ix0p, start_addr, start_x, start_y, rd_addr, ixp,
                   iyp, sel, window_end, geo=geo)
    outs = [Signal(intbv(0)[lanes_in * abits:]) for _ in range(NB)]
    enables = [Signal(bool(0)) for _ in range(NB)] if NB > 1 else [accept]
    gates = [bank_enable(enables[i], accept, bank, index=i) for i in range(NB)] if NB > 1 else []
    # A padding pixel reads nothing but clears the read register (block RAM's synchronous
    # output reset); without padding there is no such pixel.
    banks = [ram(aclk, write=enables[i], waddr=waddr, wdata=s_axis_px.tdata, read=read_word,
                 raddr=rd_addr, clear=pad_now, rdata=outs[i], depth=geo.depth)
             for i in range(NB)]
    word = ConcatSignal(*reversed(outs)) if NB > 1 else outs[0]
    output = fb_output(aclk, aresetn, m_axis_win, out_valid, issue, window_end, sel, word,
                       geo=geo)
    control = fb_control(aclk, aresetn, m_axis_win.tready, out_valid, sel, filled, read_done,
                         wbuf, rbuf, full0, full1, free, issue, read_word, geo=geo)
    parts = [writer, position, walk, gates, banks, output, control]

    if P > 0:
        @always_comb
        def padding():
            pad_now.next = iyp < P or iyp >= H + P or ixp < P or ixp >= W + P
        parts.append(padding)
    return parts


@block
def fb_control(aclk, aresetn, tready, out_valid, sel, filled, read_done, wbuf, rbuf, full0,
               full1, free, issue, read_word, *, geo):
    """Which buffer is full: from its frame's last input beat to its last pass's last
    beat.  The writer fills ``wbuf`` while it is not full; the reader reads ``rbuf``
    while it is (and the output register is free)."""
    BUF = geo.BUF
    reading = Signal(bool(0))

    @always_comb
    def reads():
        issue.next = reading
        read_word.next = reading and sel == 0

    if BUF == 1:
        @always_comb
        def gate():
            free.next = not full0
            reading.next = full0 and (not out_valid or tready)

        @always_seq(aclk.posedge, reset=aresetn)
        def flags():
            wbuf.next = 0                # one buffer: always buffer 0 (driven, not floating)
            if filled:
                full0.next = 1
            elif read_done:
                full0.next = 0
        return gate, reads, flags

    @always_comb
    def gate():
        if wbuf:
            free.next = not full1
        else:
            free.next = not full0
        if rbuf:
            reading.next = full1 and (not out_valid or tready)
        else:
            reading.next = full0 and (not out_valid or tready)

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

    return gate, reads, flags


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
    design's register bits (counters, addresses, output and shift register) counted from
    its widths, and ``lut`` one LUT a bit of every adder and comparator on them, each
    scaled to Yosys 0.70 ``synth_xilinx`` counts (LUT x1.12, FF x0.9: within 8 % on three
    block-RAM configurations), plus ``blocks.ram.estimate``'s cost of banks in LUT RAM
    (one such configuration, 2 x 140 x 8 bits: 362 LUTs estimated, 281 measured).  ``latency``: ``F + 1``.  ``cycles`` per ``frame``:
    :func:`frame_cycles`; ``fill`` and ``read`` are its ``F`` and ``R``.
    """
    p = dict(width=width, height=height, channels=channels, k=k, stride=stride, pad=pad,
             abits=abits, simd=simd, lanes_in=lanes_in, order_in=order_in,
             groups_in=groups_in, repeat=repeat, buffers=buffers)
    geo = Geometry(**p)
    fill, read = beats_per_frame(**p)
    bits = lambda limit: max(3, (limit - 1).bit_length())
    coord = 6 * bits(geo.XS) + 6 * bits(geo.YS)          # ixp/ix0p/start_x and y's
    counters = (bits(geo.CPS) + bits(geo.HW) + bits(geo.GI) + 2 * bits(geo.CD)
                + 2 * bits(geo.NB) + bits(geo.CS) + 2 * bits(geo.K) + bits(geo.NSEL)
                + bits(geo.OW) + bits(geo.OH) + bits(geo.REP))
    addresses = 5 * geo.n + (geo.depth + geo.CD).bit_length()
    shift = simd * abits * (geo.NSEL - 1) if geo.NSEL > 1 else 0
    ff = counters + coord + addresses + shift + 2 * buffers + 4
    lut = 2 * counters + coord + 8 * geo.n + shift + 20
    bank = ram_estimate(width=lanes_in * abits, depth=geo.depth)
    return {"lut": round(1.12 * lut) + geo.NB * bank["lut"],
            "ff": round(0.9 * ff) + geo.NB * bank["ff"],
            "dsp": 0,
            "bram_bits": geo.NB * bank["bram_bits"],
            "bram": add_blocks(*[bank["bram"]] * geo.NB),
            "latency": fill + 1,
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
