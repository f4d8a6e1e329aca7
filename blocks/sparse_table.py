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
(a Kogge-Stone tree, two adder levels a stage) and the bits below a position in its chunk.
All arithmetic is modulo ``2**NB`` (``NB`` the entry's offset bits): exact for every
record of a valid image (a count is at most ``P <= W``), so no value is ever truncated.

Stages (each a register with the enable ``adv``; the whole pipeline moves in lock step):
chunk counts; ``ceil(levels/2)`` prefix stages (``levels = ceil(log2(W+Q)//4)``);
``PS``; ``VB*c``.  :func:`table_stages` gives the count.  The entries are logic after the
last stage: the decoder's slots (and its head table) are their registers.
"""
from __future__ import annotations

from myhdl import Signal, always_comb, always_seq, block, intbv

from blocks.bit_fields import field_sums
from blocks.mac import operand_register

CHUNK = 4


def entry_bits(W: int, VB: int) -> int:
    """Bits of an entry's offset (``NB``): at least 3 (chunk counts) and ``VB``'s bits."""
    return max((W - 1).bit_length(), 3, VB.bit_length())


def offset_step(W: int, P: int, VB: int) -> int:
    """``g``: every record starts at a multiple of ``g`` bits of its word, the largest power
    of two dividing ``P``, ``VB`` and ``W`` (a start moves by ``P + VB*c``, and by ``-W``
    into the next word).  Tables hold the ``W/g`` starts that can occur, offsets in
    units of ``g``."""
    t = min((x & -x).bit_length() - 1 for x in (W, P, VB))
    return 1 << t


def prefix_levels(W: int, P: int) -> int:
    chunks = (W + P - 1) // CHUNK
    return max(chunks - 1, 0).bit_length()


def table_stages(W: int, P: int) -> int:
    """Registers from a word taken into the pipeline to its table: chunk counts, the
    prefix stages (two levels each), prefix counts, window counts (the entries made
    from them go into the slots' registers)."""
    return 1 + (prefix_levels(W, P) + 1) // 2 + 2


class Layout:
    """Where each bit of ``Y`` lives after the first stage: ``u`` in ``yw``; of ``prev``'s
    part only the bits a prefix count reads (not the top bit of a chunk) in ``yp``."""

    def __init__(self, W, P):
        self.W, self.P, self.Q = W, P, P - 1
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
                 P, VB, W):
    """The table pipeline (see the module docstring).  ``word``/``wvalid``/``wlast``: the
    stage before it (a word, or a bubble); ``tab``/``tword``/``tlast``/``tvalid``: its last
    stage: the table made when ``tword`` came (entries ``s``, ``nb + 1`` bits each)."""
    lay = Layout(W, P)
    Q, YW, NCH = lay.Q, lay.YW, lay.NCH
    g = offset_step(W, P, VB)
    nb = entry_bits(W, VB)          # offsets and value bits in units of g
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
    # the chunk prefix: Kogge-Stone, a register every two levels
    d, level = 1, 0
    while d < NCH:
        nxt = sig(NCH * nb)
        parts.append(field_sums(incl, nxt, out_bits=nb, groups=[
            [(c * ib, ib)] + ([((c - d) * ib, ib)] if c >= d else []) for c in range(NCH)]))
        incl, ib, d, level = nxt, nb, 2 * d, level + 1
        if level % 2 == 0 or d >= NCH:
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
    m_now, m = sig(W // g * nb), sig(W // g * nb)
    parts.append(window_values(ps, m_now, W=W, P=P, VB=VB // g, nb=nb, step=g))
    pairs, (yw, last, _) = carried(yw, None, last)
    v3 = Signal(bool(0))
    parts.append(stage(aclk, aresetn, adv, pairs + [(m_now, m)], v2, v3))
    # the entries are not registered here: the slots and the head table are their
    # registers (the table slots take them with the word)
    parts.append(entries(m, tab, W=W, Q=Q, nb=nb, step=g))
    parts.append(outputs(yw, last, v3, tword, tlast, tvalid))
    return parts


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
