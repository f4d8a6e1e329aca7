"""requant against quant.reference.requantize, in MyHDL and in Icarus co-simulation."""
import re

import numpy as np
import pytest

from blocks import requant as rq
from blocks.spec import ParameterError
from blocks.stream import pack, unpack
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate


def constants(rng, cout, *, mbits=8, bias=300, leaky=False):
    m = rng.integers(0, 1 << mbits, size=cout)
    m[0] = (1 << mbits) - 1                              # M at its maximum
    c = {"bias": rng.integers(-bias, bias + 1, size=cout), "M": m}
    if leaky:
        c["M_neg"] = m // 8
    return c


# relu (unsigned), leaky (M_neg), none (signed), final; one or several groups; sums that
# fit one multiplier (ACC 12) and sums split over two (ACC 26).
CONFIGS = {
    "relu-L4G3-acc12": dict(lanes=4, acc_bits=12, abits=4, out_signed=False, shift=9,
                            pixels=2, cout=12),
    "leaky-L2G2-acc26": dict(lanes=2, acc_bits=26, abits=8, out_signed=True, shift=20,
                             pixels=3, cout=4, leaky=True),
    "none-L1G5-acc16": dict(lanes=1, acc_bits=16, abits=6, out_signed=True, shift=11,
                            pixels=1, cout=5),
    "final-L3G2-acc20": dict(lanes=3, acc_bits=20, final=True, pixels=2, cout=6),
    "relu-L8G1-acc9-A1": dict(lanes=8, acc_bits=9, abits=1, shift=3, pixels=4, cout=8),
    # a product narrower than shift + output bits: the clamp never acts
    "none-L2G1-acc4-S12": dict(lanes=2, acc_bits=4, abits=8, out_signed=True, shift=12,
                               pixels=2, cout=2),
    # a rounding constant wider than the product (Verilator: the adder "expects 32 or 24
    # bits" of it), leaky: the sign extension of negative products checked bit for bit
    "leaky-L2G1-acc6-S23": dict(lanes=2, acc_bits=6, abits=4, out_signed=True, shift=23,
                                pixels=2, cout=2, leaky=True),
    # group-major (a frame stage's order): a group's constants for B consecutive beats,
    # one pass over the groups a frame (B = pixels) or two (B = pixels / 2)
    "frame-relu-L2G3-B3": dict(lanes=2, acc_bits=12, abits=4, shift=9, pixels=3,
                               group_beats=3, cout=6),
    "frame-leaky-L2G2-B2of4": dict(lanes=2, acc_bits=26, abits=8, out_signed=True, shift=20,
                                   pixels=4, group_beats=2, cout=4, leaky=True),
    "frame-final-L1G3-B2": dict(lanes=1, acc_bits=16, final=True, pixels=2, group_beats=2,
                                cout=3),
}


def params(name, seed=0):
    cfg = dict(CONFIGS[name])
    rng = np.random.default_rng(seed)
    cout, leaky = cfg.pop("cout"), cfg.pop("leaky", False)
    bias = min(300, (1 << (cfg["acc_bits"] - 2)))
    return {**cfg, "constants": constants(rng, cout, bias=bias, leaky=leaky)}


def run(p, acc, **kwargs):
    w = rq.widths(**rq.BLOCK.validate(**p))
    values, lasts = rq.golden(acc, **p)
    beats = [(pack(a, p["acc_bits"]), False) for a in acc]
    out = run_streams(rq.BLOCK, params=p, inputs={"s_axis_acc": beats},
                      expect={"m_axis_out": len(acc)}, **kwargs)
    signed = p.get("final", False) or p.get("out_signed", False)
    got = np.array([unpack(b.data, w["out_bits"], p["lanes"], signed=signed)
                    for b in out["m_axis_out"]], dtype=np.int64)
    assert [b.last for b in out["m_axis_out"]] == list(lasts)
    return got, values, out


def random_acc(rng, p, beats):
    half = 1 << (p["acc_bits"] - 1)
    acc = rng.integers(-half, half, size=(beats, p["lanes"]))
    # the range ends and the neighbourhood of zero, where rounding and M_neg switch
    acc[0], acc[1] = -half, half - 1
    acc[2] = rng.integers(-3, 4, size=p["lanes"])
    return acc


@pytest.mark.parametrize("name", CONFIGS)
def test_random_and_extreme_values_under_stalls(hdl, tmp_path, name):
    p = params(name, seed=len(name))
    groups = len(p["constants"]["bias"]) // p["lanes"]
    rng = np.random.default_rng(5)
    acc = random_acc(rng, p, 2 * p["pixels"] * groups + 7)
    got, expected, _ = run(p, acc, hdl=hdl, workdir=tmp_path, seed=2, idle=0.3, stall=0.4)
    np.testing.assert_array_equal(got, expected)


def test_golden_model_is_contract_2_channel_by_channel():
    p = params("leaky-L2G2-acc26")
    c = p["constants"]
    acc = random_acc(np.random.default_rng(1), p, 8)
    values, lasts = rq.golden(acc, **p)
    for i, row in enumerate(acc):
        for lane, a in enumerate(row):
            ch = (i % 2) * 2 + lane
            s = int(a) + int(c["bias"][ch])
            m = int(c["M_neg"][ch]) if s < 0 else int(c["M"][ch])
            y = min(max((s * m + (1 << 19)) >> 20, -128), 127)
            assert values[i, lane] == y
    assert lasts.tolist() == [i % 6 == 5 for i in range(8)]


@pytest.mark.parametrize("name,beats", [("frame-relu-L2G3-B3", 3), ("frame-leaky-L2G2-B2of4", 2)])
def test_golden_model_in_group_major_order(name, beats):
    p = params(name)
    c, lanes = p["constants"], p["lanes"]
    groups = len(c["bias"]) // lanes
    acc = random_acc(np.random.default_rng(4), p, 2 * p["pixels"] * groups)
    values, lasts = rq.golden(acc, **p)
    row, _ = rq.golden(acc, **{**p, "group_beats": 1, "pixels": 1})
    for i in range(len(acc)):
        g = (i // beats) % groups          # beat i of run i // B
        other = {**c, "bias": c["bias"][g * lanes:(g + 1) * lanes],
                 "M": c["M"][g * lanes:(g + 1) * lanes]}
        if "M_neg" in c:
            other["M_neg"] = c["M_neg"][g * lanes:(g + 1) * lanes]
        one, _ = rq.golden(acc[i:i + 1], **{**p, "group_beats": 1, "pixels": 1,
                                              "constants": other})
        np.testing.assert_array_equal(values[i], one[0])
    assert not np.array_equal(values, row)    # the order matters for these constants
    frame = p["pixels"] * groups
    assert lasts.tolist() == [i % frame == frame - 1 for i in range(len(acc))]


@pytest.mark.parametrize("bias", [-68, 70])
def test_a_bias_beyond_the_accumulator_range(hdl, tmp_path, bias):
    # every acc + bias on one side of zero (a 2-bit accumulator, |bias| > 2): the sum's
    # range must still hold 0, the value its signal starts at (once a conversion crash)
    p = dict(lanes=1, acc_bits=2, abits=1, shift=1, pixels=4,
             constants={"bias": np.array([bias]), "M": np.array([255])})
    acc = np.array([[-2], [1], [0], [-1]])
    got, expected, _ = run(p, acc, hdl=hdl, workdir=tmp_path)
    np.testing.assert_array_equal(got, expected)


def test_two_multipliers_with_a_high_product_narrower_than_the_join(hdl, tmp_path):
    # a first layer's sums (19-bit accumulator, a large positive bias): the high part's
    # product (10 bits) shifted by 17 is narrower than the joined product (28 bits), so
    # Verilog must sign-extend it; converted unsigned (before blocks.myhdl_patches set the
    # signed context per operand) every negative sum came out as a positive product
    p = dict(lanes=2, acc_bits=19, abits=2, shift=21, pixels=4,
             constants={"bias": np.array([18579, 24058]), "M": np.array([142, 142])})
    w = rq.widths(**rq.BLOCK.validate(**p))
    assert w["multipliers"] == 2
    acc = random_acc(np.random.default_rng(3), p, 24)
    acc[3:12] = np.random.default_rng(4).integers(-60000, 60000, size=(9, 2))
    got, expected, _ = run(p, acc, hdl=hdl, workdir=tmp_path, seed=1, idle=0.2, stall=0.2)
    assert (expected == 0).any() and (expected == 3).any()
    np.testing.assert_array_equal(got, expected)


def test_extremes_saturate_and_final_width_holds(hdl, tmp_path):
    p = params("final-L3G2-acc20")
    half = 1 << 19
    acc = np.array([[-half] * 3, [half - 1] * 3] * 2)
    got, expected, _ = run(p, acc, hdl=hdl, workdir=tmp_path)
    np.testing.assert_array_equal(got, expected)
    zb = rq.widths(**rq.BLOCK.validate(**p))["z_bits"]
    assert np.abs(expected).max() >= 1 << (zb - 3)   # the width is not generous


@pytest.mark.parametrize("name", ["relu-L4G3-acc12", "leaky-L2G2-acc26",
                                  "frame-leaky-L2G2-B2of4"])
def test_one_beat_per_cycle_and_documented_latency(hdl, tmp_path, name):
    p = params(name)
    acc = random_acc(np.random.default_rng(2), p, 30)
    got, expected, out = run(p, acc, hdl=hdl, workdir=tmp_path)
    np.testing.assert_array_equal(got, expected)
    taken = [b.cycle for b in out["s_axis_acc"]]
    moved = [b.cycle for b in out["m_axis_out"]]
    assert taken == list(range(taken[0], taken[0] + len(taken)))
    assert [m - t for m, t in zip(moved, taken)] == [rq.LATENCY] * len(taken)


@pytest.mark.parametrize("name", CONFIGS)
def test_lint_clean(tmp_path, name):
    generate(rq.BLOCK, tmp_path, **params(name))
    lint(tmp_path / "requant.v", "requant", rq.BLOCK.lint_waivers)


def test_rom_image_and_estimate(tmp_path):
    p = params("leaky-L2G2-acc26")
    info = generate(rq.BLOCK, tmp_path, **p)
    words = [int(x, 16) for x in (tmp_path / "requant_rom.hex").read_text().split()]
    w = info["derived"]
    assert len(words) == w["groups"] == 2 and w["has_m_neg"]
    c = p["constants"]
    fb, bb, mb = w["field_bits"], w["bias_bits"], w["m_bits"]
    field = (words[1] >> fb) & ((1 << fb) - 1)        # group 1, lane 1: channel 3
    assert field & ((1 << bb) - 1) == int(c["bias"][3]) & ((1 << bb) - 1)
    assert (field >> bb) & ((1 << mb) - 1) == c["M"][3]
    assert field >> (bb + mb) == c["M_neg"][3]
    est = info["estimate"]
    assert est["bram_bits"] == 2 * 2 * fb and est["latency"] == rq.LATENCY
    assert est["dsp"] == 2 * 2                        # 26-bit sums: two multipliers a lane
    # group-major: a run counter (B = 3: 2 bits) and no frame counter (L2 G2 P3: 3 bits)
    def cost(**change):
        return rq.BLOCK.estimate(**rq.BLOCK.validate(**{**p, **change}))

    frame = cost(pixels=3, group_beats=3)
    assert frame["ff"] == cost(pixels=3)["ff"] - 3 + 2
    assert {k: v for k, v in frame.items() if k != "ff"} == \
        {k: v for k, v in est.items() if k != "ff"}


@pytest.mark.parametrize("content,reason", [
    (b"", "No data left in file"),                      # empty: EOFError from numpy
    (b"PK\x03\x04" + bytes(60), "File is not a zip file"),  # a damaged zip: BadZipFile
    (None, "one array (.npy)"),                          # an .npy, not an archive
])
def test_rejects_a_damaged_constants_file(tmp_path, content, reason):
    path = tmp_path / "c.npz"
    if content is None:
        with open(path, "wb") as handle:
            np.save(handle, np.ones(3, np.int64))
    else:
        path.write_bytes(content)
    p = {**params("relu-L4G3-acc12"), "lanes": 1, "constants": str(path)}
    with pytest.raises(ParameterError, match=rf"^constants: {re.escape(str(path))}: not an \.npz archive "
                                             rf"\({re.escape(reason)}"):
        rq.BLOCK.prepared(**p)


@pytest.mark.parametrize("change,message", [
    (dict(lanes=5), r"^lanes: must divide Cout \(12\), got 5"),
    (dict(acc_bits=1), r"^acc_bits: must be an integer in 2\.\.64"),
    (dict(shift=0), r"^shift: must be an integer in 1\.\.62"),
    (dict(group_beats=0), r"^group_beats: must be an integer in 1\.\.16777216"),
    (dict(group_beats=4), r"^group_beats: must divide pixels \(2\), got 4"),
    (dict(target="virtex2"), r"^target: must be one of generic"),
    (dict(constants={"bias": [1, 2]}), r"^constants: lacks the array 'M'"),
    (dict(constants={"bias": [1], "M": [-1]}), r"^constants: M and M_neg must be >= 0"),
    (dict(constants={"bias": [1], "M": [1 << 20]}), r"^constants: M needs 21 bits"),
    (dict(constants="/nonexistent.npz"), r"^constants: /nonexistent.npz: no such file"),
    # never cast silently: a fraction, NaN or inf is no integer constant
    (dict(constants={"bias": [0.5], "M": [1]}),
     r"^constants: bias must hold integers \(int64\), found 0.5 at \[0\]"),
    (dict(constants={"bias": [1], "M": [float("nan")]}),
     r"^constants: M must hold integers \(int64\), found nan at \[0\]"),
    (dict(constants={"bias": [1], "M": [2], "M_neg": [float("inf")]}),
     r"^constants: M_neg must hold integers \(int64\), found inf at \[0\]"),
    (dict(constants={"bias": ["a"], "M": [1]}), r"^constants: bias must hold integers, got dtype <U1"),
])
def test_rejects_bad_parameters(change, message):
    p = {**params("relu-L4G3-acc12"), **change}
    if "constants" in change:
        p["lanes"] = 1
    with pytest.raises(ParameterError, match=message):
        rq.BLOCK.prepared(**p)


def test_ecp5_multipliers_in_icarus(tmp_path):
    """target=ecp5-85f instantiates MULT18X18D; its simulation model, written beside the
    Verilog, is compiled with it (the harness takes every ``*_sim.v`` of the directory)."""
    p = {**params("leaky-L2G2-acc26"), "target": "ecp5-85f"}
    acc = random_acc(np.random.default_rng(9), p, 20)
    got, expected, _ = run(p, acc, hdl="icarus", workdir=tmp_path, seed=3, idle=0.2,
                           stall=0.3)
    np.testing.assert_array_equal(got, expected)
    assert (tmp_path / "requant.v").read_text().count("MULT18X18D #(") == 2 * 2
    assert sorted(p.name for p in tmp_path.glob("*_sim.v")) == ["MULT18X18D_sim.v"]


@pytest.mark.parametrize("target", ["generic", "ecp5-85f"])
def test_constants_in_block_ram(tmp_path, target):
    """70 groups: the constants ROM is block RAM, its output register the constants'
    register (ECP5: DP16KD blocks with the image in INITVAL, their model beside the
    Verilog); every group's constants reach their beats, under stalls, at the latency."""
    rng = np.random.default_rng(12)
    p = {"lanes": 2, "acc_bits": 12, "abits": 4, "out_signed": False, "shift": 9,
         "pixels": 1, "target": target, "constants": constants(rng, 140)}
    w = rq.widths(**rq.BLOCK.validate(**p))
    assert rq.rom_style(w) == "block"
    acc = random_acc(rng, p, 75)
    got, expected, _ = run(p, acc, hdl="icarus", workdir=tmp_path, seed=4, idle=0.2,
                           stall=0.3)
    np.testing.assert_array_equal(got, expected)
    verilog = (tmp_path / "requant.v").read_text()
    assert ("DP16KD #(" in verilog) == (target != "generic")
    assert ("DP16KD_sim.v" in {f.name for f in tmp_path.glob("*_sim.v")}) == (target != "generic")
    got, expected, out = run(p, acc[:8], hdl="icarus", workdir=tmp_path / "steady")
    np.testing.assert_array_equal(got, expected)
    taken = [b.cycle for b in out["s_axis_acc"]]
    moved = [b.cycle for b in out["m_axis_out"]]
    assert [m - t for m, t in zip(moved, taken)] == [rq.LATENCY] * len(taken)
    generate(rq.BLOCK, tmp_path / "lint", **p)
    lint(tmp_path / "lint" / "requant.v", "requant")
