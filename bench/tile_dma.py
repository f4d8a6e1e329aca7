"""Throughput and size of ``tile_dma``: bytes per cycle for one tile, and Yosys cell counts.

Moves one 64-row x 256-byte tile (``data_bits`` 64, ``max_burst`` 16: 128 bursts of 16
beats) with ``outstanding`` 1, 2 and 4 through a memory with a fixed latency, and prints
read and write throughput in bytes per cycle:

* read: from the cycle the command is accepted to the cycle of the tile's ``tlast`` beat,
  beside ``tile_dma.read_cycles`` (the read timing frame stages are planned with);
* write: from the cycle the command is accepted to the cycle of its ``wrdone`` beat.

The memory (``cnn_ip.simkit.axi_memory``) is a pipelined AXI4 slave: it accepts an address every
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
from pathlib import Path

from blocks.tile_dma import BLOCK, encode_command, read_cycles
from cnn_ip.simkit import TILE_CONFIG as CONFIG, run_tile

ROWS, ROW_BYTES = 64, 256  # run_tile's default tile


def throughput_table(latency: int, hdl: str) -> list[str]:
    lines = [f"tile {ROWS} rows x {ROW_BYTES} bytes, data_bits 64, max_burst 16, "
             f"memory latency {latency} cycles (AR handshake to first R beat; last W beat to B)",
             "",
             "| outstanding | read cycles | planned | read bytes/cycle | write cycles | "
             "write bytes/cycle |",
             "|---:|---:|---:|---:|---:|---:|"]
    command = encode_command(base=0x1000, stride=ROW_BYTES, row_bytes=ROW_BYTES, rows=ROWS)
    for outstanding in (1, 2, 4):
        r = run_tile(outstanding=outstanding, latency=latency, direction="read", hdl=hdl)
        w = run_tile(outstanding=outstanding, latency=latency, direction="write", hdl=hdl)
        planned = read_cycles(command, data_bits=CONFIG["data_bits"],
                              max_burst=CONFIG["max_burst"], outstanding=outstanding,
                              latency=latency)
        lines.append(f"| {outstanding} | {r['cycles']} | {planned} | "
                     f"{r['bytes'] / r['cycles']:.2f} | {w['cycles']} | "
                     f"{w['bytes'] / w['cycles']:.2f} |")
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
