"""dsp_mult: the generic (inferred) and ECP5 (MULT18X18D + the project's _sim.v model) paths
are bit-exact to the golden product, cycle for cycle the same, under random clock enables,
in MyHDL and in Icarus; the Verilog of both is lint-clean."""
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from myhdl import Signal, Simulation, StopSimulation, block, delay, instance, intbv

from blocks import dsp_mult as dm
from cnn_ip.cosim import part_dut

CASES = [  # (a bits, a signed, b bits, b signed)
    (8, False, 8, True),      # unsigned activation x int8 weight (mac_array)
    (8, True, 8, True),
    (18, True, 18, True),     # the DSP's full signed width
    (18, False, 18, False),   # full unsigned width: SIGNEDA/SIGNEDB low
    (18, True, 18, False),    # mixed signedness
    (1, False, 5, True),      # one-bit operand
    (17, False, 3, True),
]


def operand(bits, signed):
    if signed:
        return Signal(intbv(0, min=-(1 << (bits - 1)), max=1 << (bits - 1)))
    return Signal(intbv(0, min=0, max=1 << bits))


def ports(abits, asigned, bbits, bsigned):
    a, b = operand(abits, asigned), operand(bbits, bsigned)
    lo, hi = dm.product_bounds(a, b)
    p = Signal(intbv(0, min=min(lo, 0), max=hi + 1))
    return {"clk": Signal(bool(0)), "ce": Signal(bool(0)), "a": a, "b": b, "p": p}


@block
def harness(clk, ce, a, b, p, *, target):
    """A top for conversion: the primitive alone."""
    return dm.dsp_mult(clk, ce, a, b, p, target=target)


def stimulus(a, b, n, seed):
    """Operand pairs: every corner of both ranges first, then random values."""
    rng = random.Random(seed)
    alo, ahi = dm.signal_bounds(a)
    blo, bhi = dm.signal_bounds(b)
    corners = [(x, y) for x in (alo, ahi, 0, min(ahi, 1)) for y in (blo, bhi, 0, max(blo, -1))]
    return corners + [(rng.randint(alo, ahi), rng.randint(blo, bhi)) for _ in range(n)]


def run(case, *, hdl, target, workdir=None, n=200, seed=0):
    """Drive ``case`` with random enables; return ``(p sampled each cycle, reference p)``.

    The reference is the golden product of the operands taken at the third-last enabled
    edge; ``None`` while fewer than three enabled edges have passed.
    """
    sig = ports(*case)
    pairs = stimulus(sig["a"], sig["b"], n, seed)
    models = dm.write_sim_files(target, Path(workdir)) if hdl == "icarus" else ()
    dut = part_dut(lambda **p: harness(**p, target=target), sig, ports(*case), hdl=hdl,
                   workdir=workdir, name="harness", models=models)
    seen, reference = [], []
    rng = random.Random(seed + 1)

    @block
    def bench():
        @instance
        def drive():
            taken = []
            queue = list(pairs)
            while queue or len(seen) < len(pairs) + 20:
                enable = rng.random() < 0.7
                x, y = queue[0] if queue else (0, 0)
                sig["a"].next, sig["b"].next, sig["ce"].next = x, y, enable
                yield delay(5)
                sig["clk"].next = 1
                if enable:
                    taken.append((x, y))
                    if queue:
                        queue.pop(0)
                yield delay(5)
                sig["clk"].next = 0
                seen.append(int(sig["p"].val))
                reference.append(int(dm.golden(*taken[-3])) if len(taken) >= 3 else None)
            raise StopSimulation

        return drive

    Simulation(dut, bench()).run(quiet=True)
    return seen, reference


def check(seen, reference):
    compared = 0
    for cycle, (got, want) in enumerate(zip(seen, reference)):
        if want is not None:
            assert got == want, f"cycle {cycle}: p = {got}, expected {want}"
            compared += 1
    assert compared > 100


@pytest.mark.parametrize("case", CASES)
def test_myhdl_model(case):
    check(*run(case, hdl="myhdl", target="generic"))


# In Icarus, the cases whose port mapping differs: a signed and an unsigned operand of 8
# bits (mac_array's), both at the full width signed, unsigned and mixed, a one-bit one.
ICARUS_CASES = [CASES[i] for i in (0, 2, 3, 4, 5)]


@pytest.mark.parametrize("case", ICARUS_CASES)
def test_generic_and_ecp5_verilog_agree(case, tmp_path):
    """Both converted paths under Icarus: bit-exact to the golden model, and identical."""
    traces = {}
    for target in ("generic", "ecp5-85f"):
        workdir = tmp_path / target
        workdir.mkdir()
        seen, reference = run(case, hdl="icarus", target=target, workdir=workdir)
        check(seen, reference)
        traces[target] = [s for s, r in zip(seen, reference) if r is not None]
    assert traces["generic"] == traces["ecp5-85f"]


def test_ecp5_verilog_instantiates_the_primitive(tmp_path):
    harness(**ports(8, False, 8, True), target="ecp5-25f").convert(
        hdl="Verilog", path=str(tmp_path), name="harness")
    text = (tmp_path / "harness.v").read_text()
    assert text.count("MULT18X18D #(") == 1
    for register in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
        assert f'.REG_{register}_CLK("CLK0")' in text
    assert "*" not in text.split("MULT18X18D")[0].split("module harness")[1]
    harness(**ports(8, False, 8, True), target="generic").convert(
        hdl="Verilog", path=str(tmp_path), name="harness")
    assert "MULT18X18D" not in (tmp_path / "harness.v").read_text()
    assert dm.sim_files("generic") == dm.sim_files("xc7z020") == []


@pytest.mark.parametrize("target", ["generic", "ecp5-85f"])
def test_lint_clean(target, tmp_path):
    harness(**ports(8, False, 8, True), target=target).convert(
        hdl="Verilog", path=str(tmp_path), name="harness")
    files = ["harness.v", *dm.write_sim_files(target, tmp_path)]
    result = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "harness",
                             *files], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sim_model_refuses_unmodelled_configurations(tmp_path):
    (tmp_path / "top.v").write_text(
        "module top; reg clk = 0;\n"
        "MULT18X18D #(.REG_INPUTA_CLK(\"CLK1\")) m (.CLK0(clk));\nendmodule\n")
    dm.write_sim_files("ecp5-85f", tmp_path)
    subprocess.run(["iverilog", "-o", "t.vvp", "top.v", dm.SIM_MODEL], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "t.vvp"], cwd=tmp_path, capture_output=True, text=True)
    assert "does not simulate" in out.stdout


def test_bad_operands_are_refused():
    sig = ports(8, True, 8, True)
    with pytest.raises(ValueError, match="^target:"):
        dm.dsp_mult(**sig, target="virtex2")
    with pytest.raises(ValueError, match="^a:"):
        dm.dsp_mult(**{**sig, "a": operand(19, True)})
    with pytest.raises(ValueError, match="^p:"):
        dm.dsp_mult(**{**sig, "p": Signal(intbv(0, min=-(1 << 14), max=1 << 14))})


def test_golden():
    assert dm.golden(-131072, -131072) == 1 << 34
    assert np.array_equal(dm.golden([3, -4], [5, 6]), [15, -24])
