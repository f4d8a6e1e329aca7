"""AXI4-Stream interface (DESIGN.md, Contract 1) and the simulation helpers every test uses.

``Axis(bits)`` bundles ``tdata``, ``tvalid``, ``tready`` and ``tlast``.  Passed to a
``@block`` function as argument ``s_axis_act`` it converts to the Verilog ports
``s_axis_act_tdata``, ``s_axis_act_tvalid``, ... (MyHDL flattens interface attributes).

A beat moves on a rising edge of ``aclk`` where ``tvalid and tready``.  Once ``tvalid``
is high it stays high, with ``tdata``/``tlast`` stable, until the beat moves.

Simulation helpers (MyHDL test benches; they work unchanged against a co-simulated DUT):

* :func:`axis_source` drives a list of ``(tdata, tlast)`` beats, inserting idle cycles
  with probability ``idle`` from a seeded generator;
* :func:`axis_sink` accepts beats, dropping ``tready`` with probability ``stall``, and
  appends :class:`Beat` records (with the cycle they moved on) to a list;
* :func:`axis_monitor` records every violation of the stability rule above.

Lanes pack little-endian: lane ``i`` of width ``B`` is ``tdata[(i+1)*B-1 : i*B]``;
:func:`pack` and :func:`unpack` do that for golden models and test benches.
"""
from __future__ import annotations

import random
from typing import NamedTuple

from myhdl import ResetSignal, Signal, block, instance, intbv, now


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


class Beat(NamedTuple):
    data: int
    last: bool
    cycle: int


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


@block
def axis_source(aclk, aresetn, axis, beats, *, seed=0, idle=0.0, period=10, moved=None):
    """Drive ``beats`` (``(tdata, tlast)`` pairs) on ``axis``; idle with probability ``idle``.

    ``tlast`` is ignored for a stream without one.  If ``moved`` is a list, a
    :class:`Beat` is appended to it for every beat as it moves (with its cycle).
    """
    rng = random.Random(seed)
    has_last = axis.tlast is not None
    moved = [] if moved is None else moved  # MyHDL resolves `moved.append` at elaboration

    @instance
    def drive():
        sent = 0
        axis.tvalid.next = 0
        while True:
            yield aclk.posedge
            if not aresetn:
                axis.tvalid.next = 0
                continue
            if axis.tvalid:
                if not axis.tready:
                    continue  # AXI: hold the beat until it moves
                if moved is not None:
                    moved.append(Beat(beats[sent][0], bool(beats[sent][1]), now() // period))
                sent += 1
            if sent < len(beats) and rng.random() >= idle:
                data, last = beats[sent]
                axis.tdata.next = data
                if has_last:
                    axis.tlast.next = bool(last)
                axis.tvalid.next = 1
            else:
                axis.tvalid.next = 0

    return drive


@block
def axis_sink(aclk, aresetn, axis, received, *, seed=0, stall=0.0, period=10):
    """Accept beats from ``axis`` into ``received``; drop ``tready`` with probability ``stall``.

    On a stream without ``tlast`` every beat is recorded with ``last=False``.
    """
    rng = random.Random(seed)
    last = axis.tlast if axis.tlast is not None else Signal(bool(0))

    @instance
    def accept():
        axis.tready.next = 0
        while True:
            yield aclk.posedge
            if not aresetn:
                axis.tready.next = 0
                continue
            if axis.tvalid and axis.tready:
                received.append(Beat(int(axis.tdata), bool(last), now() // period))
            axis.tready.next = rng.random() >= stall

    return accept


@block
def axis_monitor(aclk, aresetn, axis, errors, *, label="axis", period=10):
    """Append a message to ``errors`` whenever a stalled beat changes or is withdrawn."""
    last = axis.tlast if axis.tlast is not None else Signal(bool(0))

    @instance
    def watch():
        held = None
        while True:
            yield aclk.posedge
            if not aresetn:
                held = None
                continue
            if held is not None:
                now_beat = (bool(axis.tvalid), int(axis.tdata), bool(last))
                if now_beat != held:
                    errors.append(f"{label}: stalled beat {held} became {now_beat} "
                                  f"at cycle {now() // period}")
            stalled = axis.tvalid and not axis.tready
            held = (True, int(axis.tdata), bool(last)) if stalled else None

    return watch
