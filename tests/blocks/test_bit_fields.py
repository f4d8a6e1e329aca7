"""blocks.bit_fields: each template primitive against a plain Python expectation, on random
inputs, in MyHDL (its model) and in Icarus (its Verilog template), and lint-clean;
group_shift's ECP5 cells (its synthesis branch) against the same expectation."""
import random
import subprocess

import pytest
from myhdl import Signal, Simulation, StopSimulation, block, delay, instance, intbv

from blocks import bit_fields as bf
from cnn_ip.cosim import part_dut


def bits(value, lo, width):
    return (value >> lo) & ((1 << width) - 1)


def case_field_sums():
    src, dst = Signal(intbv(0)[12:]), Signal(intbv(0)[3 * 5:])
    groups = [[(0, 1), (1, 1), (3, 1), (11, 1)], [(2, 3), (5, 3), (8, 4)], []]
    ports = {"src": src, "dst": dst}

    def expect(v):
        sums = [sum(bits(v["src"], lo, w) for lo, w in g) for g in groups]
        return {"dst": sum(s << (5 * k) for k, s in enumerate(sums))}
    return ports, bf.field_sums, dict(groups=groups, out_bits=5), expect


def case_field_sums_wrap():
    """Sums wider than their field: each wraps modulo ``2**out_bits``, as the Verilog's
    ``out_bits``-wide adders do, and leaves the next field alone."""
    src, dst = Signal(intbv(0)[9:]), Signal(intbv(0)[2 * 3:])
    groups = [[(0, 3), (3, 3), (6, 3)], [(0, 1), (8, 1)]]

    def expect(v):
        sums = [sum(bits(v["src"], lo, w) for lo, w in g) % 8 for g in groups]
        return {"dst": sums[0] | sums[1] << 3}
    return {"src": src, "dst": dst}, bf.field_sums, dict(groups=groups, out_bits=3), expect


def case_part_select():
    ports = {"bus": Signal(intbv(0)[20:]), "index": Signal(intbv(0)[3:]),
             "out": Signal(intbv(0)[6:])}
    return ports, bf.part_select, dict(scale=3), \
        lambda v: {"out": bits(v["bus"], 3 * v["index"], 6)}


def case_group_shift():
    ports = {"vals": Signal(intbv(0)[10:]), "offs": Signal(intbv(0)[3 * 3:]),
             "out": Signal(intbv(0)[3 * 4:])}

    def expect(v):
        return {"out": sum(bits(v["vals"], 2 * bits(v["offs"], 3 * g, 3), 4) << (4 * g)
                           for g in range(3))}
    return ports, bf.group_shift, dict(off_bits=3, scale=2, width=4), expect


def case_ring_window():
    ports = {"ring": Signal(intbv(0)[24:]), "head": Signal(intbv(0, min=0, max=24)),
             "window": Signal(intbv(0)[10:])}

    def expect(v):
        ring = [bits(v["ring"], i, 1) for i in range(24)]
        return {"window": sum(ring[(v["head"] + i) % 24] << i for i in range(10))}
    return ports, bf.ring_window, {}, expect


# Users keep a select inside the bus it reads (the decoder's counts bound them); beyond
# it Verilog reads X.  Random inputs are brought inside: an index at most 6 (3*6 + 6 bits
# of a 26-bit extended bus), offsets at most 5 (2*5 + 4 of 14).
LEGAL = {("part_select", "index"): lambda x: min(x, 6),
         ("group_shift", "offs"): lambda x: sum(min(bits(x, 3 * g, 3), 5) << (3 * g)
                                                for g in range(3))}

CASES = {"field_sums": case_field_sums, "field_sums_wrap": case_field_sums_wrap,
         "part_select": case_part_select,
         "group_shift": case_group_shift, "ring_window": case_ring_window}
OUTPUTS = {"field_sums": ["dst"], "field_sums_wrap": ["dst"], "part_select": ["out"], "group_shift": ["out"],
           "ring_window": ["window"]}


# Tops with named ports (MyHDL names a module's ports after its arguments).
@block
def top_field_sums(src, dst, *, kwargs):
    return bf.field_sums(src, dst, **kwargs)


@block
def top_part_select(bus, index, out, *, kwargs):
    return bf.part_select(bus, index, out, **kwargs)


@block
def top_group_shift(vals, offs, out, *, kwargs):
    return bf.group_shift(vals, offs, out, **kwargs)


@block
def top_ring_window(ring, head, window, *, kwargs):
    return bf.ring_window(ring, head, window, **kwargs)


TOPS = {"field_sums": top_field_sums, "field_sums_wrap": top_field_sums, "part_select": top_part_select,
        "group_shift": top_group_shift, "ring_window": top_ring_window}


def wrapper(name, kwargs):
    return lambda **p: TOPS[name](**p, kwargs=kwargs)


def run(name, hdl, tmp_path, trials=60):
    ports, primitive, kwargs, expect = CASES[name]()
    outs = OUTPUTS[name]
    ins = [k for k in ports if k not in outs]
    top = wrapper(name, kwargs)

    dut = part_dut(top, ports, CASES[name]()[0], hdl=hdl, workdir=tmp_path)
    rng = random.Random(name)
    seen = []

    @block
    def bench():
        @instance
        def drive():
            for _ in range(trials):
                values = {}
                for k in ins:
                    sig = ports[k]
                    hi = sig.max - 1 if sig.max is not None else (1 << len(sig)) - 1
                    values[k] = LEGAL.get((name, k), lambda x: x)(rng.randint(0, hi))
                    sig.next = values[k]
                yield delay(10)
                seen.append((values, {k: int(ports[k].val) for k in outs}))
            raise StopSimulation

        return drive

    Simulation(dut, bench()).run(quiet=True)
    for values, got in seen:
        assert got == expect(values), values
    return tmp_path


@pytest.mark.parametrize("name", sorted(CASES))
def test_template_and_model_agree_with_python(hdl, tmp_path, name):
    run(name, hdl, tmp_path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lint_clean(tmp_path, name):
    ports, primitive, kwargs, _ = CASES[name]()
    wrapper(name, kwargs)(**ports).convert(hdl="Verilog", path=str(tmp_path), name="top", testbench=False)
    result = subprocess.run(["verilator", "--lint-only", "-Wall", 
                             "top.v"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# On an ECP5 target group_shift's selects are instantiated slice muxes in the branch Yosys
# reads (`ifdef SYNTHESIS).  That branch under Icarus, with the cell models of
# test_sparse_decoder, against the plain select's value (zeros past the end, where the
# plain Verilog reads X): every group on every offset its reach's bits can encode.
@pytest.mark.parametrize("V,off_bits,scale,width,reach", [
    (84, 6, 4, 16, [4 * g for g in range(8)]),  # the int4 32x144 /2 layer's expander
    (20, 3, 2, 6, None),                        # every offset, most past the end
    (37, 5, 3, 9, [0, 1, 5, 16, 31]),           # reaches below, at and past a power of 2
    (12, 2, 4, 4, [3, 0])])
def test_ecp5_group_shift_is_the_plain_select(tmp_path, V, off_bits, scale, width, reach):
    from test_sparse_decoder import synthesis_branch

    from cnn_ip.cosim import icarus_run

    n = len(reach) if reach else 3
    tops = [min(r, (1 << off_bits) - 1) for r in reach] if reach else [(1 << off_bits) - 1] * n
    spans = [1 << t.bit_length() for t in tops]   # the offsets the cells' bits encode

    def port_set():
        return dict(vals=Signal(intbv(0)[V:]), offs=Signal(intbv(0)[n * off_bits:]),
                    out=Signal(intbv(0)[n * width:]))

    @block
    def part(vals, offs, out):
        return bf.group_shift(vals, offs, out, off_bits=off_bits, scale=scale, width=width,
                              ecp5=True, reach=reach)

    synthesis_branch(part(**port_set()), tmp_path, "LUT4")
    ports = port_set()
    rng = random.Random(V)
    checked = set()

    @block
    def bench():
        @instance
        def drive():
            for vals in (rng.getrandbits(V), rng.getrandbits(V), (1 << V) - 1, 1, 1 << V - 1):
                for o in range(max(spans)):
                    # group g walks its offsets in an order of its own
                    offs = [(o * (2 * g + 1) + g) % s for g, s in enumerate(spans)]
                    ports["vals"].next = vals
                    ports["offs"].next = sum(f << g * off_bits for g, f in enumerate(offs))
                    yield delay(1)
                    want = sum(bits(vals, f * scale, width) << g * width
                               for g, f in enumerate(offs))
                    assert int(ports["out"].val) == want, (vals, offs)
                    checked.update(enumerate(offs))
            raise StopSimulation

        return drive

    Simulation(icarus_run(tmp_path, ports), bench()).run(quiet=True)
    assert checked == {(g, f) for g, s in enumerate(spans) for f in range(s)}


def test_group_shift_model_checks_the_reach():
    """An offset past its group's reach is the caller's error, which the model reports."""
    ports = {"vals": Signal(intbv(0)[8:]), "offs": Signal(intbv(0)[4:]),
             "out": Signal(intbv(0)[4:])}
    part = bf.group_shift(**ports, off_bits=2, scale=1, width=2, reach=[0, 2])

    @block
    def bench():
        @instance
        def drive():
            ports["offs"].next = 2 << 2             # group 1 at its reach: fine
            yield delay(1)
            ports["offs"].next = 3 << 2
            yield delay(1)

        return drive

    with pytest.raises(ValueError, match="group 1's offset 3 past its reach"):
        Simulation(part, bench()).run(quiet=True)
