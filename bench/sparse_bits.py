"""Bits per weight of the weight codes cnn_ip.sparse/1 and /2 against sparsity and pruning.

    .venv/bin/python bench/sparse_bits.py                      # the table in docs/sparse_format.md
    .venv/bin/python bench/sparse_bits.py --lanes 4 --simd 8 --seed 1

A 64x576 layer (a 3x3x64 -> 64 conv) of random weights (float, standard normal, numpy
``default_rng(seed)``) is pruned with ``quant.prune`` to 50, 75, 90 and 95 % zeros,
unstructured (smallest magnitudes) or in blocks of 8 or 16 of the MAC beat, then
given integer values: ternary the sign; int4 the kept weight scaled per row so that the
largest is 7, rounded, and kept at least 1 in magnitude (so the zeros are exactly the
pruned ones).  Each pruned layer is written by ``quant.sparse_format.encode`` (the real
writer, words built and decoded back) in

* ``/1``: the smaller of dense and masked (``FIRST_CODES``: what was written before the
  decoder read ``/2``);
* ``/2``: the smallest block coding (block size B and inner coding chosen per layer);
* the writer's choice among all three codes.

Bits per weight = ROM bits (padding included) / weights.
"""
from __future__ import annotations

import argparse

import numpy as np

from quant import prune
from quant.sparse_format import CODES, FIRST_CODES, decode, encode

COUT, REDUCE = 64, 576
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
PRUNINGS = (("unstructured", None), ("block", 8), ("block", 16))
MODES = (("ternary", None), ("int", 4))


def values(w, keep, weights, wbits):
    """Integer weights: non-zero exactly where ``keep`` is set."""
    if weights == "ternary":
        return np.where(keep, np.where(w < 0, -1, 1), 0)
    top = (1 << (wbits - 1)) - 1
    scaled = np.abs(w) / np.abs(w).max(axis=1, keepdims=True) * top
    magnitude = np.clip(np.round(scaled), 1, top).astype(np.int64)
    return np.where(keep, np.sign(w).astype(np.int64) * magnitude, 0)


def written(W, weights, wbits, lanes, simd, codes, **fixed):
    image = encode(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd, codes=codes, **fixed)
    assert np.array_equal(decode(image.words, image.meta), W), "round trip failed"
    return image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--simd", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    lanes, simd = args.lanes, args.simd
    w = np.random.default_rng(args.seed).normal(size=(COUT, REDUCE))
    print(f"## Bits per weight, {COUT}x{REDUCE} layer, lanes={lanes} simd={simd} "
          f"(P = {lanes * simd}), seed {args.seed}\n")
    print("| weights | zeros | pruning | dense code | /1 | /2 | /2 block, inner, word bits | "
          "writer (all codes) |")
    print("|---|---|---|---|---|---|---|---|")
    for weights, wbits in MODES:
        name = weights + (str(wbits) if wbits else "")
        for sparsity in SPARSITIES:
            for structure, block in PRUNINGS:
                keep = prune.keep_mask(w, sparsity, structure=structure, lanes=lanes, simd=simd,
                                       block=block)
                W = values(w, keep, weights, wbits)
                one = written(W, weights, wbits, lanes, simd, FIRST_CODES)
                two = written(W, weights, wbits, lanes, simd, ("block",))
                best = written(W, weights, wbits, lanes, simd, CODES)
                label = structure if block is None else f"block of {block}"
                print(f"| {name} | {1 - np.count_nonzero(W) / W.size:.2%} | {label} | "
                      f"{one.meta['code_bits']} | {one.bits / W.size:.3f} "
                      f"({one.meta['coding']}) | {two.bits / W.size:.3f} | "
                      f"{two.meta['block']}, {two.meta['inner']}, {two.word_bits} | "
                      f"{best.bits / W.size:.3f} ({best.meta['format'][-2:]} "
                      f"{best.meta['coding']}) |")
    print()


if __name__ == "__main__":
    main()
