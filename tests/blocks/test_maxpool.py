"""maxpool: bit-exact against the integer reference model, under stalls, at full rate."""
import numpy as np
import pytest

from blocks.maxpool import BLOCK, flush_overlap, frame_beats, frame_cycles, output_values
from blocks.spec import ParameterError
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate
from quant import reference

# (params, extremes): small maps so co-simulation stays fast; every padding case and slot
# count of the design (1..3 slots, flushes along rows and down columns, uncovered items).
CASES = [
    (dict(width=5, height=4, channels=2, lanes=1, k=2, stride=2, abits=4), "random"),
    (dict(width=5, height=5, channels=4, lanes=2, k=3, stride=1, pad=1, abits=4, signed=True),
     "extremes"),
    (dict(width=6, height=5, channels=2, lanes=2, k=2, stride=1, pad_end=1, abits=8,
          signed=True), "extremes"),
    (dict(width=7, height=6, channels=4, lanes=1, k=3, stride=2, pad=1, abits=2), "random"),
    (dict(width=7, height=7, channels=2, lanes=2, k=1, stride=3, abits=5), "random"),
    (dict(width=6, height=5, channels=3, lanes=1, k=3, stride=1, pad=2, abits=1, signed=True),
     "extremes"),
    (dict(width=6, height=4, channels=2, lanes=2, k=3, stride=1, pad=2, abits=6), "random"),
    (dict(width=6, height=4, channels=4, lanes=2, k=3, stride=1, pad=2, abits=6), "random"),
    # one row padded after: no real row ends a column window (every one is flushed)
    (dict(width=5, height=1, channels=2, lanes=2, k=2, stride=1, pad_end=1, abits=8,
          signed=True), "extremes"),
    # a column pass in block RAM (132 words), read two beats ahead
    (dict(width=66, height=4, channels=4, lanes=2, k=3, stride=1, pad=1, abits=8), "extremes"),
    # frames overlapping by more than the first window's leading pixels (found by an
    # independent cycle count): pad K-1 with padding after; a stride past the window
    (dict(width=10, height=4, channels=1, lanes=1, k=2, stride=2, pad=1, pad_end=1, abits=3),
     "random"),
    (dict(width=5, height=2, channels=2, lanes=1, k=4, stride=3, pad=3, pad_end=2, abits=3),
     "random"),
    (dict(width=10, height=1, channels=32, lanes=8, k=2, stride=7, pad_end=1, abits=2),
     "random"),
    # the first window past the map: its width (ends in the row's flush); its height, with
    # a row flush before the column's
    (dict(width=1, height=3, channels=2, lanes=1, k=3, stride=2, pad_end=2, abits=3), "random"),
    (dict(width=5, height=1, channels=1, lanes=1, k=3, stride=1, pad=1, pad_end=2, abits=3),
     "random"),
]


def frames_for(p, n, kind, seed):
    """``n`` random frames; "extremes" draws mostly the range's two ends."""
    rng = np.random.default_rng(seed)
    lo = -(1 << (p["abits"] - 1)) if p.get("signed") else 0
    hi = lo + (1 << p["abits"]) - 1
    shape = (n, p["height"], p["width"], p["channels"])
    x = rng.integers(lo, hi + 1, shape)
    if kind == "extremes":
        x = np.where(rng.random(shape) < 0.8, rng.choice([lo, hi], shape), x)
        x[0] = lo                                   # a whole frame of the minimum
    return x, lo


def expected_values(p, x, lo):
    """The reference model's pooled maps, flattened in stream order."""
    layer = reference.IntLayer(type="maxpool", name="p", in_shape=(0, 0, 0),
                               out_shape=(0, 0, 0), k=p["k"], stride=p.get("stride", 1),
                               pad=p.get("pad", 0), pad_end=p.get("pad_end"))
    return reference.run_layer(layer, x, lo=lo).reshape(-1)


# Icarus for the structurally distinct conversions: three slots with words of two beats
# stored shifted, three windows of two beats flushed round a two-word delay line, a
# row pass of four beats a pixel in LUT RAM, a pixel of one beat (updated within the
# beat) with a trailing flush, and a column pass in block RAM; MyHDL for every case.
ICARUS_CASES = (1, 2, 3, 7, 9)


@pytest.mark.parametrize("hdl,case", [("myhdl", i) for i in range(len(CASES))]
                         + [("icarus", i) for i in ICARUS_CASES])
def test_matches_reference_under_stalls(hdl, tmp_path, case):
    params, kind = CASES[case]
    p = BLOCK.validate(**params)
    x, lo = frames_for(params, 2, kind, seed=case)
    beats = frame_beats(x, lanes=p["lanes"], abits=p["abits"])
    golden = BLOCK.golden(x, **p)
    out = run_streams(BLOCK, params=params, hdl=hdl, workdir=tmp_path, seed=case,
                      inputs={"s_axis_in": beats}, expect={"m_axis_out": len(golden)},
                      idle=0.3, stall=0.4)
    got = out["m_axis_out"]
    assert [(b.data, b.last) for b in got] == golden
    values = output_values([b.data for b in got], lanes=p["lanes"], abits=p["abits"],
                           signed=p["signed"])
    assert np.array_equal(values, expected_values(params, x, lo))
    assert sum(b.last for b in got) == 2 and got[-1].last


@pytest.mark.parametrize("case", [0, 1, 2, 3, 10, 11, 12, 13, 14])
def test_rate_and_latency_without_stalls(tmp_path, case):
    """Frames back to back: one input beat a cycle plus the stated flushes (less at most
    the stated overlap); the first output as the estimate says."""
    params, kind = CASES[case]
    p = BLOCK.validate(**params)
    x, _ = frames_for(params, 3, kind, seed=10 + case)
    G = p["channels"] // p["lanes"]
    out = run_streams(BLOCK, params=params, hdl="myhdl", seed=case,
                      inputs={"s_axis_in": frame_beats(x, lanes=p["lanes"], abits=p["abits"])},
                      expect={"m_axis_out": len(BLOCK.golden(x, **p))})
    ends = [b.cycle for b in out["m_axis_out"] if b.last]
    assert ends[2] - ends[1] == ends[1] - ends[0]
    assert 0 <= frame_cycles(**p) - (ends[1] - ends[0]) <= flush_overlap(**p)
    if p["pad_end"] in (0, -1) and p["pad"] == 0:
        assert ends[1] - ends[0] == frame_cycles(**p) == p["height"] * p["width"] * G
    latency = out["m_axis_out"][0].cycle - out["s_axis_in"][0].cycle
    assert latency == BLOCK.estimate(**p)["latency"]


# the structurally distinct cases (one slot with a registered update, padding both sides
# and signed, padding after, one row padded after, a column pass in block RAM); the
# others only change widths and counts
LINT_CASES = (0, 1, 2, 8, 9)


def test_lint_clean(tmp_path):
    for i in LINT_CASES:
        generate(BLOCK, tmp_path / str(i), **CASES[i][0])
        assert lint(tmp_path / str(i) / "maxpool.v", "maxpool", BLOCK.lint_waivers) == []


def test_tiny_yolo_last_pool_keeps_its_size():
    p = BLOCK.validate(width=13, height=13, channels=16, lanes=8, k=2, stride=1, pad_end=1,
                       abits=8, signed=True)
    assert BLOCK.derived(**p)["out_width"] == BLOCK.derived(**p)["out_height"] == 13


@pytest.mark.parametrize("values,message", [
    (dict(channels=6, lanes=4), r"^lanes: must divide channels \(6\)"),
    (dict(pad=2), r"^pad: must be less than k \(2\)"),
    (dict(pad_end=3), r"^pad_end: must be less than k \(2\)"),
    (dict(k=8), r"^k: must be an integer in 1\.\.7"),
    (dict(width=1, k=2), r"^k: must be at most width"),
    (dict(abits=9), r"^abits: must be an integer in 1\.\.8"),
])
def test_rejects_bad_parameters(values, message):
    base = dict(width=4, height=4, channels=4, lanes=2, k=2, abits=4)
    with pytest.raises(ParameterError, match=message):
        BLOCK.validate(**{**base, **values})
