"""The network top: a small conv + pool + dense network from random integer layers,
converted to Verilog and simulated under cocotb with random stalls on both streams,
bit-exact against ``quant.reference.run``; the chain's checks; the plumbing alone; the
top's AXI masters (``m_axi_<layer>_*``, ``<layer>_rd_bytes``, ``error``) with AxiRam."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
from myhdl import Signal, always_comb, always_seq, block, intbv

from assemblies.network import TOP_WAIVERS, Element, StagePlan, chain, lint_rules
from blocks import tile_dma
from blocks.axis_register import BLOCK as REGISTER
from blocks.axis_register import axis_register
from blocks.spec import BlockDef, Param
from blocks.stream import Axis, clock_reset
from cnn_ip.export import read_ports, write_network, write_network_top
from cnn_ip.simulate_cmd import compare, image_beats, run_rtl
from quant.reference import IntLayer, run

SIMULATOR = "icarus"


def weights(rng, mode, shape):
    if mode == "binary":
        return rng.choice([-1, 1], size=shape)
    if mode == "ternary":
        return rng.choice([-1, 0, 1], size=shape)
    bits = int(mode[3:])
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=shape)


def conv(rng, name, in_shape, out, *, k, pad=0, stride=1, mode="ternary", act="relu",
         act_bits=4, in_max=255, final=False, dense=False):
    cin, h, w = in_shape
    ho, wo = (1, 1) if dense else ((h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
    reduce = (h * w if dense else k * k) * cin
    W = weights(rng, mode, (out, reduce))
    # M / 2**S maps the typical |acc| (a quarter of the worst case) onto the output range
    shift = 16
    span = max(1, reduce * in_max * int(np.abs(W).max()) // 4)
    hi = (1 << act_bits) - 1 if act == "relu" else (1 << (act_bits - 1)) - 1
    M = rng.integers(1, max(2, (hi << shift) // span), size=out)
    lo = 0 if act == "relu" else -(1 << (act_bits - 1))
    return IntLayer(type="dense" if dense else "conv", name=name, in_shape=tuple(in_shape),
                    out_shape=(out, ho, wo), k=1 if dense else k, stride=stride, pad=pad,
                    weights=mode, act="none" if final else act,
                    act_bits=None if final else act_bits, final=final, S=shift, lo=lo, hi=hi,
                    W=W.astype(np.int64), bias=rng.integers(-span // 8, span // 8 + 1, size=out),
                    M=M.astype(np.int64), M_neg=M.astype(np.int64))


def small_network(seed=0):
    """conv 2->4 (3x3, pad 1, ternary, relu 4 bit) / maxpool 2 / dense 36->3 (int4)."""
    rng = np.random.default_rng(seed)
    c1 = conv(rng, "c1", (2, 6, 6), 4, k=3, pad=1, mode="ternary", act_bits=4)
    p1 = IntLayer(type="maxpool", name="p1", in_shape=(4, 6, 6), out_shape=(4, 3, 3), k=2, stride=2)
    d1 = conv(rng, "d1", (4, 3, 3), 3, k=3, mode="int4", in_max=15, final=True, dense=True)
    # image P = 2 -> conv S = 1 (adapter down), conv L = 2 -> pool 2 -> dense S = 4 (up)
    return [StagePlan(c1, lanes=2, simd=1, fifo_depth=0),
            StagePlan(p1, lanes=2, simd=2, fifo_depth=4),
            StagePlan(d1, lanes=1, simd=4, fifo_depth=8)]


def test_small_network_bit_exact_under_stalls(tmp_path):
    stages = small_network()
    info = write_network(stages, tmp_path / "rtl", name="tiny_net")
    assert [p["name"] for p in info["ports"]][:2] == ["aclk", "aresetn"]
    assert info["input"] == {"shape": [2, 6, 6], "order": "raster", "lanes": 2, "bits": 8,
                             "signed": False}
    assert info["output"]["shape"] == [3, 1, 1] and info["output"]["signed"]
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(6, 6, 6, 2), dtype=np.uint8)
    x[0] = 255                                   # extreme frames: all ones, all zeros
    x[1] = 0
    result = run_rtl(tmp_path / "rtl", "tiny_net", image_beats(x), simulator=SIMULATOR,
                     build_dir=tmp_path / "build", seed=3, steady=3)
    assert not result["timeout"] and not result["extra_beats"]
    expect = run([p.layer for p in stages], x).reshape(6, 1, 1, 3)
    stalled = compare(result["frames"][:6], expect, info["output"])
    steady = compare(result["frames"][6:], expect[:3], info["output"])
    assert stalled["mismatches"] == steady["mismatches"] == 0
    assert stalled["compared"] == 18 and steady["compared"] == 9


def test_chain_builds_every_stage_and_fifo_for_the_target():
    built = [(e.block_def.name, e.params.get("target")) for e in chain(small_network(), "ecp5-85f")]
    assert built == [("width_adapter", None), ("conv_row", "ecp5-85f"), ("axis_fifo", "ecp5-85f"),
                     ("maxpool_stage", None), ("width_adapter", None), ("axis_fifo", "ecp5-85f"),
                     ("conv_row", "ecp5-85f")]


def test_chain_rejects_lanes_that_do_not_divide():
    stages = small_network()
    stages[2] = StagePlan(stages[2].layer, lanes=1, simd=3)
    with pytest.raises(ValueError, match="d1: takes 3 values a beat, gets 2"):
        chain(stages)


def test_plumbing_alone(tmp_path):
    """Three register slices as a 'network': conversion, port read-back, co-simulation."""
    elements = [Element(REGISTER, {"bits": 16}) for _ in range(3)]
    assert write_network_top(elements, tmp_path / "rtl", name="regs")[0] == "regs.v"
    names = [p["name"] for p in read_ports(tmp_path / "rtl" / "regs.v", "regs")]
    assert names == ["aclk", "aresetn"] + [f"s_axis_img_t{s}" for s in ("data", "valid", "ready", "last")] \
        + [f"m_axis_out_t{s}" for s in ("data", "valid", "ready", "last")]
    rng = random.Random(0)
    frames = [[rng.randrange(1 << 16) for _ in range(rng.randrange(1, 9))] for _ in range(12)]
    result = run_rtl(tmp_path / "rtl", "regs", frames, simulator=SIMULATOR,
                     build_dir=tmp_path / "build", seed=1, steady=4)
    assert result["frames"] == frames + frames[:4]


# --- the top's AXI masters, before any frame stage: a probe with a frame stage's ports ------

@block
def dma_probe(aclk, aresetn, s_axis_in, m_axis_out, m_axi, rd_bytes, error, *, bits, base,
              nbytes):
    """Passes the stream through a register slice and reads ``nbytes`` at ``base`` through
    ``tile_dma`` once per frame (on each input ``tlast``), dropping the data: a frame
    stage's ports and off-chip traffic without its arithmetic."""
    dma = tile_dma.ports(data_bits=64)
    command, data, wrcmd = dma["s_axis_rdcmd"], dma["m_axis_rd"], dma["s_axis_wrcmd"]
    wr, wrdone = dma["s_axis_wr"], dma["m_axis_wrdone"]
    pending = Signal(intbv(0, min=0, max=256))
    word = tile_dma.encode_command(base=base, stride=nbytes, row_bytes=nbytes, rows=1)
    frame_end = Signal(bool(0))
    taken = Signal(bool(0))

    @always_comb
    def handshakes():
        frame_end.next = s_axis_in.tvalid and s_axis_in.tready and s_axis_in.tlast
        taken.next = command.tvalid and command.tready

    @always_seq(aclk.posedge, reset=aresetn)
    def count():
        if frame_end and not taken:
            pending.next = pending + 1
        elif taken and not frame_end:
            pending.next = pending - 1

    @always_comb
    def drive():
        command.tvalid.next = pending != 0
        command.tdata.next = word
        data.tready.next = 1
        wrcmd.tvalid.next = 0
        wrcmd.tdata.next = 0
        wr.tvalid.next = 0
        wr.tdata.next = 0
        wrdone.tready.next = 1

    return (axis_register(aclk, aresetn, s_axis_in, m_axis_out, bits=bits),
            tile_dma.tile_dma(aclk, aresetn, command, data, wrcmd, wr, wrdone, m_axi, error,
                              rd_bytes, dma["wr_bytes"], data_bits=64),
            handshakes, count, drive)


PROBE = BlockDef(
    name="dma_probe", build=dma_probe,
    params=(Param("bits", int, lo=1, hi=64), Param("base", int, lo=0, hi=1 << 20),
            Param("nbytes", int, lo=8, hi=4096)),
    ports=lambda *, bits, base, nbytes: {
        **clock_reset(), "s_axis_in": Axis(bits), "m_axis_out": Axis(bits),
        "m_axi": tile_dma.AxiMaster(64), "rd_bytes": Signal(intbv(0)[64:]),
        "error": Signal(bool(0))},
    golden=None, estimate=None,
    lint_waivers={"UNUSEDSIGNAL": "the probe drops the read data and never writes"})


def test_axi_masters_named_per_layer_with_axi_ram_bytes_and_error(tmp_path):
    """Two probes as 'frame stages' conv3 and dense5: their masters and counters become
    top ports, each gets its own AxiRam (random pauses on every channel), rd_bytes counts
    nbytes a frame; the second's command is misaligned, so the top's error is set, and
    the frames still all come out."""
    probes = [Element(PROBE, {"bits": 8, "base": 64, "nbytes": 192}, name="conv3"),
              Element(PROBE, {"bits": 8, "base": 3, "nbytes": 64}, name="dense5")]
    write_network_top(probes, tmp_path / "rtl", name="probes")
    names = [p["name"] for p in read_ports(tmp_path / "rtl" / "probes.v", "probes")]
    # MyHDL lists plain signals first, then each interface's, flattened
    axi = [f"m_axi_{layer}_{n}" for layer in ("conv3", "dense5") for n in vars(tile_dma.AxiMaster(64))]
    assert names == (["aclk", "aresetn", "conv3_rd_bytes", "dense5_rd_bytes", "error"]
                     + [f"s_axis_img_t{s}" for s in ("data", "valid", "ready", "last")]
                     + [f"m_axis_out_t{s}" for s in ("data", "valid", "ready", "last")] + axi)
    image = tmp_path / "weights.bin"
    image.write_bytes(bytes(range(256)) * 2)
    rng = random.Random(0)
    frames = [[rng.randrange(256) for _ in range(rng.randrange(1, 6))] for _ in range(6)]
    result = run_rtl(tmp_path / "rtl", "probes", frames, simulator=SIMULATOR,
                     build_dir=tmp_path / "build", seed=2, steady=2, axi_pause=0.4,
                     memory={"file": str(image), "base": 0, "size": 4096},
                     axi=[{"prefix": "m_axi_conv3", "rd_bytes": "conv3_rd_bytes"},
                          {"prefix": "m_axi_dense5", "rd_bytes": "dense5_rd_bytes"}])
    assert result["frames"] == frames + frames[:2]
    assert result["rd_bytes"] == {"m_axi_conv3": 192 * 8, "m_axi_dense5": 0}
    assert result["error"] is True


def frame_network(seed=0):
    """conv 2->4 (row, L 2) / conv 4->8 (frame, L 4: two groups, group-major out) /
    maxpool 2 (group-major) / dense 72->3 (frame, L 1, from a group-major map)."""
    rng = np.random.default_rng(seed)
    c1 = conv(rng, "c1", (2, 6, 6), 4, k=3, pad=1, mode="ternary", act_bits=4)
    c2 = conv(rng, "c2", (4, 6, 6), 8, k=3, pad=1, mode="binary", act_bits=4, in_max=15)
    p2 = IntLayer(type="maxpool", name="p2", in_shape=(8, 6, 6), out_shape=(8, 3, 3), k=2,
                  stride=2)
    d3 = conv(rng, "d3", (8, 3, 3), 3, k=3, mode="int4", in_max=15, final=True, dense=True)
    return [StagePlan(c1, lanes=2, simd=1),
            StagePlan(c2, lanes=4, simd=2, dataflow="frame", fifo_depth=4),
            StagePlan(p2, lanes=4, simd=4, fifo_depth=4),
            StagePlan(d3, lanes=1, simd=4, dataflow="frame", fifo_depth=4)]


def test_frame_stages_bit_exact_with_weights_from_axi_ram(tmp_path):
    """Two frame stages fetching their weights from AxiRams (weights.bin by
    network.weight_image, random pauses on every AXI channel), random stream stalls:
    every value as quant.reference.run, each stage's bytes read = its groups' bytes a
    frame, no error."""
    from assemblies.network import weight_image
    stages = frame_network()
    info = write_network(stages, tmp_path / "rtl", name="frame_net")
    assert [s["layer"] for s in info["stages"] if s["dataflow"] == "frame"] == ["c2", "d3"]
    image, memory_map = weight_image(stages)
    (tmp_path / "weights.bin").write_bytes(image)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(6, 6, 6, 2), dtype=np.uint8)
    x[0] = 255
    result = run_rtl(tmp_path / "rtl", "frame_net", image_beats(x), simulator=SIMULATOR,
                     build_dir=tmp_path / "build", seed=5, steady=2, axi_pause=0.3,
                     memory={"file": str(tmp_path / "weights.bin"), "base": 0, "size": 4096},
                     axi=[{"prefix": f"m_axi_{n}", "rd_bytes": f"{n}_rd_bytes"}
                          for n in ("c2", "d3")])
    assert not result["timeout"] and not result["extra_beats"] and not result["error"]
    expect = run([p.layer for p in stages], x).reshape(6, 1, 1, 3)
    assert compare(result["frames"][:6], expect, info["output"])["mismatches"] == 0
    assert compare(result["frames"][6:], expect[:2], info["output"])["mismatches"] == 0
    per_frame = {f"m_axi_{n}": sum(b for _, b in memory_map["layers"][n]["groups"])
                 for n in ("c2", "d3")}
    assert result["rd_bytes"] == {k: 8 * v for k, v in per_frame.items()}


def test_top_waiver_reasons_name_each_kind_of_stage_once():
    def stage(name, **waivers):
        return SimpleNamespace(block_def=SimpleNamespace(name=name, lint_waivers=waivers))

    rules = lint_rules([stage("conv_frame", UNUSEDSIGNAL="tlast: counted"),
                        stage("conv_row", UNUSEDSIGNAL="tlast: counted", WIDTH="extension"),
                        stage("conv_frame", UNUSEDSIGNAL="tlast: counted")])
    assert rules == {"UNUSEDSIGNAL": f"{TOP_WAIVERS['UNUSEDSIGNAL']}; conv_frame: tlast: "
                                     "counted; conv_row: tlast: counted",
                     "WIDTH": "conv_row: extension"}
