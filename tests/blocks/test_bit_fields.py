"""blocks.bit_fields: each template primitive against a plain Python expectation, on random
inputs, in MyHDL (its model) and in Icarus (its Verilog template), and lint-clean."""
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
