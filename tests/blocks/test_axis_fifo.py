"""axis_fifo: every beat once and in order under stalls; holds exactly ``depth``; full rate."""
import random

import pytest
from myhdl import StopSimulation, block, instance

from blocks.axis_fifo import BLOCK
from blocks.spec import ParameterError
from cnn_ip.cosim import dut, lint, run_streams
from cnn_ip.simkit import PERIOD, axis_source, clock_reset_driver
from cnn_ip.export import generate

# bits, depth, last, style, idle, stall: LUT RAM and block RAM, the smallest depth, a
# depth that is no power of two, one-bit data.
CASES = [(8, 4, True, "auto", 0.3, 0.5), (13, 37, False, "auto", 0.6, 0.2),
         (16, 100, True, "block", 0.1, 0.7), (1, 5, True, "distributed", 0.5, 0.5)]


@pytest.mark.parametrize("bits,depth,last,style,idle,stall", CASES)
def test_passes_every_beat_in_order_under_stalls(hdl, tmp_path, bits, depth, last, style,
                                                   idle, stall):
    rng = random.Random(bits)
    beats = [(rng.getrandbits(bits), last and rng.random() < 0.3) for _ in range(300)]
    beats[:3] = [((1 << bits) - 1, last), (0, False), ((1 << bits) - 1, False)]
    out = run_streams(BLOCK, params=dict(bits=bits, depth=depth, last=last, style=style),
                      hdl=hdl, workdir=tmp_path, inputs={"s_axis_in": beats},
                      expect={"m_axis_out": len(beats)}, idle=idle, stall=stall, seed=bits)
    assert [(b.data, b.last) for b in out["m_axis_out"]] == BLOCK.golden(beats)


@pytest.mark.parametrize("depth,last", [(100, True), (514, False)])
def test_on_ecp5_dp16kd_output_register_under_stalls(hdl, tmp_path, depth, last):
    """Built for ECP5, the block-RAM FIFO's last two stages are the DP16KD's read and
    output registers (its model ``DP16KD_sim.v`` in Icarus): same beats, same order."""
    rng = random.Random(depth)
    beats = [(rng.getrandbits(40), last and rng.random() < 0.3) for _ in range(400)]
    beats[:2] = [((1 << 40) - 1, last), (0, False)]
    params = dict(bits=40, depth=depth, last=last, style="block", target="ecp5-85f")
    out = run_streams(BLOCK, params=params, hdl=hdl, workdir=tmp_path,
                      inputs={"s_axis_in": beats}, expect={"m_axis_out": len(beats)},
                      idle=0.3, stall=0.6, seed=depth)
    assert [(b.data, b.last) for b in out["m_axis_out"]] == BLOCK.golden(beats)


def test_ecp5_build_instantiates_dp16kd_and_lints(tmp_path):
    info = generate(BLOCK, tmp_path, bits=64, depth=512, target="ecp5-85f")
    text = (tmp_path / "axis_fifo.v").read_text()
    assert text.count('.REGMODE_B("OUTREG")') == info["estimate"]["bram"]["ecp5"]["DP16KD"] == 2
    assert (tmp_path / "DP16KD_sim.v").exists()
    assert lint(tmp_path / "axis_fifo.v", "axis_fifo", BLOCK.lint_waivers) == []


@pytest.mark.parametrize("depth", [4, 37])
def test_holds_exactly_depth_beats(hdl, tmp_path, depth):
    """With the output never ready, the FIFO takes ``depth`` beats and then no more."""
    params = BLOCK.validate(bits=8, depth=depth)
    ports = BLOCK.ports(**params)
    moved = []

    @block
    def bench():
        parts = [clock_reset_driver(ports["aclk"], ports["aresetn"]),
                 dut(BLOCK, ports, hdl=hdl, workdir=tmp_path, **params),
                 axis_source(ports["aclk"], ports["aresetn"], ports["s_axis_in"],
                             [(i, False) for i in range(depth + 10)], moved=moved,
                             period=PERIOD)]

        @instance
        def stop():
            ports["m_axis_out"].tready.next = 0
            for _ in range(depth + 40):
                yield ports["aclk"].posedge
            raise StopSimulation
        return parts, stop

    bench().run_sim(quiet=True)
    assert len(moved) == depth


def test_sustains_one_beat_per_cycle(tmp_path):
    beats = [(i % 256, i % 7 == 0) for i in range(200)]
    out = run_streams(BLOCK, params={"bits": 8, "depth": 100}, inputs={"s_axis_in": beats},
                      expect={"m_axis_out": 200})
    cycles = [b.cycle for b in out["m_axis_out"]]
    assert cycles[-1] - cycles[0] == 199
    assert cycles[0] - out["s_axis_in"][0].cycle == BLOCK.estimate(bits=8, depth=100)["latency"]


def test_lint_clean_and_memory_by_size(tmp_path):
    for i, (bits, depth, last, style, _, _) in enumerate(CASES + [(64, 512, True, "auto", 0, 0)]):
        info = generate(BLOCK, tmp_path / str(i), bits=bits, depth=depth, last=last,
                        style=style)
        assert lint(tmp_path / str(i) / "axis_fifo.v", "axis_fifo", BLOCK.lint_waivers) == []
        text = (tmp_path / str(i) / "axis_fifo.v").read_text()
        assert f'ram_style = "{info["derived"]["memory"]}"' in text
    assert info["derived"]["memory"] == "block"
    assert info["estimate"]["bram"]["ecp5"]["DP16KD"] == 2      # 510 x 65 bits


@pytest.mark.parametrize("values,message", [
    (dict(bits=8, depth=3), r"^depth: must be an integer in 4\.\.65536"),
    (dict(bits=0, depth=8), r"^bits: must be an integer in 1\.\.4096"),
    (dict(bits=8, depth=8, style="ff"), r"^style: must be one of auto, block, distributed"),
])
def test_rejects_bad_parameters(values, message):
    with pytest.raises(ParameterError, match=message):
        BLOCK.validate(**values)
