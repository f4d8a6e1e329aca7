"""The row conv stage against quant.reference.run_layer, in MyHDL and Icarus co-simulation."""
import numpy as np
import pytest

from assemblies import conv_row as cr
from blocks.spec import ParameterError
from blocks.stream import unpack
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate

# Layer shape, weight mode, activation and folding.  Covers binary/ternary/int4/int8;
# relu/leaky/none and the final z; signed inputs; K = 1, 3, 5; stride 1, 2; pad 0, 1;
# Cout/L = 1 and more; Cin/S = 1 and more; a dense layer.
LAYERS = {
    "binary-relu-k3s1p1-G1-C2": dict(cin=4, height=5, width=6, cout=4, k=3, pad=1,
                                     weights="binary", act="relu", act_bits=4,
                                     lanes=4, simd=2, abits=4),
    "ternary-leaky-k1-G3-C1-signed": dict(cin=3, height=4, width=5, cout=6, k=1,
                                          weights="ternary", act="leaky", act_bits=6,
                                          lanes=2, simd=3, abits=5, asigned=True),
    "int4-none-k5p1-G2-C2-signed": dict(cin=2, height=7, width=6, cout=2, k=5, pad=1,
                                        weights="int4", act="none", act_bits=5,
                                        lanes=1, simd=1, abits=3, asigned=True),
    "int8-relu-k3s2p1-G2-image": dict(cin=2, height=7, width=8, cout=4, k=3, stride=2, pad=1,
                                      weights="int8", act="relu", act_bits=8,
                                      lanes=2, simd=2, abits=8),
    "int8-final-k3p0-G1-C2-signed": dict(cin=2, height=5, width=5, cout=3, k=3,
                                         weights="int8", act="none", act_bits=8, final=True,
                                         lanes=3, simd=1, abits=4, asigned=True),
    "ternary-relu-k1s2-G1-C2": dict(cin=4, height=6, width=6, cout=2, k=1, stride=2,
                                    weights="ternary", act="relu", act_bits=3,
                                    lanes=2, simd=2, abits=4),
    "int4-leaky-k5s2p0-G2": dict(cin=1, height=9, width=9, cout=4, k=5, stride=2,
                                 weights="int4", act="leaky", act_bits=4,
                                 lanes=2, simd=1, abits=4),
    # input-bound with a frame pause: the pause lengthens the windows, not the input
    "binary-final-k2s2-pause": dict(cin=2, height=5, width=2, cout=4, k=2, stride=2,
                                    weights="binary", act="none", act_bits=8, final=True,
                                    lanes=4, simd=2, abits=7),
    "dense-ternary-final-G2": dict(cin=4, height=3, width=3, cout=4, k=3, kind="dense",
                                   weights="ternary", act="none", act_bits=8, final=True,
                                   lanes=2, simd=2, abits=4),
}
ICARUS = ["binary-relu-k3s1p1-G1-C2", "int4-none-k5p1-G2-C2-signed",
          "dense-ternary-final-G2"]


def make(name, seed=0, target="generic"):
    """``(stage parameters, prepared arguments)`` of a random layer of ``LAYERS[name]``."""
    cfg = dict(LAYERS[name])
    fold = {k: cfg.pop(k) for k in ("lanes", "simd")}
    rng = np.random.default_rng(seed + len(name))
    layer = cr.random_layer(rng, name=name.replace("-", "_"), **cfg)
    p = {"layer": layer, **fold, "abits": cfg["abits"], "asigned": cfg.get("asigned", False),
         "target": target}
    return p, cr.BLOCK.prepared(**p)[1]


def random_frames(rng, p, frames, layer):
    cin, h, w = layer.in_shape
    lo, hi = (-(1 << (p["abits"] - 1)), (1 << (p["abits"] - 1)) - 1) if p["asigned"] \
        else (0, (1 << p["abits"]) - 1)
    x = rng.integers(lo, hi + 1, size=(frames, h, w, cin))
    x[0, 0, 0] = lo                         # the range ends reach the accumulator
    x[-1, -1, -1] = hi
    return x


def run(p, args, frames, **kwargs):
    values, lasts = cr.golden(frames, **args)
    beats = cr.input_beats(frames, simd=p["simd"], abits=p["abits"])
    out = run_streams(cr.BLOCK, params=p, inputs={"s_axis_in": beats},
                      expect={"m_axis_out": len(values)}, **kwargs)
    signed = cr.derived(**args)["out_signed"]
    got = np.array([unpack(b.data, cr.out_bits(args), p["lanes"], signed=signed)
                    for b in out["m_axis_out"]], dtype=np.int64)
    assert [b.last for b in out["m_axis_out"]] == list(lasts)
    return got, values, out


@pytest.mark.parametrize("name", LAYERS)
def test_bit_exact_against_run_layer_under_stalls(tmp_path, name):
    p, args = make(name)
    frames = random_frames(np.random.default_rng(1), p, 2, args["layer"])
    got, expected, _ = run(p, args, frames, hdl="myhdl", seed=4, idle=0.3, stall=0.3)
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(expected)) > 2      # the layer exercises more than the clamp


@pytest.mark.parametrize("name", ICARUS)
def test_converted_verilog_under_icarus(tmp_path, name):
    p, args = make(name)
    frames = random_frames(np.random.default_rng(2), p, 2, args["layer"])
    got, expected, _ = run(p, args, frames, hdl="icarus", workdir=tmp_path, seed=5,
                           idle=0.2, stall=0.4)
    np.testing.assert_array_equal(got, expected)


def test_ecp5_target_in_icarus(tmp_path):
    """target=ecp5-85f: the MAC's and the requantizer's MULT18X18D instances and the
    decoder ROM's DP16KD blocks, simulated with the models the stage writes beside its
    Verilog (the harness compiles every ``*_sim.v`` of the directory, as a user's
    simulator run would)."""
    p, args = make("int8-relu-k3s2p1-G2-image", target="ecp5-85f")
    frames = random_frames(np.random.default_rng(6), p, 2, args["layer"])
    got, expected, _ = run(p, args, frames, hdl="icarus", workdir=tmp_path, seed=6,
                           idle=0.2, stall=0.3)
    np.testing.assert_array_equal(got, expected)
    verilog = (tmp_path / "conv_row.v").read_text()
    assert "MULT18X18D #(" in verilog and "DP16KD #(" in verilog
    assert sorted(p.name for p in tmp_path.glob("*_sim.v")) == ["DP16KD_sim.v",
                                                                 "MULT18X18D_sim.v"]


@pytest.mark.parametrize("weights,block_zeros", [("ternary", False), ("int4", True)])
def test_sparse_layer_through_a_sparse_2_rom_in_icarus(tmp_path, weights, block_zeros):
    """A highly sparse layer: the writer picks ``cnn_ip.sparse/2`` (element masks for
    scattered zeros, dense blocks for zeros in whole blocks), and the stage built on that
    ROM stays bit-exact to run_layer in Icarus under stalls."""
    rng = np.random.default_rng(11)
    layer = cr.random_layer(rng, name="sparse2", cin=8, height=4, width=4, cout=4, k=3, pad=1,
                            weights=weights, act="relu", act_bits=4, abits=4)
    W = layer.W.copy()
    if block_zeros:          # whole blocks of 4 reduction elements kept or cleared
        keep = rng.random((W.shape[0], W.shape[1] // 4)) < 0.15
        W = W * np.repeat(keep, 4, axis=1)
    else:
        W[rng.random(W.shape) < 0.9] = 0
    W[0, :] = 0                                  # an all-zero output channel
    layer.W = W
    p = {"layer": layer, "lanes": 4, "simd": 8, "abits": 4, "asigned": False,
         "target": "generic"}
    _, args = cr.BLOCK.prepared(**p)
    meta = args["decoder"]["image"].meta
    assert meta["format"] == "cnn_ip.sparse/2"
    assert meta["inner"] == ("dense" if block_zeros else "mask")
    frames = random_frames(np.random.default_rng(12), p, 2, layer)
    got, expected, _ = run(p, args, frames, hdl="icarus", workdir=tmp_path, seed=13,
                           idle=0.2, stall=0.4)
    np.testing.assert_array_equal(got, expected)


# Compute-bound (with and without the frame pause) and input-bound (K = 1, stride 2).
RATE = ["binary-relu-k3s1p1-G1-C2", "int4-none-k5p1-G2-C2-signed", "int8-relu-k3s2p1-G2-image",
        "ternary-relu-k1s2-G1-C2", "int8-final-k3p0-G1-C2-signed", "binary-final-k2s2-pause"]


@pytest.mark.parametrize("name", RATE)
def test_steady_state_rate_is_contract_7_cycles_per_frame(name):
    p, args = make(name)
    frames = random_frames(np.random.default_rng(3), p, 4, args["layer"])
    got, expected, out = run(p, args, frames, hdl="myhdl")
    np.testing.assert_array_equal(got, expected)
    ends = [b.cycle for b in out["m_axis_out"] if b.last]
    measured = ends[-1] - ends[-2]
    ideal = cr.cycles_per_frame(args)["cycles"]
    assert measured == ideal
    # the first output as the estimate says (these maps outlast the decoder's start-up)
    latency = out["m_axis_out"][0].cycle - out["s_axis_in"][0].cycle
    assert latency == cr.estimate(**args)["latency"]


def test_cycles_per_frame_names_the_bound():
    _, args = make("ternary-relu-k1s2-G1-C2")
    rate = cr.cycles_per_frame(args)
    assert rate["bound"] == "input" and rate["cycles"] == 6 * 6 * 4 // 2
    _, args = make("int4-none-k5p1-G2-C2-signed")
    rate = cr.cycles_per_frame(args)
    assert rate["bound"] == "compute" and rate["compute"] == 5 * 4 * 2 * 5 * 5 * 2


@pytest.mark.parametrize("name", ["binary-relu-k3s1p1-G1-C2", "int8-final-k3p0-G1-C2-signed"])
def test_lint_clean_and_sidecar(tmp_path, name):
    p, args = make(name)
    info = generate(cr.BLOCK, tmp_path, **p)
    lint(tmp_path / "conv_row.v", "conv_row", cr.BLOCK.lint_waivers)
    layer = args["layer"]
    assert {f"{layer.name}_weights.hex", f"{layer.name}_requant.hex"} <= set(info["files"])
    est = info["estimate"]
    assert est["per"] == "frame" and est["cycles"] == cr.cycles_per_frame(args)["cycles"]
    assert est["bram_bits"] >= args["decoder"]["image"].bits


def test_estimate_is_the_sum_of_its_blocks():
    from blocks import mac
    p, args = make("int8-relu-k3s2p1-G2-image")
    q = cr.parts(**args)
    est = cr.estimate(**args)
    assert est["dsp"] >= mac.estimate(**q["mac"])["dsp"]
    ring = (3 + 2) * 8 * 2 * 8                 # (K + stride) * W * Cin * A
    image = args["decoder"]["image"].bits
    assert est["bram_bits"] == ring + image + cr.rq.estimate(**args["requant"])["bram_bits"]


@pytest.mark.parametrize("change,message", [
    (dict(lanes=3), r"^lanes: must divide Cout \(4\), got 3"),
    (dict(simd=3), r"^simd: must divide Cin \(4\), got 3"),
    (dict(abits=9), r"^abits: must be an integer in 1\.\.8"),
    (dict(layer="nowhere.npz"), r"^layer: must be MODEL\.npz:NAME"),
    (dict(layer="/nonexistent/model.npz:conv1"), r"^layer: /nonexistent/model\.npz: no such"),
    # a file stem: no spaces, paths or brackets
    (dict(rom_prefix="a b"),
     r"^rom_prefix: must be a letter or _, then letters, digits or _, got 'a b'"),
    (dict(rom_prefix="../x"), r"^rom_prefix: must be a letter or _"),
    (dict(rom_prefix="1x"), r"^rom_prefix: must be a letter or _"),
])
def test_rejects_bad_parameters(change, message):
    p, _ = make("binary-relu-k3s1p1-G1-C2")
    with pytest.raises(ParameterError, match=message):
        cr.BLOCK.prepared(**{**p, **change})


def test_rejects_a_layer_whose_window_does_not_fit():
    # once accepted, then a numpy "negative dimensions" error in the golden model
    layer = cr.random_layer(np.random.default_rng(0), name="t", cin=4, height=2, width=3,
                            cout=4, k=5, weights="binary", act="relu", act_bits=4, abits=4)
    with pytest.raises(ParameterError,
                       match=r"^layer: a 5x5 window does not fit its 2x3 map padded by 0$"):
        cr.BLOCK.prepared(layer=layer, lanes=4, simd=2)


def test_a_layers_numbers_are_checked_again_when_an_array_is_replaced():
    """The check is kept on the layer (the planner costs thousands of folds), for the
    arrays it saw: a new W or S is judged again."""
    p, _ = make("binary-relu-k3s1p1-G1-C2")
    layer = p["layer"]
    assert cr.parts(**p)["decoder"]["weights_file"] is cr.parts(**p)["decoder"]["weights_file"]
    W = np.array(layer.W, dtype=float)
    W[0, 0] = np.nan
    layer.W = W
    with pytest.raises(ParameterError, match=r"W: must hold integers, got dtype float64"):
        cr.parts(**p)
    layer.W = np.ones(W.shape, dtype=np.int64)
    assert (cr.parts(**p)["decoder"]["weights_file"] == 1).all()
    layer.S = 0
    with pytest.raises(ParameterError, match=r"S must be an integer in 1\.\.62"):
        cr.parts(**p)


def test_layer_from_a_model_file(tmp_path):
    from quant.reference import save_model
    p, args = make("ternary-relu-k1s2-G1-C2")
    save_model(tmp_path / "model.npz", [args["layer"]])
    _, loaded = cr.BLOCK.prepared(**{**p, "layer": f"{tmp_path / 'model.npz'}:{args['layer'].name}"})
    assert loaded["decoder"]["image"].words == args["decoder"]["image"].words
