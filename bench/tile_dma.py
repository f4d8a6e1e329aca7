"""Throughput and size of ``tile_dma``: bytes per cycle for one tile, and Yosys cell counts.

Moves one 64-row x 256-byte tile (``data_bits`` 64, ``max_burst`` 16: 128 bursts of 16
beats) with ``outstanding`` 1, 2 and 4 through a memory with a fixed latency, and prints
read and write throughput in bytes per cycle:

* read: from the cycle the command is accepted to the cycle of the tile's ``tlast`` beat;
* write: from the cycle the command is accepted to the cycle of its ``wrdone`` beat.

The memory (:func:`axi_memory`) is a pipelined AXI4 slave: it accepts an address every
cycle, returns the first read beat ``latency`` cycles after the AR handshake (bursts back
to back, in order, one beat a cycle), takes write data at one beat a cycle and answers
each write burst ``latency`` cycles after its last beat.  The streams never stall.

Then synthesizes the same configuration with Yosys (``fpga.synth``: ``synth_xilinx`` cell
counts for xc7vx485t; with ``--ecp5`` also ``synth_ecp5`` + nextpnr for ecp5-85f) and prints
LUT, FF and block RAM beside ``BLOCK.estimate``.

    .venv/bin/python bench/tile_dma.py                 # latency 20, MyHDL simulation
    .venv/bin/python bench/tile_dma.py --latency 2 20 40 --ecp5 --hdl icarus
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections import deque
from pathlib import Path

from myhdl import StopSimulation, block, instance, now

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from blocks.tile_dma import BLOCK, encode_command  # noqa: E402
from cnn_ip.cosim import PERIOD, clock_reset_driver, dut  # noqa: E402

ROWS, ROW_BYTES = 64, 256
CONFIG = {"data_bits": 64, "addr_bits": 32, "max_burst": 16}


@block
def axi_memory(aclk, aresetn, m_axi, memory: bytearray, *, data_bits: int, latency: int):
    """A pipelined AXI4 slave over ``memory`` (addresses modulo its size); see module doc."""
    lanes = data_bits // 8
    size = len(memory)

    def word(address):
        address %= size
        return int.from_bytes(memory[address:address + lanes], "little")

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
            if m_axi.rvalid and m_axi.rready:
                beat += 1
                if beat == active[2]:
                    active = None
            if m_axi.arvalid and m_axi.arready:
                pending.append((cycle + latency, int(m_axi.araddr), int(m_axi.arlen) + 1))
            if active is None and pending and pending[0][0] <= cycle + 1:
                active, beat = pending.popleft(), 0
            if active is not None:
                m_axi.rvalid.next = 1
                m_axi.rdata.next = word(active[1] + beat * lanes)
                m_axi.rlast.next = beat == active[2] - 1
                m_axi.rresp.next = 0
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


def run_tile(*, outstanding: int, latency: int, direction: str, hdl: str = "myhdl",
             rows: int = ROWS, row_bytes: int = ROW_BYTES, base: int = 0x1000,
             stride: int | None = None, memory: bytearray | None = None,
             data: list[int] | None = None, config: dict = CONFIG, workdir=None) -> dict:
    """Move one tile; returns ``{"cycles", "bytes", "beats": [(tdata, tlast)], "memory"}``.

    ``cycles`` counts from the command handshake to the ``tlast`` read beat (read) or to
    the ``wrdone`` beat (write).  ``data`` gives the write beats (default: a counter).
    ``workdir`` receives the Verilog and simulator files for ``hdl="icarus"``.
    """
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


def throughput_table(latency: int, hdl: str) -> list[str]:
    lines = [f"tile {ROWS} rows x {ROW_BYTES} bytes, data_bits 64, max_burst 16, "
             f"memory latency {latency} cycles (AR handshake to first R beat; last W beat to B)",
             "",
             "| outstanding | read cycles | read bytes/cycle | write cycles | write bytes/cycle |",
             "|---:|---:|---:|---:|---:|"]
    for outstanding in (1, 2, 4):
        r = run_tile(outstanding=outstanding, latency=latency, direction="read", hdl=hdl)
        w = run_tile(outstanding=outstanding, latency=latency, direction="write", hdl=hdl)
        lines.append(f"| {outstanding} | {r['cycles']} | {r['bytes'] / r['cycles']:.2f} | "
                     f"{w['cycles']} | {w['bytes'] / w['cycles']:.2f} |")
    return lines


def synthesis_table(targets: list[str], outstanding: int = 4) -> list[str]:
    from cnn_ip.export import generate
    from fpga.synth import synthesize

    params = {**CONFIG, "outstanding": outstanding}
    est = BLOCK.estimate(**params)
    lines = [f"tile_dma data_bits 64, max_burst 16, outstanding {outstanding}", "",
             "| source | LUT | FF | block RAM | memory bits | Fmax MHz |",
             "|---|---:|---:|---:|---:|---:|",
             f"| estimate | {est['lut']} | {est['ff']} | - | {est['bram_bits']} | - |"]
    with tempfile.TemporaryDirectory(prefix="tile_dma-synth-") as scratch:
        generate(BLOCK, scratch, **params)
        for target in targets:
            report = synthesize([Path(scratch) / "tile_dma.v"], top="tile_dma", target=target,
                                workdir=Path(scratch) / target)
            used = report["used"]
            fmax = (report["timing"] or {}).get("fmax_mhz") or "-"
            lut_note = (f" (of which {used['lut_as_memory']} as RAM)"
                        if used.get("lut_as_memory") else "")
            bram = (f"{used.get('bram36', 0)} RAMB36 + {used.get('bram18', 0)} RAMB18"
                    if "bram18" in used else f"{used.get('bram_blocks', 0)} DP16KD")
            lines.append(f"| {target} | {used['lut']}{lut_note} | {used['ff']} | {bram} | "
                         f"{report['memory_bits_declared']} | {fmax} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=int, nargs="+", default=[20],
                        help="memory latencies in cycles (one table each)")
    parser.add_argument("--hdl", choices=("myhdl", "icarus"), default="myhdl")
    parser.add_argument("--ecp5", action="store_true", help="also place and route on ecp5-85f")
    parser.add_argument("--no-synth", action="store_true", help="skip synthesis")
    args = parser.parse_args(argv)
    for latency in args.latency:
        print("\n".join(throughput_table(latency, args.hdl)))
        print()
    if not args.no_synth:
        targets = ["xc7vx485t"] + (["ecp5-85f"] if args.ecp5 else [])
        print("\n".join(synthesis_table(targets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
