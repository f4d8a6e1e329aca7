"""Weight modes: the one place their rules live (docs/conventions.md, Contract 2).

A weight mode is ``binary``, ``ternary`` or ``int`` with ``wbits`` = N in 2..8. Everywhere
in the project ``wbits`` means N, the bits of an ``int`` weight; it is ``None`` (or
ignored) for binary and ternary. The plan file writes the mode as one word (``binary``,
``ternary``, ``int4``); :func:`parse` and :func:`name` translate.

Codes on the ``mac_array`` weight stream (``code_bits`` = WB bits each):

* ``binary``: 1 bit, code 1 = +1, code 0 = -1 (no zero);
* ``ternary``: 2-bit two's complement, 01 = +1, 11 = -1, 00 = 0 (10 is never written);
* ``int``: N-bit two's complement.

The masked sparse coding stores ``value_bits`` (VB) for each non-zero weight: the sign
alone for binary and ternary, the full code for int.
"""
from __future__ import annotations

import numpy as np

KINDS = ("binary", "ternary", "int")
WBITS_RANGE = (2, 8)
PLAN_NAMES = ("binary", "ternary") + tuple(f"int{n}" for n in range(WBITS_RANGE[0], WBITS_RANGE[1] + 1))


def check(weights, wbits=None) -> None:
    """Raise ``ValueError`` naming ``weights`` or ``wbits`` if the mode is not valid."""
    if weights not in KINDS:
        raise ValueError(f"weights: must be one of {', '.join(KINDS)}, got {weights!r}")
    if weights == "int":
        lo, hi = WBITS_RANGE
        if isinstance(wbits, bool) or not isinstance(wbits, (int, np.integer)) or not lo <= wbits <= hi:
            raise ValueError(f"wbits: must be an integer in {lo}..{hi} for int weights, got {wbits!r}")


def parse(text: str) -> tuple[str, int | None]:
    """A plan's mode word -> ``(weights, wbits)``: ``"int4"`` -> ``("int", 4)``."""
    if text not in PLAN_NAMES:
        raise ValueError(f"weights: must be one of {', '.join(PLAN_NAMES)}, got {text!r}")
    if text.startswith("int"):
        return "int", int(text[3:])
    return text, None


def name(weights: str, wbits=None) -> str:
    """``(weights, wbits)`` -> the plan's mode word (inverse of :func:`parse`)."""
    check(weights, wbits)
    return f"int{int(wbits)}" if weights == "int" else weights


def normal_wbits(weights: str, wbits=None):
    """``wbits`` as the mode has it: N for int, ``None`` for binary and ternary."""
    return int(wbits) if weights == "int" else None


def code_bits(weights: str, wbits=None) -> int:
    """WB: bits of one weight code on the ``mac_array`` stream."""
    return {"binary": 1, "ternary": 2}.get(weights, wbits)


def value_bits(weights: str, wbits=None) -> int:
    """VB: bits stored for one non-zero weight in the masked sparse coding."""
    return {"binary": 1, "ternary": 1}.get(weights, wbits)


def value_range(weights: str, wbits=None) -> tuple[int, int]:
    """Smallest and largest weight value of the mode (binary has no 0 between them)."""
    if weights == "int":
        return -(1 << (wbits - 1)), (1 << (wbits - 1)) - 1
    return -1, 1


def has_zero(weights: str) -> bool:
    """Whether the mode can encode a zero weight (what pruning needs)."""
    return weights != "binary"


def bad_values(W, weights: str, wbits=None) -> np.ndarray:
    """Boolean mask of the entries of ``W`` the mode cannot encode."""
    W = np.asarray(W, dtype=np.int64)
    lo, hi = value_range(weights, wbits)
    bad = (W < lo) | (W > hi)
    if not has_zero(weights):
        bad |= W == 0
    return bad


def describe_values(weights: str, wbits=None) -> str:
    """The allowed values, for error messages."""
    if weights == "binary":
        return "-1 or +1"
    if weights == "ternary":
        return "-1, 0 or +1"
    lo, hi = value_range(weights, wbits)
    return f"integers in {lo}..{hi}"


def to_codes(W, weights: str, wbits=None) -> np.ndarray:
    """Weight values -> unsigned codes of :func:`code_bits` bits."""
    W = np.asarray(W, dtype=np.int64)
    if weights == "binary":
        return (W > 0).astype(np.int64)
    return W & ((1 << code_bits(weights, wbits)) - 1)


def from_codes(codes, weights: str, wbits=None) -> np.ndarray:
    """Unsigned codes -> weight values (inverse of :func:`to_codes`)."""
    codes = np.asarray(codes, dtype=np.int64)
    if weights == "binary":
        return 2 * codes - 1
    wb = code_bits(weights, wbits)
    return codes - ((codes >> (wb - 1)) << wb)
