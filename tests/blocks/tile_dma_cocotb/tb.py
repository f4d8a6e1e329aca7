"""Test bench for the converted ``tile_dma`` under cocotb: AXI memory, streams, monitor.

The memory is cocotbext-axi's ``AxiRam`` attached by the ``m_axi`` prefix; the streams are
``AxiStreamSource``/``AxiStreamSink``.  Every stream and every AXI channel of the memory
gets a random pause generator, so valid and ready stall at random on all of them.

Error responses: ``AxiRam`` answers SLVERR when its storage raises, so
:meth:`TB.fail_addresses` wraps the RAM's read and write hooks to raise for beats in a
given address range (reads then return zero data, writes are not stored).

:class:`ProtocolMonitor` samples the AXI channels and the output streams every cycle and
records every rule the DMA breaks.
"""
from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import (AxiBus, AxiRam, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)

PAGE = 4096
MEMORY_BYTES = 1 << 16  # the RAM answers for addresses modulo this size


def params_from_env() -> dict:
    return json.loads(os.environ["TILE_DMA_PARAMS"])


def random_pauses(rng: random.Random, probability: float):
    """An endless pause pattern: True (pause this cycle) with ``probability``."""
    while True:
        yield rng.random() < probability


def value(signal) -> int:
    return int(signal.value)


class ProtocolMonitor:
    """Checks the AXI rules the DMA must keep, sampling on every rising edge.

    * address channels: INCR, full-width beats, bus-aligned, at most ``max_burst`` beats,
      no burst crosses a 4 KB boundary; at most ``outstanding`` read bursts in flight;
    * W: ``wlast`` exactly on the last beat of each AW burst, all strobes set;
    * every master-driven valid channel (AR, AW, W, ``m_axis_rd``, ``m_axis_wrdone``):
      once valid, it stays valid with a stable payload until ready.
    """

    def __init__(self, dut, params: dict):
        self.dut = dut
        self.lanes = params["data_bits"] // 8
        self.max_burst = params["max_burst"]
        self.outstanding = params["outstanding"]
        self.errors: list[str] = []
        self.ar_bursts: list[tuple[int, int]] = []
        self.aw_bursts: list[tuple[int, int]] = []
        self.wlast: list[bool] = []
        self.in_flight = 0
        d = dut
        self.channels = {
            "AR": (d.m_axi_arvalid, d.m_axi_arready,
                   [d.m_axi_araddr, d.m_axi_arlen, d.m_axi_arsize, d.m_axi_arburst, d.m_axi_arid]),
            "AW": (d.m_axi_awvalid, d.m_axi_awready,
                   [d.m_axi_awaddr, d.m_axi_awlen, d.m_axi_awsize, d.m_axi_awburst, d.m_axi_awid]),
            "W": (d.m_axi_wvalid, d.m_axi_wready, [d.m_axi_wdata, d.m_axi_wlast, d.m_axi_wstrb]),
            "m_axis_rd": (d.m_axis_rd_tvalid, d.m_axis_rd_tready,
                          [d.m_axis_rd_tdata, d.m_axis_rd_tlast]),
            "m_axis_wrdone": (d.m_axis_wrdone_tvalid, d.m_axis_wrdone_tready,
                              [d.m_axis_wrdone_tdata, d.m_axis_wrdone_tlast]),
        }
        self.held = {name: None for name in self.channels}
        self.cycle = 0

    def error(self, message: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {message}")

    def check_burst(self, kind: str, addr: int, length: int, size: int, burst: int, ident: int):
        beats = length + 1
        if burst != 1:
            self.error(f"{kind} burst type {burst}, expected INCR (1)")
        if 1 << size != self.lanes:
            self.error(f"{kind}size {size} is not the full bus width")
        if ident != 0:
            self.error(f"{kind}id {ident}, expected 0")
        if addr % self.lanes:
            self.error(f"{kind}addr 0x{addr:x} is not bus-aligned")
        if beats > self.max_burst:
            self.error(f"{kind}len {length}: {beats} beats exceed max_burst {self.max_burst}")
        if addr % PAGE + beats * self.lanes > PAGE:
            self.error(f"{kind} burst at 0x{addr:x} of {beats} beats crosses 4 KB")

    async def run(self):
        d = self.dut
        while True:
            await RisingEdge(d.aclk)
            self.cycle += 1
            if not value(d.aresetn):
                continue
            fired = {}
            for name, (valid, ready, payload) in self.channels.items():
                v, r = value(valid), value(ready)
                now = tuple(value(p) for p in payload) if v else None
                held = self.held[name]
                if held is not None and now != held:
                    self.error(f"{name}: stalled beat {held} changed to {now}")
                self.held[name] = now if v and not r else None
                fired[name] = now if v and r else None
            if fired["AR"] is not None:
                addr, length, size, burst, ident = fired["AR"]
                self.check_burst("ar", addr, length, size, burst, ident)
                self.ar_bursts.append((addr, length + 1))
                self.in_flight += 1
                if self.in_flight > self.outstanding:
                    self.error(f"{self.in_flight} read bursts in flight > {self.outstanding}")
            if fired["AW"] is not None:
                addr, length, size, burst, ident = fired["AW"]
                self.check_burst("aw", addr, length, size, burst, ident)
                self.aw_bursts.append((addr, length + 1))
            if fired["W"] is not None:
                _, last, strobes = fired["W"]
                self.wlast.append(bool(last))
                if strobes != (1 << self.lanes) - 1:
                    self.error(f"wstrb 0x{strobes:x} is not all ones")
            if value(d.m_axi_rvalid) and value(d.m_axi_rready) and value(d.m_axi_rlast):
                self.in_flight -= 1

    def verdict(self) -> list[str]:
        """All violations, including wlast placement against the AW bursts seen."""
        errors = list(self.errors)
        expected = [i == beats - 1 for _, beats in self.aw_bursts for i in range(beats)]
        if self.wlast != expected[:len(self.wlast)] or len(self.wlast) != len(expected):
            errors.append(f"wlast placement: {len(self.wlast)} W beats do not match the "
                          f"AW bursts ({len(expected)} beats)")
        return errors


class TB:
    """Clock, reset, the AXI RAM, the four stream ports and the protocol monitor."""

    def __init__(self, dut, *, seed: int, pause: float = 0.3):
        self.dut = dut
        self.params = params_from_env()
        self.lanes = self.params["data_bits"] // 8
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())

        clk, rst = dut.aclk, dut.aresetn
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), clk, rst, reset_active_level=False,
                          size=MEMORY_BYTES)
        self.rdcmd = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_rdcmd"), clk, rst,
                                     reset_active_level=False)
        self.wrcmd = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_wrcmd"), clk, rst,
                                     reset_active_level=False)
        self.wr = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_wr"), clk, rst,
                                  reset_active_level=False)
        self.rd = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_rd"), clk, rst,
                                reset_active_level=False)
        self.wrdone = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_wrdone"), clk, rst,
                                    reset_active_level=False)
        for port in (self.ram.write_if, self.ram.read_if, self.rdcmd, self.wrcmd, self.wr,
                     self.rd, self.wrdone):
            port.log.setLevel(logging.WARNING)
        self.set_pauses(pause)
        self.monitor = ProtocolMonitor(dut, self.params)
        cocotb.start_soon(self.monitor.run())
        if os.environ.get("TILE_DMA_TRACE"):
            cocotb.start_soon(self.trace(int(os.environ["TILE_DMA_TRACE"])))

    async def trace(self, cycles: int) -> None:
        """Print every AXI and stream handshake for the first ``cycles`` (debugging aid)."""
        d = self.dut
        pairs = {"rdcmd": "s_axis_rdcmd_t", "rd": "m_axis_rd_t", "wrcmd": "s_axis_wrcmd_t",
                 "wr": "s_axis_wr_t", "wrdone": "m_axis_wrdone_t", "AR": "m_axi_ar",
                 "R": "m_axi_r", "AW": "m_axi_aw", "W": "m_axi_w", "B": "m_axi_b"}
        for cycle in range(cycles):
            await RisingEdge(d.aclk)
            if str(d.aresetn.value) != "1":
                continue
            moved = [name for name, p in pairs.items()
                     if value(getattr(d, p + "valid")) and value(getattr(d, p + "ready"))]
            if moved:
                print(f"cycle {cycle}: {' '.join(moved)}")

    def set_pauses(self, probability: float) -> None:
        """Random stalls on every stream and every AXI channel of the memory."""
        ports = [self.rdcmd, self.wrcmd, self.wr, self.rd, self.wrdone,
                 self.ram.read_if.ar_channel, self.ram.read_if.r_channel,
                 self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                 self.ram.write_if.b_channel]
        for port in ports:
            if probability:
                port.set_pause_generator(random_pauses(random.Random(self.rng.random()),
                                                       probability))
            else:
                # Clearing the generator leaves the last value standing: unpause too.
                port.clear_pause_generator()
                port.pause = False

    async def reset(self) -> None:
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 5)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    def fail_addresses(self, lo: int, hi: int) -> None:
        """Make the RAM answer SLVERR for beats whose address is in ``[lo, hi)``."""
        read, write = self.ram.read_if._read, self.ram.write_if._write

        async def failing_read(address, length):
            if lo <= address % MEMORY_BYTES < hi:
                raise IOError(f"injected read error at 0x{address:x}")
            return await read(address, length)

        async def failing_write(address, data):
            if lo <= address % MEMORY_BYTES < hi:
                raise IOError(f"injected write error at 0x{address:x}")
            await write(address, data)

        self.ram.read_if._read = failing_read
        self.ram.write_if._write = failing_write

    def snapshot(self) -> str:
        """Handshake signals and a few internal registers, for a timeout message."""
        names = ["s_axis_rdcmd_tvalid", "s_axis_rdcmd_tready", "m_axis_rd_tvalid",
                 "m_axis_rd_tready", "s_axis_wrcmd_tvalid", "s_axis_wrcmd_tready",
                 "s_axis_wr_tvalid", "s_axis_wr_tready", "m_axis_wrdone_tvalid",
                 "m_axi_arvalid", "m_axi_arready", "m_axi_rvalid", "m_axi_awvalid",
                 "m_axi_awready", "m_axi_wvalid", "m_axi_wready", "m_axi_bvalid",
                 "m_axi_bready", "read_engine0_space", "read_engine0_in_flight",
                 "read_engine0_stored", "read_engine0_q_valid", "read_engine0_next_beats",
                 "read_engine0_burst_splitter0_busy", "write_engine0_waiting",
                 "write_engine0_len_count", "write_engine0_beat", "write_engine0_head_len",
                 "write_engine0_burst_splitter1_busy"]
        parts = []
        for name in names:
            handle = getattr(self.dut, name, None)
            if handle is not None:
                parts.append(f"{name}={handle.value}")
        return ", ".join(parts)

    def send_read(self, command: int) -> None:
        self.rdcmd.send_nowait(AxiStreamFrame(command.to_bytes(16, "little")))

    def send_write(self, command: int, beats: list[int] | None) -> None:
        """Queue a write command and (for an executed command) its data beats."""
        self.wrcmd.send_nowait(AxiStreamFrame(command.to_bytes(16, "little")))
        if beats:
            data = b"".join(b.to_bytes(self.lanes, "little") for b in beats)
            self.wr.send_nowait(AxiStreamFrame(data))
