"""Bit-field primitives with Verilog templates: balanced sums of fields, indexed part
selects, a wrapping window over a ring of words, and the ring's word store.

Primitives that blocks instantiate (no ``BlockDef``).  Each is combinational (``ring_store``
is a register) and has two faces: a Python model for MyHDL simulation, and a Verilog
template for conversion, because MyHDL's converter would otherwise build these as serial
chains (a running sum), declare bits nothing reads (shifted copies) or reject variable
part selects.  The decoder's co-simulation in Icarus checks every template against its
model, bit for bit.

* :func:`field_sums`: ``dst`` field ``k`` = the sum of ``src`` fields ``groups[k]``, as a
  balanced adder tree (``log2`` of the terms deep).
* :func:`part_select`: ``out = bus[index*scale +: len(out)]``, zeros past the end.
* :func:`group_shift`: one such select per field of ``offs`` (on an ECP5 target,
  instantiated slice muxes for synthesis: ``blocks.ecp5_cells``).
* :func:`ring_window`: ``window`` = bits ``[head, head + len(window))`` of ``ring``, wrapping.
* :func:`ring_store`: slot ``write_slot`` of ``ring`` takes a word on a rising edge.

Template names are bound before the generator is created (MyHDL takes them from the
block's namespace at that point) and whole port lists go into the template text itself
(MyHDL substitutes ``$`` names once).
"""
from __future__ import annotations

from myhdl import always, always_comb, block

from blocks.ecp5_cells import ecp5_select, for_synthesis


def balanced(terms):
    """Verilog text: a balanced sum of ``terms`` (each already as wide as the result)."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({balanced(terms[:half])} + {balanced(terms[half:])})"


@block
def field_sums(src, dst, *, groups, out_bits):
    """``dst`` field k (``out_bits`` wide) = the sum of the ``src`` fields ``groups[k]``
    (each ``(lo, width)``), as a balanced adder tree, modulo ``2**out_bits`` like the
    Verilog's adders (a field wider than that adds only its low ``out_bits`` bits, which
    gives the same sum); an empty group is 0."""
    ob = out_bits
    if len(dst) != len(groups) * ob:
        raise ValueError("dst: one field per group")
    plan = [tuple(g) for g in groups]
    wrap = (1 << ob) - 1

    @always_comb
    def model():
        v = int(src.val)
        out = 0
        for k, fields in enumerate(plan):
            total = sum((v >> lo) & ((1 << w) - 1) for lo, w in fields)
            out |= (total & wrap) << (k * ob)
        dst.next = out

    lines = []
    for k, fields in enumerate(plan):
        terms = []
        for lo, w in fields:
            w = min(w, ob)
            sel = f"$src[{lo + w - 1}:{lo}]" if w > 1 else f"$src[{lo}]"
            terms.append(sel if w == ob else f"{{{ob - w}'d0, {sel}}}")
        lines.append(f"assign $dst[{(k + 1) * ob - 1}:{k * ob}] = "
                     + (balanced(terms) if terms else f"{ob}'d0") + ";")
    dst.driven = "wire"
    src.read = True
    field_sums.verilog_code = "\n".join(lines) + "\n"
    return model


@block
def part_select(bus, index, out, *, scale):
    """``out`` = ``bus[index*scale +: len(out)]``, zeros beyond the bus."""
    B, O = len(bus), len(out)
    mask = (1 << O) - 1
    ext = B + O

    @always_comb
    def model():
        out.next = (int(bus.val) >> (int(index.val) * scale)) & mask

    out.driven = "wire"
    bus.read = index.read = True
    part_select.verilog_code = (
        "wire [$ext-1:0] ${out}_ext = {$O'd0, $bus};\n"
        "assign $out = ${out}_ext[$index * $scale +: $O];\n")
    return model


@block
def group_shift(vals, offs, out, *, off_bits, scale, width, ecp5=False, reach=None):
    """Field ``g`` of ``out`` (``width`` bits) = ``vals[off_g*scale +: width]`` (zeros past
    the end), ``off_g`` the ``g``-th ``off_bits`` field of ``offs``.  ``reach``: the
    largest offset of each group, which the caller guarantees (the model checks it);
    ``None``: any.  ``ecp5``: for synthesis each group's select is ECP5 slice muxes
    (``blocks.ecp5_cells.ecp5_select``) on the offset's low bits its reach needs, the
    leaves past the end of ``vals`` constant 0 (the plain select's zero extension, ``X``
    past that); simulators and lint read the plain select (tests/blocks/test_bit_fields
    proves the two equal on every offset those low bits encode)."""
    n = len(out) // width
    V = len(vals)
    top = [(1 << off_bits) - 1] * n if reach is None else [min(r, (1 << off_bits) - 1)
                                                          for r in reach]
    if len(top) != n:
        raise ValueError("reach: one offset per group")

    @always_comb
    def model():
        v, o = int(vals.val), int(offs.val)
        res = 0
        for g in range(n):
            off = (o >> (g * off_bits)) & ((1 << off_bits) - 1)
            if off > top[g]:
                raise ValueError(f"group_shift: group {g}'s offset {off} past its reach")
            res |= ((v >> (off * scale)) & ((1 << width) - 1)) << (g * width)
        out.next = res

    out.driven = "wire"
    vals.read = offs.read = True
    lines = [f"wire [{V + width - 1}:0] $out_ext = {{{width}'d0, $vals}};".replace("$out_ext", "${out}_ext")]
    for g in range(n):
        lines.append(f"assign $out[{(g + 1) * width - 1}:{g * width}] = ${{out}}_ext["
                     f"$offs[{(g + 1) * off_bits - 1}:{g * off_bits}] * {scale} +: {width}];")
    group_shift.verilog_code = "\n".join(lines) + "\n"
    if ecp5:
        group_shift.verilog_code = for_synthesis(
            "".join(cell_shift(V, g, top[g].bit_length(), off_bits, scale, width)
                    for g in range(n)), group_shift.verilog_code)
    return model


def cell_shift(V, g, k, off_bits, scale, width) -> str:
    """Verilog: group ``g`` of :func:`group_shift` as ECP5 slice muxes on the low ``k``
    bits of its offset (no select for ``k = 0``): wires ``${out}_g<g>_x<n>``."""
    leaves = [[f"$vals[{o * scale + b}]" if o * scale + b < V else "1'b0"
               for o in range(1 << k)] for b in range(width)]
    if not k:
        return "".join(f"assign $out[{g * width + b}] = {leaf[0]};\n"
                       for b, leaf in enumerate(leaves))
    return ecp5_select(leaves, [f"$offs[{g * off_bits + t}]" for t in range(k)], "out",
                       tag=f"_g{g}", base=g * width)


@block
def ring_window(ring, head, window):
    """``window`` = bits ``[head, head + len(window))`` of ``ring``, wrapping round."""
    R, WIN = len(ring), len(window)
    if WIN > R:
        raise ValueError("window: wider than the ring")
    mask = (1 << WIN) - 1
    ext = R + WIN - 1   # template names are taken before the generator is made
    top = WIN - 2
    # The index as wide as the select needs (a narrower one is a lint WIDTH warning).
    pad = max((ext - 1).bit_length() - len(head), 0) if WIN >= 2 else \
        max((R - 1).bit_length() - len(head), 0)
    index = f"{{{pad}'d0, $head}}" if pad else "$head"

    @always_comb
    def model():
        v = int(ring.val)
        h = int(head.val)
        window.next = ((v | (v << R)) >> h) & mask

    window.driven = "wire"
    ring.read = head.read = True
    if WIN >= 2:
        text = ("wire [$ext-1:0] ${window}_ext = {$ring[$top:0], $ring};\n"
                "assign $window = ${window}_ext[" + index + " +: $WIN];\n")
    else:
        text = "assign $window = $ring[" + index + "];\n"
    ring_window.verilog_code = text
    return model


@block
def ring_store(aclk, arriving, write_slot, rom_dout, ring):
    """Slot ``write_slot`` of ``ring`` (``len(rom_dout)``-bit slots) takes ``rom_dout`` on
    a rising edge where ``arriving``."""
    W = len(rom_dout)
    slots = len(ring) // W
    cases = "\n".join(f"        {k}: $ring[{(k + 1) * W - 1}:{k * W}] <= $rom_dout;"
                       for k in range(slots))

    @always(aclk.posedge)
    def model():
        if arriving:
            k = int(write_slot.val)
            keep = int(ring.val) & ~(((1 << W) - 1) << (k * W))
            ring.next = keep | (int(rom_dout.val) << (k * W))

    ring.driven = "reg"
    aclk.read = arriving.read = write_slot.read = rom_dout.read = True
    # The case list goes into the template itself: MyHDL substitutes the $-names once.
    ring_store.verilog_code = ("\nalways @(posedge $aclk) begin\n    if ($arriving) begin\n"
                               "        case ($write_slot)\n" + cases + "\n"
                               "        default: ;\n        endcase\n    end\nend\n")
    return model
