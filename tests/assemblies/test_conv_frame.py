"""The frame conv stage against quant.reference.run_layer, with its weights read from an
AXI memory (random pauses and latencies on every AXI channel, SLVERR), in MyHDL and Icarus
co-simulation."""
import dataclasses

import numpy as np
import pytest
from myhdl import StopSimulation, block, instance

from assemblies import conv_frame as cf
from blocks.spec import ParameterError
from blocks.stream import unpack
from cnn_ip.cosim import dut, lint
from cnn_ip.export import generate
from cnn_ip.simkit import (axi_memory, axis_monitor, axis_sink, axis_source,
                           clock_reset_driver)
from test_conv_row import random_frames as row_frames

# Layer, folding and stage options.  Covers binary/ternary/int4/int8; relu/leaky/final;
# signed inputs; K = 1, 3; stride 1, 2; pad 0, 1; G = Cout/L of 1, 2, 3; Cin/S 1 and more;
# raster and group-major input; lanes_in below, equal to and above simd; buffers 1 and 2;
# 32- and 64-bit buses; a dense layer.
LAYERS = {
    "ternary-relu-k3p1-G2-raster-b1": dict(
        layer=dict(cin=4, height=4, width=5, cout=4, k=3, pad=1, weights="ternary",
                   act="relu", act_bits=4, abits=4),
        stage=dict(lanes=2, simd=2, abits=4, lanes_in=1, buffers=1)),
    "binary-leaky-k3s2-G3-groupmajor-b2": dict(
        layer=dict(cin=4, height=5, width=5, cout=6, k=3, stride=2, weights="binary",
                   act="leaky", act_bits=5, abits=5, asigned=True),
        stage=dict(lanes=2, simd=4, abits=5, asigned=True, lanes_in=2,
                   order_in="group-major", groups_in=2, buffers=2, bus_bits=32)),
    "int4-relu-k1-G2-wide-in-b2": dict(
        layer=dict(cin=6, height=3, width=4, cout=4, k=1, weights="int4", act="relu",
                   act_bits=6, abits=6),
        stage=dict(lanes=2, simd=2, abits=6, lanes_in=6, buffers=2, max_burst=2,
                   outstanding=2)),
    "int8-final-k3p1-G1-b1": dict(
        layer=dict(cin=2, height=4, width=4, cout=3, k=3, pad=1, weights="int8",
                   act="none", act_bits=8, final=True, abits=4, asigned=True),
        stage=dict(lanes=3, simd=1, abits=4, asigned=True, lanes_in=1, buffers=1)),
    "dense-ternary-G2-b2": dict(
        layer=dict(cin=4, height=3, width=3, cout=4, k=3, kind="dense", weights="ternary",
                   act="relu", act_bits=4),
        stage=dict(lanes=2, simd=4, abits=8, lanes_in=4, buffers=2)),
}
ICARUS = ["ternary-relu-k3p1-G2-raster-b1", "binary-leaky-k3s2-G3-groupmajor-b2"]
BASE = 0x2_0000


def random_frames(rng, args, frames):
    return row_frames(rng, args, frames, args["layer"])


def make(name, seed=0, **changes):
    """``(stage parameters, prepared arguments)`` of a random layer of ``LAYERS[name]``
    (or ``FETCH_BOUND[name]``)."""
    cfg = LAYERS[name] if name in LAYERS else FETCH_BOUND[name]
    rng = np.random.default_rng(cfg.get("rng_seed", seed + len(name)))
    layer = cf.cr.random_layer(rng, name=name.replace("-", "_"), **cfg["layer"])
    p = {"layer": layer, "base": BASE, **cfg["stage"], **changes}
    return p, cf.BLOCK.prepared(**p)[1]


def run(p, args, frames, *, hdl="myhdl", workdir=None, seed=0, idle=0.0, stall=0.0,
        pause=0.0, latency=20, vary=True, failing=frozenset(), drain=300,
        max_cycles=60_000):
    """The stage on ``frames`` with its weight image in a read-only ``simkit.axi_memory``
    at ``base`` (pauses, varied latency, SLVERR at ``failing``); returns the
    output values, their tlasts and cycles, rd_bytes and error at the end, and the bursts."""
    expected, lasts = cf.golden(frames, **args)
    beats = cf.input_beats(frames, lanes_in=args["lanes_in"], abits=args["abits"],
                           order_in=args["order_in"], groups_in=args["groups_in"])
    memory, _ = cf.memory_image(args)
    ports = cf.BLOCK.ports(**args)
    aclk, aresetn = ports["aclk"], ports["aresetn"]
    received, sent, errors, bursts, state = [], [], [], [], {}

    @block
    def bench():
        parts = [clock_reset_driver(aclk, aresetn),
                 dut(cf.BLOCK, ports, hdl=hdl, args=args, workdir=workdir),
                 axis_source(aclk, aresetn, ports["s_axis_in"], beats, seed=seed, idle=idle,
                             moved=sent),
                 axis_sink(aclk, aresetn, ports["m_axis_out"], received, seed=seed + 1,
                           stall=stall),
                 axis_monitor(aclk, aresetn, ports["s_axis_in"], errors, label="in"),
                 axis_monitor(aclk, aresetn, ports["m_axis_out"], errors, label="out"),
                 axi_memory(aclk, aresetn, ports["m_axi"], memory, base=args["base"],
                            data_bits=args["bus_bits"], latency=latency, pause=pause,
                            seed=seed + 2, vary=vary, failing=failing, log=bursts,
                            writable=False)]

        @instance
        def stopper():
            done_at = None
            for cycle in range(max_cycles):
                yield aclk.posedge
                if done_at is None and len(received) >= len(expected):
                    done_at = cycle
                if done_at is not None and cycle - done_at >= drain:
                    state.update(cycles=cycle, rd_bytes=int(ports["rd_bytes"]),
                                 error=bool(ports["error"]))
                    break
            raise StopSimulation

        return parts, stopper

    bench().run_sim(quiet=True)
    assert state, f"timeout after {max_cycles} cycles: {len(received)} of {len(expected)} beats"
    assert not errors, errors[:3]
    signed = cf.derived(**args)["out_signed"]
    bits = cf.cr.out_bits(args)
    got = np.array([unpack(b.data, bits, args["lanes"], signed=signed) for b in received],
                   dtype=np.int64)
    return {"got": got, "expected": expected, "lasts": [b.last for b in received],
            "first_in": sent[0].cycle, "first_out": received[0].cycle,
            "expected_lasts": list(lasts), "ends": [b.cycle for b in received if b.last],
            "bursts": bursts, **state}


def planned_bytes(args):
    return cf.estimate(**args)["offchip_bytes"]


@pytest.mark.parametrize("name", LAYERS)
def test_bit_exact_against_run_layer_under_stalls_and_axi_pauses(name):
    p, args = make(name)
    frames = random_frames(np.random.default_rng(1), args, 2)
    out = run(p, args, frames, seed=4, idle=0.3, stall=0.3, pause=0.3, latency=12)
    np.testing.assert_array_equal(out["got"], out["expected"])
    assert out["lasts"] == out["expected_lasts"]
    assert len(np.unique(out["expected"])) > 2        # more than the clamp
    assert out["rd_bytes"] == 2 * planned_bytes(args) and not out["error"]


@pytest.mark.parametrize("name", ICARUS)
def test_converted_verilog_under_icarus(tmp_path, name):
    p, args = make(name)
    frames = random_frames(np.random.default_rng(2), args, 2)
    out = run(p, args, frames, hdl="icarus", workdir=tmp_path, seed=5, idle=0.2, stall=0.3,
              pause=0.2, latency=8)
    np.testing.assert_array_equal(out["got"], out["expected"])
    assert out["rd_bytes"] == 2 * planned_bytes(args) and not out["error"]


def test_ecp5_target_in_icarus(tmp_path):
    """target=ecp5-85f: the MAC's and the requantizer's MULT18X18D, simulated with the
    model the stage writes beside its Verilog."""
    p, args = make("int8-final-k3p1-G1-b1", target="ecp5-85f")
    frames = random_frames(np.random.default_rng(8), args, 2)
    out = run(p, args, frames, hdl="icarus", workdir=tmp_path, seed=9, idle=0.2, stall=0.2,
              pause=0.2, latency=6)
    np.testing.assert_array_equal(out["got"], out["expected"])
    assert "MULT18X18D #(" in (tmp_path / "conv_frame.v").read_text()
    assert "MULT18X18D_sim.v" in {f.name for f in tmp_path.glob("*_sim.v")}


def test_fetches_follow_the_memory_map_and_never_run_ahead():
    """Every burst lies inside a group of ``quant.offchip.layout``'s map (offset by
    ``base``); three frames read exactly three times the planned bytes, also after a
    long wait with no further input."""
    p, args = make("binary-leaky-k3s2-G3-groupmajor-b2")
    frames = random_frames(np.random.default_rng(3), args, 3)
    out = run(p, args, frames, seed=6, latency=4, drain=600)
    np.testing.assert_array_equal(out["got"], out["expected"])
    _, memory_map = cf.memory_image(args)
    groups = [(BASE + o, BASE + o + n) for o, n in memory_map["layers"][args["layer"].name]["groups"]]
    assert tuple(groups) == tuple((a, a + n) for a, n in cf.parts(**args)["gbuf"]["groups"])
    nb = args["bus_bits"] // 8
    for address, length in out["bursts"]:
        assert any(lo <= address and address + length * nb <= hi for lo, hi in groups)
    assert sum(n for _, n in out["bursts"]) * nb == 3 * planned_bytes(args) == out["rd_bytes"]


def test_slave_error_sets_error_and_the_frame_still_completes():
    p, args = make("ternary-relu-k3p1-G2-raster-b1")
    first_group = args["base"] + cf.parts(**args)["weights"]["offsets"][1]
    frames = random_frames(np.random.default_rng(4), args, 2)
    out = run(p, args, frames, seed=7, stall=0.2, pause=0.2, latency=6,
              failing=frozenset({first_group}))
    assert out["error"] and len(out["got"]) == len(out["expected"])
    assert out["rd_bytes"] == 2 * planned_bytes(args)


# Compute-bound with one and with two buffers; fetch-bound (tiny maps: a group computes
# in fewer cycles than its image takes to arrive).
# Fetch-bound layers (a small map, so a group computes faster than its weights come),
# with the DMA's bursts short, long, one or several in flight, and one or two buffers
FETCH_BOUND = {
    "int8-1x1-G2-bus64-burst2-out2-b2": dict(
        layer=dict(cin=32, height=1, width=1, cout=8, k=1, weights="int8", act="relu",
                   act_bits=8),
        stage=dict(lanes=4, simd=32, abits=8, lanes_in=32, buffers=2, bus_bits=64,
                   max_burst=2, outstanding=2)),
    "int8-1x1-G2-bus64-burst16-out4-b1": dict(
        layer=dict(cin=32, height=1, width=1, cout=8, k=1, weights="int8", act="relu",
                   act_bits=8),
        stage=dict(lanes=4, simd=32, abits=8, lanes_in=32, buffers=1, bus_bits=64)),
    "int8-2x2-G2-bus32-burst64-out1-b2": dict(
        layer=dict(cin=32, height=2, width=2, cout=8, k=3, pad=1, weights="int8", act="relu",
                   act_bits=8),
        stage=dict(lanes=4, simd=32, abits=8, lanes_in=32, buffers=2, bus_bits=32,
                   max_burst=64, outstanding=1)),
    # its layer (rng_seed) one whose next command's first burst waits on the one before's
    # last (tile_dma.NEXT_COMMAND): 326 cycles, 325 with a gap one cycle shorter
    "int4-3x3-G2-bus128-burst2-out2-b1": dict(
        rng_seed=51,
        layer=dict(cin=16, height=3, width=3, cout=8, k=3, pad=1, weights="int4", act="relu",
                   act_bits=8),
        stage=dict(lanes=4, simd=16, abits=8, lanes_in=16, buffers=1, bus_bits=128,
                   max_burst=2, outstanding=2)),
    "ternary-2x2-G4-bus128-burst1-out4-b2": dict(
        layer=dict(cin=32, height=2, width=2, cout=16, k=3, pad=1, weights="ternary",
                   act="relu", act_bits=8),
        stage=dict(lanes=4, simd=16, abits=8, lanes_in=32, buffers=2, bus_bits=128,
                   max_burst=1, outstanding=4)),
}
RATE = [("ternary-relu-k3p1-G2-raster-b1", {}), ("ternary-relu-k3p1-G2-raster-b1", {"buffers": 2}),
        ("binary-leaky-k3s2-G3-groupmajor-b2", {}), *((name, {}) for name in FETCH_BOUND)]


@pytest.mark.parametrize("name,change", RATE)
def test_cycles_per_frame_and_latency_against_contract_7(name, change):
    """Cycles per frame and the first output's latency as planned, to the cycle, whether
    the fetches keep pace or not (the plan's DMA timing: ``tile_dma.ReadTimeline``)."""
    p, args = make(name, **change)
    frames = random_frames(np.random.default_rng(5), args, 4)
    out = run(p, args, frames, latency=cf.MEMORY_LATENCY, vary=False)
    np.testing.assert_array_equal(out["got"], out["expected"])
    periods = np.diff(out["ends"][1:])
    rate = cf.cycles_per_frame(args)
    assert rate["fetch_bound"] or name not in FETCH_BOUND
    # with an odd G the banks alternate between frames: two frames' cycles as planned
    assert sum(periods) == 2 * rate["cycles"], (periods, rate)
    assert out["first_out"] - out["first_in"] == cf.estimate(**args)["latency"]


def test_cycles_per_frame_terms():
    _, args = make("ternary-relu-k3p1-G2-raster-b1")
    rate = cf.cycles_per_frame(args)
    fill, reads = 4 * 5 * 4, 2 * 4 * 5 * 3 * 3 * 4 // 2
    assert (rate["input"], rate["reads"], rate["output"]) == (fill, reads, 2 * 4 * 5)
    assert rate["compute"] == fill + reads == rate["cycles"]      # one buffer: fill, then read
    _, args = make("ternary-relu-k3p1-G2-raster-b1", buffers=2)
    assert cf.cycles_per_frame(args)["cycles"] == reads


def test_fetch_bound_stage_is_flagged():
    """A 1 x 1 map of many channels: each group computes in a few cycles but its image
    takes longer to fetch, so the rate is the fetch's."""
    rng = np.random.default_rng(7)
    layer = cf.cr.random_layer(rng, cin=64, height=1, width=1, cout=8, k=1, weights="int8",
                               act="relu", act_bits=8)
    args = cf.BLOCK.prepared(layer=layer, lanes=4, simd=64, abits=8, lanes_in=64,
                             buffers=2)[1]
    rate = cf.cycles_per_frame(args)
    assert rate["fetch_bound"] and rate["bound"] == "fetch"
    assert rate["cycles"] > max(rate["input"], rate["compute"], rate["output"])
    assert all(f > rate["group_compute"] for f in rate["fetch"])


def test_schedule_with_fetches_that_keep_pace_is_the_frame_buffer_figure():
    """Two buffers: fill and reads overlap, the frame takes the longer (one buffer:
    test_cycles_per_frame_terms and the RTL rate test)."""
    for fill, group, groups in ((50, 30, 3), (200, 30, 3), (40, 200, 1)):
        period = cf.schedule(fill=fill, group=group, fetches=[([1], 1)] * groups, buffers=2,
                             latency=0, path=0)
        assert period == max(fill, group * groups)


@pytest.mark.parametrize("name", ["ternary-relu-k3p1-G2-raster-b1", "int8-final-k3p1-G1-b1"])
def test_lint_clean_and_sidecar(tmp_path, name):
    p, args = make(name)
    info = generate(cf.BLOCK, tmp_path, **p)
    lint(tmp_path / "conv_frame.v", "conv_frame", cf.BLOCK.lint_waivers)
    assert f"{args['layer'].name}_requant.hex" in info["files"]
    est = info["estimate"]
    assert est["per"] == "frame" and est["cycles"] == cf.cycles_per_frame(args)["cycles"]
    text = (tmp_path / "conv_frame.v").read_text()
    for port in ("m_axi_araddr", "m_axi_awvalid", "rd_bytes", "error", "s_axis_in_tdata"):
        assert port in text


def test_estimate_is_the_sum_of_its_parts():
    _, args = make("binary-leaky-k3s2-G3-groupmajor-b2")
    q = cf.parts(**args)
    est = cf.estimate(**args)
    depth = max(q["weights"]["depths"])
    frame_bits = 2 * 5 * 5 * 4 * 5                       # buffers * H * W * Cin * A
    group_bits = 2 * depth * q["weights"]["word_bits"]    # two banks of the largest image
    const_bits = cf.rq.estimate(**args["requant"])["bram_bits"]
    dma_bits = 16 * 4 * (32 + 1)                          # the read FIFO: 16 x 4 beats + tlast
    decoder_bits = cf.sd.BLOCK.estimate(**args["decoder"])["bram_bits"]     # its FIFO
    assert est["bram_bits"] == frame_bits + group_bits + const_bits + dma_bits + decoder_bits
    assert est["offchip_bytes"] == cf.offchip.offchip_bytes(
        args["layer"].W, weights="binary", lanes=2, simd=4, bus_bytes=4)
    assert set(est["parts"]) == {"frame_buffer", "group_buffer", "sparse_decoder",
                                 "mac_array", "requant", "tile_dma"}


def test_weights_image_is_the_memory_image():
    _, args = make("int4-relu-k1-G2-wide-in-b2")
    data, memory_map = cf.memory_image(args)
    images = cf.weights_image(args)
    name = args["layer"].name
    for g, image in enumerate(images):
        words = cf.offchip.read_words(data, memory_map, name, g, image.word_bits)
        assert words[:image.depth] == image.words
    assert [i.depth for i in images] == list(cf.parts(**args)["gbuf"]["depths"])


def damaged(layer, what):
    """``layer`` with one number the blocks cannot take."""
    W, M = np.array(layer.W, dtype=float), np.array(layer.M)
    if what == "nan":
        W[0, 0] = np.nan
    elif what == "7":
        W[0, 0] = 7
    elif what == "M":
        M[0] = -1
    return dataclasses.replace(layer, W=W, M=M, S=0 if what == "S" else layer.S)


@pytest.mark.parametrize("what,message", [
    ("nan", r"W: must hold integers, got dtype float64"),
    ("7", r"W: ternary weights must be -1, 0 or \+1; found 7 at \[0, 0\]"),
    ("M", r"M and M_neg must be >= 0 \(Contract 2\)"),
    ("S", r"S must be an integer in 1\.\.62 \(the requantizer's shift\), got 0"),
])
@pytest.mark.parametrize("stage", [cf, cf.cr])
def test_rejects_a_layer_whose_numbers_the_blocks_cannot_take(stage, what, message):
    # found by a fuzz: conv_frame took a NaN or out-of-range weight (its decoder reads
    # words, not the matrix) and wrote the stage; conv_row cast NaN to an integer
    p, _ = make("ternary-relu-k3p1-G2-raster-b1")
    if stage is cf.cr:
        p = {k: p[k] for k in ("layer", "lanes", "simd")}
    p["layer"] = damaged(p["layer"], what)
    with pytest.raises(ParameterError, match=rf"^layer: {p['layer'].name}: ({message})"):
        stage.BLOCK.prepared(**p)


@pytest.mark.parametrize("change,message", [
    (dict(lanes=3), r"^lanes: must divide Cout \(4\), got 3"),
    (dict(base=100), r"^base: must be a multiple of 64, got 100"),
    (dict(bus_bits=48), r"^bus_bits: must be one of 32, 64, 128"),
    (dict(lanes_in=3), r"^lanes_in: must divide"),
    (dict(buffers=3), r"^buffers: must be an integer in 1\.\.2"),
    (dict(order_in="group-major", groups_in=3), r"^groups_in: must divide channels"),
])
def test_rejects_bad_parameters(change, message):
    p, _ = make("ternary-relu-k3p1-G2-raster-b1")
    with pytest.raises(ParameterError, match=message):
        cf.BLOCK.prepared(**{**p, **change})
