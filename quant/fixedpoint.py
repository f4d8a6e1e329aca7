"""Fixed-point formats: the requantization multiplier ``M[c]`` with its shift ``S``, and
the widths of the integers the hardware stores (through fxpmath, the project's library
for fixed-point numbers).

A layer maps its accumulator (units ``s_in * s_w[c]``) to output activations (units
``s_out``): ``y = acc * s_in * s_w[c] / s_out``.  The real ratio ``r[c]`` is represented
as the unsigned fixed-point number ``M[c] / 2**S`` with ``mbits``-bit ``M`` and one
shift ``S`` per layer, the largest that keeps every ``M[c] < 2**mbits`` (most precision).
Rounding is to nearest (fxpmath ``around``: numpy's ties-to-even).
"""
from __future__ import annotations

import math

import numpy as np
from fxpmath import Fxp

MAX_SHIFT = 40          # keeps acc * M far inside int64 (and exact in float64)


def requant_constants(ratio, mbits: int, shift: int | None = None) -> tuple[np.ndarray, int]:
    """``(M, S)`` with ``M[c] / 2**S`` closest to ``ratio[c] >= 0``; ``M`` int64, ``1 <= S``.

    ``S`` is the largest shift keeping every ``M[c] < 2**mbits`` unless ``shift`` is given
    (then ``M`` saturates at ``2**mbits - 1``)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    if np.any(ratio < 0) or not np.all(np.isfinite(ratio)):
        raise ValueError("ratio: requantization ratios must be finite and >= 0")
    if shift is None:
        top = float(ratio.max(initial=0.0))
        shift = MAX_SHIFT if top == 0 else math.floor(math.log2((2 ** mbits - 0.5) / top))
        if shift < 1:
            raise ValueError(f"ratio: {top:g} needs more than {mbits - 1} integer bits of M")
        shift = min(shift, MAX_SHIFT)
    fxp = Fxp(ratio, signed=False, n_word=mbits, n_frac=shift, rounding="around",
              overflow="saturate")
    return np.asarray(fxp.val, dtype=np.int64).reshape(ratio.shape), shift


def signed_bits(values) -> int:
    """Smallest two's-complement width holding every value (at least 2)."""
    values = np.asarray(values, dtype=np.int64)
    low, high = int(values.min(initial=0)), int(values.max(initial=0))
    return max(2, max(high.bit_length(), (-low - 1).bit_length()) + 1)


def unsigned_bits(values) -> int:
    """Smallest unsigned width holding every (non-negative) value (at least 1)."""
    return max(1, int(np.asarray(values, dtype=np.int64).max(initial=0)).bit_length())


def twos_complement(values, bits: int) -> np.ndarray:
    """Signed integers as their ``bits``-bit two's-complement codes (object ints)."""
    values = np.asarray(values, dtype=np.int64)
    return np.array([int(v) & ((1 << bits) - 1) for v in values.ravel()], dtype=object)
