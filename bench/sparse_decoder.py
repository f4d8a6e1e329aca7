"""``sparse_decoder`` on ECP5: LUT, FF and Fmax per configuration, ROM and stream mode.

    .venv/bin/python bench/sparse_decoder.py                 # every configuration
    .venv/bin/python bench/sparse_decoder.py --only ternary  # names containing the word
    .venv/bin/python bench/sparse_decoder.py --seeds 1 2 3   # best of several placements

Each configuration is a seeded random layer (lanes 4, simd 8) written by ``cnn-ip block``
(through ``cnn_ip.export.generate``) and placed by ``fpga.synth.synthesize`` on
``ecp5-85f`` out of context at a 200 MHz constraint (Yosys synth_ecp5, nextpnr-ecp5).
The table gives the coding the writer chose, the word width, nextpnr's LUT and FF counts,
the estimate's, and the Fmax (best of the seeds), with the critical path's ends.  Slow
(minutes a configuration): a bench, never a test.  Scratch under the system temp dir.
"""
from __future__ import annotations

import argparse
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run the configurations whose name has this")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = parser.parse_args(argv)
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
            info = generate(BLOCK, out, lanes=4, simd=8, weights=weights, wbits=wbits,
                            weights_file=W, source=source)
            best = None
            for seed in args.seeds:
                report = synthesize(sorted(out.glob("*.v")), top="sparse_decoder",
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
