"""``mac_array``: the mixed-precision multiply-accumulate array (docs/conventions.md, Contract 5).

``lanes`` output channels in parallel, each taking the dot product of the activation
stream with its own weight stream, ``simd`` elements per beat.  Binary and ternary weights
need no multiplier (add, subtract or skip); ``int`` weights use one ``blocks.dsp_mult``
per element (operand, product and output registers: a pipelined DSP for products of 9
bits or more, LUTs for narrower ones).  ``target`` picks the multiplier's mapping: on an
ECP5 device an instantiated ``MULT18X18D`` with its registers inside (Yosys packs none
into an inferred one, which caps the array near 140 MHz), written with its simulation
model ``MULT18X18D_sim.v`` beside the Verilog.  Measured timing and the estimate's
calibration: ``docs/estimates.md``.

Parameters
----------
lanes : int, 1..64        L, output channels in parallel
simd : int, 1..64         S, input elements per beat
weights : str             ``binary`` (1 bit: code 1 = +1, 0 = -1), ``ternary`` (2-bit two's
                          complement: 01 = +1, 11 = -1, 00 = 0), or ``int``
wbits : int, 2..8         N, bits of an ``int`` weight (two's complement); ignored otherwise
abits : int, 1..8         A, activation bits
asigned : bool            activations are two's complement (first layer) instead of unsigned
reduce : int, 1..2**20    R, the longest dot product in elements; sizes the accumulator
target : str              ``generic`` (default: inferred multipliers) or a device name of
                          ``fpga/devices.py`` (ECP5: a ``MULT18X18D`` for every int
                          product); the same ports, numbers and latency on every target

Ports (WB = 1, 2 or N; ACC from :func:`acc_bits`, reported in the JSON sidecar)
-----
aclk, aresetn                 clock; synchronous active-low reset
s_axis_act_tdata[S*A-1:0]     element ``s`` at ``[(s+1)*A-1 : s*A]``; ``tvalid``, ``tready``,
                              ``tlast`` marks the last beat of a dot product
s_axis_wgt_tdata[L*S*WB-1:0]  element ``s`` of lane ``l`` at index ``l*S + s``; ``tvalid``,
                              ``tready`` (no ``tlast``: the ``act`` stream frames dot products)
m_axis_acc_tdata[L*ACC-1:0]   lane ``l`` at ``[(l+1)*ACC-1 : l*ACC]``, signed; ``tvalid``,
                              ``tready`` (no ``tlast``: every beat is one whole result)

Beat ``i`` of ``act`` pairs with beat ``i`` of ``wgt``.  When the ``tlast`` act beat is
consumed, one output beat carries, per lane, the sum over the dot product's beats of
``sum_s act[s] * w[l][s]``.

Latency and throughput
----------------------
``3 + ceil(log2(S))`` cycles (binary, ternary) or ``4 + ceil(log2(S))`` (int) from the
edge that consumes the ``tlast`` beat to the edge on which the result can first be taken:
an operand register and a product register (int: the multiplier's operand, product and
output registers), one register per adder-tree level, and the accumulator/output
register.  The latency is the same on every ``target``.  One beat per cycle
sustained while ``m_axis_acc`` is not back-pressured.  Results wait in a two-word
output queue per lane (``m_axis_acc_tdata`` picks the older word): a stalled result
waits while the pipeline runs on; a second result finishing meanwhile takes the other
word, and only then the whole pipeline (and the input ``tready``) holds until the first
is taken.  The pipeline's enable is a flip-flop of its own, a twin of the
queue's ``running`` flag (timing: it fans out to every register, and ``running``'s own
update loop stays off that net); the accumulator's clear and the reset are one
synchronous reset of its flip-flops (no LUT between the carry chain and them), and its
clock enable, that reset and the queue words' enables are flip-flops too, loaded with
what the edge makes of the stage flags.  No input value within ``reduce`` elements can overflow
the accumulator.
"""
from __future__ import annotations

import math

import numpy as np
from myhdl import ConcatSignal, Signal, always, always_comb, always_seq, block, concat, intbv

from blocks.dsp_mult import TARGETS, dsp_mult, uses_mult18, write_sim_files
from blocks.ram import add_blocks
from blocks.spec import BlockDef, Param, check_width, weight_params
from blocks.stream import Axis, clock_reset
from quant import weight_modes

PARAMS = (
    Param("lanes", int, lo=1, hi=64, help="output channels in parallel (L)"),
    Param("simd", int, lo=1, hi=64, help="input elements per beat (S)"),
    *weight_params(),
    Param("abits", int, lo=1, hi=8, help="activation bits (A)"),
    Param("asigned", bool, default=False, help="signed activations (first layer)"),
    Param("reduce", int, lo=1, hi=1 << 20, help="longest dot product in elements (R)"),
    Param("target", str, default="generic", choices=TARGETS,
          help="multiplier mapping: generic (inferred) or the device the design is for"),
)


# ----------------------------------------------------------------------------- numbers

def act_range(abits: int, asigned: bool) -> tuple[int, int]:
    if asigned:
        return -(1 << (abits - 1)), (1 << (abits - 1)) - 1
    return 0, (1 << abits) - 1


def product_range(*, weights, wbits, abits, asigned) -> tuple[int, int]:
    a = act_range(abits, asigned)
    w = weight_modes.value_range(weights, wbits)
    corners = [x * y for x in a for y in w]
    return min(corners), max(corners)


def signed_bits(lo: int, hi: int) -> int:
    """Fewest two's complement bits holding every integer in ``[lo, hi]``."""
    bits = 1
    while lo < -(1 << (bits - 1)) or hi > (1 << (bits - 1)) - 1:
        bits += 1
    return bits


def terms(*, simd, reduce) -> int:
    """Products summed at most: the dot product rounded up to whole beats."""
    return math.ceil(reduce / simd) * simd


def acc_bits(*, simd, weights, wbits, abits, asigned, reduce, **_) -> int:
    """ACC: accumulator bits such that no dot product of ``reduce`` elements overflows."""
    lo, hi = product_range(weights=weights, wbits=wbits, abits=abits, asigned=asigned)
    n = terms(simd=simd, reduce=reduce)
    return signed_bits(n * lo, n * hi)


def tree_levels(simd: int) -> int:
    return math.ceil(math.log2(simd)) if simd > 1 else 0


def latency(simd: int, weights: str = "binary") -> int:
    """Cycles from the ``tlast`` beat to its result; int weights pass a three-register
    multiplier (``dsp_mult``) where the others have an operand and a product register."""
    return (4 if weights == "int" else 3) + tree_levels(simd)


# ------------------------------------------------------------------------ sub-blocks

@block
def operand_register(aclk, enable, d, q):
    """Datapath register (no reset: ``valid`` bits travel beside it)."""

    @always(aclk.posedge)
    def load():
        if enable:
            q.next = d

    return load


@block
def field_register(aclk, enable, bus, q, *, lo, signed):
    """Register field ``bus[lo + len(q) - 1 : lo]`` into ``q``, as a signed value if asked.

    Slices the whole bus with constants rather than taking a MyHDL shadow slice: shadow
    slices of interface attributes are not connected by the Verilog converter.
    """
    hi = lo + len(q)

    @always(aclk.posedge)
    def load_signed():
        if enable:
            q.next = bus[hi:lo].signed()

    @always(aclk.posedge)
    def load():
        if enable:
            q.next = bus[hi:lo]

    return load_signed if signed else load


@block
def field_wire(bus, q, *, lo, signed):
    """``q`` = field ``bus[lo + len(q) - 1 : lo]``, as a signed value if asked (unregistered:
    the multiplier's operand register takes it; constant slices, see field_register)."""
    hi = lo + len(q)

    @always_comb
    def pick_signed():
        q.next = bus[hi:lo].signed()

    @always_comb
    def pick():
        q.next = bus[hi:lo]

    return pick_signed if signed else pick


@block
def multiply(aclk, enable, act, wcode, product, *, weights):
    """Registered ``act * weight``: binary and ternary select +act, -act or 0; int multiplies."""

    @always(aclk.posedge)
    def binary():
        if enable:
            if wcode == 1:
                product.next = act
            else:
                product.next = -act

    @always(aclk.posedge)
    def ternary():
        if enable:
            if wcode == 1:
                product.next = act
            elif wcode == 3:
                product.next = -act
            else:
                product.next = 0

    @always(aclk.posedge)
    def integer():
        if enable:
            product.next = act * wcode.signed()

    return {"binary": binary, "ternary": ternary, "int": integer}[weights]


@block
def add(aclk, enable, a, b, total):
    """One registered adder-tree node."""

    @always(aclk.posedge)
    def node():
        if enable:
            total.next = a + b

    return node


@block
def accumulate(aclk, add, clear, put0, put1, psum, acc, slot0, slot1):
    """Per-lane accumulator: ``acc + psum`` when ``add``; on a dot product's last beat
    the sum goes into ``slot0`` or ``slot1`` (``put0``, ``put1``), the two words of the
    output queue, and ``clear`` restarts ``acc`` from 0.  Clearing instead of selecting
    ``psum`` for a dot product's first beat keeps a multiplexer off the carry chain: the
    clear (with the reset) is the flip-flops' synchronous reset, and ``add``, ``clear``
    and the puts are flip-flops (see ``mac_array``), so that the carry chain ends in a
    flip-flop with nothing before its clock enable and reset but their routes."""

    @always(aclk.posedge)
    def step():
        if clear:
            acc.next = 0
        elif add:
            acc.next = acc + psum

    @always(aclk.posedge)
    def take():
        # No reset: a word is read only after a result was put in it.
        if put0:
            slot0.next = acc + psum
        if put1:
            slot1.next = acc + psum

    return step, take


def signal_range(lo: int, hi: int) -> Signal:
    return Signal(intbv(0, min=lo, max=hi + 1))


def acc_signal(bits: int) -> Signal:
    return Signal(intbv(0, min=-(1 << (bits - 1)), max=1 << (bits - 1)))


@block
def adder_tree(aclk, enable, leaves, root, *, lo, hi):
    """Pairwise registered sums of ``leaves`` (each in ``[lo, hi]``) into ``root``.

    One register level per tree level; an odd leaf waits a cycle in a register so that
    it stays aligned with its level.  Needs at least two leaves.
    """
    nodes = []
    level = list(leaves)
    while len(level) > 1:
        lo, hi = 2 * lo, 2 * hi
        nxt = []
        for i in range(0, len(level) - 1, 2):
            total = root if len(level) == 2 else signal_range(lo, hi)
            nodes.append(add(aclk, enable, level[i], level[i + 1], total))
            nxt.append(total)
        if len(level) % 2:
            held = signal_range(lo, hi)
            nodes.append(operand_register(aclk, enable, level[-1], held))
            nxt.append(held)
        level = nxt
    return nodes


@block
def act_operands(aclk, enable, bus, acts, *, abits, asigned, registered):
    """The activation elements of ``bus`` as ``acts``: registered (binary/ternary: the
    operand register) or wires (int: the multiplier's own register takes them)."""
    parts = []
    for s, a in enumerate(acts):
        if registered:
            parts.append(field_register(aclk, enable, bus, a, lo=s * abits, signed=asigned))
        else:
            parts.append(field_wire(bus, a, lo=s * abits, signed=asigned))
    return parts


@block
def lane_datapath(aclk, enable, wgt, acts, psum, *, lane, weights, wbits, plo, phi,
                  mult_target):
    """One lane's products of ``acts`` with its weights in ``wgt`` and their adder tree
    into ``psum`` (a lone product is ``psum`` itself)."""
    simd = len(acts)
    wb = weight_modes.code_bits(weights, wbits)
    parts, products = [], []
    for s in range(simd):
        idx = lane * simd + s
        product = psum if simd == 1 else signal_range(plo, phi)
        if weights == "int":
            value = signal_range(*weight_modes.value_range(weights, wbits))
            parts.append(field_wire(wgt, value, lo=idx * wb, signed=True))
            parts.append(dsp_mult(aclk, enable, acts[s], value, product, target=mult_target))
        else:
            code = Signal(intbv(0)[wb:])
            parts.append(field_register(aclk, enable, wgt, code, lo=idx * wb, signed=False))
            parts.append(multiply(aclk, enable, acts[s], code, product, weights=weights))
        products.append(product)
    if simd > 1:
        parts.append(adder_tree(aclk, enable, products, psum, lo=plo, hi=phi))
    return parts


@block
def stage_flags(aclk, aresetn, *, enable, act_valid, wgt_valid, tlast, valid, last, fire):
    """A beat's valid and last flags, one bit per pipeline stage (a beat: both inputs
    valid; ``tlast``: the act beat's), and ``fire``: a dot product's last beat leaves the
    pipeline."""
    depth = len(valid)

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        if enable:
            valid.next = concat(valid[depth - 1:0], act_valid and wgt_valid)
            fire.next = valid[depth - 2] and last[depth - 2]

    if depth > 2:
        @always_seq(aclk.posedge, reset=aresetn)
        def last_flags():
            if enable:
                last.next = concat(last[depth - 2:0], tlast)
    else:
        @always_seq(aclk.posedge, reset=aresetn)
        def last_flags():
            if enable:
                last.next = tlast
    return flags, last_flags


@block
def output_queue(aclk, aresetn, *, fire, pop, running, run_next, enable, held, wr, rd,
                 out_valid):
    """The two-word output queue's state: words ``held``, the word written next (``wr``)
    and read next (``rd``), ``running`` (a word is free: the pipeline advances), its next
    value ``run_next`` and its twin ``enable``, the pipeline's enable."""

    @always_seq(aclk.posedge, reset=aresetn)
    def queue():
        if running and fire:
            wr.next = not wr
        if pop:
            rd.next = not rd
        running.next = run_next
        if running and fire and not pop:
            held.next = held + 1
            out_valid.next = 1
        elif pop and not (running and fire):
            held.next = held - 1
            out_valid.next = held == 2

    @always_comb
    def next_running():
        if running and fire and not pop:
            run_next.next = held == 0
        elif pop and not (running and fire):
            run_next.next = 1
        else:
            run_next.next = running

    @always(aclk.posedge)
    def enable_copy():
        # running's twin for the pipeline's enable, which fans out to every register:
        # running's own loop stays short.  Without a reset but set by it (a flip-flop
        # unlike running's, so that synthesis keeps both).
        enable.next = run_next or not aresetn
    return queue, next_running, enable_copy


@block
def accumulator_flags(aclk, aresetn, *, enable, run_next, running, fire, wr, valid, last,
                      add, clear, put0, put1):
    """The accumulators' ``add`` and ``clear`` and the queue words' ``put0``/``put1``, as
    the edge leaves the stage flags: flip-flops of their own, as each fans out to every
    accumulator or queue flip-flop."""
    depth = len(valid)
    valid_out = valid(depth - 1)

    @always(aclk.posedge)
    def flags():
        # enable and valid_out, the reset or enable and fire, running and fire and not wr
        # (and wr), as the edge leaves them.
        if enable:
            add.next = aresetn and run_next and valid[depth - 2]
            clear.next = not aresetn or (run_next and valid[depth - 2] and last[depth - 2])
            put0.next = aresetn and run_next and valid[depth - 2] and last[depth - 2] \
                and (wr == (running and fire))
            put1.next = aresetn and run_next and valid[depth - 2] and last[depth - 2] \
                and (wr != (running and fire))
        else:
            add.next = aresetn and run_next and valid_out
            clear.next = not aresetn or (run_next and fire)
            put0.next = aresetn and run_next and fire and (wr == (running and fire))
            put1.next = aresetn and run_next and fire and (wr != (running and fire))
    return flags


# --------------------------------------------------------------------------- the block

@block
def mac_array(aclk, aresetn, s_axis_act, s_axis_wgt, m_axis_acc, *, lanes, simd, weights,
              wbits=8, abits, asigned=False, reduce, target="generic"):
    """Mixed-precision MAC array; see the module docstring."""
    p = BLOCK.validate(lanes=lanes, simd=simd, weights=weights, wbits=wbits, abits=abits,
                       asigned=asigned, reduce=reduce, target=target)
    wb = weight_modes.code_bits(weights, wbits)
    acc_width = acc_bits(**p)
    check_width("s_axis_act.tdata", s_axis_act.tdata, simd * abits)
    check_width("s_axis_wgt.tdata", s_axis_wgt.tdata, lanes * simd * wb)
    check_width("m_axis_acc.tdata", m_axis_acc.tdata, lanes * acc_width)
    plo, phi = product_range(weights=weights, wbits=wbits, abits=abits, asigned=asigned)
    depth = latency(simd, weights) - 1  # pipeline stages before the accumulator
    mult_target = multiplier_target(**p)

    enable = Signal(bool(1))
    out_valid = Signal(bool(0))
    valid = Signal(intbv(0)[depth:])  # a beat's valid and last flags, one bit per stage
    last = Signal(intbv(0)[depth - 1:])   # the last stage's is fire's
    fire = Signal(bool(0))            # valid_out and the beat's last flag
    # The output queue: two result words per lane, written in turn (``wr``) and read in
    # turn (``rd``).  A result that arrives while the last one waits takes the other word,
    # and the pipeline stops only while both are full, so that its enable (fanning out to
    # every pipeline register) is a flip-flop, not a function of tready.
    running = Signal(bool(1))         # a word is free: the pipeline advances
    run_next = Signal(bool(1))
    held = Signal(intbv(0, min=0, max=3))     # words holding results
    wr, rd = Signal(bool(0)), Signal(bool(0))
    put0, put1, pop = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    add, clear = Signal(bool(0)), Signal(bool(1))

    # binary/ternary: operand registers, then products; int: the multipliers' own
    # registers take the operand fields.  Then the adder tree per lane.
    acts = [signal_range(*act_range(abits, asigned)) for _ in range(simd)]
    parts = [act_operands(aclk, enable, s_axis_act.tdata, acts, abits=abits,
                          asigned=asigned, registered=weights != "int")]
    results = []
    for lane in range(lanes):
        # The tree root (or the lone product) is as wide as the accumulator, so that no
        # narrower signed value meets the accumulator (Verilator WIDTH, sign extension).
        psum = acc_signal(acc_width)
        parts.append(lane_datapath(aclk, enable, s_axis_wgt.tdata, acts, psum, lane=lane,
                                   weights=weights, wbits=wbits, plo=plo, phi=phi,
                                   mult_target=mult_target))
        acc, slot0, slot1 = acc_signal(acc_width), acc_signal(acc_width), acc_signal(acc_width)
        parts.append(accumulate(aclk, add, clear, put0, put1, psum,
                                acc, slot0, slot1))
        results.append((slot0, slot1))
    words0 = ConcatSignal(*reversed([w for w, _ in results])) if lanes > 1 \
        else results[0][0](acc_width, 0)
    words1 = ConcatSignal(*reversed([w for _, w in results])) if lanes > 1 \
        else results[0][1](acc_width, 0)

    @always_comb
    def handshake():
        s_axis_act.tready.next = s_axis_wgt.tvalid and running
        s_axis_wgt.tready.next = s_axis_act.tvalid and running
        pop.next = out_valid and m_axis_acc.tready

    @always_comb
    def outputs():
        m_axis_acc.tvalid.next = out_valid
        if rd:
            m_axis_acc.tdata.next = words1
        else:
            m_axis_acc.tdata.next = words0

    return parts, handshake, outputs, \
        stage_flags(aclk, aresetn, enable=enable, act_valid=s_axis_act.tvalid,
                    wgt_valid=s_axis_wgt.tvalid, tlast=s_axis_act.tlast, valid=valid,
                    last=last, fire=fire), \
        output_queue(aclk, aresetn, fire=fire, pop=pop, running=running, run_next=run_next,
                     enable=enable, held=held, wr=wr, rd=rd, out_valid=out_valid), \
        accumulator_flags(aclk, aresetn, enable=enable, run_next=run_next, running=running,
                          fire=fire, wr=wr, valid=valid, last=last, add=add, clear=clear,
                          put0=put0, put1=put1)



# ---------------------------------------------------------------------- golden model

def golden(acts, wgts, lasts):
    """Per-lane dot products, exactly as the array computes them.

    acts:  ``(beats, S)`` activation values; wgts: ``(beats, L, S)`` weight values;
    lasts: ``(beats,)`` the act ``tlast`` flags.  Returns ``(dot products, L)`` int64:
    one row per ``tlast`` beat (beats after the last ``tlast`` produce nothing yet).
    """
    acts = np.asarray(acts, dtype=np.int64)
    wgts = np.asarray(wgts, dtype=np.int64)
    per_beat = np.einsum("bs,bls->bl", acts, wgts)
    out, acc = [], np.zeros(wgts.shape[1], dtype=np.int64)
    for beat, is_last in zip(per_beat, lasts):
        acc = acc + beat
        if is_last:
            out.append(acc)
            acc = np.zeros_like(acc)
    return np.array(out, dtype=np.int64).reshape(len(out), wgts.shape[1])


# ------------------------------------------------------------------------ estimate

DSP_MIN_PRODUCT_BITS = 9  # Yosys maps $mul to a DSP only for products this wide (DSP_Y_MINWIDTH)


def uses_dsp(*, weights, wbits, abits, asigned, **_) -> bool:
    """Whether synthesis puts the int multipliers in DSPs (narrower ones become LUTs)."""
    lo, hi = product_range(weights=weights, wbits=wbits, abits=abits, asigned=asigned)
    return weights == "int" and signed_bits(lo, hi) >= DSP_MIN_PRODUCT_BITS


def multiplier_target(*, target, **p) -> str:
    """The ``dsp_mult`` target of an int array.  On ECP5 every product goes to a
    ``MULT18X18D`` (an inferred LUT multiplier, even 4 x 5 bits, caps the array near
    120 MHz there); elsewhere the device's DSP where synthesis would use one anyway
    (products of 9 bits or more), inferred LUTs otherwise."""
    if p["weights"] == "int" and uses_mult18(target):
        return target
    return target if uses_dsp(**p) else "generic"


def in_dsps(*, target="generic", **p) -> bool:
    """Whether the array's products sit in DSPs (``MULT18X18D`` or what Yosys infers)."""
    return uses_dsp(**p) or (p["weights"] == "int" and uses_mult18(target))


def write_files(args: dict, out_dir) -> list:
    """The multiplier's simulation model beside the Verilog, when the array has one."""
    if args["weights"] != "int":
        return []
    return write_sim_files(multiplier_target(**args), out_dir)


def tree_level_bits(simd: int, lo: int, hi: int) -> list[int]:
    """Register bits of each adder-tree level of one lane (level 1 first).

    Each level is only as wide as its sum's range: the root is declared as wide as the
    accumulator, but its sign-extension flip-flops duplicate one another and synthesis
    merges them.
    """
    bits, count, leaves = [], simd, 1
    while count > 1:
        count, leaves = (count + 1) // 2, leaves * 2
        bits.append(count * signed_bits(leaves * lo, leaves * hi))
    return bits


def tree_adder_bits(simd: int, lo: int, hi: int) -> int:
    """Adder output bits of one lane's tree (an odd leaf's holding register adds none)."""
    bits, count, leaves = 0, simd, 1
    while count > 1:
        leaves *= 2
        bits += (count // 2) * signed_bits(leaves * lo, leaves * hi)
        count = (count + 1) // 2
    return bits


def estimate(*, lanes, simd, weights, wbits, abits, asigned, reduce, target="generic"):
    """Analytic cost, calibrated against Yosys ``synth_xilinx`` (docs/estimates.md).

    Without DSPs every operand, product and tree register is fabric (an int LUT
    multiplier has a product and an output register); one LUT per adder or negate output
    bit; an int LUT multiplier costs about ``wbits * abits'`` LUTs.  With DSPs (int
    products of 9 bits or more) the multiplier's three registers fold into the DSP, the
    adder tree stays in fabric.  Each lane adds an accumulator and a result register and
    an adder, all ``ACC`` bits wide.  ``target`` changes where the multiplier's registers
    sit, not their number.
    """
    p = dict(weights=weights, wbits=wbits, abits=abits, asigned=asigned)
    wb = weight_modes.code_bits(weights, wbits)
    acc = acc_bits(simd=simd, reduce=reduce, **p)
    plo, phi = product_range(**p)
    pbits = signed_bits(plo, phi)
    tree = tree_level_bits(simd, plo, phi)
    adders = tree_adder_bits(simd, plo, phi)
    # valid per stage, last per stage but the last (fire); fire, out_valid, running and
    # its twin, wr, rd, held (2), and the accumulator's add, clear, put0, put1
    control_ff = 2 * (latency(simd, weights) - 1) + 11
    lane_acc = 3 * acc             # accumulator, two queue words (and the output mux)
    if in_dsps(target=target, **p):
        lut = lanes * (adders + lane_acc) + 8
        ff = lanes * (sum(tree) + lane_acc) + control_ff
    else:
        act_bits = abits if asigned else abits + 1  # unsigned activations widen by a sign bit
        per_product = wbits * act_bits if weights == "int" else pbits
        product_ff = pbits if simd > 1 else acc  # a lone product is accumulator-wide
        if weights == "int":
            product_ff += pbits                   # the multiplier's product register
        lut = lanes * (simd * per_product + adders + lane_acc) + 8
        ff = (simd * abits + lanes * simd * (wb + product_ff)
              + lanes * (sum(tree) + lane_acc) + control_ff)
    return {"lut": lut, "ff": ff, "dsp": lanes * simd if in_dsps(target=target, **p) else 0,
            "bram_bits": 0, "bram": add_blocks(), "latency": latency(simd, weights),
            "cycles": 1, "per": "beat"}


def derived(**p):
    return {"acc_bits": acc_bits(**p), "code_bits": weight_modes.code_bits(p["weights"], p["wbits"]),
            "latency": latency(p["simd"], p["weights"]), "product_range": list(product_range(
                weights=p["weights"], wbits=p["wbits"], abits=p["abits"], asigned=p["asigned"])),
            "multiplier": multiplier_target(**p) if p["weights"] == "int" else None}


def ports(*, lanes, simd, weights, wbits, abits, asigned, reduce, target="generic"):
    wb = weight_modes.code_bits(weights, wbits)
    acc = acc_bits(simd=simd, weights=weights, wbits=wbits, abits=abits, asigned=asigned,
                   reduce=reduce)
    return {**clock_reset(), "s_axis_act": Axis(simd * abits),
            "s_axis_wgt": Axis(lanes * simd * wb, last=False),
            "m_axis_acc": Axis(lanes * acc, last=False)}


BLOCK = BlockDef(
    name="mac_array", build=mac_array, params=PARAMS, ports=ports, golden=golden,
    estimate=estimate, derived=derived, write_files=write_files,
    example=lambda: {"lanes": 8, "simd": 16, "weights": "ternary", "abits": 4, "reduce": 576},
    lint_waivers={},
)
