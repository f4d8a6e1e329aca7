"""``sparse_decoder`` on ECP5: LUT, FF and Fmax per configuration, ROM and stream mode;
and an end-to-end check of the decoders ``cnn-ip block`` writes.

    .venv/bin/python bench/sparse_decoder.py                 # every configuration
    .venv/bin/python bench/sparse_decoder.py --only ternary  # names containing the word
    .venv/bin/python bench/sparse_decoder.py --seeds 1 2 3   # best of several placements
    .venv/bin/python bench/sparse_decoder.py --verify 20     # 20 random layers, every beat
    .venv/bin/python bench/sparse_decoder.py --verify 20 --verify-seed 17   # 20 others
    .venv/bin/python bench/sparse_decoder.py --verify 8 --verify-target ecp5-85f

``--verify N``: N random weight files (ternary or int2..8, lanes x simd from 1x1 to 8x16,
50-95 % zeros, unstructured or zeroed in aligned blocks of 2..16) go through the command
line, ``cnn-ip block sparse_decoder --weights-file W.npy -o DIR`` (the writer's own
choice of code: ``/1`` or ``/2``), and the Verilog it writes runs in Icarus under a plain
Verilog testbench (random ``tready``, three passes) that prints every beat; each beat is
compared with the weight order written out from the matrix (docs/sparse_format.md).  No
MyHDL and no project code in the loop but the command line itself.

Each configuration is a seeded random layer (lanes 4, simd 8) written by ``cnn-ip block``
(through ``cnn_ip.export.generate``, built for ``ecp5-85f``) and placed by ``fpga.synth.synthesize`` on
``ecp5-85f`` out of context at a 200 MHz constraint (Yosys synth_ecp5, nextpnr-ecp5).
The table gives the coding the writer chose, the word width, nextpnr's LUT and FF counts,
the estimate's, and the Fmax (best of the seeds), with the critical path's ends.  Slow
(minutes a configuration): a bench, never a test.  Scratch under the system temp dir.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from blocks.sparse_decoder import BLOCK
from cnn_ip.export import generate
from fpga.synth import synthesize

CONFIGS = {  # name: (weights, wbits, (Cout, R), density)
    "ternary L4 S8 masked": ("ternary", 8, (32, 72), 0.2),
    "int4 L4 S8 masked": ("int", 4, (32, 144), 0.25),
    "binary L4 S8 dense": ("binary", 8, (32, 72), 1.0),
}


def layer(weights, wbits, shape, density, seed=2021):
    rng = np.random.default_rng(seed)
    if weights == "binary":
        return rng.choice([-1, 1], size=shape)
    hi = 1 if weights == "ternary" else (1 << (wbits - 1)) - 1
    W = rng.integers(-hi, hi + 1, size=shape)
    W[W == 0] = hi
    return W * (rng.random(shape) < density)


TESTBENCH = """`timescale 1ns/1ps
module tb;
  reg aclk = 0, aresetn = 0, tready = 0;
  wire [{bits}-1:0] tdata;
  wire tvalid, tlast;
  integer seen = 0, cycles = 0, out;
  sparse_decoder dut (.aclk(aclk), .aresetn(aresetn), .m_axis_wgt_tdata(tdata),
                      .m_axis_wgt_tvalid(tvalid), .m_axis_wgt_tready(tready),
                      .m_axis_wgt_tlast(tlast));
  always #5 aclk = ~aclk;
  initial begin
    out = $fopen("beats.txt", "w");
    repeat (3) @(posedge aclk);
    aresetn <= 1;
  end
  always @(posedge aclk) begin
    cycles <= cycles + 1;
    if (aresetn && tvalid && tready) begin
      $fwrite(out, "%h %0d\\n", tdata, tlast);
      seen = seen + 1;
    end
    tready <= ($random & 3) != 0;
    if (seen == {beats} || cycles > {limit}) begin
      $fclose(out);
      $finish;
    end
  end
endmodule
"""


def code_bits(weights, wbits):
    """Bits of one weight's code (docs/sparse_format.md)."""
    return {"binary": 1, "ternary": 2}.get(weights, wbits)


def weight_order(W, lanes, simd, weights, wbits):
    """The beats of one pass, written out from ``W`` (docs/sparse_format.md, weight order;
    binary: code 1 for +1, 0 for -1)."""
    wb = code_bits(weights, wbits)
    beats = []
    for g in range(W.shape[0] // lanes):
        for r in range(W.shape[1] // simd):
            word = 0
            for lane in range(lanes):
                for s in range(simd):
                    v = int(W[g * lanes + lane, r * simd + s])
                    code = int(v > 0) if weights == "binary" else v & ((1 << wb) - 1)
                    word |= code << ((lane * simd + s) * wb)
            beats.append(word)
    return beats


def random_layer(rng):
    """A random layer for ``--verify``: mode, fold, sparsity and zero pattern."""
    lanes, simd = int(rng.choice([1, 2, 4, 8])), int(rng.choice([1, 2, 4, 8, 16]))
    weights = str(rng.choice(["ternary", "int"]))
    wbits = int(rng.integers(2, 9)) if weights == "int" else 8
    hi = 1 if weights == "ternary" else (1 << (wbits - 1)) - 1
    cout, reduce = lanes * int(rng.integers(1, 4)), simd * int(rng.integers(2, 7))
    W = rng.integers(-hi - (weights == "int"), hi + 1, size=(cout, reduce))
    W[W == 0] = hi
    sparsity = float(rng.choice([0.5, 0.75, 0.9, 0.95]))
    block = int(rng.choice([1, 2, 4, 8, 16]))
    if block > 1 and simd % block == 0:            # zeros in aligned runs of a row
        runs = W.reshape(cout, reduce // block, block)
        runs[rng.random(runs.shape[:2]) < sparsity] = 0
    else:
        W[rng.random(W.shape) < sparsity] = 0
    return W, dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits), sparsity


def verify(count: int, work: Path, seed: int = 16, target: str = "generic") -> int:
    """``--verify``: see the module docstring; returns the number of failing layers."""
    import json
    import subprocess
    rng = np.random.default_rng(seed)
    failures = 0
    print("| layer | mode | lanes x simd | zeros | code | bits/weight | beats | result |")
    print("|---|---|---|---|---|---|---|---|")
    for n in range(count):
        W, fold, sparsity = random_layer(rng)
        out = work / f"layer{n}"
        out.mkdir(parents=True)
        np.save(out / "W.npy", W.astype(np.int16))
        flags = [f"--{k}={v}" for k, v in {**fold, "target": target}.items()]
        # the cnn-ip of this interpreter, whether or not its venv is on PATH
        done = subprocess.run([sys.executable, "-m", "cnn_ip.cli", "block", "sparse_decoder",
                               *flags, f"--weights-file={out / 'W.npy'}", "-o", str(out)],
                              capture_output=True, text=True)
        if done.returncode:
            failures += 1
            why = done.stderr.strip().splitlines()[-1]
            print(f"| {n} | {fold} | {sparsity:.0%} | cnn-ip block failed: {why} |", flush=True)
            continue
        rom = json.loads((out / "sparse_decoder_rom.json").read_text())
        one = weight_order(W, **fold)
        expected = [(b, int(i == len(one) - 1)) for _ in range(3) for i, b in enumerate(one)]
        bits = fold["lanes"] * fold["simd"] * code_bits(fold["weights"], fold["wbits"])
        (out / "tb.v").write_text(TESTBENCH.format(bits=bits, beats=len(expected),
                                                   limit=20 * len(expected) + 200))
        subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", "tb.v", "sparse_decoder.v",
                        *[p.name for p in out.glob("*_sim.v")]], cwd=out, check=True,
                       capture_output=True)
        subprocess.run(["vvp", "-n", "sim.vvp"], cwd=out, check=True, capture_output=True)
        got = [(int(h, 16), int(t)) for h, t in
               (line.split() for line in (out / "beats.txt").read_text().splitlines())]
        ok = got == expected
        failures += not ok
        code = rom["coding"] + (f" B={rom['block']} {rom['inner']}" if rom["coding"] == "block"
                                else "")
        print(f"| {n} | {fold['weights']}{fold['wbits'] if fold['weights'] == 'int' else ''} "
              f"| {fold['lanes']} x {fold['simd']} | {sparsity:.0%} | {code} "
              f"| {rom['bits_per_weight']:.3f} | {len(got)}/{len(expected)} "
              f"| {'ok' if ok else 'MISMATCH'} |", flush=True)
    return failures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run the configurations whose name has this")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="instead: N random layers through cnn-ip block, every beat checked")
    parser.add_argument("--verify-seed", type=int, default=16,
                        help="--verify: the random layers' seed")
    parser.add_argument("--verify-target", default="generic",
                        help="--verify: cnn-ip block's --target (ecp5-85f: DP16KD ROMs, "
                             "simulated by the DP16KD_sim.v it writes)")
    args = parser.parse_args(argv)
    if args.verify:
        work = Path(tempfile.mkdtemp(prefix="cnn_ip-bench-decoder-verify-"))
        raise SystemExit(1 if verify(args.verify, work, args.verify_seed, args.verify_target)
                         else 0)
    work = Path(tempfile.mkdtemp(prefix="cnn_ip-bench-decoder-"))
    print("| configuration | source | coding | word bits | LUT | FF | est. LUT | est. FF "
          "| Fmax MHz | critical path |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (weights, wbits, shape, density) in CONFIGS.items():
        if args.only not in name:
            continue
        W = layer(weights, wbits, shape, density)
        for source in ("rom", "stream"):
            out = work / f"{name.replace(' ', '_')}_{source}"
            # placed as built for the device: its DP16KD ROM and loop select cells
            info = generate(BLOCK, out, lanes=4, simd=8, weights=weights, wbits=wbits,
                            weights_file=W, source=source, target="ecp5-85f")
            netlist = sorted(p for p in out.glob("*.v") if not p.name.endswith("_sim.v"))
            best = None
            for seed in args.seeds:
                report = synthesize(netlist, top="sparse_decoder",
                                    target="ecp5-85f", workdir=out / f"seed{seed}",
                                    clock_mhz=200, seed=seed)
                if best is None or report["timing"]["fmax_mhz"] > best["timing"]["fmax_mhz"]:
                    best = report
            d, e = info["derived"], info["estimate"]
            word = d.get("word_bits", d.get("rom_word_bits"))
            timing = best["timing"]
            path = timing["critical_path"]
            print(f"| {name} | {source} | {d['coding']} | {word} | {best['used']['lut']} "
                  f"| {best['used']['ff']} | {e['lut']} | {e['ff']} | {timing['fmax_mhz']:.1f} "
                  f"| {path['start']} -> {path['end']}, {path['logic_levels']} levels |",
                  flush=True)


if __name__ == "__main__":
    main()
