"""``axis_register``: a full-throughput AXI4-Stream register slice (skid buffer).

Cuts every combinational path between its two sides: ``m_axis_out`` is driven from
registers and ``s_axis_in.tready`` is a register, so chained blocks meet timing.

Parameters
----------
bits : int, 1..4096
    Width of ``tdata``.

Ports
-----
aclk, aresetn        clock; synchronous active-low reset
s_axis_in_t*         input stream: ``tdata[bits-1:0]``, ``tvalid``, ``tready``, ``tlast``
m_axis_out_t*        output stream, same layout

Latency and throughput
----------------------
One cycle from an input beat to the output.  One beat per cycle sustained; when the output
stalls, one beat waits in the skid register and ``s_axis_in.tready`` falls a cycle later.
"""
from __future__ import annotations

from myhdl import Signal, always_comb, always_seq, block, intbv

from blocks.ram import add_blocks
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset

PARAMS = (Param("bits", int, lo=1, hi=4096, help="tdata width"),)


@block
def axis_register(aclk, aresetn, s_axis_in, m_axis_out, *, bits):
    """Register slice; see the module docstring."""
    BLOCK.validate(bits=bits)
    check_width("s_axis_in.tdata", s_axis_in.tdata, bits)
    check_width("m_axis_out.tdata", m_axis_out.tdata, bits)

    out_valid = Signal(bool(0))
    out_data = Signal(intbv(0)[bits:])
    out_last = Signal(bool(0))
    skid_valid = Signal(bool(0))
    skid_data = Signal(intbv(0)[bits:])
    skid_last = Signal(bool(0))

    @always_seq(aclk.posedge, reset=aresetn)
    def registers():
        if not out_valid or m_axis_out.tready:
            if skid_valid:
                out_data.next = skid_data
                out_last.next = skid_last
                out_valid.next = 1
                skid_valid.next = 0
            elif s_axis_in.tvalid:
                out_data.next = s_axis_in.tdata
                out_last.next = s_axis_in.tlast
                out_valid.next = 1
            else:
                out_valid.next = 0
        elif s_axis_in.tvalid and not skid_valid:
            skid_data.next = s_axis_in.tdata
            skid_last.next = s_axis_in.tlast
            skid_valid.next = 1

    @always_comb
    def outputs():
        s_axis_in.tready.next = not skid_valid
        m_axis_out.tvalid.next = out_valid
        m_axis_out.tdata.next = out_data
        m_axis_out.tlast.next = out_last

    return registers, outputs


def golden(beats):
    """The register slice passes beats through unchanged."""
    return list(beats)


def estimate(*, bits):
    """Cost: the skid multiplexer and the handshake in LUTs; the output and skid registers
    with their valid and last bits in FFs (against synthesis: ``docs/estimates.md``)."""
    return {"lut": bits + 8, "ff": 2 * bits + 4, "dsp": 0, "bram_bits": 0,
            "bram": add_blocks(), "latency": 1, "cycles": 1, "per": "beat"}


def ports(*, bits):
    return {**clock_reset(), "s_axis_in": Axis(bits), "m_axis_out": Axis(bits)}


BLOCK = BlockDef(name="axis_register", build=axis_register, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, example=lambda: {"bits": 64})
