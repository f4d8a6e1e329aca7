"""The masked decoder's record table: for every word, where a record starting at each
offset ends, computed in a pipeline off the decoder's loop.

Primitives of ``blocks.sparse_decoder`` (no ``BlockDef``).  A record of the masked coding
(docs/sparse_format.md) that starts at bit ``o`` of a word is ``P + VB*c`` bits long,
``c`` the set bits of its ``P``-bit mask.  Records are at most ``W`` bits (the word), so
a record starting in word ``i`` ends in word ``i`` or ``i+1``.  For each word ``u`` taken,
with ``prev`` the word before it, :func:`record_table` computes over
``Y = prev[W-Q:W] ++ u`` (``Q = P - 1`` bits of ``prev``, then ``u``; ``W + Q`` bits) the
entry of every start ``s`` in ``0..W-1``:

* ``s >= Q``: a record starting at offset ``o = s - Q`` of ``u`` (its mask lies in ``u``);
  it ends at ``e = s + 1 + VB*c``; the entry is ``(e >= W, e mod W)``: whether it leaves
  ``u`` (one word is popped) and the next record's offset in the word it starts in;
* ``s < Q``: a record starting at offset ``W - Q + s`` of ``prev``, whose mask runs into
  ``u``: it always leaves ``prev``; the entry is ``(1, s + 1 + VB*c)``.

Records start only at multiples of ``g`` (:func:`offset_step`: the largest power of two
dividing ``P``, ``VB`` and ``W``; 1 for ternary, 4 for int4 at ``P = 32``), so only the
starts ``s = g-1 + g*i`` get an entry, offsets and ``VB*c`` in units of ``g``: ``W/g``
entries a word.  So word ``i``'s whole table is its own entries (offsets ``0..W-P``,
made when it came) followed by the ``P/g - 1`` entries made when word ``i+1`` came.  ``c = PS(s+P) - PS(s)``, ``PS``
the prefix count of ``Y``'s bits, made of chunk counts (4 bits a chunk), their prefix
(a Kogge-Stone tree, an adder level a stage) and the bits below a position in its chunk.
All arithmetic is modulo ``2**NB`` (``NB`` the entry's offset bits): exact for every
record of a valid image (a count is at most ``P <= W``), so no value is ever truncated.

Stages (each a register with the enable ``adv``; the whole pipeline moves in lock step):
chunk counts; ``levels`` prefix stages (``levels = ceil(log2(W+Q)//4)``);
``PS``; ``VB*c`` (``/2`` with element masks, :func:`block_tail`: the block-mask counts,
the element masks' counts, the lengths).  :func:`table_stages` gives the count.  The
entries are logic after the
last stage: the decoder's slots (and its head table) are their registers.
"""
from __future__ import annotations

import math

from myhdl import Signal, always_comb, always_seq, block, intbv

from blocks.bit_fields import field_sums
from blocks.mac import operand_register
from quant.sparse_format import RECORD_ALIGN, padded

CHUNK = 4
STEP_MAX = 2       # log2 of the largest offset step: CHUNK


def entry_bits(W: int, VB: int) -> int:
    """Bits of an entry's offset (``NB``): at least 3 (chunk counts) and ``VB``'s bits."""
    return max((W - 1).bit_length(), 3, VB.bit_length())


def offset_step(W: int, P: int, VB: int) -> int:
    """``g``: every record starts at a multiple of ``g`` bits of its word, the largest power
    of two dividing ``P``, ``VB`` and ``W`` (a start moves by ``P + VB*c``, and by ``-W``
    into the next word), at most a chunk (4).  Tables hold the ``W/g`` starts that can
    occur, offsets in units of ``g``."""
    t = min((x & -x).bit_length() - 1 for x in (W, P, VB))
    # at most a chunk: prefix counts are read at every offset, so every chunk's prefix is
    return 1 << min(t, STEP_MAX)


def prefix_levels(W: int, P: int, Q: int | None = None) -> int:
    chunks = (W + (P - 1 if Q is None else Q)) // CHUNK
    return max(chunks - 1, 0).bit_length()


def table_stages(W: int, P: int, block: int | None = None) -> int:
    """Registers from a word taken into the pipeline to its table: chunk counts, the
    prefix stages (a level each), prefix counts, window counts (the entries made
    from them go into the slots' registers); with ``block`` (``/2``, element masks) the
    block-mask counts, the prefix counts past the element masks, the element masks'
    counts, then the record lengths."""
    return 1 + prefix_levels(W, P, reach(W, P, block)) + (2 if block is None else 5)


def reach(W: int, P: int, block: int | None = None) -> int:
    """``Q``: the bits of the word before that a table reads, one less than the longest
    header (``P``, the mask; ``/2``: ``P/B + P``, the block mask and every element
    mask, but at most a word, since no record is longer)."""
    return P - 1 if block is None else min(P // block + P, W) - 1


def block_step(W: int, P: int, B: int, VB: int) -> int:
    """``g`` of the ``/2`` table (element masks): the largest power of two dividing
    ``P/B``, ``B``, ``W`` and the value bits as padded (``VB`` or, odd ``VB``, the record
    alignment), which every record length and word is a multiple of."""
    return offset_step(W, P // B, math.gcd(B, max(RECORD_ALIGN, VB & -VB)))


class Shape:
    """The geometry of a table, as the framer sees it: offsets in units of ``g``; ``TN``
    entries a word; ``QN`` of them (the last) made when the next word comes, ``own`` made
    with the word itself; ``nb`` offset bits.  ``/1`` (``block=None``): ``own = TN - QN``,
    the two parts are disjoint.  ``/2`` with element masks: ``own = TN`` (every start,
    the bits past the word read as zero), of which the last ``QN`` are overwritten by the
    entries made with the real next word when it comes (see :func:`block_tail`)."""

    def __init__(self, W, P, VB, block=None):
        self.W, self.P, self.VB, self.block = W, P, VB, block
        self.Q = reach(W, P, block)
        self.g = offset_step(W, P, VB) if block is None else block_step(W, P, block, VB)
        self.TN, self.QN = W // self.g, (self.Q + 1) // self.g - 1
        # ob: the loop's offsets, in units of g, are below TN
        self.ob = max(1, (self.TN - 1).bit_length())
        if block is None:
            # a real record's value bits in units of g are below TN too, so its counts
            # are exact modulo 2**ob: the table's arithmetic and the loop share nb
            self.nb = self.ob = max(self.ob, 3, (VB // self.g).bit_length())
        else:
            # a block count selects among K + 1 prefix counts: exact, so K's bits
            self.nb = max(entry_bits(W, VB), (P // block).bit_length())
        self.own = self.TN if block is not None else self.TN - self.QN
        self.entries = self.QN + self.own


class Layout:
    """Where each bit of ``Y`` lives after the first stage: ``u`` in ``yw``; of ``prev``'s
    part only the bits a prefix count reads (not the top bit of a chunk) in ``yp``."""

    def __init__(self, W, P, Q=None):
        self.W, self.P, self.Q = W, P, P - 1 if Q is None else Q
        self.YW = W + self.Q
        self.NCH = self.YW // CHUNK
        self.kept = [i for i in range(self.Q) if i % CHUNK != CHUNK - 1]
        self.where = {i: n for n, i in enumerate(self.kept)}

    def bit(self, i):
        """``(signal name, index)`` of bit ``i`` of ``Y`` after the first stage."""
        if i >= self.Q:
            return "yw", i - self.Q
        return "yp", self.where[i]

    def local(self, k):
        """Bits of ``Y`` in ``k``'s chunk below ``k``: ``PS(k) = CP[k//4] + count``."""
        return [k - k % CHUNK + t for t in range(k % CHUNK)]


# --- templates ----------------------------------------------------------------------------

def count_expr(bits, nb):
    """Verilog: the count of 0..3 one-bit terms as an ``nb``-bit value."""
    if not bits:
        return f"{nb}'d0"
    if len(bits) == 1:
        return f"{{{nb - 1}'d0, {bits[0]}}}"
    if len(bits) == 2:
        a, b = bits
        return f"{{{nb - 2}'d0, {a} & {b}, {a} ^ {b}}}"
    a, b, c = bits
    return f"{{{nb - 2}'d0, ({a} & {b}) | ({a} & {c}) | ({b} & {c}), {a} ^ {b} ^ {c}}}"


@block
def prefix_counts(yp, yw, incl, ps, *, lay, nb, ib, step):
    """``ps`` field ``j`` = ``PS(k)`` mod ``2**nb`` at ``k = step - 1 + step*j`` (the
    positions a window can start or end at, ``k <= W+Q``): the inclusive chunk prefix
    ``incl`` (``ib``-bit fields) of the chunks below ``k``'s, plus the bits below ``k``
    in its chunk."""
    mask = (1 << nb) - 1
    imask = (1 << ib) - 1
    places = list(range(step - 1, lay.YW + 1, step))

    @always_comb
    def model():
        vals = {"yp": int(yp.val) if yp is not None else 0, "yw": int(yw.val)}
        inc = int(incl.val) if incl is not None else 0
        out = 0
        for f, k in enumerate(places):
            j = k // CHUNK
            total = (inc >> ((j - 1) * ib)) & imask if j else 0
            for i in lay.local(k):
                name, n = lay.bit(i)
                total += (vals[name] >> n) & 1
            out |= (total & mask) << (f * nb)
        ps.next = out

    lines = []
    for f, k in enumerate(places):
        j = k // CHUNK
        bits = [f"${lay.bit(i)[0]}[{lay.bit(i)[1]}]" for i in lay.local(k)]
        if not j:
            base = f"{nb}'d0"
        elif ib == nb:
            base = f"$incl[{j * ib - 1}:{(j - 1) * ib}]"
        else:
            base = f"{{{nb - ib}'d0, $incl[{j * ib - 1}:{(j - 1) * ib}]}}"
        lines.append(f"assign $ps[{(f + 1) * nb - 1}:{f * nb}] = {base} + "
                     f"{count_expr(bits, nb)};")
    ps.driven = "wire"
    for sig in (yp, yw, incl):
        if sig is not None:
            sig.read = True
    prefix_counts.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def window_values(ps, m, *, W, P, VB, nb, step):
    """``m`` field ``i`` = ``VB * (PS(s+P) - PS(s))`` mod ``2**nb``, ``s = step-1 +
    step*i``: the value bits of the record whose mask starts at ``s`` (``ps`` holds
    ``PS`` at those places only)."""
    mask = (1 << nb) - 1
    n, far = W // step, P // step

    @always_comb
    def model():
        v = int(ps.val)
        out = 0
        for i in range(n):
            c = ((v >> ((i + far) * nb)) - (v >> (i * nb))) & mask
            out |= ((c * VB) & mask) << (i * nb)
        m.next = out

    lines = [f"assign $m[{(i + 1) * nb - 1}:{i * nb}] = ($ps[{(i + far + 1) * nb - 1}:"
             f"{(i + far) * nb}] - $ps[{(i + 1) * nb - 1}:{i * nb}]) * {nb}'d{VB};"
             for i in range(n)]
    m.driven = "wire"
    ps.read = True
    window_values.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def entries(m, tab, *, W, Q, nb, step):
    """``tab`` field ``i`` (``nb + 1`` bits) = the entry of start ``s = step-1 + step*i``:
    ``{pop, next / step}`` (see the module docstring), from ``m`` = the record's value
    bits over ``step`` (starts, ``W`` and ``VB`` are multiples of ``step``)."""
    mask = (1 << nb) - 1
    eb = nb + 1
    n = W // step

    @always_comb
    def model():
        v = int(m.val)
        out = 0
        for i in range(n):
            s = step - 1 + step * i
            mv = (v >> (i * nb)) & mask
            if s < Q:
                e = (1 << nb) | ((mv + (s + 1) // step) & mask)
            elif mv >= n - 1 - i:
                e = (1 << nb) | ((mv + (s + 1 - W) // step) & mask)
            else:
                e = (mv + (s + 1) // step) & mask
            out |= e << (i * eb)
        tab.next = out

    lines = []
    for i in range(n):
        s = step - 1 + step * i
        mv = f"$m[{(i + 1) * nb - 1}:{i * nb}]"
        here = f"{mv} + {nb}'d{((s + 1) // step) & mask}"
        out = f"{mv} + {nb}'d{((s + 1 - W) // step) & mask}"
        field = f"$tab[{(i + 1) * eb - 1}:{i * eb}]"
        if s < Q:
            lines.append(f"assign {field} = {{1'b1, {here}}};")
        elif s == W - 1:        # a record from offset W-P always leaves the word
            lines.append(f"assign {field} = {{1'b1, {out}}};")
        else:
            lines.append(f"assign {field} = {mv} >= {nb}'d{n - 1 - i} ? {{1'b1, {out}}}"
                         f" : {{1'b0, {here}}};")
    tab.driven = "wire"
    m.read = True
    entries.verilog_code = "\n".join(lines) + "\n"
    return model


# --- the pipeline -------------------------------------------------------------------------

@block
def stage(aclk, aresetn, adv, pairs, valid_in, valid):
    """One register stage of the lock-step pipeline: every ``(src, dst)`` of ``pairs``
    takes ``src`` where ``adv``; so does ``valid`` (with reset) from ``valid_in``."""

    @always_seq(aclk.posedge, reset=aresetn)
    def flag():
        if adv:
            valid.next = valid_in

    return [operand_register(aclk, adv, src, dst) for src, dst in pairs], flag


@block
def record_table(aclk, aresetn, adv, word, wvalid, wlast, tab, tword, tlast, tvalid, *,
                 P, VB, W, block=None, tvalid_pre=None):
    """The table pipeline (see the module docstring).  ``word``/``wvalid``/``wlast``: the
    stage before it (a word, or a bubble); ``tab``/``tword``/``tlast``/``tvalid``: its last
    stage: the table made when ``tword`` came (``Shape(W, P, VB, block).entries`` entries
    ``s``, ``ob + 1`` bits each).  ``block``: ``B`` of ``/2`` with element masks (the
    entries of :func:`block_tail`); ``None``: ``/1`` masked (or ``/2`` with dense
    blocks, as ``P/B``-bit masks of ``B*WB``-bit values)."""
    shape = Shape(W, P, VB, block)
    lay = Layout(W, P, shape.Q)
    Q, YW, NCH = lay.Q, lay.YW, lay.NCH
    g = shape.g
    nb = shape.nb                   # offsets and value bits in units of g
    ypn = len(lay.kept)

    def sig(bits):
        return Signal(intbv(0)[bits:]) if bits else None

    def carried(yw, yp, last):
        """The signals every stage passes on, and their next copies."""
        pairs = [(yw, sig(W)), (last, Signal(bool(0)))]
        if yp is not None:
            pairs.append((yp, sig(ypn)))
        return pairs, [d for _, d in pairs] + ([None] if yp is None else [])

    parts = []
    prev = sig(Q)
    yp_now = sig(ypn)
    if ypn:
        parts.append(pick_bits(prev, yp_now, kept=lay.kept))
    if Q:
        parts.append(keep_prev(aclk, aresetn, adv, wvalid, word, prev))
    # stage 1: the chunk counts of Y
    pairs, (yw, last, yp) = carried(word, yp_now, wlast)
    v = Signal(bool(0))
    incl, ib = None, 3
    if NCH:
        g_now, incl = sig(NCH * 3), sig(NCH * 3)
        parts.append(chunk_counts(prev, word, g_now, lay=lay))
        pairs.append((g_now, incl))
    parts.append(stage(aclk, aresetn, adv, pairs, wvalid, v))
    # the chunk prefix: Kogge-Stone, a register after every level (two levels in a
    # stage, two carry chains apart in routing, were the ECP5 critical path)
    d = 1
    while d < NCH:
        nxt = sig(NCH * nb)
        parts.append(field_sums(incl, nxt, out_bits=nb, groups=[
            [(c * ib, ib)] + ([((c - d) * ib, ib)] if c >= d else []) for c in range(NCH)]))
        incl, ib, d = nxt, nb, 2 * d
        pairs, (yw, last, yp) = carried(yw, yp, last)
        reg, v2 = sig(NCH * nb), Signal(bool(0))
        parts.append(stage(aclk, aresetn, adv, pairs + [(incl, reg)], v, v2))
        incl, v = reg, v2
    # PS(k), then the value bits of every window, then the entries
    ps_now, ps = sig((YW + 1) // g * nb), sig((YW + 1) // g * nb)
    parts.append(prefix_counts(yp, yw, incl, ps_now, lay=lay, nb=nb, ib=ib, step=g))
    pairs, (yw, last, _) = carried(yw, None, last)
    v2 = Signal(bool(0))
    parts.append(stage(aclk, aresetn, adv, pairs + [(ps_now, ps)], v, v2))
    if block is not None:
        parts.append(block_tail(aclk, aresetn, adv, ps, yw, last, v2, tab, tword, tlast,
                                tvalid, shape=shape, tvalid_pre=tvalid_pre))
        return parts
    m_now, m = sig(W // g * nb), sig(W // g * nb)
    parts.append(window_values(ps, m_now, W=W, P=P, VB=VB // g, nb=nb, step=g))
    pairs, (yw, last, _) = carried(yw, None, last)
    v3 = Signal(bool(0))
    parts.append(stage(aclk, aresetn, adv, pairs + [(m_now, m)], v2, v3))
    # the entries are not registered here: the slots and the head table are their
    # registers (the table slots take them with the word)
    # (for /1 the loop's offsets are the table's nb bits: shape.ob == nb)
    parts.append(entries(m, tab, W=W, Q=Q, nb=nb, step=g))
    parts.append(outputs(yw, last, v3, tword, tlast, tvalid))
    if tvalid_pre is not None:
        parts.append(valid_before(v2, tvalid_pre))
    return parts


@block
def block_tail(aclk, aresetn, adv, ps, yw, last, valid, tab, tword, tlast, tvalid, *, shape,
               tvalid_pre=None):
    """``/2`` with element masks, after the prefix counts ``ps``: the block mask's count
    ``m`` of every start (``PS(s+K) - PS(s)``, ``K = P/B``; a register), the set bits
    ``n`` of the next ``B*m`` bits (a ``K+1``-way select of prefix counts, a register,
    then a subtraction, a register: the two in one cycle were an int4 layer's critical
    path on ECP5), the record's padded length (:func:`block_lengths`, a register), then
    the entries (:func:`block_entries`).  Prefix counts past the end of ``Y`` read as its
    last (the bits beyond are zero)."""
    g, nb, P, B = shape.g, shape.nb, shape.P, shape.block
    K, NE, W = P // B, shape.entries, shape.W
    # a length (at most a word for a real record) and the constants that make it
    xb = max(nb + 1, max(K, B, shape.VB).bit_length())
    kg = K // g
    mb = K.bit_length()             # a block count's live bits (at most K)

    def sig(bits):
        return Signal(intbv(0)[bits:])

    # the block masks' counts read fields 0..NE-1+K/g; the element masks' from K/g on,
    # at steps of B/g from each start's (as a word is at least K bits, NE >= K/g)
    top = len(ps) // nb - 1
    reads = sorted({i + j * (B // g) for i in range(NE) for j in range(K + 1)})
    ps_x, ps_k = sig((NE + kg) * nb), sig((top + 1 - kg) * nb)
    ps2, ps2_x = sig(len(ps_k)), sig(len(reads) * nb)
    m_now, m = sig(NE * nb), sig(NE * nb)
    far_now, far, base_now, base = (sig(NE * nb) for _ in range(4))
    n_now, n, m3, m4 = sig(NE * nb), sig(NE * nb), sig(NE * mb), sig(NE * mb)
    lens_now, lens = sig(NE * xb), sig(NE * xb)
    w2, w3, w4, w5 = sig(W), sig(W), sig(W), sig(W)
    l2, l3, l4, l5, v3, v4, v5, v6 = (Signal(bool(0)) for _ in range(8))
    m_low = sig(NE * mb)
    return (pick_fields(ps, ps_x, nb=nb, picks=[min(f, top) for f in range(NE + kg)]),
            pick_fields(ps, ps_k, nb=nb, picks=range(kg, top + 1)),
            window_values(ps_x, m_now, W=NE * g, P=K, VB=1, nb=nb, step=g),
            stage(aclk, aresetn, adv, [(yw, w2), (last, l2), (m_now, m), (ps_k, ps2)], valid,
                  v3),
            pick_fields(ps2, ps2_x, nb=nb, picks=[min(f, top - kg) for f in reads]),
            element_picks(ps2_x, m, far_now, K=K, B=B, nb=nb, step=g, fields=reads),
            pick_fields(ps2, base_now, nb=nb, picks=[min(i, top - kg) for i in range(NE)]),
            narrow_fields(m, m_low, nb=nb, out_bits=mb),
            stage(aclk, aresetn, adv, [(w2, w3), (l2, l3), (far_now, far), (base_now, base),
                                       (m_low, m3)], v3, v4),
            field_diffs(far, base, n_now, nb=nb),
            stage(aclk, aresetn, adv, [(w3, w4), (l3, l4), (n_now, n), (m3, m4)], v4, v5),
            block_lengths(n, m4, lens_now, K=K, B=B, VB=shape.VB, nb=nb, mb=mb, xb=xb,
                          step=g),
            stage(aclk, aresetn, adv, [(w4, w5), (l4, l5), (lens_now, lens)], v5, v6),
            block_entries(lens, tab, TN=shape.TN, QN=shape.QN, ob=shape.ob, xb=xb),
            outputs(w5, l5, v6, tword, tlast, tvalid),
            [] if tvalid_pre is None else valid_before(v5, tvalid_pre))


@block
def pick_fields(src, dst, *, nb, picks):
    """``dst`` field ``n`` = ``src`` field ``picks[n]`` (``nb``-bit fields)."""
    plan = tuple(picks)
    mask = (1 << nb) - 1

    @always_comb
    def model():
        v = int(src.val)
        dst.next = sum(((v >> (f * nb)) & mask) << (n * nb) for n, f in enumerate(plan))

    parts = ", ".join(f"$src[{(f + 1) * nb - 1}:{f * nb}]" for f in reversed(plan))
    dst.driven = "wire"
    src.read = True
    pick_fields.verilog_code = f"assign $dst = {{{parts}}};\n"
    return model


@block
def element_picks(ps, m, far, *, K, B, nb, step, fields=None):
    """``far`` field ``i`` = ``PS(i + B*m_i)`` (mod ``2**nb``), the prefix count past the
    element masks of start ``i``'s ``m_i`` non-zero blocks (``m_i``: field ``i`` of
    ``m``, at most ``K``; ``ps`` fields from the first element mask of start 0 on, one
    a ``step``; ``fields``: those ``ps`` holds, in order, if not all).  Less ``PS(i)``
    (:func:`field_diffs`, a stage later) it is the set bits of those masks."""
    NE = len(m) // nb
    bg = B // step
    at = ({f: n for n, f in enumerate(fields)} if fields is not None
          else {f: f for f in range(len(ps) // nb)})
    mask = (1 << nb) - 1

    @always_comb
    def model():
        p, mv = int(ps.val), int(m.val)
        out = 0
        for i in range(NE):
            mi = (mv >> (i * nb)) & mask
            out |= ((p >> (at[i + mi * bg] * nb)) & mask) << (i * nb)
        far.next = out

    lines = []
    for i in range(NE):
        cands = ", ".join(f"$ps[{(at[i + j * bg] + 1) * nb - 1}:{at[i + j * bg] * nb}]"
                          for j in reversed(range(K + 1)))
        mi = f"$m[{(i + 1) * nb - 1}:{i * nb}]"
        lines += [f"wire [{(K + 1) * nb - 1}:0] ${{far}}_c{i} = {{{cands}}};",
                  f"assign $far[{(i + 1) * nb - 1}:{i * nb}] = "
                  f"${{far}}_c{i}[{mi} * {nb} +: {nb}];"]
    far.driven = "wire"
    ps.read = m.read = True
    element_picks.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def field_diffs(a, b, out, *, nb):
    """``out`` field ``i`` = ``a`` field ``i`` - ``b`` field ``i`` (mod ``2**nb``)."""
    n, mask = len(out) // nb, (1 << nb) - 1

    @always_comb
    def model():
        av, bv = int(a.val), int(b.val)
        out.next = sum(((((av >> (i * nb)) & mask) - ((bv >> (i * nb)) & mask)) & mask)
                       << (i * nb) for i in range(n))

    out.driven = "wire"
    a.read = b.read = True
    field_diffs.verilog_code = "".join(
        f"assign $out[{(i + 1) * nb - 1}:{i * nb}] = $a[{(i + 1) * nb - 1}:{i * nb}] - "
        f"$b[{(i + 1) * nb - 1}:{i * nb}];\n" for i in range(n))
    return model


@block
def narrow_fields(src, dst, *, nb, out_bits):
    """``dst`` field ``i`` (``out_bits``) = the low bits of ``src`` field ``i`` (``nb``)."""
    n = len(dst) // out_bits
    low = (1 << out_bits) - 1

    @always_comb
    def model():
        v = int(src.val)
        dst.next = sum(((v >> (i * nb)) & low) << (i * out_bits) for i in range(n))

    dst.driven = "wire"
    src.read = True
    narrow_fields.verilog_code = "".join(
        f"assign $dst[{(i + 1) * out_bits - 1}:{i * out_bits}] = "
        f"$src[{i * nb + out_bits - 1}:{i * nb}];\n" for i in range(n))
    return model


@block
def block_lengths(n, m, lens, *, K, B, VB, nb, mb, xb, step):
    """``lens`` field ``i`` (``xb`` bits) = ``pad(K + B*m_i + VB*n_i) / step``, the length
    of the record of start ``i`` in units of ``step``: ``m_i`` (field ``i`` of ``m``,
    ``mb`` bits) its non-zero blocks, ``n_i`` (field ``i`` of ``n``, ``nb`` bits) the set
    bits of their element masks; ``pad``: up to the record alignment (2), so one
    parity bit, made of the odd terms' low bits."""
    assert RECORD_ALIGN == 2
    NE = len(n) // nb
    mask, mmask, xmask = (1 << nb) - 1, (1 << mb) - 1, (1 << xb) - 1

    @always_comb
    def model():
        nv, mv = int(n.val), int(m.val)
        out = 0
        for i in range(NE):
            mi, ni = (mv >> (i * mb)) & mmask, (nv >> (i * nb)) & mask
            length = padded(K + B * mi + VB * ni, RECORD_ALIGN)
            out |= ((length // step) & xmask) << (i * xb)
        lens.next = out

    def line(i):
        mf = f"$m[{(i + 1) * mb - 1}:{i * mb}]"
        nf = f"$n[{(i + 1) * nb - 1}:{i * nb}]"
        if step > 1:        # K and B even (step divides them): only an odd VB*n_i pads
            if VB % 2 == 0:
                values = f"{nf} * {xb}'d{VB // step}"
            else:           # pad(VB*n) = 2*VB*(n >> 1) + (VB + 1)*n[0]; step is 2
                values = (f"$n[{(i + 1) * nb - 1}:{i * nb + 1}] * {xb}'d{VB} + "
                          f"$n[{i * nb}] * {xb}'d{(VB + 1) // 2}")
            return f"{xb}'d{K // step} + {mf} * {xb}'d{B // step} + {values}"
        odd = [f"$m[{i * mb}]"] * (B % 2) + [f"$n[{i * nb}]"] * (VB % 2)
        flip = " ^ 1'b1" if K % 2 else ""
        parity = f" + ({' ^ '.join(odd)}{flip}) * {xb}'d1" if odd else ""
        const = K + K % 2 if not odd else K
        return f"{xb}'d{const} + {mf} * {xb}'d{B} + {nf} * {xb}'d{VB}{parity}"

    lines = [f"assign $lens[{(i + 1) * xb - 1}:{i * xb}] = {line(i)};" for i in range(NE)]
    lens.driven = "wire"
    n.read = m.read = True
    block_lengths.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def block_entries(lens, tab, *, TN, QN, ob, xb):
    """``tab`` field ``i`` (``ob + 1`` bits) = ``{pop, next}`` of start ``i`` from its
    record's length ``lens_i`` (units of the step), ``QN + TN`` of them: starts ``i <
    QN`` lie in the word before (``QN - i`` steps before its end), the others at step
    ``c = i - QN`` of the word.  ``next`` is the next record's start in the word it lies
    in; ``pop`` whether that is the next word.  Exact for every record no longer than a
    word whose header lies in the bits the table read."""
    mask, xmask = (1 << ob) - 1, (1 << xb) - 1
    eb = ob + 1

    def rule(i):
        """``(threshold, next if it pops, next if it stays)`` as additions to ``lens_i``."""
        if i < QN:
            d = QN - i
            return d, -d, TN - d
        c = i - QN
        return TN - c, c - TN, c

    @always_comb
    def model():
        v = int(lens.val)
        out = 0
        for i in range(QN + TN):
            n = (v >> (i * xb)) & xmask
            limit, leave, stay = rule(i)
            e = (1 << ob) | ((n + leave) & mask) if n >= limit else (n + stay) & mask
            out |= e << (i * eb)
        tab.next = out

    lines = []
    for i in range(QN + TN):
        limit, leave, stay = rule(i)
        n = f"$lens[{(i + 1) * xb - 1}:{i * xb}]"
        low = f"$lens[{i * xb + ob - 1}:{i * xb}]"
        lines.append(f"assign $tab[{(i + 1) * eb - 1}:{i * eb}] = {n} >= {xb}'d{limit & xmask}"
                     f" ? {{1'b1, {low} + {ob}'d{leave & mask}}}"
                     f" : {{1'b0, {low} + {ob}'d{stay & mask}}};")
    tab.driven = "wire"
    lens.read = True
    block_entries.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def outputs(yw, last, valid, tword, tlast, tvalid):
    """The last stage's word, flag and valid, out of the pipeline."""

    @always_comb
    def pass_on():
        tword.next = yw
        tlast.next = last
        tvalid.next = valid

    return pass_on


@block
def valid_before(valid, tvalid_pre):
    """``tvalid_pre``: the valid of the stage before the last (the walker's lookahead)."""

    @always_comb
    def pass_on():
        tvalid_pre.next = valid

    return pass_on


@block
def keep_prev(aclk, aresetn, adv, wvalid, word, prev):
    """The top ``Q`` bits of the last word that entered the pipeline (reset: the chunk
    prefix would carry an unknown first word's bits into every count after them)."""
    W, Q = len(word), len(prev)

    @always_seq(aclk.posedge, reset=aresetn)
    def load():
        if adv and wvalid:
            prev.next = word[W:W - Q]

    return load


@block
def chunk_counts(prev, word, g, *, lay):
    """``g`` field ``c`` (3 bits) = the set bits of ``Y[4c : 4c+4]``, ``Y = prev ++ word``."""

    def where(i):
        return ("prev", i) if i < lay.Q else ("word", i - lay.Q)

    @always_comb
    def model():
        vals = {"prev": int(prev.val) if prev is not None else 0, "word": int(word.val)}
        out = 0
        for c in range(lay.NCH):
            total = 0
            for t in range(CHUNK):
                name, n = where(CHUNK * c + t)
                total += (vals[name] >> n) & 1
            out |= total << (3 * c)
        g.next = out

    lines = []
    for c in range(lay.NCH):
        a, b, c2, d = (f"${where(CHUNK * c + t)[0]}[{where(CHUNK * c + t)[1]}]"
                       for t in range(CHUNK))
        # the count as logic (one LUT4 a bit), not as adders
        lines.append(f"assign $g[{3 * c}] = {a} ^ {b} ^ {c2} ^ {d};")
        lines.append(f"assign $g[{3 * c + 1}] = (({a} ^ {b}) & ({c2} ^ {d})) ^ "
                     f"({a} & {b}) ^ ({c2} & {d});")
        lines.append(f"assign $g[{3 * c + 2}] = {a} & {b} & {c2} & {d};")
    g.driven = "wire"
    word.read = True
    if prev is not None:
        prev.read = True
    chunk_counts.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def pick_bits(src, dst, *, kept):
    """``dst`` bit ``n`` = ``src`` bit ``kept[n]``."""
    plan = tuple(kept)

    @always_comb
    def model():
        v = int(src.val)
        dst.next = sum(((v >> i) & 1) << n for n, i in enumerate(plan))

    dst.driven = "wire"
    src.read = True
    pick_bits.verilog_code = "".join(f"assign $dst[{n}] = $src[{i}];\n"
                                     for n, i in enumerate(plan))
    return model
