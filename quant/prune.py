"""Pruning a layer so that its zeros save ROM bits (docs/sparse_format.md).

A layer's weights are the matrix ``W`` (``(Cout, R)``, reduction order ``(ky, kx, cin)``,
docs/conventions.md Contract 2), float before quantization or integer after.  Pruning to a target
``sparsity`` zeroes ``round(sparsity * n)`` of its ``n`` weights (block: whole blocks, see
below), always the smallest magnitudes, ties broken by position (a stable sort), so the
result is deterministic:

``unstructured``  weight by weight (the rule of ``quant.fakequant.prune_mask``);
``block``         in the blocks the ``cnn_ip.sparse/2`` block coding skips: the aligned
                  blocks of ``block`` consecutive elements of a MAC beat for the given
                  ``lanes`` and ``simd`` (``quant.sparse_format.to_beats`` order, element
                  ``l*simd + s``), scored by the sum of their magnitudes;
                  ``round(sparsity * n / block)`` blocks are dropped.  An empty block
                  costs one bit of a block mask, where scattered zeros still cost a
                  mask bit each.

:func:`pruned_bits` gives the exact ROM bits :func:`quant.sparse_format.encode` would write
for a pruned layer, from the zero pattern alone (no words, no files).  Pure numpy.
"""
from __future__ import annotations

import numpy as np

from quant import sparse_format, weight_modes

STRUCTURES = ("unstructured", "block")


def _check_packing(W, lanes, simd) -> None:
    sparse_format.check_fold(lanes, simd)
    if W.shape[0] % lanes or W.shape[1] % simd:
        raise ValueError(f"W: shape {W.shape} is not a multiple of (lanes, simd) = "
                         f"({lanes}, {simd})")


def _check(W, sparsity, structure, lanes, simd, block) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2 or 0 in W.shape or not (np.issubdtype(W.dtype, np.number)):
        raise ValueError(f"W: must be a non-empty numeric 2-D (Cout, R) array, got shape "
                         f"{W.shape} dtype {W.dtype}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.number)) \
            or not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity: must be a number in 0..1, got {sparsity!r}")
    if structure not in STRUCTURES:
        raise ValueError(f"structure: must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    if structure == "block":
        _check_packing(W, lanes, simd)
        sizes = sparse_format.block_sizes(lanes * simd)
        if block not in sizes:
            raise ValueError(f"block: must be a power of two dividing lanes*simd = "
                             f"{lanes * simd} ({', '.join(map(str, sizes))}), got {block!r}")
    return W


def _drop_smallest(scores, fraction) -> np.ndarray:
    """Keep mask: False on the ``round(fraction * len)`` smallest scores (stable order)."""
    keep = np.ones(len(scores), dtype=bool)
    drop = int(round(float(fraction) * len(scores)))
    keep[np.argsort(scores, kind="stable")[:drop]] = False
    return keep


def keep_mask(W, sparsity, *, structure="unstructured", lanes=None, simd=None,
              block=None) -> np.ndarray:
    """Boolean ``W``-shaped mask of the weights pruning to ``sparsity`` keeps (see the
    module docstring); ``lanes``, ``simd`` and ``block`` are for ``structure="block"``."""
    W = _check(W, sparsity, structure, lanes, simd, block)
    magnitude = np.abs(W.astype(np.float64))
    if structure == "unstructured":
        return _drop_smallest(magnitude.ravel(), sparsity).reshape(W.shape)
    beats = sparse_format.to_beats(magnitude, lanes, simd)
    kept = _drop_smallest(beats.reshape(-1, block).sum(axis=1), sparsity)
    beat_mask = np.repeat(kept, block).reshape(beats.shape)
    return sparse_format.from_beats(beat_mask, lanes, simd, *W.shape)


def prune(W, sparsity, *, structure="unstructured", lanes=None, simd=None, block=None):
    """``W`` with the weights :func:`keep_mask` drops set to zero (same dtype)."""
    W = np.asarray(W)
    return np.where(keep_mask(W, sparsity, structure=structure, lanes=lanes, simd=simd,
                              block=block), W, 0).astype(W.dtype)


def tensor_keep_mask(weight, sparsity, *, structure="unstructured", lanes=None, simd=None,
                     block=None, in_shape=None) -> np.ndarray:
    """:func:`keep_mask` for a weight in torch layout, returned in that layout: a conv's
    ``(Cout, Cin, K, K)``, or a dense layer's ``(Cout, Cin)`` whose input is the flattened
    map ``in_shape = (c, h, w)`` (``(c, y, x)`` flattening; the matrix takes ``(y, x, c)``,
    as ``quant.fakequant`` exports it)."""
    weight = np.asarray(weight)
    if weight.ndim == 4:
        shape4 = weight.shape
    elif weight.ndim == 2 and in_shape is not None and len(in_shape) == 3 and in_shape[1]:
        shape4 = (weight.shape[0], *in_shape)
    elif weight.ndim == 2:
        return keep_mask(weight, sparsity, structure=structure, lanes=lanes, simd=simd,
                         block=block)
    else:
        raise ValueError(f"weight: must be a conv (4-D) or dense (2-D) weight, got shape "
                         f"{weight.shape}")
    matrix = weight.reshape(shape4).transpose(0, 2, 3, 1).reshape(shape4[0], -1)
    mask = keep_mask(matrix, sparsity, structure=structure, lanes=lanes, simd=simd, block=block)
    cout, c, h, w = shape4
    return mask.reshape(cout, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape)


def pruned_bits(W, *, weights, wbits=None, sparsity, structure="unstructured", lanes, simd,
                block=None, codes=sparse_format.CODES) -> dict:
    """Exact ROM bits of ``W`` pruned to ``sparsity`` (``structure``, ``block``) and encoded
    for ``lanes`` x ``simd`` in the smallest of ``codes`` (default: every code, ``/2``
    included, which is also what the decoder reads: ``sparse_format.HARDWARE_CODES``).

    Returns the :func:`quant.sparse_format.pattern_bits` item of the chosen coding plus
    ``sparsity`` (the zeros' fraction after pruning) and ``bits_per_weight``.  Only the zero
    pattern matters: a kept weight counts as non-zero unless ``W`` holds a zero there, so the
    figure is exact for integer ``W`` and for float ``W`` whose kept weights quantize to
    non-zero values (always for ternary)."""
    weight_modes.check(weights, wbits)
    W = _check(W, sparsity, structure, lanes, simd, block)
    if not weight_modes.has_zero(weights) and sparsity:
        raise ValueError(f"sparsity: {weights} weights cannot be zero, got {sparsity!r}")
    _check_packing(W, lanes, simd)
    nonzero = keep_mask(W, sparsity, structure=structure, lanes=lanes, simd=simd,
                        block=block) & (W != 0)
    best = sparse_format.best_code(sparse_format.to_beats(nonzero, lanes, simd), weights=weights,
                                   wbits=weight_modes.normal_wbits(weights, wbits), codes=codes)
    return {**best, "sparsity": round(1 - int(nonzero.sum()) / W.size, 6),
            "bits_per_weight": round(best["bits"] / W.size, 6)}
