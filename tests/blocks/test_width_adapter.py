"""width_adapter: the value stream is unchanged, only its packing; tlast carried; full rate."""
import random

import pytest

from blocks.spec import ParameterError
from blocks.stream import unpack
from blocks.width_adapter import BLOCK
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate

# lanes_in, lanes_out, bits: widen by 2, 4, 8; narrow by 3, 4, 8; equal.
CASES = [(1, 4, 3), (2, 4, 8), (4, 1, 5), (6, 2, 4), (3, 3, 7), (1, 8, 1), (8, 1, 2)]


def values(beats, lanes, bits):
    return [v for data, _ in beats for v in unpack(data, bits, lanes)]


def random_beats(lanes_in, lanes_out, bits, n, seed):
    """``n`` input beats, a whole number of output beats; ``tlast`` where a frame of
    ``max(lanes)`` values ends, and the extremes first."""
    rng = random.Random(seed)
    ratio = max(1, lanes_out // lanes_in)
    beats = [(rng.getrandbits(lanes_in * bits), (i + 1) % (3 * ratio) == 0) for i in range(n)]
    beats[:2] = [((1 << lanes_in * bits) - 1, beats[0][1]), (0, beats[1][1])]
    return beats


@pytest.mark.parametrize("lanes_in,lanes_out,bits", CASES)
def test_repacks_values_in_order_under_stalls(hdl, tmp_path, lanes_in, lanes_out, bits):
    beats = random_beats(lanes_in, lanes_out, bits, 48, lanes_in * 10 + lanes_out)
    expect = BLOCK.golden(beats, lanes_in=lanes_in, lanes_out=lanes_out, bits=bits)
    out = run_streams(BLOCK, params=dict(lanes_in=lanes_in, lanes_out=lanes_out, bits=bits),
                      hdl=hdl, workdir=tmp_path, inputs={"s_axis_in": beats},
                      expect={"m_axis_out": len(expect)}, idle=0.3, stall=0.4, seed=bits)
    got = [(b.data, b.last) for b in out["m_axis_out"]]
    assert got == expect
    # Independently of the golden model: the same values in the same order, and a frame
    # end after the same value.
    assert values(got, lanes_out, bits) == values(beats, lanes_in, bits)
    ends_in = [(i + 1) * lanes_in for i, (_, last) in enumerate(beats) if last]
    ends_out = [(i + 1) * lanes_out for i, (_, last) in enumerate(got) if last]
    assert ends_out == ends_in


def test_widening_keeps_a_tlast_inside_a_group():
    beats = [(1, True), (2, False), (3, False), (4, False)]
    assert BLOCK.golden(beats, lanes_in=1, lanes_out=2, bits=4) == [(0x21, True), (0x43, False)]


@pytest.mark.parametrize("lanes_in,lanes_out", [(2, 8), (8, 2), (4, 4)])
def test_one_beat_per_cycle_on_the_wide_side(lanes_in, lanes_out):
    beats = random_beats(lanes_in, lanes_out, 4, 64, 1)
    expect = BLOCK.golden(beats, lanes_in=lanes_in, lanes_out=lanes_out, bits=4)
    out = run_streams(BLOCK, params=dict(lanes_in=lanes_in, lanes_out=lanes_out, bits=4),
                      inputs={"s_axis_in": beats}, expect={"m_axis_out": len(expect)})
    narrow_side = out["s_axis_in"] if lanes_in <= lanes_out else out["m_axis_out"]
    cycles = [b.cycle for b in narrow_side]
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    first_out = out["m_axis_out"][0].cycle
    ratio = max(1, lanes_out // lanes_in)
    assert first_out - out["s_axis_in"][ratio - 1].cycle == 1


def test_lint_clean(tmp_path):
    for i, (lanes_in, lanes_out, bits) in enumerate(CASES):
        generate(BLOCK, tmp_path / str(i), lanes_in=lanes_in, lanes_out=lanes_out, bits=bits)
        assert lint(tmp_path / str(i) / "width_adapter.v", "width_adapter",
                    BLOCK.lint_waivers) == []


@pytest.mark.parametrize("values,message", [
    (dict(lanes_in=4, lanes_out=6, bits=8), r"^lanes_out: must divide or be a multiple of"),
    (dict(lanes_in=0, lanes_out=6, bits=8), r"^lanes_in: must be an integer in 1\.\.4096"),
    (dict(lanes_in=1, lanes_out=2, bits=65), r"^bits: must be an integer in 1\.\.64"),
])
def test_rejects_bad_parameters(values, message):
    with pytest.raises(ParameterError, match=message):
        BLOCK.validate(**values)
