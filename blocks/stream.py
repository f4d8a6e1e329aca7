"""AXI4-Stream interface (Contract 1 in ``docs/conventions.md``) and lane packing.

``Axis(bits)`` bundles ``tdata``, ``tvalid``, ``tready`` and ``tlast``.  Passed to a
``@block`` function as argument ``s_axis_act`` it converts to the Verilog ports
``s_axis_act_tdata``, ``s_axis_act_tvalid``, ... (MyHDL flattens interface attributes).

A beat moves on a rising edge of ``aclk`` where ``tvalid and tready``.  Once ``tvalid``
is high it stays high, with ``tdata``/``tlast`` stable, until the beat moves.

The simulation models that drive and watch streams are in ``cnn_ip.simkit``.

Lanes pack little-endian: lane ``i`` of width ``B`` is ``tdata[(i+1)*B-1 : i*B]``;
:func:`pack` and :func:`unpack` do that for golden models and test benches.
"""
from __future__ import annotations

from myhdl import ResetSignal, Signal, intbv


class Axis:
    """An AXI4-Stream interface with ``bits``-wide ``tdata``.

    ``last=False`` leaves out ``tlast`` (``self.tlast is None``) for streams whose framing
    does not matter, so the converted module has no unused port.
    """

    def __init__(self, bits: int, *, last: bool = True):
        if not isinstance(bits, int) or bits < 1:
            raise ValueError(f"bits: must be a positive integer, got {bits!r}")
        self.bits = bits
        self.tdata = Signal(intbv(0)[bits:])
        self.tvalid = Signal(bool(0))
        self.tready = Signal(bool(0))
        self.tlast = Signal(bool(0)) if last else None


def clock_reset() -> dict:
    """Fresh ``aclk`` and ``aresetn`` (synchronous, active low), for ``BlockDef.ports``."""
    return {"aclk": Signal(bool(0)), "aresetn": ResetSignal(0, active=0, isasync=False)}


def pack(values, bits: int) -> int:
    """Pack ``values`` (lane 0 first) into one integer, ``bits`` per lane, two's complement."""
    word = 0
    mask = (1 << bits) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, bits: int, lanes: int, *, signed: bool = False) -> list[int]:
    """Split ``word`` into ``lanes`` fields of ``bits`` (lane 0 = least significant)."""
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (int(word) >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out
