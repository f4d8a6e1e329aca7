"""ECP5 slice logic written out as cell instances, for the few selects whose depth and
routing Yosys' LUT mapping would otherwise decide (the sparse decoder's loop and its
expander).  Each instance sits in the ``SYNTHESIS`` branch of an ``ifdef``
(:func:`for_synthesis`); simulators and lint read the plain Verilog beside it, and the
tests prove the two equal with behavioural models of the cells.
"""
from __future__ import annotations


def lut_init(f) -> int:
    """The ``INIT`` of an ECP5 ``LUT4`` computing ``f(A, B, C, D)``."""
    return sum(f(i & 1, (i >> 1) & 1, (i >> 2) & 1, (i >> 3) & 1) << i for i in range(16))


MUX2_INIT = lut_init(lambda a, b, c, d: c if a else b)     # Z = A ? C : B


def for_synthesis(synthesis: str, simulation: str) -> str:
    """Verilog: ``synthesis`` where ``SYNTHESIS`` is defined (Yosys defines it), else
    ``simulation`` (simulators and lint): the ECP5 selects of :func:`ecp5_select` are
    simulated as the plain selects they replace (tests/blocks prove the two equal)."""
    return f"`ifdef SYNTHESIS\n{synthesis}`else\n{simulation}`endif\n"


def ecp5_select(bits, sel, out, first=None, vector=True, *, tag="", base=0):
    """Verilog: ``$<out>[b]`` = ``bits[b][index]`` (``sel``: the index's bits, low
    first, expressions; ``2**len(sel)`` one-bit leaves each, ``1'b0`` allowed) as
    instantiated ECP5 slice logic: up to 16 leaves in one PFU (``LUT4`` 2:1 selects on
    the LUT's fast input, ``PFUMX``, two ``L6MUX21`` levels: no general routing inside),
    such groups of groups above.  ABC maps the same select as LUT4s a 2:1 select each (6
    levels and 6 routing hops for 64 leaves; 2 hops here).  A group of constant zeros is
    the constant.  ``first``: copies of the index's low bits (lists of bit expressions)
    that the first level's groups take in turn.  ``vector``: ``out`` is a vector (else
    a single bit, ``bits`` one list).  ``tag``: added to the wires' names (several
    selects into one ``out``); ``base``: the index of ``out`` that ``bits[0]`` drives."""
    lines = []
    count = [0]

    def node(kind, pins):
        count[0] += 1
        z = f"${{{out}}}{tag}_x{count[0]}"
        lines.append(f"wire {z};")
        args = ", ".join(f".{k}({v})" for k, v in pins) + f", .Z({z})"
        param = f" #(.INIT(16'h{MUX2_INIT:04x}))" if kind == "LUT4" else ""
        lines.append(f"{kind}{param} {z}_i ({args});")
        return z

    def group(xs, picks):
        if all(x == "1'b0" for x in xs):
            return "1'b0"
        level = [node("LUT4", [("A", picks[0]), ("B", lo), ("C", hi), ("D", "1'b0")])
                 for lo, hi in zip(xs[::2], xs[1::2])] if picks else list(xs)
        if len(picks) >= 2:
            level = [node("PFUMX", [("ALUT", hi), ("BLUT", lo), ("C0", picks[1])])
                     for lo, hi in zip(level[::2], level[1::2])]
        for pick in picks[2:]:
            level = [node("L6MUX21", [("D0", lo), ("D1", hi), ("SD", pick)])
                     for lo, hi in zip(level[::2], level[1::2])]
        return level[0]

    n_group = 0
    for b, leaves in enumerate(bits):
        level, lo = list(leaves), 0
        while len(level) > 1:
            take = min(4, len(sel) - lo)
            k = 1 << take
            groups = []
            for i in range(0, len(level), k):
                picks = sel[lo:lo + take]
                if first and lo == 0:
                    copy = first[n_group % len(first)]
                    n_group += 1
                    picks = [copy[t] if t < len(copy) else pick
                             for t, pick in enumerate(picks)]
                groups.append(group(level[i:i + k], picks))
            level, lo = groups, lo + take
        lines.append(f"assign ${out}{f'[{base + b}]' if vector else ''} = {level[0]};")
    return "\n".join(lines) + "\n"
