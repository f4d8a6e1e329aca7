"""``line_buffer``: a streaming sliding-window generator for row-based (shallow) layers.

Pixels of a feature map come in row by row; every K x K window of the zero-padded map
goes out, beat by beat, in the order the MAC array consumes a dot product, ``repeat``
times in a row (once per output-channel group of the MAC behind it).  Only K + stride
rows of the map are ever on chip, in one simple dual-port RAM (``blocks.ram``).

Parameters
----------
width W, height H : int, 1..4096
    Size of the input feature map.
channels C : int, 1..4096
    Channels per pixel.
k K : int, 1..7
    Window size (odd or even).
stride : int, 1..4
pad P : int, 0..K-1
    Zero rows/columns added on every side.
abits A : int, 1..8
    Bits per activation (unsigned).
simd S : int, C % S == 0
    Channels per beat; G = C / S channel groups per pixel.
repeat : int, 1..4096
    Times each window goes out in a row (a stage's Cout / L); every copy is read again
    from the ring.

Output size per axis: ``OH = (H + 2P - K) // stride + 1``, ``OW = (W + 2P - K) // stride + 1``.

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
s_axis_px_t*      input pixels, raster order with channel groups fastest (y, x, c/S);
                  ``tdata[S*A-1:0]``, channel ``g*S + i`` of the group in lane ``i``
                  (``tdata[(i+1)*A-1 : i*A]``); no ``tlast``: frames are counted from
                  the geometry.
m_axis_win_t*     windows: for each output pixel (oy, ox) in raster order, K*K*G beats in
                  (ky, kx, c/S) order, packed like the input, all lanes zero where the
                  window covers padding; each window ``repeat`` times in a row, ``tlast``
                  on each copy's last beat.

Frames follow each other without a reset and without a gap on the input.

How it works
------------
The ring (``R = K + stride`` rows of ``W*G`` words of ``S*A`` bits) is written by
``ring_writer`` at the next address for every input beat; it counts the complete rows
held and stops the input when the ring is full.  ``window_walk`` walks each window's beats
through the ring (``window_position`` says which window and where the next copy or
window starts); a padding beat clears the RAM's read register instead of loading it
(block RAM's synchronous output reset).  A window is read once its last real pixel has
arrived; ``window_geometry`` holds that bound as registers loaded as the walk moves to a
window, so no coordinate arithmetic sits in front of the ring's read.  At the end of an
output row the reader frees the rows the next one no longer needs.  A ring in LUT RAM
deeper than ``BANK_WORDS`` (32) words is read in two register stages (``banked_ram``:
banks of 32 words each with its own read register, then the bank multiplexer into the
output register; about ``S*A*R*W*G/32`` more flip-flops), so that no deep read
multiplexer sits between the read address and a register; the output register and the
stage before it move together whenever the output is free (``advance``).

Latency and throughput
----------------------
* Output: one window beat per cycle whenever the window's pixels are in the ring and
  ``m_axis_win.tready`` is high (copies follow each other without a gap).  The RAM read is
  enabled by the output handshake, so the output never bubbles on its own and ``tvalid``
  does not depend on ``tready``.  The input is accepted at one beat per cycle until the
  writer is ``stride`` rows ahead of what the reader needs.
* Latency: the first beat of window (0, 0) moves ``1 + lag + stages`` cycles after the
  input beat holding the last group of pixel ``(r, c-1)`` moved (one cycle to count
  it, ``lag`` to decide the window ready, ``stages`` for the RAM read), ``r = min(K-1-P,
  H-1)`` and ``c = min(K-P, W)`` (:func:`first_pixel`: a window may run past the map):
  ``(r*W + c)*G + lag + stages`` cycles after the first input beat, with no stalls.
  ``lag`` (:func:`decide_lag`) is 2 when a window's copies take four or more
  beats (``K*K*G*repeat >= 4``: the decision's comparisons are registered, for timing),
  else 1; ``stages`` (:func:`read_stages`) is 2 for a ring in LUT RAM deeper than 32
  words, else 1.
* Frame boundaries: the last output row of a frame holds ``h = H - max(0, (OH-1)*stride
  - P)`` rows, leaving ``free = K + stride - h`` slots for the next frame; its first window
  needs ``r`` complete rows and ``c`` pixels of the next.  When ``r >= free``
  the output pauses ``pause = ((r - free)*W + c)*G + lag`` cycles between frames
  (e.g. K=3, stride 1, P=0: ``(W + 3)*G + 2``), else ``pause = 0`` (stride 1 with
  P >= (K-1)/2, the usual "same" padding, never pauses).
* Cycles per frame, frames back to back, no stalls (:func:`frame_cycles`; the planner's
  figure):  ``max(OH*OW*K*K*G*repeat + pause, H*W*G)``: the output's beats plus the
  pause, or the input's beats when those are more.  Exact (cycle for cycle) in
  simulation over the tested geometries, but for one: a map one pixel wide with K=1 and
  stride 1 (a ring of two one-pixel rows) takes its input a cycle slower every second
  row, ``H*G + H/2`` cycles a frame on average (measured: W1 H2 G1 3, H4 G2 10, H3 G1
  4 and 5 alternating), which this formula does not count.
"""
from __future__ import annotations

import numpy as np
from myhdl import Signal, always, always_comb, always_seq, block, intbv, modbv

from blocks.ram import BANK_WORDS, banked_ram, bram_blocks, memory_style, read_stages
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset, pack

MAX_DEPTH = 1 << 18  # RAM words; beyond this conversion and simulation become impractical

# The window geometry both window makers (this block and frame_buffer) take, checked by
# check_window and sized by out_size.
WINDOW_PARAMS = (
    Param("width", int, lo=1, hi=4096, help="input width W in pixels"),
    Param("height", int, lo=1, hi=4096, help="input height H in pixels"),
    Param("channels", int, lo=1, hi=4096, help="channels per pixel C"),
    Param("k", int, lo=1, hi=7, help="window size K"),
    Param("stride", int, default=1, lo=1, hi=4, help="window stride"),
    Param("pad", int, default=0, lo=0, hi=6, help="zero padding P on each side, below K"),
    Param("abits", int, lo=1, hi=8, help="activation bits A"),
)

PARAMS = WINDOW_PARAMS + (
    Param("simd", int, default=1, lo=1, hi=4096, help="channels per beat S, divides C"),
    Param("repeat", int, default=1, lo=1, hi=4096,
          help="times each window is emitted in a row (a stage's Cout/L)"),
)


def cross_check(p: dict) -> None:
    """Combinations of individually valid parameters that cannot work."""
    if p["channels"] % p["simd"]:
        raise ValueError(f"simd: must divide channels ({p['channels']}), got {p['simd']}")
    check_window(p)
    depth = ring_rows(p["k"], p["stride"]) * p["width"] * (p["channels"] // p["simd"])
    if depth > MAX_DEPTH:
        raise ValueError(f"width: buffer of (k+stride)*width*channels/simd = {depth} words "
                         f"exceeds {MAX_DEPTH}; use a larger simd or split the row")


def ring_rows(k: int, stride: int) -> int:
    """Rows in the ring: the K the reader holds plus ``stride`` the writer fills ahead."""
    return k + stride


def check_window(p: dict) -> None:
    """ValueError unless the window fits the padded map: ``pad < k <= size + 2*pad``."""
    if p["pad"] >= p["k"]:
        raise ValueError(f"pad: must be less than k ({p['k']}), got {p['pad']}")
    for axis in ("height", "width"):
        if p["k"] > p[axis] + 2 * p["pad"]:
            raise ValueError(f"k: must be at most {axis} + 2*pad = "
                             f"{p[axis] + 2 * p['pad']}, got {p['k']}")


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Windows along an axis of ``size`` pixels."""
    return (size + 2 * pad - k) // stride + 1


def decide_lag(k: int, groups: int, repeat: int) -> int:
    """Cycles from the writer's state to the ``ready`` it decides: 2 when a window's
    copies take four or more beats (the comparisons registered, :func:`window_ready`),
    else 1."""
    return 2 if k * k * groups * repeat >= 4 else 1


@block
def add_const_mod(out, a, *, const, modulus):
    """``out = (a + const) mod modulus`` for ``0 <= a < modulus`` (no wider adder)."""
    const %= modulus
    limit = modulus - const          # a >= limit wraps
    if const == 0:
        @always_comb
        def same():
            out.next = a
        return same

    @always_comb
    def wrap():
        if a >= limit:
            out.next = a - limit
        else:
            out.next = a + const
    return wrap


class Geometry:
    """The sizes every part of one line buffer derives from its parameters."""

    def __init__(self, *, width, height, channels, k, stride, pad, abits, simd, repeat):
        self.W, self.H, self.K, self.S, self.P = width, height, k, stride, pad
        self.G = channels // simd
        self.bits = simd * abits
        self.repeat = repeat
        self.OW, self.OH = out_size(width, k, stride, pad), out_size(height, k, stride, pad)
        self.R = ring_rows(k, stride)
        self.WG = width * self.G
        self.M = self.R * self.WG              # RAM depth in words
        self.HOFF = k + stride                 # keeps the held-rows count non-negative
        self.FULL = self.R + self.HOFF         # held == FULL: the ring is full
        self.COUNT = 1 << self.FULL.bit_length()  # row counts (held, need) share a width
        # Every column quantity has one width and every row quantity another, so that
        # comparisons between them are lint clean.
        self.XS = width + 2 * pad + 1
        self.YS = max(height + 2 * pad + 1, self.COUNT)
        # The first window of a frame: its row counts and column bound.
        self.first_need, self.first_freed = self.rows(0)
        self.first_col, self.first_clip = k - 1 - pad, k - 1 > width + pad - 1
        self.first_addr = (-pad * self.WG - pad * self.G) % self.M  # ring address of it

    def rows(self, y):
        """``(need + HOFF, rows freed at its end)`` of the output row whose window starts
        at padded row ``y`` (a Python model of :func:`window_geometry`'s row logic)."""
        H, K, S, P = self.H, self.K, self.S, self.P
        top, bottom = max(y, P), min(y + K - 1, H + P - 1)
        last = y == (self.OH - 1) * S
        next_top = H + P if last or y + S > H + P else max(y + S, P)
        return bottom - top + self.HOFF, next_top - top

    def row_constants(self):
        """Constants of :func:`window_geometry`'s row counts, modulo COUNT like the
        values (so as narrow): bottom, inside, all, top, end, frame, first."""
        H, K, S, P, HOFF, COUNT = self.H, self.K, self.S, self.P, self.HOFF, self.COUNT
        return tuple(c % COUNT for c in (H + P - 1 - S + HOFF, K - 1 + HOFF, H - 1 + HOFF,
                                         S + K - 1 - P + HOFF, H + P - S, H, 2 * S - P))

    def row_conditions(self):
        """The row conditions of the next output row (y = iy0p + S) as comparisons of
        iy0p with constants: ``(always, bound)`` meaning iy0p > bound, or always true
        when the bound would be negative, for y > P, y + K > H + P, y + S > H + P and
        y + S > P; then the iy0p before the last row's."""
        H, K, S, P = self.H, self.K, self.S, self.P

        def above(bound):
            return bound < 0, max(bound, 0)
        return (above(P - S), above(H + P - S - K), above(H + P - 2 * S), above(P - 2 * S),
                max((self.OH - 2) * S, 0))


def _counter(limit: int, init: int = 0):
    """An unsigned register for values 0..limit-1.

    At least three bits, so that constant increments in branches a small geometry never
    takes (e.g. ``ox + 1`` when there is one output column) do not trip Verilator's
    width check.
    """
    return Signal(intbv(init, min=0, max=max(8, limit)))


def _address(depth: int, init: int = 0):
    """A RAM address register: exactly as wide as the index ``depth`` needs (depth >= 2)."""
    return Signal(intbv(init, min=0, max=depth))


@block
def ahead(aclk, out, value, *, registered):
    """``out`` follows ``value``: a cycle later when ``registered`` (a value computed a
    cycle ahead of its use, for timing), else at once."""
    if registered:
        @always(aclk.posedge)
        def stage():
            out.next = value
    else:
        @always_comb
        def stage():
            out.next = value
    return stage


@block
def wrap_count(aclk, aresetn, step, count, last, *, size):
    """A counter of 0..size-1 that wraps, moved by ``step``; ``last``: it holds size-1 (a
    flag updated with it, so that no compare follows the count: timing)."""
    ONE, BEFORE_LAST = size == 1, max(size - 2, 0)

    @always_seq(aclk.posedge, reset=aresetn)
    def run():
        if step:
            if not last:
                count.next = count + 1
                last.next = count == BEFORE_LAST
            else:
                count.next = 0
                last.next = ONE
    return run


@block
def both(out, a, b):
    """``out = a and b``."""
    @always_comb
    def gate():
        out.next = a and b
    return gate


@block
def count_chain(aclk, aresetn, step, digits):
    """Nested :func:`wrap_count` counters, ``digits`` = ``[(count, last, size), ...]``
    innermost first: a digit moves on ``step`` when every digit inside it wraps."""
    parts, carry = [], step
    for i, (count, last, size) in enumerate(digits):
        parts.append(wrap_count(aclk, aresetn, carry, count, last, size=size))
        if i + 1 < len(digits):
            outer = Signal(bool(0))
            parts.append(both(outer, carry, last))
            carry = outer
    return parts


@block
def ring_writer(aclk, aresetn, s_axis_px, accept, waddr, wx, held, freed, rows_freed, *, geo):
    """Stores every input beat at the next ring address; counts complete rows held.

    ``held`` is the number of complete rows in the ring the reader has not freed, plus
    ``HOFF`` (it goes below ``HOFF`` while the reader skips rows, stride > K, that have
    not arrived).  ``wx`` is the column being written.  The input is taken while
    ``held < FULL``: ``tready`` is a register loaded with that test of ``held``'s next
    value, decided from the terms of its update (timing: ``tready`` and the write enable
    one gate after flip-flops, no comparison behind the count's adder).
    """
    W, G, FULL = geo.W, geo.G, geo.FULL
    waddr_next = _address(geo.M)
    wg = _counter(G)
    # wx == W - 1 and wg == G - 1 as flags updated with the counters (timing)
    wx_last, wg_last = Signal(bool(W == 1)), Signal(bool(G == 1))
    open_ = Signal(bool(0))              # tready; low in reset and the cycle after
    row_done = Signal(bool(0))
    frees = Signal(bool(0))              # the reader frees one row or more this cycle
    step = add_const_mod(waddr_next, waddr, const=1, modulus=geo.M)
    counters = count_chain(aclk, aresetn, accept, [(wg, wg_last, G), (wx, wx_last, W)])

    @always_comb
    def handshake():
        s_axis_px.tready.next = open_
        accept.next = open_ and s_axis_px.tvalid
        row_done.next = open_ and s_axis_px.tvalid and wx_last and wg_last
        frees.next = freed and rows_freed != 0

    @always_seq(aclk.posedge, reset=aresetn)
    def write():
        # held's next value is below FULL when rows are freed (a row completed at once
        # needed room for it), or else when held + row_done < FULL.
        open_.next = frees or held < FULL - 1 or (held == FULL - 1 and not row_done)
        if accept:
            waddr.next = waddr_next
        if row_done and freed:
            held.next = held + 1 - rows_freed
        elif row_done:
            held.next = held + 1
        elif freed:
            held.next = held - rows_freed

    return step, counters, handshake, write


@block
def next_row_bounds(iy0p, need_calc, freed_calc, *, geo):
    """The bounds of the output row after the current one (window top ``iy0p``): rows
    its window needs held (``need_calc``) and rows freed at the current row's end
    (``freed_calc``), both modulo the row counts' range."""
    S, HOFF = geo.S, geo.HOFF
    last_row = (geo.OH - 1) * S          # iy0p of the last output row
    n = len(need_calc)                   # bits of the row counts
    c_bottom, c_inside, c_all, c_top, c_end, c_frame, c_first = geo.row_constants()
    (A_ALL, A_FROM), (B_ALL, B_FROM), (D_ALL, D_FROM), (E_ALL, E_FROM), C_AT = (
        geo.row_conditions())
    y_low = Signal(modbv(0)[n:])

    @always_comb
    def low_bits():
        y_low.next = iy0p[n:]

    @always_comb
    def row_counts():
        # The output row after the current one: its window's padded top row is
        # y = iy0p + S; need = min(y + K - 1, H + P - 1) - max(y, P) and the rows freed
        # at its end run from max(y, P) to the next row's top (the frame's end for the
        # last row).  One process, so that no intermediate value is ever out of range;
        # both are below COUNT, so they are computed modulo COUNT from iy0p's low bits.
        if iy0p == last_row:             # no next row in this frame: never loaded
            need_calc.next = HOFF
            freed_calc.next = 0
        else:
            if A_ALL or iy0p > A_FROM:   # y > P
                if B_ALL or iy0p > B_FROM:       # y + K > H + P
                    need_calc.next = c_bottom - y_low
                else:
                    need_calc.next = c_inside
            elif B_ALL or iy0p > B_FROM:
                need_calc.next = c_all
            else:
                need_calc.next = y_low + c_top
            if iy0p == C_AT or D_ALL or iy0p > D_FROM:    # last row, or y + S > H + P
                if A_ALL or iy0p > A_FROM:
                    freed_calc.next = c_end - y_low
                else:
                    freed_calc.next = c_frame
            elif A_ALL or iy0p > A_FROM:
                freed_calc.next = S
            elif E_ALL or iy0p > E_FROM:         # y + S > P
                freed_calc.next = y_low + c_first
            else:
                freed_calc.next = 0
    return low_bits, row_counts


@block
def ring_steps(aclk, win_addr, row_addr, frame_addr, win_right, row_down, row_down_win,
               frame_down, frame_row, frame_win, *, registered, geo):
    """The ring addresses the window can move to: right (``win_right``), the next row's
    start and first window (``row_down``, ``row_down_win``), the next frame's start, first
    row and first window; registers when ``registered``."""
    S, P, G, H, M, WG = geo.S, geo.P, geo.G, geo.H, geo.M, geo.WG
    adders = []
    for out, base, const in ((win_right, win_addr, S * G), (row_down, row_addr, S * WG),
                             (row_down_win, row_addr, S * WG - P * G),
                             (frame_down, frame_addr, H * WG),
                             (frame_row, frame_addr, H * WG - P * WG),
                             (frame_win, frame_addr, H * WG - P * WG - P * G)):
        total = _address(M)
        adders += [add_const_mod(total, base, const=const, modulus=M),
                   ahead(aclk, out, total, registered=registered)]
    return adders


@block
def window_geometry(aclk, aresetn, moving, ox_last, oy_last, ix0p, iy0p, need_h,
                    rows_freed, col, col_s, clip, need_next, clip_next, *, geo):
    """The bounds of the window being read, as registers loaded when the window moves.

    A window is ready once its last real pixel (bottom row, right column) is in the
    ring: ``held > need_h``, or ``held == need_h`` and the writer is past column
    ``col`` of that row (``wx > col``) and the window is not clipped by the right edge
    (``clip``: its last column is the row's last, so the row must be complete).
    ``rows_freed``: rows the reader frees at the end of the current output row.
    ``col_s`` is ``col + stride``, ``need_next`` and ``clip_next`` the bounds of the next
    output row's and next column's window, for :func:`window_ready`.
    Computed from the window's position as it moves (a cycle ahead of their use), so
    no coordinate arithmetic sits in front of the ring's read.
    """
    W, K, S, P = geo.W, geo.K, geo.S, geo.P
    first_need, first_freed = geo.first_need, geo.first_freed
    first_col, first_clip = geo.first_col, geo.first_clip
    # A step from ix0p clips the next window when ix0p + S + K - 1 > W + P - 1, that is
    # ix0p >= bound (one comparison, no adder before it: timing); always when the bound
    # would be negative (written ix0p + 1 > 0 then, which lint does not call constant).
    clip_bound = max(W + P - K - S + 1, 0)
    need_calc = Signal(modbv(0)[len(need_h):])
    freed_calc, freed_next = Signal(modbv(0)[len(need_h):]), Signal(modbv(0)[len(need_h):])
    clip_calc = Signal(bool(0))
    rows = next_row_bounds(iy0p, need_calc, freed_calc, geo=geo)

    @always_comb
    def column_always():
        clip_calc.next = ix0p + 1 > 0

    @always_comb
    def column_bound():
        clip_calc.next = ix0p >= clip_bound

    column = column_bound if clip_bound > 0 else column_always

    # A window is two or more beats, so the walk never leaves windows in two cycles
    # running: the bounds of the next window can be registered from the position of the
    # cycle before (timing: no compare chain before the bound registers).
    registered = geo.K * geo.K * geo.G * geo.repeat > 1
    stages = [ahead(aclk, need_next, need_calc, registered=registered),
              ahead(aclk, freed_next, freed_calc, registered=registered),
              ahead(aclk, clip_next, clip_calc, registered=registered)]

    @always_seq(aclk.posedge, reset=aresetn)
    def load():
        if moving:                       # the walk leaves the window (timing: one enable)
            if not ox_last:              # next column
                col.next = col_s
                col_s.next = col_s + S
                clip.next = clip_next
            else:
                col.next = first_col
                col_s.next = first_col + S
                clip.next = first_clip
                if not oy_last:          # next row
                    need_h.next = need_next
                    rows_freed.next = freed_next
                else:                    # next frame
                    need_h.next = first_need
                    rows_freed.next = first_freed

    return rows, column, stages, load


@block
def window_ready(aclk, aresetn, held, wx, need_h, rows_freed, col, col_s, clip, need_next,
                 clip_next, next_col, next_row, next_frame, moving, ox_last, oy_last, ready,
                 *, geo):
    """``ready``: every pixel of the window being read is in the ring; a register.

    Decided a cycle ahead from the writer's state (``held``, ``wx``) and the bounds of
    the window the walk will be at: the same one, the next in the row (``next_col``),
    the next row's first (``next_row``, after freeing ``rows_freed``) or the next frame's
    (``next_frame``); each candidate is compared in parallel and ``issue`` only picks one
    (timing: no comparison in front of the ring's read).  Since the writer only moves
    forward, the decision from its state ``lag`` cycles old (:func:`decide_lag`) is never
    early, at most ``lag`` cycles late: a window waiting for its last pixel starts
    ``lag`` cycles after it arrived.
    """
    first_need, first_col, first_clip = geo.first_need, geo.first_col, geo.first_clip
    n = len(need_h)
    row_sum, frame_sum = Signal(intbv(0)[n + 1:]), Signal(intbv(0)[n + 1:])
    need_row = Signal(intbv(0)[n + 1:])          # held before freeing, for the next row
    need_frame = Signal(intbv(0)[n + 1:])        # and for the next frame
    stay, right, down, top = (Signal(bool(0)) for _ in range(4))

    @always_comb
    def sums():
        row_sum.next = need_next + rows_freed
        frame_sum.next = rows_freed + first_need

    # need_next and rows_freed hold still for two cycles before the walk leaves a window
    # of three or more beats, so their sums can be registered (timing).
    registered = geo.K * geo.K * geo.G * geo.repeat > 2
    stages = [ahead(aclk, need_row, row_sum, registered=registered),
              ahead(aclk, need_frame, frame_sum, registered=registered)]

    # Written with ``>=`` instead of ``==`` so that each candidate is one gate after
    # three carry chains (timing: an equality is a tree of gates).
    @always_comb
    def candidates():
        stay.next = held > need_h or (held >= need_h and not clip and wx > col)
        right.next = held > need_h or (held >= need_h and not clip_next and wx > col_s)
        down.next = held > need_row or (held >= need_row and not first_clip
                                        and wx > first_col)
        top.next = held > need_frame or (held >= need_frame and not first_clip
                                          and wx > first_col)

    # Windows of four or more beats (decide_lag 2): the candidates are registered too,
    # and ``ready`` picks among flip-flops (timing: the comparisons' carry chains end
    # there); a window is then decided from the writer's state two cycles old.  In the
    # cycle after a move, the candidate of that move (computed with the new window's
    # bounds) stands for ``stay``.  Moves are then four or more cycles apart, so the
    # bounds of the next window (``clip_next``, ``col_s``, ``need_row``, ``need_frame``)
    # have settled a cycle before they are used.  Otherwise every ``*_r`` follows its
    # candidate at once and the ``moved_*`` are the moves themselves.
    lagged = decide_lag(geo.K, geo.G, geo.repeat) == 2
    stay_r, right_r, down_r, top_r = (Signal(bool(0)) for _ in range(4))
    moved_col, moved_row, moved_frame = (Signal(bool(0)) for _ in range(3))
    stages += [ahead(aclk, q, d, registered=lagged) for q, d in (
        (stay_r, stay), (right_r, right), (down_r, down), (top_r, top),
        (moved_col, next_col), (moved_row, next_row), (moved_frame, next_frame))]

    # The walk leaving a window (``moving``) picks by the position's flags which
    # candidate follows; otherwise the last move's (or ``stay``) does (timing: the move
    # selects between two multiplexers of flip-flops).
    pick_move, pick_stay = Signal(bool(0)), Signal(bool(0))

    @always_comb
    def picks():
        if not ox_last:
            pick_move.next = right_r
        elif not oy_last:
            pick_move.next = down_r
        else:
            pick_move.next = top_r
        if moved_col:
            pick_stay.next = right_r
        elif moved_row:
            pick_stay.next = down_r
        elif moved_frame:
            pick_stay.next = top_r
        else:
            pick_stay.next = stay_r

    @always_seq(aclk.posedge, reset=aresetn)
    def decide():
        if moving:
            ready.next = pick_move
        else:
            ready.next = pick_stay

    return sums, stages, candidates, picks, decide


@block
def window_position(aclk, aresetn, issue, leave, last_copy, ix0p, iy0p, start_addr, start_x,
                    start_y, next_col, next_row, next_frame, moving, ox_last, oy_last, *,
                    geo):
    """Which window is read: its top-left (``ix0p``, ``iy0p``, padded coordinates) and
    ring address, and where the walk starts after the current beat ends a copy.

    ``leave`` (the last beat of the window's last copy) read by ``issue`` moves to the
    next window: right by ``stride``, down at the end of an output row (``next_row``),
    back to the top at the end of a frame (``next_frame``); ``next_col`` otherwise.
    ``start_*``: the same window while copies remain (``last_copy`` low), else the next.
    """
    K, S, P, G = geo.K, geo.S, geo.P, geo.G
    M, WG, OW, OH = geo.M, geo.WG, geo.OW, geo.OH
    ox, oy = _counter(OW), _counter(OH)
    # Ring addresses of virtual rows (padding rows included), all modulo M:
    # frame_addr = (row 0, col 0) of the frame, row_addr = (iy0, 0), win_addr = (iy0, ix0).
    frame_addr = _address(M)
    row_addr = _address(M, -P * WG % M)
    win_addr = _address(M, geo.first_addr)
    win_right, row_down, row_down_win = (_address(M) for _ in range(3))
    frame_down, frame_row, frame_win = (_address(M) for _ in range(3))
    addr_calc, x_calc, y_calc = _address(M), _counter(geo.XS), _counter(geo.YS)
    # The next addresses are registers when a copy is four or more beats (timing: no
    # modulo adder in front of the address multiplexers): each follows an address that
    # moves only with the window, and is first used three or more cycles after it.
    registered = K * K * G >= 4
    steps = [ring_steps(aclk, win_addr, row_addr, frame_addr, win_right, row_down,
                        row_down_win, frame_down, frame_row, frame_win,
                        registered=registered, geo=geo),
             # ox_last, oy_last: ox == OW - 1, oy == OH - 1, flags updated with the
             # counters (timing: they select the walk's next move)
             count_chain(aclk, aresetn, moving, [(ox, ox_last, OW), (oy, oy_last, OH)])]

    @always_comb
    def moves():
        moving.next = issue and leave
        next_col.next = issue and leave and not ox_last
        next_row.next = issue and leave and ox_last and not oy_last
        next_frame.next = issue and leave and ox_last and oy_last

    @always_comb
    def starts():
        if not last_copy:
            addr_calc.next = win_addr
            x_calc.next = ix0p
            y_calc.next = iy0p
        elif not ox_last:
            addr_calc.next = win_right
            x_calc.next = ix0p + S
            y_calc.next = iy0p
        elif not oy_last:
            addr_calc.next = row_down_win
            x_calc.next = 0
            y_calc.next = iy0p + S
        else:
            addr_calc.next = frame_win
            x_calc.next = 0
            y_calc.next = 0

    # With two or more beats a copy, nothing the start depends on moves in the cycle
    # before a copy's last beat, so it can come from a register loaded a cycle ahead
    # (timing); a one-beat copy needs it at once.
    registered = geo.K * geo.G > 1
    stages = [ahead(aclk, start_addr, addr_calc, registered=registered),
              ahead(aclk, start_x, x_calc, registered=registered),
              ahead(aclk, start_y, y_calc, registered=registered)]

    @always_seq(aclk.posedge, reset=aresetn)
    def windows():
        # ``moving`` enables every register here; the flags pick the move (timing)
        if moving:
            if not ox_last:                      # next column
                ix0p.next = ix0p + S
                win_addr.next = win_right
            elif not oy_last:                    # next row
                ix0p.next = 0
                iy0p.next = iy0p + S
                row_addr.next = row_down
                win_addr.next = row_down_win
            else:                                # next frame
                ix0p.next = 0
                iy0p.next = 0
                frame_addr.next = frame_down
                row_addr.next = frame_row
                win_addr.next = frame_win

    return steps, moves, starts, stages, windows


@block
def outside(value, flag, *, offset, lo, hi):
    """``flag``: the padded coordinate ``value + offset`` lies in the padding (outside
    ``[lo, hi)``, the real pixels), compared as ``value`` against shifted bounds (no
    adder before the comparisons: timing)."""
    lo, hi = lo - offset, hi - offset
    if hi <= 0:                  # always padding (written so that lint sees no constant)
        @always_comb
        def check():
            flag.next = value + 1 > 0
    elif lo > 0:
        @always_comb
        def check():
            flag.next = value < lo or value >= hi
    else:
        @always_comb
        def check():
            flag.next = value >= hi
    return check


@block
def window_walk(aclk, aresetn, issue, ix0p, iy0p, start_addr, start_x, start_y, rd_addr,
                ixp, iyp, pad_now, window_end, leave, last_copy, *, geo):
    """Walks the ring addresses of a window's beats in (ky, kx, c/S) order, ``repeat``
    times, reading it again from the ring for each copy.

    ``rd_addr`` is the address of the beat ``issue`` reads next, ``(ixp, iyp)`` its
    padded coordinates, ``pad_now`` whether it is padding: one gate after two flags
    loaded with the coordinates (timing: no comparison in front of the RAM's clear).  ``window_end``: the current beat is a copy's last;
    ``last_copy``: the copy is the window's last; ``leave``: both.  After a copy's last
    beat the walk restarts at ``start_*`` (``window_position``).
    """
    K, G, M, WG, REP = geo.K, geo.G, geo.M, geo.WG, geo.repeat
    g, kx, ky, rep = _counter(G), _counter(K), _counter(K), _counter(REP)
    # Each counter at its last value, as a flag updated with it (timing: the flags end a
    # window and pick the next move, one gate after flip-flops)
    g_last, kx_last = Signal(bool(G == 1)), Signal(bool(K == 1))
    ky_last, rep_last = Signal(bool(K == 1)), Signal(bool(REP == 1))
    G1, K1, R1 = G == 1, K == 1, REP == 1
    G2, K2, R2 = max(G - 2, 0), max(K - 2, 0), max(REP - 2, 0)
    P, W, H = geo.P, geo.W, geo.H
    pad_x, pad_y = Signal(bool(P > 0)), Signal(bool(P > 0))    # (0, 0) is padding if P > 0
    x_step, x_row, x_start, y_step, y_start = (Signal(bool(0)) for _ in range(5))
    flags = [outside(ixp, x_step, offset=1, lo=P, hi=W + P),
             outside(ix0p, x_row, offset=0, lo=P, hi=W + P),
             outside(start_x, x_start, offset=0, lo=P, hi=W + P),
             outside(iyp, y_step, offset=1, lo=P, hi=H + P),
             outside(start_y, y_start, offset=0, lo=P, hi=H + P)]
    # win_row: the ring address of (iy0 + ky, ix0), the start of the window row being read
    win_row = _address(M, geo.first_addr)
    rd_step, win_down, down_calc = _address(M), _address(M), _address(M)
    # win_row moves only at a window row's end, K*G beats apart: when that is two or
    # more, the next row's address can be registered a cycle ahead (timing).
    adders = [add_const_mod(rd_step, rd_addr, const=1, modulus=M),
              add_const_mod(down_calc, win_row, const=WG, modulus=M),
              ahead(aclk, win_down, down_calc, registered=K * G > 1)]

    # A copy's last beat and the window's last (all counters at their last values) as
    # flags updated with the counters too (timing: ``issue and leave`` is one gate)
    end_r = Signal(bool(G1 and K1))
    leave_r = Signal(bool(G1 and K1 and R1))

    @always_comb
    def ends():
        pad_now.next = pad_x or pad_y
        window_end.next = end_r
        last_copy.next = rep_last
        leave.next = leave_r

    counters = count_chain(aclk, aresetn, issue, [(g, g_last, G), (kx, kx_last, K),
                                                  (ky, ky_last, K), (rep, rep_last, REP)])

    @always_seq(aclk.posedge, reset=aresetn)
    def beats():
        if issue:
            if not g_last:
                end_r.next = g == G2 and kx_last and ky_last
                leave_r.next = g == G2 and kx_last and ky_last and rep_last
                rd_addr.next = rd_step
            elif not kx_last:                        # next pixel of the window row
                end_r.next = G1 and kx == K2 and ky_last
                leave_r.next = G1 and kx == K2 and ky_last and rep_last
                ixp.next = ixp + 1
                pad_x.next = x_step
                rd_addr.next = rd_step
            elif not ky_last:                        # next row of the window
                ixp.next = ix0p
                pad_x.next = x_row
                end_r.next = 0                       # K > 1 here: the row is not the last
                leave_r.next = 0
                iyp.next = iyp + 1
                pad_y.next = y_step
                win_row.next = win_down
                rd_addr.next = win_down
            else:                                    # next copy or next window
                end_r.next = G1 and K1
                if not rep_last:
                    leave_r.next = G1 and K1 and rep == R2
                else:
                    leave_r.next = G1 and K1 and R1
                ixp.next = start_x
                iyp.next = start_y
                pad_x.next = x_start
                pad_y.next = y_start
                win_row.next = start_addr
                rd_addr.next = start_addr

    return adders, flags, counters, ends, beats


@block
def line_buffer(aclk, aresetn, s_axis_px, m_axis_win, *, width, height, channels, k,
                stride=1, pad=0, abits, simd=1, repeat=1):
    """Sliding-window generator; see the module docstring."""
    params = BLOCK.validate(width=width, height=height, channels=channels, k=k,
                            stride=stride, pad=pad, abits=abits, simd=simd, repeat=repeat)
    geo = Geometry(**params)
    check_width("s_axis_px.tdata", s_axis_px.tdata, geo.bits)
    check_width("m_axis_win.tdata", m_axis_win.tdata, geo.bits)

    # Writer side
    accept = Signal(bool(0))
    waddr = _address(geo.M)
    wx = _counter(geo.XS)
    held = Signal(intbv(geo.HOFF, min=0, max=geo.COUNT))
    # Reader side
    rd_addr, start_addr = _address(geo.M, geo.first_addr), _address(geo.M)
    ixp, iyp, ix0p, iy0p = _counter(geo.XS), _counter(geo.YS), _counter(geo.XS), _counter(geo.YS)
    start_x, start_y = _counter(geo.XS), _counter(geo.YS)
    window_end, leave, last_copy = (Signal(bool(0)) for _ in range(3))
    next_col, next_row, next_frame, moving = (Signal(bool(0)) for _ in range(4))
    # the window is the last of its output row, of the frame (flags of window_position)
    ox_last, oy_last = Signal(bool(geo.OW == 1)), Signal(bool(geo.OH == 1))
    freed = Signal(bool(0))
    need_h = Signal(intbv(geo.first_need, min=0, max=geo.COUNT))
    rows_freed = Signal(intbv(geo.first_freed, min=0, max=geo.COUNT))
    col = _counter(geo.XS + geo.S, geo.first_col)
    col_s = _counter(geo.XS + geo.S, geo.first_col + geo.S)
    clip = Signal(bool(geo.first_clip))
    need_next = Signal(modbv(0)[len(need_h):])
    clip_next = Signal(bool(0))
    ready = Signal(bool(0))              # every pixel of the current window is in the ring
    issue, advance = Signal(bool(0)), Signal(bool(0))
    pad_now = Signal(bool(0))
    rdata = Signal(intbv(0)[geo.bits:])
    out_valid = Signal(bool(0))
    out_last = Signal(bool(0))

    writer = ring_writer(aclk, aresetn, s_axis_px, accept, waddr, wx, held, freed,
                         rows_freed, geo=geo)
    bounds = window_geometry(aclk, aresetn, moving, ox_last, oy_last, ix0p, iy0p,
                             need_h, rows_freed, col, col_s, clip, need_next, clip_next,
                             geo=geo)
    check = window_ready(aclk, aresetn, held, wx, need_h, rows_freed, col, col_s, clip,
                         need_next, clip_next, next_col, next_row, next_frame, moving,
                         ox_last, oy_last, ready, geo=geo)
    position = window_position(aclk, aresetn, issue, leave, last_copy, ix0p, iy0p,
                               start_addr, start_x, start_y, next_col, next_row, next_frame,
                               moving, ox_last, oy_last, geo=geo)
    walk = window_walk(aclk, aresetn, issue, ix0p, iy0p, start_addr, start_x, start_y,
                       rd_addr, ixp, iyp, pad_now, window_end, leave, last_copy, geo=geo)
    # A padding beat reads anything but clears the read register (block RAM's
    # synchronous output reset) instead.
    # A deep ring in LUT RAM is read in two stages (timing), its beats' valid and last
    # flags following through the pipeline register (stage one) that the read stalls with.
    ring = banked_ram(aclk, write=accept, waddr=waddr, wdata=s_axis_px.tdata, read=issue,
                      raddr=rd_addr, clear=pad_now, advance=advance, rdata=rdata,
                      depth=geo.M)
    staged = read_stages(geo.bits, geo.M) == 2
    valid1, last1 = Signal(bool(0)), Signal(bool(0))

    @always_comb
    def gate():
        advance.next = not out_valid or m_axis_win.tready
        issue.next = ready and (not out_valid or m_axis_win.tready)
        freed.next = moving and ox_last         # next_row or next_frame

    @always_seq(aclk.posedge, reset=aresetn)
    def out_register():
        if advance:
            out_valid.next = issue
            out_last.next = window_end

    @always_seq(aclk.posedge, reset=aresetn)
    def out_pipeline():
        if advance:
            valid1.next = issue
            last1.next = window_end
            out_valid.next = valid1
            out_last.next = last1

    output = out_pipeline if staged else out_register

    @always_comb
    def outputs():
        m_axis_win.tvalid.next = out_valid
        m_axis_win.tlast.next = out_last
        m_axis_win.tdata.next = rdata

    return writer, bounds, check, position, walk, ring, gate, output, outputs


# ---------------------------------------------------------------------------- models

def pixel_beats(frames, *, simd, abits):
    """Input beats for ``frames`` (array N x H x W x C): ``[(tdata, False), ...]``."""
    frames = np.asarray(frames)
    n, h, w, c = frames.shape
    groups = frames.reshape(n * h * w * (c // simd), simd)
    return [(pack(lanes, abits), False) for lanes in groups]


def golden(frames, *, width, height, channels, k, stride=1, pad=0, abits, simd=1,
           repeat=1):
    """Output beats ``[(tdata, tlast), ...]`` for ``frames`` (N x H x W x C integers).

    Pads each frame with zeros, slides the K x K window, and emits its (ky, kx, c/S)
    beats ``repeat`` times, ``tlast`` on each copy's last beat.
    """
    frames = np.asarray(frames, dtype=np.int64)
    assert frames.shape[1:] == (height, width, channels), frames.shape
    oh, ow = out_size(height, k, stride, pad), out_size(width, k, stride, pad)
    groups = channels // simd
    beats = []
    for frame in frames:
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)))
        for oy in range(oh):
            for ox in range(ow):
                window = padded[oy * stride:oy * stride + k, ox * stride:ox * stride + k]
                lanes = window.reshape(k * k * groups, simd)
                copy = [(pack(v, abits), i == len(lanes) - 1) for i, v in enumerate(lanes)]
                beats += copy * repeat
    return beats


def first_pixel(*, width, height, k, pad):
    """``(row, pixels)``: the input row holding a frame's first window's last pixel and
    the pixels of that row the window needs: ``(K-1-P, K-P)``, each clipped to the map
    where the window runs past it (``K-1-P >= H`` or ``K-P > W``, which ``check_window``
    allows), as the reader waits (``Geometry.first_need``, ``first_clip``)."""
    return min(k - 1 - pad, height - 1), min(k - pad, width)


def frame_pause(*, width, height, channels, k, stride=1, pad=0, simd=1, repeat=1, **_):
    """Cycles the output pauses between two frames streamed back to back (see the module
    docstring, "Frame boundaries")."""
    held_last = height - max(0, (out_size(height, k, stride, pad) - 1) * stride - pad)
    free = ring_rows(k, stride) - held_last
    groups = channels // simd
    row, pixels = first_pixel(width=width, height=height, k=k, pad=pad)
    if row < free:
        return 0
    return ((row - free) * width + pixels) * groups + decide_lag(k, groups, repeat)


def frame_cycles(*, width, height, channels, k, stride=1, pad=0, abits=1, simd=1,
                 repeat=1):
    """Cycles per frame in steady state, frames back to back, no stalls (module
    docstring, "Latency and throughput")."""
    groups = channels // simd
    out_beats = (out_size(height, k, stride, pad) * out_size(width, k, stride, pad)
                 * k * k * groups * repeat)
    pause = frame_pause(width=width, height=height, channels=channels, k=k, stride=stride,
                        pad=pad, simd=simd, repeat=repeat)
    return max(out_beats + pause, height * width * groups)


def estimate(*, width, height, channels, k, stride=1, pad=0, abits, simd=1, repeat=1):
    """Cost and timing from the parameters (the project's estimate convention).

    ``bram_bits`` is the ring exactly (it equals the converted design's memory
    declaration); ``bram`` its block RAM units per target (``blocks.ram``: LUT RAM up to
    64 words or 2048 bits).  ``lut`` and ``ff`` are fitted to Yosys ``synth_xilinx``
    counts (docs/estimates.md); the logic is mostly address arithmetic, so it grows with
    the RAM address width; a ring in LUT RAM adds about four LUTs per 64 words per bit.
    A ring read in two stages adds its banks' read registers and a bank multiplexer
    (about one LUT and one FF per bit a bank).  ``latency``: first input beat to first
    output beat with no stalls.  ``cycles`` per ``frame``: :func:`frame_cycles`;
    ``pause``: the frame-boundary pause it includes.
    """
    groups = channels // simd
    bits = simd * abits
    depth = ring_rows(k, stride) * width * groups
    addr = (depth - 1).bit_length()
    coord = (max(width, height) + 2 * pad).bit_length()
    stages = read_stages(bits, depth)
    row, pixels = first_pixel(width=width, height=height, k=k, pad=pad)
    first = (row * width + pixels) * groups + decide_lag(k, groups, repeat) + stages
    in_lut_ram = memory_style(bits, depth) == "distributed"
    lut_ram = -(-depth // 64) * bits if in_lut_ram else 0
    # Timing registers: the walk's next addresses when a copy is 4+ beats, and the
    # flags and registered candidates (window_position, window_walk, window_ready).
    timing_ff = (6 * addr if k * k * groups >= 4 else 0) + 20
    # A ring read in two stages (banked_ram): a read register a bank, the bank's number
    # and the beat's flags in stage one; a bank multiplexer.
    banks = -(-depth // BANK_WORDS) if stages == 2 else 0
    return {"lut": 20 * addr + 48 + 4 * lut_ram + banks * bits,
            "ff": (6 * addr + 4 * coord + 102 + timing_ff + banks * bits
                   + (addr + 3) * (stages - 1)),
            "dsp": 0,
            "bram_bits": depth * bits,
            "bram": bram_blocks(bits, depth),
            "latency": first,
            "cycles": frame_cycles(width=width, height=height, channels=channels, k=k,
                                   stride=stride, pad=pad, simd=simd, repeat=repeat),
            "per": "frame",
            "pause": frame_pause(width=width, height=height, channels=channels, k=k,
                                 stride=stride, pad=pad, simd=simd, repeat=repeat)}


def ports(*, width, height, channels, k, stride=1, pad=0, abits, simd=1, repeat=1):
    bits = simd * abits
    return {**clock_reset(), "s_axis_px": Axis(bits, last=False), "m_axis_win": Axis(bits)}


def derived(*, width, height, channels, k, stride=1, pad=0, abits, simd=1, repeat=1):
    return {"out_width": out_size(width, k, stride, pad),
            "out_height": out_size(height, k, stride, pad),
            "beats_per_window": k * k * (channels // simd),
            "ring_rows": ring_rows(k, stride),
            "ram_depth": ring_rows(k, stride) * width * (channels // simd),
            "ram_width": simd * abits,
            "frame_pause": frame_pause(width=width, height=height, channels=channels, k=k,
                                       stride=stride, pad=pad, simd=simd, repeat=repeat)}


def example():
    return {"width": 13, "height": 9, "channels": 8, "k": 3, "stride": 1, "pad": 1,
            "abits": 4, "simd": 4}


BLOCK = BlockDef(name="line_buffer", build=line_buffer, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 example=example)
