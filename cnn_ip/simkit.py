"""The simulation kit: the models every MyHDL test bench and benchmark wires to a block.

They work unchanged against a block's MyHDL model and against its Verilog co-simulated
under Icarus (``cnn_ip.cosim.dut``), since both present the same signals.

* :func:`clock_reset_driver`: a free-running ``aclk`` of ``PERIOD`` time units and
  ``RESET_CYCLES`` cycles of synchronous active-low reset.
* :func:`axis_source` drives a list of ``(tdata, tlast)`` beats on a stream, inserting idle
  cycles with probability ``idle`` from a seeded generator;
* :func:`axis_sink` accepts beats, dropping ``tready`` with probability ``stall``, and
  appends :class:`Beat` records (with the cycle they moved on) to a list;
* :func:`axis_monitor` records every violation of the AXI stability rule (a stalled beat
  changes or is withdrawn);
* :func:`axi_memory` is a pipelined AXI4 slave over a ``bytearray``;
* :func:`run_tile` moves one tile through ``tile_dma`` and that memory.
"""
from __future__ import annotations

import random
import tempfile
from collections import deque
from typing import NamedTuple

from myhdl import Signal, StopSimulation, block, delay, instance, now

PERIOD = 10
RESET_CYCLES = 3


class Beat(NamedTuple):
    data: int
    last: bool
    cycle: int


@block
def clock_reset_driver(aclk, aresetn):
    """Free-running clock of ``PERIOD`` and ``RESET_CYCLES`` cycles of reset."""

    @instance
    def clock():
        while True:
            yield delay(PERIOD // 2)
            aclk.next = not aclk

    @instance
    def reset():
        aresetn.next = 0
        for _ in range(RESET_CYCLES):
            yield aclk.posedge
        aresetn.next = 1

    return clock, reset


def last_of(axis):
    """The stream's ``tlast``, or a constant low signal for a stream without one."""
    return axis.tlast if axis.tlast is not None else Signal(bool(0))


@block
def axis_source(aclk, aresetn, axis, beats, *, seed=0, idle=0.0, period=PERIOD, moved=None):
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
def axis_sink(aclk, aresetn, axis, received, *, seed=0, stall=0.0, period=PERIOD):
    """Accept beats from ``axis`` into ``received``; drop ``tready`` with probability ``stall``.

    On a stream without ``tlast`` every beat is recorded with ``last=False``.
    """
    rng = random.Random(seed)
    last = last_of(axis)

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
def axis_monitor(aclk, aresetn, axis, errors, *, label="axis", period=PERIOD):
    """Append a message to ``errors`` whenever a stalled beat changes or is withdrawn."""
    last = last_of(axis)

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


# --- AXI4 memory --------------------------------------------------------------------------

@block
def axi_memory(aclk, aresetn, m_axi, memory: bytearray, *, data_bits: int, latency: int,
               base: int | None = None, pause: float = 0.0, vary: bool = False, seed: int = 0,
               failing=frozenset(), log: list | None = None, writable: bool = True):
    """A pipelined AXI4 slave over ``memory``.

    It accepts an address every cycle, returns the first read beat ``latency`` cycles
    after the AR handshake (bursts back to back, in order, one beat a cycle), takes write
    data at one beat a cycle and answers each write burst ``latency`` cycles after its
    last beat.  Responses are OKAY.  Addresses are taken modulo the memory's size.

    Options for stress tests (the defaults leave the behaviour above unchanged):
    ``base`` puts ``memory[0]`` at that address and makes any read outside the memory an
    assertion error; ``pause`` withholds ``arready`` and each read beat with that
    probability (a beat once shown stays until it moves); ``vary`` draws each burst's
    latency from 1..``latency``; reads of a beat at an address in ``failing`` answer
    SLVERR with zero data; ``log`` receives ``(araddr, beats)`` for every AR;
    ``writable=False`` makes any write an assertion error.  ``seed`` seeds the draws.
    """
    lanes = data_bits // 8
    size = len(memory)
    rng = random.Random(seed)
    log = [] if log is None else log      # MyHDL resolves every name the generators use

    def word(address):
        if base is None:
            address %= size
        else:
            address -= base
            assert 0 <= address <= size - lanes, f"read outside the memory: {address + base:#x}"
        return int.from_bytes(memory[address:address + lanes], "little")

    def draw() -> bool:
        """True when this cycle's handshake offer is withheld."""
        return pause > 0 and rng.random() < pause

    @instance
    def read_side():
        pending = deque()  # (first cycle the burst may start, address, beats)
        active, beat = None, 0
        m_axi.arready.next = 1
        while True:
            yield aclk.posedge
            cycle = now() // PERIOD
            if not aresetn:
                continue
            holding = m_axi.rvalid and not m_axi.rready
            if m_axi.rvalid and m_axi.rready:
                beat += 1
                if beat == active[2]:
                    active = None
            if m_axi.arvalid and m_axi.arready:
                address, beats = int(m_axi.araddr), int(m_axi.arlen) + 1
                log.append((address, beats))
                wait = rng.randint(1, latency) if vary else latency
                pending.append((cycle + wait, address, beats))
            m_axi.arready.next = not draw()
            if active is None and pending and pending[0][0] <= cycle + 1:
                active, beat = pending.popleft(), 0
            if active is not None and (holding or not draw()):
                address = active[1] + beat * lanes
                bad = address in failing
                m_axi.rvalid.next = 1
                m_axi.rdata.next = 0 if bad else word(address)
                m_axi.rlast.next = beat == active[2] - 1
                m_axi.rresp.next = 2 if bad else 0
            else:
                m_axi.rvalid.next = 0

    @instance
    def write_side():
        bursts = deque()  # (address, beats) from AW
        responses = deque()  # cycle each B response is due
        beat = 0
        m_axi.awready.next = 1
        m_axi.wready.next = 1
        while True:
            yield aclk.posedge
            cycle = now() // PERIOD
            if not aresetn:
                continue
            assert writable or not (m_axi.awvalid or m_axi.wvalid), "write to a read-only memory"
            if m_axi.bvalid and m_axi.bready:
                responses.popleft()
            if m_axi.awvalid and m_axi.awready:
                bursts.append((int(m_axi.awaddr), int(m_axi.awlen) + 1))
            if m_axi.wvalid and m_axi.wready:
                assert bursts, "W beat before its AW"
                address, beats = bursts[0]
                at = (address + beat * lanes) % size
                memory[at:at + lanes] = int(m_axi.wdata).to_bytes(lanes, "little")
                beat += 1
                assert bool(m_axi.wlast) == (beat == beats), "wlast misplaced"
                if beat == beats:
                    bursts.popleft()
                    beat = 0
                    responses.append(cycle + latency)
            m_axi.bvalid.next = bool(responses) and responses[0] <= cycle + 1
            m_axi.bresp.next = 0

    return read_side, write_side


TILE_CONFIG = {"data_bits": 64, "addr_bits": 32, "max_burst": 16}


def run_tile(*, outstanding: int, latency: int, direction: str, hdl: str = "myhdl",
             rows: int = 64, row_bytes: int = 256, base: int = 0x1000,
             stride: int | None = None, memory: bytearray | None = None,
             data: list[int] | None = None, config: dict = TILE_CONFIG, workdir=None) -> dict:
    """Move one tile through ``tile_dma`` and :func:`axi_memory`; the streams never stall.

    Returns ``{"cycles", "bytes", "beats": [(tdata, tlast)], "memory", "error",
    "rd_bytes", "wr_bytes"}`` (and ``"wrdone"`` for a write).  ``cycles`` counts from the
    command handshake to the ``tlast`` read beat (read) or to the ``wrdone`` beat (write).
    ``data`` gives the write beats (default: a counter).  ``workdir`` receives the Verilog
    and simulator files for ``hdl="icarus"``.
    """
    from blocks.tile_dma import BLOCK, encode_command
    from cnn_ip.cosim import dut  # cosim builds on this kit

    params = BLOCK.validate(**config, outstanding=outstanding)
    lanes = params["data_bits"] // 8
    stride = row_bytes if stride is None else stride
    memory = memory if memory is not None else bytearray(
        (i * 7 + 3) % 256 for i in range(1 << 17))
    beats_total = rows * row_bytes // lanes
    data = data if data is not None else [i * 0x0101_0101 % (1 << (8 * lanes))
                                          for i in range(beats_total)]
    ports = BLOCK.ports(**params)
    aclk, aresetn = ports["aclk"], ports["aresetn"]
    command = encode_command(base=base, stride=stride, row_bytes=row_bytes, rows=rows)
    result = {"beats": [], "bytes": rows * row_bytes, "memory": memory}
    if hdl == "icarus" and workdir is None:
        workdir = tempfile.mkdtemp(prefix="tile_dma-bench-")

    @block
    def bench():
        parts = [clock_reset_driver(aclk, aresetn),
                 dut(BLOCK, ports, hdl=hdl, workdir=workdir, **params),
                 axi_memory(aclk, aresetn, ports["m_axi"], memory,
                            data_bits=params["data_bits"], latency=latency)]
        cmd = ports["s_axis_rdcmd"] if direction == "read" else ports["s_axis_wrcmd"]
        rd, wr, done = ports["m_axis_rd"], ports["s_axis_wr"], ports["m_axis_wrdone"]

        @instance
        def drive():
            started, sent = None, 0
            rd.tready.next = 1
            done.tready.next = 1
            while True:
                yield aclk.posedge
                cycle = now() // PERIOD
                if not aresetn:
                    continue
                if cmd.tvalid and cmd.tready:
                    started = cycle
                    cmd.tvalid.next = 0
                elif started is None:
                    cmd.tdata.next = command
                    cmd.tvalid.next = 1
                if wr.tvalid and wr.tready:
                    sent += 1
                if direction == "write" and sent < len(data):
                    wr.tdata.next = data[sent]
                    wr.tvalid.next = 1
                else:
                    wr.tvalid.next = 0
                finished = False
                if rd.tvalid and rd.tready:
                    result["beats"].append((int(rd.tdata), bool(rd.tlast)))
                    finished = bool(rd.tlast)
                if done.tvalid and done.tready:
                    result["wrdone"] = int(done.tdata)
                    finished = True
                if finished:
                    # Read the outputs now: MyHDL clears signals when the simulation ends.
                    result["cycles"] = cycle - started
                    result["error"] = bool(ports["error"])
                    result["rd_bytes"] = int(ports["rd_bytes"])
                    result["wr_bytes"] = int(ports["wr_bytes"])
                    raise StopSimulation

        return parts, drive

    bench().run_sim(quiet=True)
    return result
