"""mac_array against its golden model, in MyHDL and in Icarus co-simulation."""
import json
import subprocess
import sys

import numpy as np
import pytest

from blocks import mac
from quant import weight_modes
from blocks.spec import ParameterError
from blocks.stream import pack, unpack
from cnn_ip.cli import main
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate

# Binary, ternary, int2, int4, int8; signed and unsigned activations; lanes/simd 1 and >1.
CONFIGS = [
    dict(lanes=1, simd=1, weights="binary", abits=1, asigned=False, reduce=12),
    dict(lanes=3, simd=4, weights="binary", abits=5, asigned=True, reduce=40),
    dict(lanes=2, simd=5, weights="ternary", abits=4, asigned=False, reduce=60),
    dict(lanes=4, simd=1, weights="int", wbits=2, abits=3, asigned=True, reduce=9),
    dict(lanes=2, simd=3, weights="int", wbits=4, abits=8, asigned=False, reduce=30),
    dict(lanes=4, simd=4, weights="int", wbits=8, abits=8, asigned=True, reduce=64),
    dict(lanes=1, simd=8, weights="ternary", abits=2, asigned=True, reduce=24),
]
IDS = [f"{c['weights']}{c.get('wbits', '')}-L{c['lanes']}S{c['simd']}A{c['abits']}"
       f"{'s' if c['asigned'] else 'u'}" for c in CONFIGS]


def full(config):
    return mac.BLOCK.validate(**config)


def random_weights(rng, p, shape):
    if p["weights"] == "binary":
        return rng.choice([-1, 1], size=shape)
    lo, hi = weight_modes.value_range(p["weights"], p["wbits"])
    return rng.integers(lo, hi + 1, size=shape)


def random_dots(rng, p, count):
    """``count`` dot products of random length (1 beat up to the full ``reduce``)."""
    lo, hi = mac.act_range(p["abits"], p["asigned"])
    beats = -(-p["reduce"] // p["simd"])
    lengths = rng.integers(1, beats + 1, size=count)
    lengths[0] = beats
    n = int(lengths.sum())
    acts = rng.integers(lo, hi + 1, size=(n, p["simd"]))
    wgts = random_weights(rng, p, (n, p["lanes"], p["simd"]))
    lasts = np.zeros(n, dtype=bool)
    lasts[np.cumsum(lengths) - 1] = True
    return acts, wgts, lasts


def worst_case_dots(p):
    """Full-length dot products at both accumulator extremes."""
    alo, ahi = mac.act_range(p["abits"], p["asigned"])
    wlo, whi = weight_modes.value_range(p["weights"], p["wbits"])
    beats = -(-p["reduce"] // p["simd"])
    acts, wgts = [], []
    for a, w in [(ahi, whi), (ahi, wlo), (alo, wlo), (alo, whi)]:
        acts.append(np.full((beats, p["simd"]), a))
        wgts.append(np.full((beats, p["lanes"], p["simd"]), w))
    lasts = np.tile(np.arange(beats) == beats - 1, 4)
    return np.concatenate(acts), np.concatenate(wgts), lasts


def streams(p, acts, wgts, lasts):
    wb = weight_modes.code_bits(p["weights"], p["wbits"])
    act_beats = [(pack(a, p["abits"]), bool(last)) for a, last in zip(acts, lasts)]
    wgt_beats = [(pack(weight_modes.to_codes(w.ravel(), p["weights"], p["wbits"]), wb), False)
                 for w in wgts]
    return {"s_axis_act": act_beats, "s_axis_wgt": wgt_beats}


def run(p, acts, wgts, lasts, **kwargs):
    expected = mac.golden(acts, wgts, lasts)
    out = run_streams(mac.BLOCK, inputs=streams(p, acts, wgts, lasts),
                      expect={"m_axis_acc": len(expected)}, params=p, **kwargs)
    acc = mac.acc_bits(**p)
    got = np.array([unpack(b.data, acc, p["lanes"], signed=True) for b in out["m_axis_acc"]],
                   dtype=np.int64).reshape(-1, p["lanes"])
    return got, expected, out


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_random_and_extreme_dot_products_under_stalls(hdl, tmp_path, config):
    """Random dot products of random lengths, then full-length ones at both accumulator
    extremes, in one run under random stalls."""
    p = full(config)
    rng = np.random.default_rng(len(IDS[CONFIGS.index(config)]))
    random_part, extreme_part = random_dots(rng, p, count=6), worst_case_dots(p)
    acts, wgts, lasts = (np.concatenate([a, b]) for a, b in zip(random_part, extreme_part))
    got, expected, _ = run(p, acts, wgts, lasts, hdl=hdl, workdir=tmp_path, seed=3,
                           idle={"s_axis_act": 0.3, "s_axis_wgt": 0.5}, stall=0.4)
    np.testing.assert_array_equal(got, expected)
    acc = mac.acc_bits(**p)
    assert expected.max() <= 2 ** (acc - 1) - 1 and expected.min() >= -2 ** (acc - 1)


def test_accumulator_is_no_wider_than_needed():
    for config in CONFIGS:
        p = full(config)
        acts, wgts, lasts = worst_case_dots(p)
        extreme = np.abs(mac.golden(acts, wgts, lasts)).max()
        # one bit less could not hold the most extreme full-length result
        assert extreme > 2 ** (mac.acc_bits(**p) - 2) - 1, config


# The docstring's latency: 3 + ceil(log2(S)) without multipliers, 4 + ceil(log2(S)) with
# the three-register multiplier (int), on every target.
LATENCY = {("int", 1): 4, ("int", 3): 6, ("int", 8): 7, ("ternary", 8): 6, ("binary", 3): 5}


@pytest.mark.parametrize("hdl,weights,simd", [("myhdl", *key) for key in sorted(LATENCY)]
                         + [("icarus", "int", 3)])
def test_one_beat_per_cycle_and_documented_latency(hdl, tmp_path, weights, simd):
    p = full(dict(lanes=2, simd=simd, weights=weights, wbits=4, abits=4, reduce=4 * simd))
    rng = np.random.default_rng(simd)
    acts, wgts, lasts = random_dots(rng, p, count=12)
    got, expected, out = run(p, acts, wgts, lasts, hdl=hdl, workdir=tmp_path)
    np.testing.assert_array_equal(got, expected)
    taken = [b.cycle for b in out["s_axis_act"]]
    assert taken[-1] - taken[0] == len(taken) - 1  # no bubble on the input side
    last_in = [b.cycle for b in out["s_axis_act"] if b.last]
    results = [b.cycle for b in out["m_axis_acc"]]
    latency = LATENCY[weights, simd]
    assert [r - i for r, i in zip(results, last_in)] == [latency] * len(results)
    assert mac.latency(simd, weights) == mac.estimate(**p)["latency"] == latency


ECP5_CONFIGS = [  # every int product is a MULT18X18D on ECP5
    # signed activations, an odd adder tree, int8 (the DSP path of the generic target)
    dict(lanes=2, simd=3, weights="int", wbits=8, abits=8, asigned=True, reduce=30),
    # one product a lane (no tree), unsigned narrow operands (LUTs on the generic target)
    dict(lanes=2, simd=1, weights="int", wbits=4, abits=4, asigned=False, reduce=5),
]


@pytest.mark.parametrize("config", ECP5_CONFIGS,
                         ids=[f"L{c['lanes']}S{c['simd']}w{c['wbits']}" for c in ECP5_CONFIGS])
def test_ecp5_multipliers_match_generic_and_golden(tmp_path, config):
    """The MULT18X18D path (Icarus, with the MULT18X18D_sim.v the generator wrote beside
    the Verilog, which the harness compiles as a user's simulator run would) and the
    inferred path: both bit-exact on the same random and extreme stimulus (one run each),
    result for result on the same cycle."""
    rng = np.random.default_rng(config["lanes"] * 10 + config["simd"])
    p = full(config)
    random_part, extreme_part = random_dots(rng, p, count=5), worst_case_dots(p)
    acts, wgts, lasts = (np.concatenate([a, b]) for a, b in zip(random_part, extreme_part))
    runs = {}
    for target in ("generic", "ecp5-85f"):
        workdir = tmp_path / target
        got, expected, out = run({**p, "target": target}, acts, wgts, lasts, hdl="icarus",
                                 workdir=workdir, seed=1,
                                 idle={"s_axis_act": 0.3, "s_axis_wgt": 0.2}, stall=0.3)
        np.testing.assert_array_equal(got, expected)
        runs[target] = [(b.data, b.cycle) for b in out["m_axis_acc"]]
    assert (tmp_path / "ecp5-85f" / "MULT18X18D_sim.v").exists()
    assert "MULT18X18D" in (tmp_path / "ecp5-85f" / "mac_array.v").read_text()
    assert runs["generic"] == runs["ecp5-85f"]
    assert mac.estimate(**full({**config, "target": "ecp5-85f"}))["dsp"] == \
        config["lanes"] * config["simd"]


# The structurally distinct conversions, small: binary with one product a lane, ternary,
# int LUT multipliers, int DSP multipliers, and ECP5's MULT18X18D.
LINT_CONFIGS = [CONFIGS[0], CONFIGS[2], CONFIGS[3], ECP5_CONFIGS[0],
                {**ECP5_CONFIGS[0], "target": "ecp5-25f"}]


@pytest.mark.parametrize("config", LINT_CONFIGS,
                         ids=[IDS[0], IDS[2], IDS[3], "int8-L2S3A8s", "int8-L2S3A8s-ecp5"])
def test_lint_clean(tmp_path, config):
    generate(mac.BLOCK, tmp_path, **config)
    lint(tmp_path / "mac_array.v", "mac_array")


def test_golden_model_against_slow_loops():
    rng = np.random.default_rng(0)
    p = full(dict(lanes=3, simd=2, weights="int", wbits=5, abits=6, asigned=True, reduce=20))
    acts, wgts, lasts = random_dots(rng, p, count=5)
    rows, acc = [], [0] * 3
    for beat in range(len(acts)):
        for lane in range(3):
            for s in range(2):
                acc[lane] += int(acts[beat][s]) * int(wgts[beat][lane][s])
        if lasts[beat]:
            rows.append(acc)
            acc = [0] * 3
    assert mac.golden(acts, wgts, lasts).tolist() == rows


def test_weight_codes_follow_contract_2():
    assert weight_modes.to_codes([-1, 1], "binary").tolist() == [0, 1]
    assert weight_modes.to_codes([1, -1, 0], "ternary").tolist() == [1, 3, 0]
    assert weight_modes.to_codes([-8, 7, -1], "int", 4).tolist() == [8, 7, 15]
    # a zero has no binary code
    assert weight_modes.bad_values([0, 1, -1], "binary").tolist() == [True, False, False]


@pytest.mark.parametrize("values,message", [
    (dict(lanes=0), r"^lanes: must be an integer in 1\.\.64, got 0"),
    (dict(simd=65), r"^simd: must be an integer in 1\.\.64"),
    (dict(weights="quaternary"), r"^weights: must be one of binary, ternary, int"),
    (dict(wbits=9), r"^wbits: must be an integer in 2\.\.8"),
    (dict(abits=0), r"^abits: must be an integer in 1\.\.8"),
    (dict(reduce=0), r"^reduce: must be an integer in 1\.\."),
    (dict(asigned=1), r"^asigned: must be true or false"),
])
def test_rejects_bad_parameters(values, message):
    config = {**dict(lanes=2, simd=2, weights="int", abits=4, reduce=8), **values}
    with pytest.raises(ParameterError, match=message):
        mac.BLOCK.validate(**config)


def test_block_checks_port_widths():
    from blocks.stream import Axis, clock_reset
    ports = mac.ports(**full(dict(lanes=2, simd=2, weights="int", abits=4, reduce=8)))
    ports["s_axis_act"] = Axis(7)
    with pytest.raises(ValueError, match=r"s_axis_act\.tdata: is 7 bits wide, expected 8"):
        mac.mac_array(**ports, lanes=2, simd=2, weights="int", abits=4, reduce=8)


def test_cli_writes_contract_ports(tmp_path):
    # Run as a user runs it (in a subprocess MyHDL elaborates faster than under pytest's
    # deep call stack); a small array, the port widths are what is checked.
    result = subprocess.run([sys.executable, "-m", "cnn_ip.cli", "block", "mac_array",
                             "--lanes", "2", "--simd", "4", "--weights", "ternary", "--abits",
                             "4", "--reduce", "576", "-o", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "mac_array.json").read_text())
    acc = info["derived"]["acc_bits"]
    assert acc == mac.acc_bits(lanes=2, simd=4, weights="ternary", wbits=8, abits=4,
                               asigned=False, reduce=576)
    ports = {(p["name"], p["direction"], p["width"]) for p in info["ports"]}
    assert ports == {
        ("aclk", "input", 1), ("aresetn", "input", 1),
        ("s_axis_act_tdata", "input", 16), ("s_axis_act_tvalid", "input", 1),
        ("s_axis_act_tready", "output", 1), ("s_axis_act_tlast", "input", 1),
        ("s_axis_wgt_tdata", "input", 16), ("s_axis_wgt_tvalid", "input", 1),
        ("s_axis_wgt_tready", "output", 1),
        ("m_axis_acc_tdata", "output", 2 * acc), ("m_axis_acc_tvalid", "output", 1),
        ("m_axis_acc_tready", "input", 1)}
    assert "module mac_array" in (tmp_path / "mac_array.v").read_text()


@pytest.mark.parametrize("argv,message", [
    (["--weights", "int", "--wbits", "9"], "--wbits: must be an integer in 2..8, got 9"),
    (["--weights", "fp16"], "argument --weights: invalid choice: 'fp16'"),
    (["--weights", "int", "--lanes", "0"], "--lanes: must be an integer in 1..64, got 0"),
])
def test_cli_rejects_bad_flags(tmp_path, capsys, argv, message):
    base = ["block", "mac_array", "--lanes", "2", "--simd", "2", "--abits", "4",
            "--reduce", "8"]
    out = tmp_path / "o"
    assert main([*base, *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()
