"""``block_expand``: the block coding's record (``cnn_ip.sparse/2``, docs/sparse_format.md)
turned into what the masked decoder expands, in two registered steps.

A primitive of ``blocks.sparse_decoder`` (no ``BlockDef``).  A record starts with the
``K = P/B``-bit block mask; block ``k``'s part (its ``B``-bit element mask, or its ``B``
codes of ``WB`` bits) sits at ``K + F*c_k`` (``F = B`` or ``B*WB``), ``c_k`` the set
block-mask bits below ``k``:

* ``inner="mask"``: ``out`` = the ``/1`` record of the beat, the ``P``-bit mask of
  every element (block ``k``'s element mask where its block bit is set, else zeros),
  then the values, which start at ``K + B*m`` (``m`` all the set block bits):
  ``len(out) - P`` bits of them, what the ``expander`` reads;
* ``inner="dense"``: ``out`` = the beat's ``P`` codes (``P*WB`` bits): block ``k``'s
  codes where its block bit is set, else code 0.

Ports: ``rv``/``rec``/``rl`` the record (bit 0 its first bit; bits past its end are
ignored), valid and ``tlast``; ``ov``/``out``/``ol`` the same two edges later.  One
record a cycle, no stalls (the decoder's output FIFO gives every record in flight a
place).  Step 1 registers the counts ``c_k`` and ``m`` (balanced adder trees, from
``blocks.bit_fields``); step 2 the selects (``K`` part-selects of ``F`` bits, and
the values' shift by ``m`` blocks).  :func:`expand` is the golden model.
"""
from __future__ import annotations

from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv

from blocks.bit_fields import field_sums, group_shift, part_select

INNERS = ("mask", "dense")


def expand(rec: int, *, P: int, B: int, WB: int, inner: str, out_bits: int) -> int:
    """Golden model: ``out`` for the record ``rec`` (an integer, bit 0 first)."""
    K = P // B
    F = B if inner == "mask" else B * WB
    blocks, tail = rec & ((1 << K) - 1), rec >> K
    out, c = 0, 0
    for k in range(K):
        if (blocks >> k) & 1:
            out |= ((tail >> (c * F)) & ((1 << F) - 1)) << (k * F)
            c += 1
    if inner == "mask":
        out |= ((tail >> (c * B)) & ((1 << (out_bits - P)) - 1)) << P
    return out


def value_bits(W: int, P: int, B: int, VB: int) -> int:
    """Value bits a record of at most ``W`` bits can hold (element masks): at most ``VB``
    a weight, and none without a non-zero block (``K`` + one element mask)."""
    return max(0, min(VB * P, W - P // B - B))


def latency() -> int:
    return 2


@block
def block_expand(aclk, aresetn, rv, rec, rl, ov, out, ol, *, P, B, WB, inner):
    """See the module docstring: ``out`` is ``P + value bits`` (mask) or ``P*WB`` (dense)."""
    if inner not in INNERS:
        raise ValueError(f"inner: must be one of {', '.join(INNERS)}, got {inner!r}")
    K = P // B
    F = B if inner == "mask" else B * WB
    W = len(rec)
    CB = K.bit_length()
    values = inner == "mask" and len(out) > P
    NC = K + 1 if values else K               # c_0..c_{K-1}, and m for the values
    counts_now, counts = Signal(intbv(0)[NC * CB:]), Signal(intbv(0)[NC * CB:])
    bm, tail = Signal(intbv(0)[K:]), Signal(intbv(0)[max(W - K, 1):])
    v1, l1 = Signal(bool(0)), Signal(bool(0))
    parts = [field_sums(rec, counts_now, out_bits=CB,
                        groups=[[(j, 1) for j in range(k)] for k in range(NC)])]
    picked, gated = Signal(intbv(0)[K * F:]), Signal(intbv(0)[K * F:])
    parts += [group_shift(tail, counts, picked, off_bits=CB, scale=F, width=F),
              gate_fields(picked, bm, gated, width=F)]
    whole = gated
    if values:
        vals, m = Signal(intbv(0)[len(out) - P:]), Signal(intbv(0)[CB:])
        whole = Signal(intbv(0)[len(out):])
        parts += [top_field(counts, m), part_select(tail, m, vals, scale=B),
                  joined_fields(gated, vals, whole)]
    parts.append(take_record(aclk, rec, counts_now, bm, tail, counts, K=K))

    @always(aclk.posedge)
    def step2():
        l1.next = rl
        out.next = whole
        ol.next = l1

    @always_seq(aclk.posedge, reset=aresetn)
    def flags():
        v1.next = rv
        ov.next = v1

    return parts, step2, flags


@block
def take_record(aclk, rec, counts_now, bm, tail, counts, *, K):
    """Step 1's register: the counts, the block mask and the bits after it (none when
    every record is only its block mask: an all-zero layer)."""
    W = len(rec)
    if W == K:
        @always(aclk.posedge)
        def counts_only():
            counts.next = counts_now
            bm.next = rec
            tail.next = 0
        return counts_only

    @always(aclk.posedge)
    def both():
        counts.next = counts_now
        bm.next = rec[K:]
        tail.next = rec[W:K]

    return both


@block
def gate_fields(src, enable, dst, *, width):
    """``dst`` field ``k`` (``width`` bits) = ``src`` field ``k`` where ``enable[k]``, else 0."""
    n = len(enable)

    @always_comb
    def model():
        v, e = int(src.val), int(enable.val)
        out = 0
        for k in range(n):
            if (e >> k) & 1:
                out |= ((v >> (k * width)) & ((1 << width) - 1)) << (k * width)
        dst.next = out

    dst.driven = "wire"
    src.read = enable.read = True
    gate_fields.verilog_code = "".join(
        f"assign $dst[{(k + 1) * width - 1}:{k * width}] = $enable[{k}] ? "
        f"$src[{(k + 1) * width - 1}:{k * width}] : {width}'d0;\n" for k in range(n))
    return model


@block
def top_field(src, dst):
    """``dst`` = the top ``len(dst)`` bits of ``src``."""
    S, D = len(src), len(dst)

    @always_comb
    def take():
        dst.next = src[S:S - D]

    return take


@block
def joined_fields(low, high, dst):
    """``dst`` = ``high ++ low`` (``low`` at bit 0)."""

    @always_comb
    def join():
        dst.next = concat(high, low)

    return join
