"""``dsp_mult``: the project's one multiplier primitive, pipelined so that it maps to a DSP.

A primitive that blocks instantiate (like ``rom``; no ``BlockDef``, no CLI of its own):
``p`` takes ``a * b`` three enabled clock edges after ``a`` and ``b`` were presented.

* ``target="generic"`` (and any device that is not ECP5): an inferred multiplier behind an
  operand register, with a product and an output register after it.  Yosys folds these
  into the DSP's own registers where the device has them (Xilinx DSP48: A/B, M, P).
* ``target`` an ECP5 device (``ecp5-25f``, ``ecp5-85f``): an instantiated ``MULT18X18D``
  with its input, pipeline and output registers clocked (``REG_INPUTA_CLK``,
  ``REG_INPUTB_CLK``, ``REG_PIPELINE_CLK``, ``REG_OUTPUT_CLK`` = ``"CLK0"``; ``CE0`` is
  ``ce``, ``RST0`` tied low, ``RESETMODE "SYNC"``, ``GSR "DISABLED"``).  Yosys'
  ``synth_ecp5`` never packs registers into an inferred multiplier, which caps an
  inferred product near 146 MHz; with the registers inside the DSP it is no longer the
  critical path (see ``docs/fpga.md`` for measured figures).

Both paths have the same latency, so one golden timing serves every target.  The ECP5
path needs a simulation model of ``MULT18X18D``, which the open tools do not ship: the
project's own, ``MULT18X18D_sim.v`` (:data:`SIM_MODEL`), is written beside the generated
Verilog by :func:`write_sim_files`.  Simulators and lint read it; ``cnn-ip synth`` leaves
every ``*_sim.v`` file out (Yosys knows the primitive as a black box).

Ports
-----
clk          clock
ce           clock enable of all three register stages (a stall holds the pipeline)
a, b         operands: ``intbv`` signals, signed when their ``min`` is negative; at most
             18 bits each (the DSP's operand width)
p            the product, an ``intbv`` signal whose range holds every ``a * b`` (checked);
             registered

Latency :data:`LATENCY` (3) enabled edges; one product per cycle.  The registers have no
reset (a caller's ``valid`` flags travel beside them); before the first three enabled
edges ``p`` is 0 in MyHDL and unknown in Verilog.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from myhdl import Signal, always, block, intbv

from fpga.devices import DEVICES

LATENCY = 3
MAX_BITS = 18
PRODUCT_BITS = 36
SIM_MODEL = "MULT18X18D_sim.v"
TARGETS = ("generic", *DEVICES)


def check_target(target) -> str:
    if target not in TARGETS:
        raise ValueError(f"target: must be one of {', '.join(TARGETS)}, got {target!r}")
    return target


def is_ecp5(target: str) -> bool:
    """Whether ``target`` (checked) is an ECP5 device: the designs built for it
    instantiate ECP5 cells (``MULT18X18D``, ``DP16KD``, slice muxes)."""
    return check_target(target) != "generic" and DEVICES[target].family == "ecp5"


def uses_mult18(target: str) -> bool:
    """Whether ``target`` gets the instantiated ECP5 ``MULT18X18D``."""
    return is_ecp5(target)


def sim_files(target: str) -> list[str]:
    """Simulation models the Verilog for ``target`` needs beside it (file names)."""
    return [SIM_MODEL] if uses_mult18(target) else []


def write_sim_files(target: str, out_dir) -> list[str]:
    """Copy the simulation models for ``target`` into ``out_dir``; return their names.

    A block whose Verilog contains ``dsp_mult`` calls this from its ``write_files``.
    """
    names = sim_files(target)
    for name in names:
        shutil.copyfile(Path(__file__).with_name(name), Path(out_dir) / name)
    return names


def signal_bounds(sig) -> tuple[int, int]:
    """Smallest and largest value of an ``intbv`` signal."""
    if sig.min is None or sig.max is None:
        return 0, (1 << len(sig)) - 1
    return sig.min, sig.max - 1


def product_bounds(a, b) -> tuple[int, int]:
    """Smallest and largest ``a * b`` over the operand signals' ranges."""
    corners = [x * y for x in signal_bounds(a) for y in signal_bounds(b)]
    return min(corners), max(corners)


def check_operands(a, b, p) -> None:
    for label, sig in (("a", a), ("b", b)):
        if not isinstance(sig.val, intbv):
            raise ValueError(f"{label}: must be an intbv signal")
        if len(sig) > MAX_BITS:
            raise ValueError(f"{label}: at most {MAX_BITS} bits, got {len(sig)}")
    lo, hi = product_bounds(a, b)
    plo, phi = signal_bounds(p)
    if not isinstance(p.val, intbv) or plo > lo or phi < hi:
        raise ValueError(f"p: must hold every product in {lo}..{hi}")


def mult18_connections(a, b, p) -> str:
    """The ``MULT18X18D`` port list for operands ``$a``, ``$b`` and product ``$p``.

    Operands are extended to 18 bits by their own sign (or with zeros), ``SIGNEDA`` and
    ``SIGNEDB`` say which; product bits above ``p`` and the unused outputs are left
    open (explicitly), unused inputs unconnected.
    """
    pins = []
    for port, sig, name in (("A", a, "a"), ("B", b, "b")):
        width, signed = len(sig), signal_bounds(sig)[0] < 0
        for i in range(MAX_BITS):
            if i < width:
                pins.append(f".{port}{i}(${name}[{i}])")
            else:
                pins.append(f".{port}{i}(" + (f"${name}[{width - 1}])" if signed else "1'b0)"))
        pins.append(f".SIGNED{port}(1'b{int(signed)})")
    # The C input, the shift inputs and clocks 1..3 stay unconnected, as in Yosys' own
    # mapping: nextpnr-ecp5 fails to route constants tied to them.
    pins += [".SOURCEA(1'b0)", ".SOURCEB(1'b0)", ".CLK0($clk)", ".CE0($ce)", ".RST0(1'b0)"]
    width = len(p)
    pins += [f".P{i}($p[{i}])" if i < width else f".P{i}()" for i in range(PRODUCT_BITS)]
    pins += [f".{x}{i}()" for x in ("SROA", "SROB", "ROA", "ROB", "ROC")
             for i in range(MAX_BITS)]
    pins.append(".SIGNEDP()")
    return ",\n    ".join(pins)


MULT18_TEMPLATE = """
// dsp_mult: MULT18X18D with input, pipeline and output registers (product latency 3).
// Product bits above $p and the shift/cascade outputs are not used.
// The C, shift-chain and CLK1..3 inputs are not connected.
/* verilator lint_off PINCONNECTEMPTY */
/* verilator lint_off PINMISSING */
MULT18X18D #(
    .REG_INPUTA_CLK("CLK0"), .REG_INPUTA_CE("CE0"), .REG_INPUTA_RST("RST0"),
    .REG_INPUTB_CLK("CLK0"), .REG_INPUTB_CE("CE0"), .REG_INPUTB_RST("RST0"),
    .REG_PIPELINE_CLK("CLK0"), .REG_PIPELINE_CE("CE0"), .REG_PIPELINE_RST("RST0"),
    .REG_OUTPUT_CLK("CLK0"), .REG_OUTPUT_CE("CE0"), .REG_OUTPUT_RST("RST0"),
    .RESETMODE("SYNC"), .GSR("DISABLED")
) ${p}_mult18 (
    @PINS@
);
/* verilator lint_on PINMISSING */
/* verilator lint_on PINCONNECTEMPTY */
"""


@block
def dsp_mult(clk, ce, a, b, p, *, target="generic"):
    """``p = a * b``, three enabled edges late; see the module docstring."""
    check_target(target)
    check_operands(a, b, p)
    lo, hi = product_bounds(a, b)
    a_q = Signal(intbv(0, min=min(0, signal_bounds(a)[0]), max=signal_bounds(a)[1] + 1))
    b_q = Signal(intbv(0, min=min(0, signal_bounds(b)[0]), max=signal_bounds(b)[1] + 1))
    m_q = Signal(intbv(0, min=min(0, lo), max=hi + 1))

    @always(clk.posedge)
    def pipeline():
        if ce:
            a_q.next = a
            b_q.next = b
            m_q.next = a_q * b_q
            p.next = m_q

    if uses_mult18(target):
        # The MyHDL model above stays the simulation; conversion emits the instance.
        p.driven = "wire"
        clk.read = ce.read = a.read = b.read = True
        # The port list goes into the template itself: MyHDL substitutes the $-names once.
        dsp_mult.verilog_code = MULT18_TEMPLATE.replace("@PINS@", mult18_connections(a, b, p))
    elif hasattr(dsp_mult, "verilog_code"):
        # The attribute outlives the call that set it: an inferred instance must not see it.
        del dsp_mult.verilog_code
    return pipeline


def golden(a, b):
    """The products, as int64 (numpy arrays or scalars)."""
    import numpy as np

    return np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
