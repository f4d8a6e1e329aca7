"""Sparse weight format and decoder: bits per weight, ROM size, Yosys cells, measured rate.

    .venv/bin/python bench/sparse_format.py             # tables + 64x576 layer, with Yosys
    .venv/bin/python bench/sparse_format.py --no-synth  # without the (slow) synthesis
    .venv/bin/python bench/sparse_format.py --lanes 8 --simd 8

1. Bits per weight of ``quant.sparse_format`` for a 64x576 layer (a 3x3x64 -> 64 conv) with
   exactly 0, 50, 75 and 90% zeros (random positions, random non-zero values), ternary and
   int4: the ROM bits (padding included) / weights, for the coding the writer picks and
   for the other one, beside the dense code width.
2. The 64x576 ternary layer at 80% zeros: ROM bits, word width and depth; the decoder's
   estimate; Yosys ``synth_xilinx`` and ``synth_ecp5`` cell counts (block RAM, LUT, FF);
   and the decoder's rate measured in Icarus co-simulation of the converted Verilog: two
   full passes with the output always ready, beats / cycles from first beat to last.

Xilinx LUTs count LUT1..LUT6 and INV cells; ECP5 LUTs count LUT4 cells (PFUMX/L6MUX21
are the slice's wide-function multiplexers, listed apart).  Scratch files go under the
system temp directory.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from blocks.sparse_decoder import BLOCK
from cnn_ip.cosim import run_streams
from cnn_ip.export import generate
from quant.sparse_format import encode

COUT, REDUCE = 64, 576


def layer(weights, wbits, sparsity, *, seed=64576):
    """A (64, 576) matrix with exactly ``sparsity`` zeros, random non-zero values."""
    rng = np.random.default_rng(seed)
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    nonzero = np.array([v for v in range(lo, hi + 1) if v != 0])
    W = np.zeros(COUT * REDUCE, dtype=np.int64)
    keep = rng.permutation(W.size)[:round((1 - sparsity) * W.size)]
    W[keep] = rng.choice(nonzero, size=keep.size)
    return W.reshape(COUT, REDUCE)


def bits_table(lanes, simd):
    print(f"## Bits per weight, {COUT}x{REDUCE} layer, lanes={lanes} simd={simd} "
          f"(ROM bits incl. padding / weights)\n")
    print("| weights | sparsity | dense code | masked | writer picks | bits/weight | ROM bits |")
    print("|---|---|---|---|---|---|---|")
    for weights, wbits, dense_bits in (("ternary", None, 2), ("int", 4, 4)):
        for sparsity in (0.0, 0.5, 0.75, 0.9):
            W = layer(weights, wbits, sparsity)
            masked = encode(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd,
                            coding="masked")
            auto = encode(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
            name = weights + (str(wbits) if wbits else "")
            print(f"| {name} | {sparsity:.0%} | {dense_bits} | {masked.bits / W.size:.3f} | "
                  f"{auto.meta['coding']} | {auto.bits / W.size:.3f} | {auto.bits} |")
    print()


def yosys_cells(workdir, command):
    result = subprocess.run(["yosys", "-p", f"read_verilog sparse_decoder.v; {command}; stat"],
                            cwd=workdir, capture_output=True, text=True, check=True)
    stats = result.stdout[result.stdout.rindex("Printing statistics"):]
    return {name: int(n) for name, n in re.findall(r"^\s+(\w+)\s+(\d+)$", stats, flags=re.M)}


def measured_rate(W, lanes, simd, workdir):
    beats = 2 * (COUT // lanes) * (REDUCE // simd)
    out = run_streams(BLOCK, hdl="icarus", workdir=workdir, inputs={},
                      expect={"m_axis_wgt": beats}, drain=0, params=dict(lanes=lanes, simd=simd,
                      weights="ternary", weights_file=W))
    got = out["m_axis_wgt"][:beats]
    expected = BLOCK.golden(BLOCK.prepared(lanes=lanes, simd=simd, weights="ternary",
                                           weights_file=W)[1]["image"], passes=2)
    assert [(b.data, b.last) for b in got] == expected, "decoder output differs from golden"
    return beats, got[-1].cycle - got[0].cycle + 1, got[0].cycle


def layer_figures(lanes, simd, synth):
    W = layer("ternary", None, 0.8)
    work = Path(tempfile.mkdtemp(prefix="cnn_ip-bench-sparse-"))
    info = generate(BLOCK, work / "gen", lanes=lanes, simd=simd, weights="ternary",
                    weights_file=W)
    d, est = info["derived"], info["estimate"]
    print(f"## {COUT}x{REDUCE} ternary layer, 80% zeros, lanes={lanes} simd={simd}\n")
    print(f"- ROM: {d['rom_bits']} bits = {d['rom_depth']} words x {d['rom_word_bits']} bits "
          f"({d['bits_per_weight']:.3f} bits/weight, coding {d['coding']}; dense ternary "
          f"would be {2 * W.size} bits)")
    print(f"- estimate: LUT {est['lut']}, FF {est['ff']}, BRAM bits {est['bram_bits']}, "
          f"latency {est['latency']}, {est['cycles']} cycle(s) per {est['per']}")
    beats, cycles, first = measured_rate(W, lanes, simd, work / "sim")
    print(f"- measured (Icarus, 2 passes, output always ready): {beats} beats in {cycles} "
          f"cycles = {beats / cycles:.4f} beats/cycle; first beat at cycle {first} "
          f"(reset ends at cycle 3); output matches the golden model")
    if synth:
        x = yosys_cells(work / "gen", "synth_xilinx -top sparse_decoder")
        e = yosys_cells(work / "gen", "synth_ecp5 -top sparse_decoder")
        xlut = sum(n for k, n in x.items() if re.fullmatch(r"LUT\d|INV", k))
        print(f"- Yosys synth_xilinx: RAMB18E1 {x.get('RAMB18E1', 0)}, RAMB36E1 "
              f"{x.get('RAMB36E1', 0)}, LUT {xlut} (of which INV {x.get('INV', 0)}), "
              f"FF {x.get('FDRE', 0) + x.get('FDSE', 0)}, MUXF7/8 "
              f"{x.get('MUXF7', 0)}/{x.get('MUXF8', 0)}, CARRY4 {x.get('CARRY4', 0)}")
        print(f"- Yosys synth_ecp5: DP16KD {e.get('DP16KD', 0)}, LUT4 {e.get('LUT4', 0)}, "
              f"FF {e.get('TRELLIS_FF', 0)}, PFUMX {e.get('PFUMX', 0)}, L6MUX21 "
              f"{e.get('L6MUX21', 0)}, CCU2C {e.get('CCU2C', 0)}")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--simd", type=int, default=8)
    parser.add_argument("--no-synth", dest="synth", action="store_false")
    args = parser.parse_args(argv)
    bits_table(args.lanes, args.simd)
    layer_figures(args.lanes, args.simd, args.synth)


if __name__ == "__main__":
    main()
